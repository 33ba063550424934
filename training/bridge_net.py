"""The bridge network: :class:`BridgeNet`, an MLP from an item's content vector to ALS factors.

Input standardisation (mean and scale of the training items' content) and output
de-standardisation (mean factor and one factor scale) are buffers, and so is the calibrated output
norm (:func:`set_output_norm`), so a loaded net maps raw content to factors on its own.
``BridgeNet.config`` (:class:`BridgeNetConfig`) rebuilds the architecture alone, which is what a
checkpoint (:mod:`training.checkpoint`) needs.

torch is imported inside functions and :class:`BridgeNet` is built on first access, so importing
this module (and :mod:`recsys`) stays fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from recsys.errors import ConfigError, DataError
from training.bridge_config import BridgeConfig

# Threads for the bridge on CPU. Its matmuls are small (256 x 256); on a shared 2-core machine a
# second OpenMP thread made a training step 13x slower (spin-waiting), not faster.
CPU_THREADS = 1


@dataclass(frozen=True)
class BridgeNetConfig:
    """The architecture of a :class:`BridgeNet` (what its constructor takes)."""

    in_dim: int
    out_dim: int
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1
    skip: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BridgeNetConfig":
        """Rebuild from :func:`dataclasses.asdict` output; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        extra = set(d) - known
        if extra:
            raise ConfigError(f"unknown bridge net config keys {sorted(extra)}; known: {sorted(known)}")
        return cls(**d)


def _net_class():
    import torch
    from torch import nn

    class BridgeNet(nn.Module):
        """MLP: raw content vector (in_dim) -> item factors (out_dim).

        ``(x - in_mean) / in_scale`` -> [Linear -> LayerNorm -> GELU -> Dropout] x layers -> Linear,
        then ``out_mean + out_scale * y``; when ``out_norm > 0`` (set by :func:`set_output_norm`)
        the result is rescaled to norm ``out_norm`` (a unit direction times one norm). These
        statistics are buffers, saved in the state_dict; :meth:`set_statistics` sets the first
        four from training data.
        """

        def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, layers: int = 2, dropout: float = 0.1,
                     skip: bool = True) -> None:
            super().__init__()
            self.in_dim, self.out_dim = int(in_dim), int(out_dim)
            self.config = BridgeNetConfig(self.in_dim, self.out_dim, int(hidden), int(layers), float(dropout),
                                          bool(skip))
            # a linear path beside the MLP: the net is never worse than a linear map at the start
            self.skip = nn.Linear(self.in_dim, self.out_dim) if skip and layers > 0 else None
            mods: list[nn.Module] = []
            width = self.in_dim
            for _ in range(layers):
                mods += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout)]
                width = hidden
            mods.append(nn.Linear(width, self.out_dim))
            self.mlp = nn.Sequential(*mods)
            self.register_buffer("in_mean", torch.zeros(self.in_dim))
            self.register_buffer("in_scale", torch.ones(self.in_dim))
            self.register_buffer("out_mean", torch.zeros(self.out_dim))
            self.register_buffer("out_scale", torch.ones(()))
            self.register_buffer("out_norm", torch.zeros(()))

        @classmethod
        def from_config(cls, config: "dict[str, Any] | BridgeNetConfig") -> "BridgeNet":
            """A fresh net of this architecture (weights from torch's current RNG)."""
            if not isinstance(config, BridgeNetConfig):
                config = BridgeNetConfig.from_dict(config)
            return cls(**asdict(config))

        def set_statistics(self, content: np.ndarray, factors: np.ndarray) -> None:
            """Standardise inputs per dimension and outputs by one scale (keeps factor geometry).

            content : (n, in_dim), factors : (n, out_dim); rows of the training items.
            """
            c = np.asarray(content, dtype=np.float64)
            f = np.asarray(factors, dtype=np.float64)
            sd = c.std(axis=0)
            mu_f = f.mean(axis=0)
            rms = math.sqrt(float(((f - mu_f) ** 2).sum(axis=1).mean()) / max(f.shape[1], 1))
            dev = self.in_mean.device
            self.in_mean.copy_(torch.as_tensor(c.mean(axis=0), dtype=torch.float32, device=dev))
            self.in_scale.copy_(torch.as_tensor(np.where(sd > 1e-8, sd, 1.0), dtype=torch.float32, device=dev))
            self.out_mean.copy_(torch.as_tensor(mu_f, dtype=torch.float32, device=dev))
            self.out_scale.fill_(rms if rms > 1e-12 else 1.0)

        def forward(self, x):
            """x : (b, in_dim) float32 -> (b, out_dim) float32 factors."""
            z = (x - self.in_mean) / self.in_scale
            h = self.mlp(z) if self.skip is None else self.mlp(z) + self.skip(z)
            y = self.out_mean + self.out_scale * h
            if float(self.out_norm) > 0:
                y = self.out_norm * torch.nn.functional.normalize(y, dim=-1, eps=1e-12)
            return y

    return BridgeNet


_NET = None


def __getattr__(name: str):  # BridgeNet is built on first access so importing stays torch-free
    global _NET
    if name == "BridgeNet":
        if _NET is None:
            _NET = _net_class()
        return _NET
    raise AttributeError(name)


def build_net(in_dim: int, out_dim: int, config: BridgeConfig):
    """A fresh :class:`BridgeNet` for ``config`` (weights from torch's current RNG)."""
    net_cls = __getattr__("BridgeNet")
    return net_cls(in_dim, out_dim, hidden=config.hidden, layers=config.layers, dropout=config.dropout,
                   skip=config.skip)


def set_output_norm(net, norm: float | None) -> None:
    """Make ``net`` output unit directions times ``norm`` (None or 0: raw regression output)."""
    import torch

    with torch.no_grad():
        net.out_norm.fill_(float(norm or 0.0))


def predict(net, content: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Factors ``(n, out_dim)`` float32 of content rows ``(n, in_dim)`` with a trained net (CPU)."""
    import torch

    x = np.ascontiguousarray(content, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != net.in_dim:
        raise DataError(f"content has shape {x.shape}; the bridge expects (n, {net.in_dim})")
    out = np.empty((x.shape[0], net.out_dim), dtype=np.float32)
    prev = torch.get_num_threads()
    torch.set_num_threads(max(1, min(CPU_THREADS, prev)))
    was_training = net.training
    net.eval()
    dev = next(net.parameters()).device
    try:
        with torch.inference_mode():
            for s in range(0, x.shape[0], batch_size):
                out[s : s + batch_size] = net(torch.from_numpy(x[s : s + batch_size]).to(dev)).cpu().numpy()
    finally:
        torch.set_num_threads(prev)
        net.train(was_training)
    return out
