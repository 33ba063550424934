"""Self-describing checkpoints: a model's config travels with its weights.

A checkpoint is one ``torch.save`` file holding only tensors and plain containers::

    {
        "format": "avrec-checkpoint",
        "version": 1,                       # CHECKPOINT_VERSION of the writer
        "class": "AudioAutoencoder",        # a key of MODEL_CLASSES
        "config": {...},                    # dataclasses.asdict(model.config), JSON-safe values
        "state_dict": {name: tensor},       # model.state_dict() on CPU
        "meta": {...},                      # JSON-safe training facts (losses, seconds, data size)
        "torch_version": "2.x",
    }

It is read back with ``torch.load(weights_only=True)``, so loading never runs pickled code, and the
model is rebuilt from ``config`` alone (``cls.from_config``) before the weights are loaded strictly:
no other file, and no training code state, is needed. Only classes named in :data:`MODEL_CLASSES`
are rebuilt (the self-supervised encoders and the bridge's net); their module is imported when
first needed.

Every problem with a checkpoint file (missing, truncated, foreign, of another class, of a newer
version, weights that do not fit the architecture its config describes) is a
:class:`~recsys.errors.BundleError`, whichever model it holds.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path
from typing import Any

from recsys.errors import BundleError, ConfigError

CHECKPOINT_FORMAT = "avrec-checkpoint"
#: Bump when the payload layout changes; readers refuse newer versions.
CHECKPOINT_VERSION = 1
#: Class name -> module defining it. A model class needs ``config`` (a dataclass instance) and a
#: ``from_config(dict)`` classmethod.
MODEL_CLASSES: dict[str, str] = {
    "AudioAutoencoder": "training.audio_autoencoder",
    "AVCorrespondence": "training.av_correspondence",
    "BridgeNet": "training.bridge_net",
}
#: Keys of the bridge's own checkpoint layout before it used this format (``save_bridge`` wrote
#: ``{"version", "config", "in_dim", "out_dim", "state_dict"}``); recognised only to say what to do.
_OLD_BRIDGE_KEYS = frozenset({"config", "in_dim", "out_dim", "state_dict"})


def _json_safe(obj: Any, what: str) -> Any:
    """A deep copy made only of dict/list/str/int/float/bool/None (tuples become lists)."""
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"checkpoint {what} must hold only JSON values (numbers, strings, lists, dicts): {e}") from e


def save_checkpoint(model, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (config + weights) to ``path`` atomically.

    Parameters
    ----------
    model : torch.nn.Module
        An instance of a class in :data:`MODEL_CLASSES` with a dataclass ``config`` attribute.
    path : str or Path
        Target file (``.pt``); parent folders are created.
    meta : dict, optional
        JSON-safe facts stored with the weights (final loss, epochs, data size ...).

    Returns
    -------
    Path
    """
    import torch

    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise ConfigError(f"{name} is not a known checkpoint class; add it to training.checkpoint.MODEL_CLASSES")
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise ConfigError(f"{name}.config must be a dataclass instance to be saved in a checkpoint")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "class": name,
        "config": _json_safe(dataclasses.asdict(config), "config"),
        "state_dict": {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()},
        "meta": _json_safe(meta or {}, "meta"),
        "torch_version": str(torch.__version__),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw payload of a checkpoint (tensors on CPU), checked for format and version.

    Raises
    ------
    BundleError
        Missing or unreadable file, not an avrec checkpoint, or written by a newer version.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file; all mean "unreadable"
        raise BundleError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from e
    if isinstance(payload, dict) and "format" not in payload and _OLD_BRIDGE_KEYS <= payload.keys():
        raise BundleError(
            f"{path}: a bridge checkpoint in the layout save_bridge wrote before avrec's shared checkpoint "
            "format; it is no longer read: refit the bridge (Bridge.fit, or `avrec fit` for a bundle) and "
            "save it again with training.bridge.save_bridge"
        )
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise BundleError(f"{path}: not an avrec checkpoint (no format={CHECKPOINT_FORMAT!r} field)")
    version = payload.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise BundleError(
            f"{path}: checkpoint version {version!r} is newer than this avrec reads ({CHECKPOINT_VERSION}); "
            "upgrade avrec or retrain with `avrec train-encoders`"
        )
    for key in ("class", "config", "state_dict"):
        if key not in payload:
            raise BundleError(f"{path}: checkpoint lacks the {key!r} field")
    return payload


def load_checkpoint(path: str | Path, device: str = "cpu", expected_class: str | None = None):
    """Rebuild a model from a checkpoint file alone, in eval mode.

    Parameters
    ----------
    path : str or Path
    device : str
        Where to put the model (``"cpu"``, ``"cuda[:N]"``, ``"auto"``: :mod:`features.device`).
    expected_class : str, optional
        Raise unless the checkpoint holds this class (e.g. ``"AudioAutoencoder"``).

    Returns
    -------
    torch.nn.Module
        The model, with ``checkpoint_meta`` (the saved ``meta`` dict) attached.

    Raises
    ------
    BundleError
        Unreadable file, unknown class, other class than expected, or weights not matching the config.
    ConfigError
        A device this machine does not have.
    """
    from features.device import resolve_device

    payload = read_checkpoint(path)
    name = payload["class"]
    if expected_class is not None and name != expected_class:
        raise BundleError(f"{path}: holds a {name}, expected a {expected_class}")
    if name not in MODEL_CLASSES:
        raise BundleError(f"{path}: unknown model class {name!r}; known: {sorted(MODEL_CLASSES)}")
    cls = getattr(importlib.import_module(MODEL_CLASSES[name]), name)
    try:
        model = cls.from_config(payload["config"])
    except (TypeError, ValueError) as e:
        raise BundleError(f"{path}: config does not rebuild a {name}: {e}") from e
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as e:
        raise BundleError(f"{path}: weights do not match the {name} its config describes: {e}") from e
    model.checkpoint_meta = payload.get("meta", {})
    return model.to(resolve_device(device)).eval()
