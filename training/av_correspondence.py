"""Look, Listen and Learn (L3): audio-visual correspondence as a self-supervised task.

**Task.** A pair is one video frame (64 x 64 RGB) and one log-mel patch (~1 s). A vision net and an
audio net each embed their input into a ``dim``-vector. The loss (:func:`correspondence_loss`) has
two terms:

- the L3 binary task (Arandjelovic & Zisserman 2017): for each frame, a patch of its own clip
  (positive) and a patch of another clip (negative, drawn by :class:`OtherClipNegatives`); a small
  fusion MLP on ``[a * v, |a - v|]`` outputs one logit, trained with binary cross-entropy. Its
  accuracy (chance 0.5) is the readable measure of the task (:func:`correspondence_accuracy`);
- InfoNCE over the batch (:func:`info_nce`, weight ``nce_weight``, default 1): each frame must pick
  its own patch among all the batch's patches by cosine similarity of the embeddings.

Why both: with the binary term alone the embeddings only need to separate "same kind" from "other
kind", and 1-NN accuracy of the hidden cluster on the demo catalog came out BELOW the untrained
network's (audio 0.69 vs 0.77, video 0.87 vs 0.96 after 15 epochs); with the InfoNCE term they
beat it clearly (see :mod:`training.encoders`). ``nce_weight=0`` is plain L3. (A fusion on the plain
concatenation stayed at chance for 15 epochs: "do these match" is then an XOR the head must
discover; the product/distance features make it a comparison.)

Positives are "same clip", not "same instant": catalog clips are short and the clip-level content
is what recommendation needs. The per-clip features are ``av_video`` (mean embedding over the
clip's frames) and ``av_audio`` (mean over its patches).

**Pieces**: :class:`AVConfig`, :class:`FrameConvEncoder` (vision),
:class:`~training.audio_autoencoder.LogMelConvEncoder` (audio, time-pooled), :class:`AVCorrespondence`
(the module: both nets, fusion head, input normalisation as buffers), :class:`OtherClipNegatives`,
:class:`CorrespondenceSampler`, :func:`info_nce`, :func:`correspondence_loss`, :func:`correspondence_accuracy`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from recsys.errors import ConfigError, DataError
from training.audio_autoencoder import LogMelConvEncoder, _seeded_build


@dataclass(frozen=True)
class AVConfig:
    """Everything needed to rebuild an :class:`AVCorrespondence` (weights aside).

    Parameters
    ----------
    n_mels, patch_frames, patch_hop, max_patches, sample_rate : int
        Audio patch shape and how a clip's log-mel is cut (as in the media cache).
    frame_size : int
        Frames are ``frame_size`` x ``frame_size`` RGB.
    dim : int
        Size of each embedding (audio and visual).
    audio_width, vision_width : int
        Channels of the first conv stage of each net.
    hidden : int
        Width of the fusion MLP.
    seed : int
        Seed of the weight initialisation.
    """

    n_mels: int = 64
    patch_frames: int = 96
    patch_hop: int = 48
    max_patches: int = 12
    sample_rate: int = 16000
    frame_size: int = 64
    dim: int = 64
    audio_width: int = 64
    vision_width: int = 16
    hidden: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.patch_frames % 8 or self.patch_frames < 8:
            raise ConfigError(f"patch_frames must be a multiple of 8, got {self.patch_frames}")
        if self.frame_size < 16:
            raise ConfigError(f"frame_size must be >= 16, got {self.frame_size}")
        for k in ("n_mels", "patch_hop", "max_patches", "dim", "audio_width", "vision_width", "hidden"):
            if getattr(self, k) < 1:
                raise ConfigError(f"{k} must be >= 1, got {getattr(self, k)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AVConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown AVConfig field(s) {unknown}")
        return cls(**d)


def _conv2d(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
        nn.GroupNorm(min(4, c_out), c_out),
        nn.ReLU(inplace=True),
    )


class FrameConvEncoder(nn.Module):
    """Four stride-2 conv stages, global mean+max pooling, a linear embedding.

    Input ``(B, 3, S, S)`` normalised; output ``(B, dim)``.
    """

    def __init__(self, dim: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.convs = nn.Sequential(_conv2d(3, w), _conv2d(w, 2 * w), _conv2d(2 * w, 4 * w), _conv2d(4 * w, 4 * w))
        self.proj = nn.Linear(8 * w, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x)
        return self.proj(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))


class AVCorrespondence(nn.Module):
    """Audio net + vision net + fusion head; owns input normalisation (buffers).

    ``forward(frames, patches)`` gives one correspondence logit per pair.
    """

    def __init__(self, config: AVConfig = AVConfig()) -> None:
        super().__init__()
        self.config = config
        self.dim = config.dim
        c = config

        def build() -> None:
            self.audio_net = LogMelConvEncoder(c.n_mels, c.patch_frames, c.dim, c.audio_width, time_pool=True)
            self.vision_net = FrameConvEncoder(c.dim, c.vision_width)
            self.head = nn.Sequential(nn.Linear(2 * c.dim, c.hidden), nn.ReLU(inplace=True), nn.Linear(c.hidden, 1))

        _seeded_build(c.seed, build)
        self.register_buffer("mel_mean", torch.zeros(c.n_mels))
        self.register_buffer("mel_std", torch.ones(c.n_mels))
        self.register_buffer("pix_mean", torch.full((3,), 0.5))
        self.register_buffer("pix_std", torch.full((3,), 0.25))

    @classmethod
    def from_config(cls, config: dict[str, Any] | AVConfig) -> "AVCorrespondence":
        return cls(config if isinstance(config, AVConfig) else AVConfig.from_dict(config))

    @torch.no_grad()
    def set_input_stats(self, patches: np.ndarray, frames: np.ndarray) -> None:
        """Per-band log-mel and per-channel pixel mean/std from training data."""
        x = torch.as_tensor(np.asarray(patches, dtype=np.float32)).reshape(-1, self.config.n_mels)
        self.mel_mean.copy_(x.mean(0))
        self.mel_std.copy_(x.std(0).clamp_min(1e-3))
        f = torch.as_tensor(np.asarray(frames)).reshape(-1, 3).float() / 255.0
        self.pix_mean.copy_(f.mean(0))
        self.pix_std.copy_(f.std(0).clamp_min(1e-3))

    def embed_audio(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, patch_frames, n_mels) raw log-mel -> (B, dim)."""
        return self.audio_net((patches - self.mel_mean) / self.mel_std)

    def embed_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 RGB -> (B, dim)."""
        x = (frames.float() / 255.0 - self.pix_mean) / self.pix_std
        return self.vision_net(x.permute(0, 3, 1, 2).contiguous())

    def forward(self, frames: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Correspondence logits (B,): > 0 means "this sound belongs to this picture"."""
        a, v = self.embed_audio(patches), self.embed_video(frames)
        # Fusion on the elementwise product and distance: "do they match" is then a comparison the
        # head reads off directly; a plain concatenation leaves it an XOR the head must discover, and
        # training sits at chance for many epochs first.
        return self.head(torch.cat([a * v, (a - v).abs()], dim=1)).squeeze(1)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def _batched(self, fn, data: np.ndarray, batch_size: int) -> np.ndarray:
        self.eval()
        dev = self.mel_mean.device
        out = [fn(torch.as_tensor(data[i : i + batch_size], device=dev)).float().cpu().numpy()
               for i in range(0, len(data), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_patches(self, patches: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(P, patch_frames, n_mels) float32 -> (P, dim) float32 audio embeddings."""
        return self._batched(self.embed_audio, np.asarray(patches, dtype=np.float32), batch_size)

    def embed_frames(self, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(F, S, S, 3) uint8 -> (F, dim) float32 visual embeddings."""
        return self._batched(self.embed_video, np.asarray(frames, dtype=np.uint8), batch_size)

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """One clip's visual vector: the mean embedding of its frames.

        Parameters
        ----------
        frames : (n, H, W, 3) uint8
            RGB frames of any size (e.g. :func:`features.video_decode.decode_video`); they are brought to
            ``frame_size`` squares the way the media cache does.

        Returns
        -------
        (dim,) float32
        """
        from training.ssl_data import square_frames

        return self.embed_frames(square_frames(frames, self.config.frame_size)).mean(axis=0).astype(np.float32)

    def audio_encoder(self) -> "AVAudioEncoder":
        """The audio branch as a :class:`features.audio.AudioEncoder` (``name="av_audio"``)."""
        return AVAudioEncoder(self)


class AVAudioEncoder:
    """:class:`features.audio.AudioEncoder` view of an :class:`AVCorrespondence` audio branch."""

    name = "av_audio"

    def __init__(self, model: AVCorrespondence) -> None:
        self.model = model
        self.dim = model.config.dim
        self.n_mels = model.config.n_mels
        self.sample_rate = model.config.sample_rate

    def encode(self, logmel: np.ndarray) -> np.ndarray:
        """(T, n_mels) log-mel -> (dim,) float32: the mean embedding of its patches."""
        from training.ssl_data import logmel_patches

        lm = np.asarray(logmel, dtype=np.float32)
        if lm.ndim != 2 or lm.shape[1] != self.n_mels or lm.shape[0] < 1:
            raise DataError(f"{self.name} expects a (T >= 1, {self.n_mels}) log-mel, got shape {lm.shape}")
        c = self.model.config
        patches, _ = logmel_patches(lm, c.patch_frames, c.patch_hop, c.max_patches)
        return self.model.embed_patches(patches).mean(axis=0).astype(np.float32)


# --------------------------------------------------------------------------- sampling
class OtherClipNegatives:
    """Draws, for each anchor item, a patch of a uniformly chosen OTHER item that has audio.

    Parameters
    ----------
    patch_item : (P,) int
        Item row of each patch, non-decreasing.
    n_items : int
    """

    def __init__(self, patch_item: np.ndarray, n_items: int) -> None:
        patch_item = np.asarray(patch_item, dtype=np.int64)
        self.offsets = np.searchsorted(patch_item, np.arange(n_items + 1))
        self.counts = np.diff(self.offsets)
        self.audio_items = np.flatnonzero(self.counts > 0)
        if len(self.audio_items) < 2:
            raise DataError(f"need at least 2 items with audio for negatives, got {len(self.audio_items)}")
        self._pos = np.full(n_items, -1, dtype=np.int64)
        self._pos[self.audio_items] = np.arange(len(self.audio_items))

    def patch_of(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random patch index of each item (all must have audio)."""
        return self.offsets[items] + (rng.random(len(items)) * self.counts[items]).astype(np.int64)

    def draw(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative patch index per anchor item in ``items`` (never the item's own)."""
        items = np.asarray(items, dtype=np.int64)
        k = len(self.audio_items)
        pick = rng.integers(0, k - 1, len(items))
        own = self._pos[items]
        pick = np.where((own >= 0) & (pick >= own), pick + 1, pick)  # skip the anchor's own slot
        return self.patch_of(self.audio_items[pick], rng)


class CorrespondenceSampler:
    """One epoch = every usable frame once, with a patch of its own clip and a patch of another clip.

    Parameters
    ----------
    frames : (F, S, S, 3) uint8
    frame_item : (F,) int
    patches : (P, T, M) float32
    patch_item : (P,) int, non-decreasing
    n_items : int
    negatives : OtherClipNegatives, optional
        Source of the negative patches (default: uniform over the other clips with audio).
    flip : bool
        Mirror a random half of the frames left-right (augmentation).

    Yields ``(frames (B, S, S, 3) uint8, positives (B, T, M) float32, negatives (B, T, M) float32,
    items (B,) int64)``; ``items`` (the frames' item rows) lets the contrastive term ignore two pairs
    of the same clip in one batch.
    """

    def __init__(
        self,
        frames: np.ndarray,
        frame_item: np.ndarray,
        patches: np.ndarray,
        patch_item: np.ndarray,
        n_items: int,
        negatives: OtherClipNegatives | None = None,
        flip: bool = True,
    ) -> None:
        self.negatives = negatives or OtherClipNegatives(patch_item, n_items)
        frame_item = np.asarray(frame_item, dtype=np.int64)
        usable = self.negatives.counts[frame_item] > 0  # frames of items that also have audio
        self.frame_rows = np.flatnonzero(usable)
        if len(np.unique(frame_item[self.frame_rows])) < 2:
            raise DataError("need frames of at least 2 items that also have audio to train correspondence")
        self.frame_item = frame_item
        self.frames = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.uint8))
        self.patches = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
        self.flip = bool(flip)

    def __len__(self) -> int:
        return len(self.frame_rows)

    def pairs(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One epoch in random order: frame rows, positive patch rows, negative patch rows, item rows."""
        f = rng.permutation(self.frame_rows)
        items = self.frame_item[f]
        return f, self.negatives.patch_of(items, rng), self.negatives.draw(items, rng), items

    def batches(self, epoch: int, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        f, pos, neg, items = self.pairs(rng)
        flips = rng.random(len(f)) < 0.5 if self.flip else np.zeros(len(f), bool)
        for i in range(0, len(f), batch_size):
            sl = slice(i, i + batch_size)
            if len(f[sl]) < 2:  # a lone straggler: no in-batch negatives
                continue
            fr = self.frames[torch.from_numpy(f[sl])]
            fl = torch.from_numpy(flips[sl])
            if fl.any():
                fr[fl] = fr[fl].flip(2)
            yield (fr, self.patches[torch.from_numpy(pos[sl])], self.patches[torch.from_numpy(neg[sl])],
                   torch.from_numpy(items[sl]))


def info_nce(v: torch.Tensor, a: torch.Tensor, items: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE between row-aligned visual and audio embeddings.

    Pairs ``(v[i], a[i])`` are positives; every ``a[j]`` of another clip is a negative for ``v[i]``
    (and vice versa); pairs of the same clip at ``i != j`` are left out rather than called negative.

    Returns
    -------
    loss : scalar tensor
    top1 : scalar tensor
        Share of frames whose own patch is the most similar one in the batch.
    """
    v = nn.functional.normalize(v, dim=1)
    a = nn.functional.normalize(a, dim=1)
    logits = v @ a.T / temperature
    eye = torch.eye(len(items), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill((items[:, None] == items[None, :]) & ~eye, float("-inf"))
    target = torch.arange(len(items), device=logits.device)
    loss = 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))
    return loss, (logits.detach().argmax(1) == target).float().mean()


def correspondence_loss(
    model: AVCorrespondence,
    frames: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    items: torch.Tensor,
    *,
    nce_weight: float = 1.0,
    temperature: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L3 binary correspondence loss plus ``nce_weight`` x InfoNCE over the batch.

    The binary term is the binary cross-entropy of the fusion head on (frame, own patch) -> 1 and
    (frame, other clip's patch) -> 0. The contrastive term (:func:`info_nce`) compares each frame
    with every patch of the batch on the embeddings themselves; it makes the per-clip embeddings far
    more discriminative (1-NN cluster accuracy on the demo catalog: see the module docstring of
    :mod:`training.encoders`). ``nce_weight=0`` is plain L3.

    Returns
    -------
    loss : scalar tensor
    stats : dict
        ``acc`` (binary accuracy, chance 0.5) and, when ``nce_weight > 0``, ``top1`` (in-batch
        retrieval accuracy, chance 1 / batch size).
    """
    n = frames.shape[0]
    v = model.embed_video(frames)
    a = model.embed_audio(torch.cat([positives, negatives]))
    vv = torch.cat([v, v])
    logits = model.head(torch.cat([vv * a, (vv - a).abs()], dim=1)).squeeze(1)
    labels = torch.cat([torch.ones(n, device=v.device), torch.zeros(n, device=v.device)])
    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    stats = {"acc": float(((logits.detach() > 0).float() == labels).float().mean())}
    if nce_weight > 0:
        nce, top1 = info_nce(v, a[:n], items, temperature)
        loss = loss + nce_weight * nce
        stats["top1"] = float(top1)
    return loss, stats


@torch.no_grad()
def correspondence_accuracy(
    model: AVCorrespondence, sampler: CorrespondenceSampler, seed: int = 12345, batch_size: int = 256
) -> float:
    """Binary accuracy (chance 0.5) of the fusion head on one fresh epoch of ``sampler``'s pairs
    (each frame with its own clip's patch and with another clip's), eval mode, no flips."""
    model.eval()
    f, pos, neg, _ = sampler.pairs(np.random.default_rng(seed))
    dev = model.mel_mean.device
    correct = 0
    for i in range(0, len(f), batch_size):
        fr = sampler.frames[torch.from_numpy(f[i : i + batch_size])].to(dev)
        correct += int((model(fr, sampler.patches[torch.from_numpy(pos[i : i + batch_size])].to(dev)) > 0).sum())
        correct += int((model(fr, sampler.patches[torch.from_numpy(neg[i : i + batch_size])].to(dev)) <= 0).sum())
    return correct / (2 * len(f))
