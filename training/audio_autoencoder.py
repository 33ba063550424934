"""Audio2Vec-style self-supervised audio encoder: a masked (gap-filling) autoencoder on log-mel patches.

**Task.** Each training example is one log-mel patch (96 frames x 64 bands, ~1 s). A contiguous
block of ``mask_frames`` frames at a random position (a third of the patch by default) and a band of
``mask_bands`` mel bands are hidden (set to the per-band mean, i.e. 0 after normalisation). The
encoder sees what is left and compresses it into a ``dim``-vector; the decoder rebuilds the WHOLE
clean patch from that vector. The loss (:func:`masked_reconstruction_loss`) is the mean squared
error in normalised log-mel units, weighted ``masked_weight`` on the hidden cells and
``1 - masked_weight`` on the visible ones.

This is Audio2Vec's CBoW idea (reconstruct a slice from its surrounding context) folded into a
single patch, combined with a denoising autoencoder: filling a gap forces the code to capture what
is predictable about the sound (pitch, timbre, rhythm, noise colour) instead of copying pixels,
while the visible-cell term keeps it a faithful summary of the patch. Audio2Vec proper needs several
~1 s slices of context on each side, which short catalog clips (a few seconds) do not have. At
inference nothing is masked (as for any denoising autoencoder).

**Pieces** (separate and swappable): :class:`AudioAEConfig` (everything needed to rebuild),
:class:`LogMelConvEncoder` / :class:`PatchDecoder` (networks), :class:`AudioAutoencoder` (the module
that owns input normalisation and implements the :class:`features.audio.AudioEncoder` protocol:
``encode(logmel) -> (dim,)``, the mean of its patch embeddings), :class:`MaskedPatchSampler` (batches
and masks), :func:`masked_reconstruction_loss`.
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


@dataclass(frozen=True)
class AudioAEConfig:
    """Everything needed to rebuild an :class:`AudioAutoencoder` (weights aside).

    Parameters
    ----------
    n_mels, patch_frames : int
        Patch shape; ``patch_frames`` a multiple of 8 (three stride-2 stages).
    patch_hop, max_patches : int
        How :meth:`AudioAutoencoder.encode` cuts a clip's log-mel (as the media cache does).
    sample_rate : int
        Rate the log-mel front end expects (``features.audio.encode_wave`` resamples to it).
    dim : int
        Embedding size.
    width : int
        Channels of the first conv stage (then 2x, 2x).
    time_pool : bool
        Average the last feature map over time before the embedding layer (shift-invariant codes)
        instead of flattening it (codes that also place events in time).
    mask_frames, mask_bands : int
        Width of the hidden time block and frequency band during training (0: none).
    masked_weight : float
        Share of the loss on hidden cells, in [0, 1].
    seed : int
        Seed of the weight initialisation.
    """

    n_mels: int = 64
    patch_frames: int = 96
    patch_hop: int = 48
    max_patches: int = 12
    sample_rate: int = 16000
    dim: int = 64
    width: int = 64
    time_pool: bool = False
    mask_frames: int = 32
    mask_bands: int = 8
    masked_weight: float = 0.75
    seed: int = 0

    def __post_init__(self) -> None:
        if self.patch_frames % 8 or self.patch_frames < 8 or self.n_mels < 1:
            raise ConfigError(f"patch_frames must be a multiple of 8 and n_mels >= 1, got {self.patch_frames}, {self.n_mels}")
        if self.dim < 1 or self.width < 1 or self.patch_hop < 1 or self.max_patches < 1:
            raise ConfigError("dim, width, patch_hop and max_patches must be >= 1")
        if not (0 <= self.mask_frames < self.patch_frames and 0 <= self.mask_bands < self.n_mels):
            raise ConfigError(f"need 0 <= mask_frames < patch_frames and 0 <= mask_bands < n_mels, got "
                              f"{self.mask_frames}, {self.mask_bands}")
        if not 0.0 <= self.masked_weight <= 1.0:
            raise ConfigError(f"masked_weight must be in [0, 1], got {self.masked_weight}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AudioAEConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown AudioAEConfig field(s) {unknown}")
        return cls(**d)


def _conv1d(c_in: int, c_out: int, k: int, stride: int = 2) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2),
        nn.GroupNorm(min(4, c_out), c_out),  # batch-independent: train and eval behave alike
        nn.ReLU(inplace=True),
    )


class LogMelConvEncoder(nn.Module):
    """Three stride-2 1-D conv stages over time (mel bands as channels), then a linear embedding.

    Convolving over time with the bands as channels (as keyword-spotting nets do) is several times
    cheaper on CPU than 2-D convolutions with few channels, and keeps absolute pitch, which matters.
    Input ``(B, patch_frames, n_mels)`` (normalised); output ``(B, dim)``.
    """

    def __init__(self, n_mels: int, patch_frames: int, dim: int, width: int = 64, time_pool: bool = False) -> None:
        super().__init__()
        w = width
        self.convs = nn.Sequential(_conv1d(n_mels, w, 5), _conv1d(w, 2 * w, 3), _conv1d(2 * w, 2 * w, 3))
        self.time_pool = bool(time_pool)
        # mean and max over time when pooled: level and peaks of each channel
        self.proj = nn.Linear(2 * w * (2 if self.time_pool else patch_frames // 8), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x.transpose(1, 2))  # (B, 2w, T/8)
        if self.time_pool:
            h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return self.proj(h.flatten(1))


class PatchDecoder(nn.Module):
    """Embedding -> a full ``(B, patch_frames, n_mels)`` patch (three stride-2 transposed 1-D convs)."""

    def __init__(self, n_mels: int, patch_frames: int, dim: int, width: int = 64) -> None:
        super().__init__()
        w = width
        self.shape = (2 * w, patch_frames // 8)
        self.proj = nn.Linear(dim, 2 * w * (patch_frames // 8))
        self.ups = nn.Sequential(
            nn.ConvTranspose1d(2 * w, 2 * w, 4, stride=2, padding=1), nn.GroupNorm(min(4, 2 * w), 2 * w), nn.ReLU(inplace=True),
            nn.ConvTranspose1d(2 * w, w, 4, stride=2, padding=1), nn.GroupNorm(min(4, w), w), nn.ReLU(inplace=True),
            nn.ConvTranspose1d(w, n_mels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.proj(z)).view(z.shape[0], *self.shape)
        return self.ups(h).transpose(1, 2)


def _seeded_build(seed: int, build) -> None:
    """Run ``build()`` with torch's global generator seeded, leaving it as it was afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        build()


def mean_by_item(emb: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per-item means of consecutive rows: item ``i`` averages ``emb[off[i]:off[i+1]]`` (zeros if none).

    Returns
    -------
    (len(offsets) - 1, d) float32
    """
    n = len(offsets) - 1
    out = np.zeros((n, emb.shape[1]), dtype=np.float32)
    counts = np.diff(offsets)
    have = counts > 0
    if emb.shape[0]:
        sums = np.add.reduceat(emb.astype(np.float64), offsets[:-1][have], axis=0)
        out[have] = (sums / counts[have, None]).astype(np.float32)
    return out


class AudioAutoencoder(nn.Module):
    """Masked log-mel autoencoder; also an :class:`features.audio.AudioEncoder` (``name="audio_ae"``).

    Holds per-band input normalisation statistics as buffers (set them from the training patches
    with :meth:`set_input_stats`), so a checkpoint alone reproduces the embeddings.
    """

    name = "audio_ae"

    def __init__(self, config: AudioAEConfig = AudioAEConfig()) -> None:
        super().__init__()
        self.config = config
        self.dim = config.dim
        self.n_mels = config.n_mels
        self.sample_rate = config.sample_rate
        c = config

        def build() -> None:
            self.encoder = LogMelConvEncoder(c.n_mels, c.patch_frames, c.dim, c.width, c.time_pool)
            self.decoder = PatchDecoder(c.n_mels, c.patch_frames, c.dim, c.width)

        _seeded_build(c.seed, build)
        self.register_buffer("mel_mean", torch.zeros(c.n_mels))
        self.register_buffer("mel_std", torch.ones(c.n_mels))

    @classmethod
    def from_config(cls, config: dict[str, Any] | AudioAEConfig) -> "AudioAutoencoder":
        return cls(config if isinstance(config, AudioAEConfig) else AudioAEConfig.from_dict(config))

    @torch.no_grad()
    def set_input_stats(self, patches: np.ndarray | torch.Tensor) -> None:
        """Per-band mean and std of training patches ``(P, patch_frames, n_mels)``."""
        x = torch.as_tensor(np.asarray(patches, dtype=np.float32)).reshape(-1, self.n_mels)
        self.mel_mean.copy_(x.mean(0))
        self.mel_std.copy_(x.std(0).clamp_min(1e-3))

    def normalise(self, patches: torch.Tensor) -> torch.Tensor:
        return (patches - self.mel_mean) / self.mel_std

    def forward(self, patches: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct patches from their visible cells.

        Parameters
        ----------
        patches : (B, patch_frames, n_mels) float32
            Raw log-mel patches.
        mask : (B, patch_frames, n_mels) float32, optional
            1 where a cell is hidden.

        Returns
        -------
        recon : (B, patch_frames, n_mels)
            In normalised units.
        z : (B, dim)
        """
        x = self.normalise(patches)
        if mask is not None:
            x = x * (1.0 - mask)
        z = self.encoder(x)
        return self.decoder(z), z

    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, patch_frames, n_mels) raw log-mel -> (B, dim) codes (nothing masked)."""
        return self.encoder(self.normalise(patches))

    @torch.no_grad()
    def embed_patches(self, patches: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Codes of many patches, in eval mode on the model's device. (P, dim) float32."""
        self.eval()
        dev = self.mel_mean.device
        out = [self.embed(torch.as_tensor(patches[i : i + batch_size], device=dev)).float().cpu().numpy()
               for i in range(0, len(patches), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode(self, logmel: np.ndarray) -> np.ndarray:
        """One clip's vector: the mean code of its patches (cut as the media cache cuts them).

        Parameters
        ----------
        logmel : (T, n_mels) float32
            :func:`features.audio.logmel` at ``sample_rate``; any ``T >= 1``.

        Returns
        -------
        (dim,) float32
        """
        from training.ssl_data import logmel_patches

        lm = np.asarray(logmel, dtype=np.float32)
        if lm.ndim != 2 or lm.shape[1] != self.n_mels or lm.shape[0] < 1:
            raise DataError(f"{self.name} expects a (T >= 1, {self.n_mels}) log-mel, got shape {lm.shape}")
        c = self.config
        patches, _ = logmel_patches(lm, c.patch_frames, c.patch_hop, c.max_patches)
        return self.embed_patches(patches).mean(axis=0).astype(np.float32)


class MaskedPatchSampler:
    """Shuffled batches of patches with their training masks.

    Each patch gets one hidden time block of ``mask_frames`` frames and one hidden band of
    ``mask_bands`` bands at uniform random positions, drawn from the epoch's ``rng``.
    Yields ``(patches (B, T, M) float32, mask (B, T, M) float32)``.
    """

    def __init__(self, patches: np.ndarray, mask_frames: int, mask_bands: int) -> None:
        patches = np.asarray(patches, dtype=np.float32)
        if patches.ndim != 3 or patches.shape[0] < 2:
            raise DataError(f"need at least 2 patches (P, T, M) to train on, got shape {patches.shape}")
        self.patches = torch.from_numpy(np.ascontiguousarray(patches))
        self.mask_frames = int(mask_frames)
        self.mask_bands = int(mask_bands)

    def __len__(self) -> int:
        return int(self.patches.shape[0])

    def masks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        _, t, m = self.patches.shape
        mask = np.zeros((n, t, m), dtype=np.float32)
        if self.mask_frames:
            ts = rng.integers(0, t - self.mask_frames + 1, n)
            hide = (np.arange(t)[None, :] >= ts[:, None]) & (np.arange(t)[None, :] < ts[:, None] + self.mask_frames)
            mask[hide] = 1.0
        if self.mask_bands:
            fs = rng.integers(0, m - self.mask_bands + 1, n)
            band = (np.arange(m)[None, :] >= fs[:, None]) & (np.arange(m)[None, :] < fs[:, None] + self.mask_bands)
            mask = np.maximum(mask, band[:, None, :].astype(np.float32))
        return mask

    def batches(self, epoch: int, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = rng.permutation(len(self))
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:  # a lone straggler adds noise, not signal
                continue
            yield self.patches[torch.from_numpy(idx)], torch.from_numpy(self.masks(len(idx), rng))


def masked_reconstruction_loss(
    model: AudioAutoencoder, patches: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted MSE of the reconstruction on hidden and visible cells (normalised units).

    Returns
    -------
    loss : scalar tensor
        ``w * mse(hidden) + (1 - w) * mse(visible)`` with ``w = model.config.masked_weight``.
    stats : dict
        ``mse_hidden``, ``mse_visible``.
    """
    recon, _ = model(patches, mask)
    err = (recon - model.normalise(patches)) ** 2
    hidden = (err * mask).sum() / mask.sum().clamp_min(1.0)
    visible = (err * (1.0 - mask)).sum() / (1.0 - mask).sum().clamp_min(1.0)
    w = model.config.masked_weight
    loss = w * hidden + (1.0 - w) * visible
    return loss, {"mse_hidden": float(hidden.detach()), "mse_visible": float(visible.detach())}
