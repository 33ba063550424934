"""A small, generic training loop shared by the self-supervised encoders.

The loop knows nothing about the task. It takes three separate pieces:

- a **model** (``torch.nn.Module``), built by the caller;
- a **sampler** with ``batches(epoch, batch_size, rng) -> iterator of tuples of CPU tensors``; all
  randomness of the data side (shuffling, negatives, masks, augmentation) comes from ``rng``, a
  numpy ``Generator`` seeded from ``(seed, epoch)``, so an epoch's batches do not depend on the
  device or on anything that ran before;
- a **loss function** ``loss_fn(model, *batch) -> (loss, stats)``: a scalar tensor and a dict of
  float statistics (accuracy ...), both means over the batch.

:func:`train` runs AdamW over epochs, logs the mean loss (and statistics) per epoch, optionally
stops early when the epoch loss stops improving (restoring the best weights), and raises
:class:`~recsys.errors.FitError` on a NaN/infinite loss. On CPU with the same thread count, the same
seed gives bit-identical weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from recsys.errors import ConfigError, FitError


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is usable, else ``"cpu"``; other values are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for but CUDA is not available; use 'cpu' or 'auto'")
        return device
    raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


@dataclass(frozen=True)
class TrainerConfig:
    """Settings of :func:`train`.

    Parameters
    ----------
    epochs : int
        Passes over the sampler's data (>= 1).
    batch_size : int
    lr, weight_decay : float
        AdamW settings.
    seed : int
        Seeds the data order (per epoch) and torch's generator during training.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda[:N]"``.
    threads : int or None
        torch intra-op threads while training (restored afterwards); None leaves them as they are.
    patience : int or None
        Stop after this many epochs without the loss improving by ``min_delta``; the best epoch's
        weights are restored. None: always run every epoch.
    min_delta : float
    grad_clip : float or None
        Clip the global gradient norm to this value.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    threads: int | None = 1
    patience: int | None = None
    min_delta: float = 1e-4
    grad_clip: float | None = 5.0

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ConfigError(f"epochs must be an int >= 1, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 2):
            raise ConfigError(f"batch_size must be an int >= 2, got {self.batch_size!r}")
        if not (self.lr > 0 and self.weight_decay >= 0):
            raise ConfigError(f"need lr > 0 and weight_decay >= 0, got lr={self.lr}, weight_decay={self.weight_decay}")
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads >= 1):
            raise ConfigError(f"threads must be an int >= 1 or None, got {self.threads!r}")
        if self.patience is not None and not (isinstance(self.patience, int) and self.patience >= 1):
            raise ConfigError(f"patience must be an int >= 1 or None, got {self.patience!r}")


class Sampler(Protocol):
    """Yields the batches of one epoch."""

    def batches(self, epoch: int, batch_size: int, rng: np.random.Generator) -> Iterator[tuple]:
        """Tuples of CPU tensors; the first dimension is the batch."""
        ...


LossFn = Callable[..., "tuple[Any, dict[str, float]]"]


@dataclass
class TrainHistory:
    """What :func:`train` did.

    Attributes
    ----------
    losses : list of float
        Mean loss per epoch run.
    stats : list of dict
        Mean statistics per epoch (keys from the loss function).
    seconds : float
        Wall-clock time.
    cpu_seconds : float
        CPU time of this process (all threads) during training; on a shared machine a steadier
        measure of the work than ``seconds``.
    best_epoch : int
        0-based epoch with the lowest loss (its weights are the model's when early stopping).
    stopped_early : bool
    device : str
    """

    losses: list[float] = field(default_factory=list)
    stats: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    best_epoch: int = -1
    stopped_early: bool = False
    device: str = "cpu"

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "final_loss": self.final_loss}


def _batch_len(batch: tuple) -> int:
    return int(batch[0].shape[0]) if batch and hasattr(batch[0], "shape") else 1


def train(
    model,
    sampler: Sampler,
    loss_fn: LossFn,
    config: TrainerConfig = TrainerConfig(),
    log: Callable[[str], None] | None = print,
    name: str = "train",
) -> TrainHistory:
    """Train ``model`` in place with AdamW.

    Parameters
    ----------
    model : torch.nn.Module
    sampler : Sampler
    loss_fn : callable
        ``loss_fn(model, *batch) -> (loss tensor, {stat: float})``.
    config : TrainerConfig
    log : callable or None
        Receives one line per epoch.
    name : str
        Prefix of the log lines.

    Returns
    -------
    TrainHistory

    Raises
    ------
    FitError
        A NaN or infinite loss, or a sampler that yields no batch.
    """
    import torch

    device = resolve_device(config.device)
    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    hist = TrainHistory(device=device)
    t0, c0 = time.perf_counter(), time.process_time()
    best_loss, best_state, bad_epochs = math.inf, None, 0
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model.to(device).train()
            opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            for epoch in range(config.epochs):
                te = time.perf_counter()
                rng = np.random.default_rng([config.seed, epoch])
                total, n_seen, sums = 0.0, 0, {}
                for batch in sampler.batches(epoch, config.batch_size, rng):
                    batch = tuple(b.to(device, non_blocking=True) for b in batch)
                    loss, stats = loss_fn(model, *batch)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FitError(f"{name}: loss became {value} in epoch {epoch + 1}; lower lr (now {config.lr})")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    opt.step()
                    k = _batch_len(batch)
                    total += value * k
                    n_seen += k
                    for s, v in stats.items():
                        sums[s] = sums.get(s, 0.0) + float(v) * k
                if n_seen == 0:
                    raise FitError(f"{name}: the sampler yielded no batch (no training data?)")
                epoch_loss = total / n_seen
                epoch_stats = {s: v / n_seen for s, v in sums.items()}
                hist.losses.append(epoch_loss)
                hist.stats.append(epoch_stats)
                if log is not None:
                    extra = "".join(f" {s} {v:.4f}" for s, v in epoch_stats.items())
                    log(f"[{name}] epoch {epoch + 1}/{config.epochs} loss {epoch_loss:.4f}{extra} "
                        f"({time.perf_counter() - te:.1f}s)")
                if epoch_loss < best_loss - config.min_delta:
                    best_loss, hist.best_epoch, bad_epochs = epoch_loss, epoch, 0
                    if config.patience is not None:
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad_epochs += 1
                    if config.patience is not None and bad_epochs >= config.patience:
                        hist.stopped_early = True
                        if log is not None:
                            log(f"[{name}] early stop: no improvement for {bad_epochs} epochs; "
                                f"best epoch {hist.best_epoch + 1}")
                        break
            if best_state is not None and hist.best_epoch != len(hist.losses) - 1:
                model.load_state_dict(best_state)
    finally:
        if config.threads is not None:
            torch.set_num_threads(old_threads)
    model.eval()
    hist.seconds = time.perf_counter() - t0
    hist.cpu_seconds = time.process_time() - c0
    return hist
