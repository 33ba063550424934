"""Train the self-supervised media encoders on a catalog and add their blocks to a features folder.

:func:`train_encoders` is what ``avrec train-encoders`` runs:

1. decode the catalog once into ``OUT/ssl/media_cache.npz`` (:func:`training.ssl_data.build_media_cache`;
   reused when the media and settings have not changed);
2. train the masked log-mel autoencoder (:mod:`training.audio_autoencoder`) -> ``OUT/ssl/audio_ae.pt``;
3. train the audio-visual correspondence model (:mod:`training.av_correspondence`) ->
   ``OUT/ssl/av_correspondence.pt``;
4. embed every item (mean over its patches / frames) and add the blocks ``audio_ae`` (mask
   ``audio``), ``av_audio`` (mask ``audio``) and ``av_video`` (mask ``video``) to the features folder
   written by ``avrec features``, aligned by item id. The existing masks decide: an item whose
   modality is missing there gets a zero row and stays flagged missing; the other columns of
   ``items.parquet`` (path, duration_s, status, error, ...) are kept as they were.

Training uses only the media (no interactions), so training on every catalog item, cold ones
included, leaks nothing about taste.

Measured on the default demo catalog (``generate_demo_catalog(dir)``: 300 items of 3 s, 8 hidden
clusters; for 10 % of the items the sound is drawn from another cluster than the picture).
Leave-one-out 1-NN accuracy of the hidden cluster, and of the cluster the sound was drawn from,
on per-dimension standardised blocks with cosine distance; learned rows are the mean (+- std) over
seeds 0, 1, 2 with the default settings; "random init" is the same network untrained:

==========================  ================  ================
block                       cluster           sound cluster
==========================  ================  ================
audio (hand-crafted, 79)    0.827             1.000
audio_ae (64)               0.829 +- 0.020    0.981 +- 0.006
  random init               0.766 +- 0.011    0.932 +- 0.010
av_audio (64)               0.897 +- 0.015    0.992 +- 0.003
  random init               0.799 +- 0.021    0.971 +- 0.006
av_video (64)               0.989 +- 0.004    0.852 +- 0.021
  random init               0.941 +- 0.022    0.773 +- 0.012
video_cnn (1024, random)    0.987             0.790
video_desc (77)             0.970             0.787
==========================  ================  ================

Training (cache already built) takes about 90 s of CPU time with one torch thread (autoencoder
~43 s, AV ~40 s); decoding the media cache once takes 8-25 s.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import ConfigError, DataError
from training.ssl_data import MediaCacheConfig
from training.trainer import TrainerConfig

#: Version of the encoder recipe, recorded in the features provenance.
ENCODERS_VERSION = "1"
SSL_DIR = "ssl"
CACHE_FILE = "media_cache.npz"
AE_FILE = "audio_ae.pt"
AV_FILE = "av_correspondence.pt"
REPORT_FILE = "report.json"
#: Block name -> mask (modality) name.
BLOCKS = {"audio_ae": "audio", "av_audio": "audio", "av_video": "video"}


def _default_ae():
    from training.audio_autoencoder import AudioAEConfig

    return AudioAEConfig()


def _default_av():
    from training.av_correspondence import AVConfig

    return AVConfig()


@dataclass(frozen=True)
class EncoderConfig:
    """Settings of :func:`train_encoders`.

    The front-end fields of the model configs (``n_mels``, ``patch_frames``, ``patch_hop``,
    ``max_patches``, ``sample_rate``, ``frame_size``) are taken from ``cache``, so the encoders
    always cut clips the way their training data was cut.

    Parameters
    ----------
    cache : MediaCacheConfig
    audio_ae : training.audio_autoencoder.AudioAEConfig
    av : training.av_correspondence.AVConfig
    ae_trainer, av_trainer : TrainerConfig
    nce_weight, temperature : float
        Weight and temperature of the InfoNCE term of the correspondence loss (0: plain L3).
    """

    cache: MediaCacheConfig = field(default_factory=MediaCacheConfig)
    audio_ae: Any = field(default_factory=_default_ae)
    av: Any = field(default_factory=_default_av)
    ae_trainer: TrainerConfig = TrainerConfig(epochs=15, batch_size=32, lr=3e-3)
    av_trainer: TrainerConfig = TrainerConfig(epochs=12, batch_size=64, lr=2e-3)
    nce_weight: float = 1.0
    temperature: float = 0.1

    def __post_init__(self) -> None:
        # The autoencoder's sampler drops batches of one (a lone patch adds noise) and the
        # correspondence loss scores a clip against the batch's other clips; the shared loop
        # itself accepts a batch of one (the bridge's).
        for name in ("ae_trainer", "av_trainer"):
            if getattr(self, name).batch_size < 2:
                raise ConfigError(f"{name}.batch_size must be >= 2, got {getattr(self, name).batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EncoderReport:
    """What :func:`train_encoders` did.

    Attributes
    ----------
    features_dir, out_dir : Path
    checkpoints : dict of str to Path
        ``audio_ae`` and ``av_correspondence`` checkpoint files.
    n_items : int
        Catalog items.
    n_rows : int
        Rows of the features folder.
    n_audio, n_video : int
        Feature rows that got an audio / video embedding (the rest are flagged missing).
    failures : list of (item_id, modality, reason)
        Media the cache could not decode.
    ae_losses, av_losses : list of float
        Loss per epoch.
    av_accuracy : float
        Correspondence accuracy of the AV model on its training pairs (chance 0.5).
    seconds : dict of str to float
        Wall-clock ``cache``, ``audio_ae``, ``av``, ``embed``, ``total``; CPU time (this process, all
        threads; steadier than wall-clock on a shared machine) ``audio_ae_cpu``, ``av_cpu`` (training
        loops) and ``cpu_total``.
    device : str
    """

    features_dir: Path
    out_dir: Path
    checkpoints: dict[str, Path] = field(default_factory=dict)
    n_items: int = 0
    n_rows: int = 0
    n_audio: int = 0
    n_video: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    ae_losses: list[float] = field(default_factory=list)
    av_losses: list[float] = field(default_factory=list)
    av_accuracy: float = float("nan")
    seconds: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def ae_loss(self) -> float:
        return self.ae_losses[-1] if self.ae_losses else float("nan")

    @property
    def av_loss(self) -> float:
        return self.av_losses[-1] if self.av_losses else float("nan")

    def summary(self) -> str:
        s = self.seconds
        lines = [
            f"encoders: {self.n_items} catalog items, {self.n_audio}/{self.n_rows} rows with audio, "
            f"{self.n_video}/{self.n_rows} with video, {len(self.failures)} decode failures",
            f"audio_ae: loss {self.ae_losses[0]:.4f} -> {self.ae_loss:.4f} in {s.get('audio_ae', 0):.1f}s",
            f"av: loss {self.av_losses[0]:.4f} -> {self.av_loss:.4f}, correspondence accuracy "
            f"{self.av_accuracy:.3f} (chance 0.5) in {s.get('av', 0):.1f}s",
            f"blocks audio_ae, av_audio, av_video added to {self.features_dir}; checkpoints in "
            f"{self.out_dir / SSL_DIR}; {s.get('total', 0):.1f}s total ({s.get('cpu_total', 0):.1f}s CPU) on {self.device}",
        ]
        for item_id, modality, reason in self.failures[:10]:
            lines.append(f"  failed {item_id} ({modality}): {reason}")
        if len(self.failures) > 10:
            lines.append(f"  ... and {len(self.failures) - 10} more ({self.out_dir / SSL_DIR / REPORT_FILE})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["features_dir"], d["out_dir"] = str(self.features_dir), str(self.out_dir)
        d["checkpoints"] = {k: str(v) for k, v in self.checkpoints.items()}
        d["ae_loss"], d["av_loss"] = self.ae_loss, self.av_loss
        return d


def _front_end(cache: MediaCacheConfig) -> dict[str, int]:
    return {"n_mels": cache.n_mels, "patch_frames": cache.patch_frames, "patch_hop": cache.hop,
            "max_patches": cache.max_patches, "sample_rate": cache.sample_rate}


def _rows_of(features_ids: np.ndarray, cache_ids: np.ndarray) -> np.ndarray:
    """Cache row of each features row (-1 where the catalog lacks the item); ids compared as strings."""
    pos = {str(i): k for k, i in enumerate(cache_ids.tolist())}
    return np.asarray([pos.get(str(i), -1) for i in features_ids.tolist()], dtype=np.int64)


def _check_coverage(feats, rows: np.ndarray, cache) -> None:
    """Every features row flagged with a modality must have it in the cache (else a silent zero)."""
    for modality, have in (("audio", cache.has_audio), ("video", cache.has_video)):
        if modality not in feats.masks:
            continue
        flagged = feats.masks[modality]
        ok = np.zeros(len(rows), dtype=bool)
        ok[rows >= 0] = have[rows[rows >= 0]]
        bad = np.flatnonzero(flagged & ~ok)
        if len(bad):
            ids = feats.item_ids[bad[:5]].tolist()
            raise DataError(
                f"{len(bad)} item(s) have {modality} in the features folder but not in this catalog's "
                f"decoded media (first: {ids}); use the catalog the features were extracted from, or "
                "re-run `avrec features` on this catalog"
            )


def load_encoders(out_dir: str | Path, device: str = "cpu"):
    """The trained ``(AudioAutoencoder, AVCorrespondence)`` from ``out_dir/ssl/`` (checkpoints alone)."""
    from training.checkpoint import load_checkpoint

    d = Path(out_dir) / SSL_DIR
    return (load_checkpoint(d / AE_FILE, device, "AudioAutoencoder"),
            load_checkpoint(d / AV_FILE, device, "AVCorrespondence"))


def embed_cache(ae, av, cache) -> dict[str, np.ndarray]:
    """Per-item embeddings of every cache item: ``{block: (n_items, dim) float32}`` (zero rows where
    the item lacks the modality)."""
    from training.audio_autoencoder import mean_by_item

    p_off, f_off = cache.patch_offsets(), cache.frame_offsets()
    return {
        "audio_ae": mean_by_item(ae.embed_patches(cache.patches), p_off),
        "av_audio": mean_by_item(av.embed_patches(cache.patches), p_off),
        "av_video": mean_by_item(av.embed_frames(cache.frames), f_off),
    }


def train_encoders(
    features_dir: str | Path,
    catalog,
    out_dir: str | Path,
    epochs: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
    *,
    config: EncoderConfig | None = None,
    device: str = "auto",
) -> EncoderReport:
    """Train both self-supervised encoders on the catalog's media and add their blocks to ``features_dir``.

    Parameters
    ----------
    features_dir : str or Path
        A features folder written by ``avrec features`` (``ItemFeatures`` layout); updated in place
        with the blocks ``audio_ae``, ``av_audio`` (mask ``audio``) and ``av_video`` (mask ``video``).
    catalog : recsys.data.Catalog, or a path
        The catalog the features were extracted from (a CSV/Parquet file, or a media folder).
    out_dir : str or Path
        Work folder; ``out_dir/ssl/`` receives ``media_cache.npz``, ``audio_ae.pt``,
        ``av_correspondence.pt`` and ``report.json``.
    epochs : int, optional
        Epochs of both trainings (default: 15 for the autoencoder, 12 for the AV model).
    seed : int
        Seeds weight initialisation and data order of both models; on CPU the result is
        bit-identical for the same seed and thread count.
    log : callable or None
        Progress lines (one per epoch).
    config : EncoderConfig, optional
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.

    Returns
    -------
    EncoderReport

    Raises
    ------
    DataError
        Not a features folder; features and catalog disagree about which items have media; too
        little decodable media to train on.
    """
    import polars as pl
    import torch

    from recsys.data import Catalog
    from recsys.data.item_features import ITEMS_PARQUET, ItemFeatures
    from training.audio_autoencoder import AudioAutoencoder, MaskedPatchSampler, masked_reconstruction_loss
    from training.av_correspondence import (
        AVCorrespondence,
        CorrespondenceSampler,
        correspondence_accuracy,
        correspondence_loss,
    )
    from training.checkpoint import save_checkpoint
    from training.ssl_data import build_media_cache
    from features.device import resolve_device
    from training.trainer import train

    t0, c0 = time.perf_counter(), time.process_time()
    cfg = config or EncoderConfig()
    features_dir, out_dir = Path(features_dir), Path(out_dir)
    feats = ItemFeatures.load(features_dir)  # fail before any decoding when it is not a features folder
    if not isinstance(catalog, Catalog):
        catalog = Catalog.from_csv(catalog) if Path(catalog).is_file() else Catalog.scan(catalog)
    ssl_dir = out_dir / SSL_DIR
    report = EncoderReport(features_dir=features_dir, out_dir=out_dir, n_items=len(catalog), n_rows=feats.n_items,
                           device=str(resolve_device(device)))

    cache = build_media_cache(catalog, ssl_dir / CACHE_FILE, cfg.cache, log=log)
    report.failures = list(cache.failures)
    report.seconds["cache"] = time.perf_counter() - t0
    rows = _rows_of(feats.item_ids, cache.item_ids)
    _check_coverage(feats, rows, cache)
    if cache.patches.shape[0] < 2:
        raise DataError(f"only {cache.patches.shape[0]} audio patch(es) decoded from {len(catalog)} items; "
                        "the encoders need media with audio to train on")

    def trainer_cfg(base: TrainerConfig) -> TrainerConfig:
        return dataclasses.replace(base, seed=seed, device=device, **({"epochs": epochs} if epochs is not None else {}))

    front = _front_end(cache.config)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(cfg.ae_trainer.threads or threads)
        # 1. masked autoencoder
        t = time.perf_counter()
        ae = AudioAutoencoder(dataclasses.replace(cfg.audio_ae, seed=seed, **front))
        ae.set_input_stats(cache.patches)
        sampler = MaskedPatchSampler(cache.patches, ae.config.mask_frames, ae.config.mask_bands)
        hist_ae = train(ae, sampler, masked_reconstruction_loss, trainer_cfg(cfg.ae_trainer), log=log, name="audio_ae")
        report.ae_losses = hist_ae.losses
        report.checkpoints["audio_ae"] = save_checkpoint(ae, ssl_dir / AE_FILE, meta={
            "losses": hist_ae.losses, "stats": hist_ae.stats, "n_patches": int(cache.patches.shape[0]),
            "trainer": dataclasses.asdict(trainer_cfg(cfg.ae_trainer)), "seconds": hist_ae.seconds,
            "cpu_seconds": hist_ae.cpu_seconds})
        report.seconds["audio_ae"] = time.perf_counter() - t
        report.seconds["audio_ae_cpu"] = hist_ae.cpu_seconds

        # 2. audio-visual correspondence
        t = time.perf_counter()
        av = AVCorrespondence(dataclasses.replace(cfg.av, seed=seed, frame_size=cache.config.frame_size, **front))
        av.set_input_stats(cache.patches, cache.frames)
        pairs = CorrespondenceSampler(cache.frames, cache.frame_item, cache.patches, cache.patch_item, cache.n_items)
        loss = functools.partial(correspondence_loss, nce_weight=cfg.nce_weight, temperature=cfg.temperature)
        hist_av = train(av, pairs, loss, trainer_cfg(cfg.av_trainer), log=log, name="av")
        report.av_losses = hist_av.losses
        report.av_accuracy = correspondence_accuracy(av, pairs, seed=seed)
        report.checkpoints["av_correspondence"] = save_checkpoint(av, ssl_dir / AV_FILE, meta={
            "losses": hist_av.losses, "stats": hist_av.stats, "accuracy": report.av_accuracy,
            "n_frames": int(cache.frames.shape[0]), "nce_weight": cfg.nce_weight, "temperature": cfg.temperature,
            "trainer": dataclasses.asdict(trainer_cfg(cfg.av_trainer)), "seconds": hist_av.seconds,
            "cpu_seconds": hist_av.cpu_seconds})
        report.seconds["av"] = time.perf_counter() - t
        report.seconds["av_cpu"] = hist_av.cpu_seconds

        # 3. per-item embeddings, aligned to the features rows; the features' masks decide
        t = time.perf_counter()
        per_item = embed_cache(ae, av, cache)
    finally:
        torch.set_num_threads(threads)
    n = feats.n_items
    blocks = {}
    for name, emb in per_item.items():
        out = np.zeros((n, emb.shape[1]), dtype=np.float32)
        mask = feats.masks.get(BLOCKS[name], np.zeros(n, dtype=bool))
        take = mask & (rows >= 0)
        out[take] = emb[rows[take]]
        blocks[name] = out
    report.n_audio = int(feats.masks.get("audio", np.zeros(n, bool)).sum())
    report.n_video = int(feats.masks.get("video", np.zeros(n, bool)).sum())
    provenance = {"ssl_encoders": {
        "version": ENCODERS_VERSION,
        "blocks": {k: {"dim": int(v.shape[1]), "mask": BLOCKS[k]} for k, v in blocks.items()},
        "checkpoints": {k: str(v) for k, v in report.checkpoints.items()},
        "config": {**cfg.to_dict(), "epochs": epochs, "seed": seed},
        "final_loss": {"audio_ae": report.ae_loss, "av": report.av_loss},
        "av_accuracy": report.av_accuracy,
        "media_cache": {"fingerprint": cache.fingerprint, "n_failures": len(cache.failures)},
    }}
    extra_df = pl.read_parquet(features_dir / ITEMS_PARQUET)
    extra = {c: extra_df.get_column(c).to_list() for c in extra_df.columns
             if c != "item_id" and not c.startswith("has_")}
    feats.with_blocks(blocks, block_masks={k: BLOCKS[k] for k in blocks}, provenance=provenance).save(
        features_dir, extra_columns=extra)
    report.seconds["embed"] = time.perf_counter() - t
    report.seconds["total"] = time.perf_counter() - t0
    report.seconds["cpu_total"] = time.process_time() - c0
    ssl_dir.mkdir(parents=True, exist_ok=True)
    (ssl_dir / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2, default=str))
    if log is not None:
        log(report.summary())
    return report
