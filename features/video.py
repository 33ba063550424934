"""Video features from sampled RGB frames.

- CNN block: a torchvision backbone (``resnet18`` by default) run on the frames in batches, with
  ImageNet normalisation, the shorter side resized to ``frame_size`` (112 px by default to keep the
  CPU cost low; the aspect ratio is kept, no crop: the backbones pool globally). Penultimate-layer
  features are pooled over time by mean and max and concatenated: ``(2 * D,)``.
  Weights: ``"none"`` (random initialisation from a fixed seed, so vectors are identical across
  processes and runs), a path to a local ``state_dict`` file, or a torchvision weights name
  (``"IMAGENET1K_V1"``, ``"DEFAULT"``), which needs a download when not cached. Loaded models are
  cached per process.
- Descriptor block (:func:`video_descriptor_vector`): HSV colour histogram, brightness, contrast,
  saturation and edge statistics, motion energy and cut rate from consecutive sampled frames.
  These carry signal whatever the CNN weights are.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from pathlib import Path

import numpy as np

from features.device import resolve_device
from recsys.errors import ConfigError, DataError

#: Seed of the random initialisation used for ``weights="none"``.
RANDOM_INIT_SEED = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Name of the classification head attribute, by model family; it is replaced by Identity.
_HEADS = ("fc", "classifier", "heads", "head")

H_BINS, S_BINS = 16, 4
#: Frames are downscaled to this short side before computing descriptors (cost, and comparable
#: values across resolutions).
DESC_SIZE = 64
#: Total-variation distance between the colour histograms of consecutive sampled frames above
#: which the pair counts as a cut.
CUT_THRESHOLD = 0.4


def _desc_names() -> list[str]:
    names = [f"hsv_h{h}_s{s}" for h in range(H_BINS) for s in range(S_BINS)]
    names += ["brightness_mean", "brightness_std", "contrast_mean", "contrast_std"]
    names += ["saturation_mean", "saturation_std", "edges_mean", "edges_std"]
    names += ["motion_mean", "motion_std", "motion_max", "hist_change_mean", "cut_rate"]
    return names


#: Name of each dimension of :func:`video_descriptor_vector`.
VIDEO_DESC_NAMES: tuple[str, ...] = tuple(_desc_names())
VIDEO_DESC_DIM: int = len(VIDEO_DESC_NAMES)

_MODELS: dict[tuple, tuple] = {}  # (backbone, weights, weights-file stamp, device) -> (module, dim)
#: Feature sizes of common headless backbones, so ``backbone_dim`` needs no torch import for them
#: (tests check them against the shape-only pass); others are computed once and added.
_DIMS: dict[str, int] = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet101": 2048,
    "resnet152": 2048,
    "mobilenet_v2": 1280,
    "mobilenet_v3_small": 576,
    "mobilenet_v3_large": 960,
    "efficientnet_b0": 1280,
}


# --------------------------------------------------------------------------- hand-crafted
def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise DataError(f"frames must be (n >= 1, H, W, 3) RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise DataError(f"frames must be uint8, got {frames.dtype}")
    return frames


def _downscale(frame: np.ndarray, short: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = short / min(h, w)
    if scale >= 1.0:
        return frame
    return cv2.resize(frame, (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)), interpolation=cv2.INTER_AREA)


def video_descriptor_vector(frames: np.ndarray, timestamps: np.ndarray | None = None) -> np.ndarray:
    """Colour, brightness, texture and motion descriptor of a clip (names in :data:`VIDEO_DESC_NAMES`).

    Parameters
    ----------
    frames : (n, H, W, 3) uint8
        RGB frames in time order, ``n >= 1``.
    timestamps : (n,) float, optional
        Frame times in seconds; checked for length and order. Motion and cuts are measured between
        consecutive *sampled* frames (about 1 s apart at the default rate).

    Returns
    -------
    (VIDEO_DESC_DIM,) float32
        - ``hsv_h*_s*`` (16 hue x 4 saturation bins) share of pixels, summing to 1;
        - brightness (mean luma per frame: mean, std over frames), contrast (luma std per frame:
          mean, std), saturation (mean, std over all pixels), edges (mean Sobel magnitude per frame:
          mean, std), all on a 0-1 scale;
        - motion (mean absolute luma difference of consecutive frames: mean, std, max), mean colour
          histogram change, cut rate (share of consecutive pairs whose histogram change exceeds
          ``CUT_THRESHOLD``); zeros for a single frame.
    """
    import cv2

    frames = _check_frames(frames)
    if timestamps is not None:
        ts = np.asarray(timestamps, dtype=np.float64)
        if ts.shape != (frames.shape[0],):
            raise DataError(f"{frames.shape[0]} frames but timestamps of shape {ts.shape}")
        if ts.size > 1 and np.any(np.diff(ts) < 0):
            raise DataError("timestamps must be non-decreasing")

    hists, lumas, contrasts, edges, sat_sum, sat_sq, n_px = [], [], [], [], 0.0, 0.0, 0
    grays = []
    for f in frames:
        small = _downscale(f, DESC_SIZE)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)  # H in [0, 180), S, V in [0, 256)
        h = (hsv[..., 0].astype(np.int32) * H_BINS) // 180
        s = (hsv[..., 1].astype(np.int32) * S_BINS) // 256
        hist = np.bincount((h * S_BINS + s).ravel(), minlength=H_BINS * S_BINS).astype(np.float64)
        hists.append(hist / hist.sum())
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        grays.append(gray)
        lumas.append(float(gray.mean()))
        contrasts.append(float(gray.std()))
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        edges.append(float(np.mean(np.sqrt(gx * gx + gy * gy))) / 4.0)  # 3x3 Sobel gain is 4
        sat = hsv[..., 1].astype(np.float64) / 255.0
        sat_sum += float(sat.sum())
        sat_sq += float((sat * sat).sum())
        n_px += sat.size
    hist_mean = np.mean(hists, axis=0)
    sat_mean = sat_sum / n_px
    sat_std = math.sqrt(max(sat_sq / n_px - sat_mean**2, 0.0))

    motion = np.zeros(0)
    change = np.zeros(0)
    if len(grays) > 1:
        motion = np.array([float(np.mean(np.abs(b - a))) for a, b in zip(grays[:-1], grays[1:]) if a.shape == b.shape])
        change = 0.5 * np.abs(np.diff(np.stack(hists), axis=0)).sum(axis=1)
    m = [float(motion.mean()), float(motion.std()), float(motion.max())] if motion.size else [0.0, 0.0, 0.0]
    c = [float(change.mean()), float(np.mean(change > CUT_THRESHOLD))] if change.size else [0.0, 0.0]

    vec = np.concatenate(
        [
            hist_mean,
            [np.mean(lumas), np.std(lumas), np.mean(contrasts), np.std(contrasts)],
            [sat_mean, sat_std, np.mean(edges), np.std(edges)],
            m,
            c,
        ]
    ).astype(np.float32)
    if vec.shape != (VIDEO_DESC_DIM,):  # a bug, not a user error
        raise RuntimeError(f"video descriptor has {vec.shape[0]} dims, expected {VIDEO_DESC_DIM}")
    return vec


# --------------------------------------------------------------------------- CNN backbone
def _check_backbone(name: str) -> None:
    import torchvision

    if name not in torchvision.models.list_models():
        raise ConfigError(
            f"unknown torchvision backbone {name!r}; choose one of torchvision.models.list_models(), "
            "e.g. 'resnet18', 'resnet50', 'mobilenet_v3_small', 'efficientnet_b0'"
        )


def _strip_head(model, name: str):
    import torch

    for attr in _HEADS:
        if hasattr(model, attr):
            setattr(model, attr, torch.nn.Identity())
            return model
    raise ConfigError(f"backbone {name!r} has no known classification head ({', '.join(_HEADS)}) to remove")


def _is_path_like(weights: str) -> bool:
    return os.sep in weights or "/" in weights or weights.endswith((".pt", ".pth", ".bin", ".ckpt")) or Path(weights).exists()


def weights_stamp(weights: str) -> str:
    """Identity of a weights setting for caching: ``sha256:<hex>`` of a weights file, else the name.

    The content hash (not the path) keeps cache keys equal across machines holding the same file;
    it is computed once per process and file version.
    """
    if weights != "none" and _is_path_like(weights):
        p = Path(weights).expanduser()
        if p.is_file():
            st = p.stat()
            return _file_sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)
    return weights


@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:  # size, mtime: cache invalidation
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _build(name: str, weights: str):
    """A torchvision model with its head removed, weights loaded, on the CPU, in eval mode."""
    import socket

    import torch
    import torchvision

    _check_backbone(name)
    if weights == "none":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = torchvision.models.get_model(name, weights=None)
    elif _is_path_like(weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"weights file {path} not found (weights= takes 'none', a state_dict path or a torchvision weights name)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = torchvision.models.get_model(name, weights=None)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch.load raises many types for a bad file
            raise ConfigError(f"{path}: cannot read a torch state_dict: {e}") from e
        if isinstance(state, dict):
            for key in ("state_dict", "model", "model_state_dict"):
                if key in state and isinstance(state[key], dict):
                    state = state[key]
                    break
        if not isinstance(state, dict):
            raise ConfigError(f"{path}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        result = model.load_state_dict(state, strict=False)
        head = tuple(f"{h}." for h in _HEADS)
        missing = [k for k in result.missing_keys if not k.startswith(head)]  # a headless file is fine
        unexpected = [k for k in result.unexpected_keys if not k.startswith(head)]
        if missing or unexpected:
            raise ConfigError(
                f"{path}: state_dict does not fit {name}: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
    else:
        try:
            enum = torchvision.models.get_model_weights(name)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"torchvision has no pretrained weights for {name}; use 'none' or a state_dict path") from e
        if weights not in enum.__members__:
            raise ConfigError(
                f"unknown weights {weights!r} for {name}; use 'none', a state_dict file path, or one of "
                f"{list(enum.__members__)}"
            )
        w = enum[weights]
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(60.0)  # a download must fail, not hang, on a machine without internet
        try:
            model = torchvision.models.get_model(name, weights=w)
        except Exception as e:  # noqa: BLE001 - URLError, OSError, hash mismatch ...
            raise ConfigError(
                f"could not load torchvision weights {name}/{weights} (download or cache failed: {e}). "
                "On a machine without internet, save the state_dict on one that has it and pass "
                "weights=<path to the .pth file>."
            ) from e
        finally:
            socket.setdefaulttimeout(old)
    return _strip_head(model, name).eval()


def backbone_dim(name: str = "resnet18", *, known: bool = True) -> int:
    """Feature size ``D`` of a headless backbone.

    Common backbones come from a table; others (or ``known=False``) from a shape-only forward pass
    on the meta device (no weights are allocated, nothing is computed), or a small CPU pass for
    models that cannot be built on the meta device.
    """
    if known and name in _DIMS:
        return _DIMS[name]
    import torch
    import torchvision

    _check_backbone(name)
    dim = None
    # meta first (free); some builders compute with tensors while constructing (RegNet): then CPU
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                model = _strip_head(torchvision.models.get_model(name, weights=None), name).eval()
        except (NotImplementedError, RuntimeError):
            continue
        for side in (64, 224):  # some (ViT) need their training size
            try:
                with torch.no_grad():
                    dim = int(model(torch.zeros(1, 3, side, side, device=device)).reshape(1, -1).shape[1])
                break
            except (NotImplementedError, RuntimeError, AssertionError, ValueError):
                continue
        if dim is not None:
            break
    if dim is None:
        raise ConfigError(f"cannot determine the feature size of backbone {name!r}")
    _DIMS.setdefault(name, dim)
    return dim


def load_backbone(name: str = "resnet18", weights: str = "none", device: str = "auto"):
    """The headless backbone in eval mode on ``device``, cached per process.

    Returns
    -------
    (torch.nn.Module, int)
        The model and its feature size ``D``.

    Raises
    ------
    ConfigError
        Unknown backbone or weights name, unreadable or mismatched weights file, failed download,
        a device this machine does not have (:func:`features.device.resolve_device`).
    """
    device = resolve_device(device)
    key = (name, weights, weights_stamp(weights), str(device))
    if key not in _MODELS:
        model = _build(name, weights).to(device)
        for p in model.parameters():
            p.requires_grad_(False)
        _MODELS[key] = (model, backbone_dim(name))
    return _MODELS[key]


def set_torch_threads(n: int | None) -> None:
    """Set torch's intra-op threads (one per worker process when workers run one per core)."""
    if n is None:
        return
    import torch

    if n < 1:
        raise ConfigError(f"torch_threads must be >= 1, got {n}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(int(n))


def frame_embeddings(
    frames: np.ndarray,
    *,
    backbone: str = "resnet18",
    weights: str = "none",
    frame_size: int = 112,
    device: str = "auto",
    batch_size: int = 16,
    torch_threads: int | None = None,
) -> np.ndarray:
    """Penultimate-layer features of each frame.

    Parameters
    ----------
    frames : (n, H, W, 3) uint8
        RGB frames (all the same size).
    backbone, weights, device
        See :func:`load_backbone`.
    frame_size : int
        The shorter side is resized (antialiased bilinear) to this many pixels; aspect kept.
    batch_size : int
        Frames per forward pass.
    torch_threads : int, optional
        Set torch's thread count first (None leaves it).

    Returns
    -------
    (n, D) float32
    """
    import torch
    import torch.nn.functional as F

    frames = _check_frames(frames)
    if frame_size < 16:
        raise ConfigError(f"frame_size must be >= 16, got {frame_size}")
    set_torch_threads(torch_threads)
    model, _ = load_backbone(backbone, weights, device)
    dev = next(model.parameters()).device
    h, w = frames.shape[1:3]
    scale = frame_size / min(h, w)
    out_hw = (max(int(round(h * scale)), 1), max(int(round(w * scale)), 1))
    mean = torch.tensor(IMAGENET_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=dev).view(1, 3, 1, 1)
    outs = []
    with torch.inference_mode():
        for i in range(0, frames.shape[0], batch_size):
            x = torch.from_numpy(np.ascontiguousarray(frames[i : i + batch_size])).to(dev)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            if (h, w) != out_hw:
                x = F.interpolate(x, size=out_hw, mode="bilinear", antialias=True, align_corners=False)
            x = (x - mean) / std
            outs.append(model(x).reshape(x.shape[0], -1).float().cpu().numpy())
    emb = np.concatenate(outs).astype(np.float32)
    if not np.isfinite(emb).all():
        raise RuntimeError(f"backbone {backbone} produced NaN/inf features")
    return emb


def temporal_pool(per_frame: np.ndarray) -> np.ndarray:
    """Mean and max over frames, concatenated.

    Parameters
    ----------
    per_frame : (n, D) float

    Returns
    -------
    (2 * D,) float32
    """
    per_frame = np.asarray(per_frame, dtype=np.float32)
    if per_frame.ndim != 2 or per_frame.shape[0] < 1:
        raise DataError(f"per_frame must be (n >= 1, D), got shape {per_frame.shape}")
    return np.concatenate([per_frame.mean(axis=0), per_frame.max(axis=0)]).astype(np.float32)


def cnn_vector(
    frames: np.ndarray,
    *,
    backbone: str = "resnet18",
    weights: str = "none",
    frame_size: int = 112,
    device: str = "auto",
    batch_size: int = 16,
    torch_threads: int | None = None,
    keep_frames: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Clip vector from the backbone: temporal mean and max of :func:`frame_embeddings`.

    Returns
    -------
    (2 * D,) float32, or ``(pooled, per_frame (n, D))`` with ``keep_frames=True``.
    """
    per_frame = frame_embeddings(
        frames,
        backbone=backbone,
        weights=weights,
        frame_size=frame_size,
        device=device,
        batch_size=batch_size,
        torch_threads=torch_threads,
    )
    pooled = temporal_pool(per_frame)
    return (pooled, per_frame) if keep_frames else pooled
