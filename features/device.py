"""The one device rule of avrec's torch code: which device a ``device=`` setting means.

Feature extraction (:mod:`features.video`), the encoder trainer (:mod:`training.trainer`), the
content -> CF bridge (:mod:`training.bridge`) and checkpoint loading (:mod:`training.checkpoint`)
all resolve their ``device`` setting here, so the same word means the same device everywhere and a
request this machine cannot serve fails the same way, before any work starts:

- ``"auto"`` (or None): CUDA when torch sees a GPU, else the CPU;
- ``"cpu"``;
- ``"cuda"`` or ``"cuda:N"``: that GPU; :class:`~recsys.errors.ConfigError` when CUDA is not
  available or there is no GPU ``N``.

Anything else is a :class:`~recsys.errors.ConfigError` too. It lives in ``features`` (the lowest
layer that runs torch) so that ``training``, which reads features, uses it without ``features``
ever importing ``training``. :func:`check_device` is the torch-free part, for config dataclasses
that validate on construction.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from recsys.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where a device is resolved, not when configs are built
    import torch

#: What ``device=`` accepts.
DEVICE_CHOICES = "'auto', 'cpu', 'cuda' or 'cuda:N'"
_CUDA = re.compile(r"cuda(?::(\d+))?")


def check_device(requested: object) -> str:
    """The device setting as a string, checked for form only (no torch import, no GPU query).

    Parameters
    ----------
    requested : str or None
        None means ``"auto"``.

    Returns
    -------
    str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    ConfigError
        Any other value.
    """
    if requested is None:
        return "auto"
    if isinstance(requested, str) and (requested in ("auto", "cpu") or _CUDA.fullmatch(requested)):
        return requested
    raise ConfigError(f"device must be {DEVICE_CHOICES}, got {requested!r}")


def resolve_device(requested: object = "auto") -> "torch.device":
    """The ``torch.device`` a device setting means on this machine (module docstring).

    Parameters
    ----------
    requested : str, torch.device or None
        ``"auto"``/None, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        A malformed setting, CUDA asked for where it is not available, or a GPU index this machine
        does not have.
    """
    import torch

    name = check_device(str(requested) if isinstance(requested, torch.device) else requested)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but CUDA is not available here; use device='auto' or 'cpu'")
    index = _CUDA.fullmatch(name).group(1)
    if index is not None and int(index) >= torch.cuda.device_count():
        raise ConfigError(
            f"device={name!r} but this machine has {torch.cuda.device_count()} GPU(s) "
            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); use device='cuda' or 'auto'"
        )
    return torch.device(name)


def rng_devices(device: "torch.device") -> list[int]:
    """The CUDA devices whose RNG state ``torch.random.fork_rng`` must save for work on ``device``.

    Seeding inside ``fork_rng(devices=rng_devices(d))`` then leaves the caller's generators as
    they were, on the CPU and on that GPU.
    """
    import torch

    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
