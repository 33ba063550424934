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

It is the one loop of :mod:`training`: the self-supervised encoders and the content -> CF bridge
(:mod:`training.bridge`) both run it. What differs between them are the pieces above and a few
settings: a learning-rate schedule (``schedule="one_cycle"``, stepped per batch), gradient
clipping, early stopping, and whether the caller seeds torch itself (``seed_torch=False`` after
:func:`seeded`, so a model built under the seed continues the same random stream into training).
The device comes from :func:`features.device.resolve_device`, the rule every torch piece uses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from features.device import check_device, resolve_device, rng_devices
from recsys.errors import ConfigError, FitError

SCHEDULES = ("constant", "one_cycle")


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
    schedule : {"constant", "one_cycle"}
        Learning rate: ``lr`` throughout, or torch's one-cycle policy (a warm-up to ``lr`` over the
        first ``warmup`` share of the steps, then a cosine decay), stepped after every batch; it
        needs the sampler's ``n_batches(batch_size)``.
    warmup : float in (0, 1)
        Share of the steps that warm up under ``schedule="one_cycle"``.
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
    schedule: str = "constant"
    warmup: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ConfigError(f"epochs must be an int >= 1, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        if not (self.lr > 0 and self.weight_decay >= 0):
            raise ConfigError(f"need lr > 0 and weight_decay >= 0, got lr={self.lr}, weight_decay={self.weight_decay}")
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads >= 1):
            raise ConfigError(f"threads must be an int >= 1 or None, got {self.threads!r}")
        if self.patience is not None and not (isinstance(self.patience, int) and self.patience >= 1):
            raise ConfigError(f"patience must be an int >= 1 or None, got {self.patience!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 < self.warmup < 1.0:
            raise ConfigError(f"warmup must be in (0, 1), got {self.warmup!r}")
        check_device(self.device)


class Sampler(Protocol):
    """Yields the batches of one epoch.

    A sampler used with ``schedule="one_cycle"`` also has ``n_batches(batch_size) -> int``, the
    batches of every epoch (the schedule's length is fixed before the first step).
    """

    def batches(self, epoch: int, batch_size: int, rng: np.random.Generator) -> Iterator[tuple]:
        """Tuples of CPU tensors (or None for an absent part); the first element's first
        dimension is the batch, which weighs the batch in the epoch's mean loss."""
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
    epoch_seconds : list of float
        Wall-clock time of each epoch run.
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
    epoch_seconds: list[float] = field(default_factory=list)
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


def _to_device(batch: tuple, device) -> tuple:
    return tuple(None if b is None else b.to(device, non_blocking=True) for b in batch)


@contextmanager
def seeded(seed: int, device) -> Iterator[None]:
    """Inside: torch's generators seeded with ``seed``; after: the caller's generators as before.

    Forks the CPU generator and, for a CUDA ``device``, that GPU's (:func:`features.device.rng_devices`).
    """
    import torch

    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(seed)
        yield


def _one_cycle(opt, config: TrainerConfig, sampler: Sampler):
    import torch

    n_batches = getattr(sampler, "n_batches", None)
    if n_batches is None:
        raise ConfigError("schedule='one_cycle' needs a sampler with n_batches(batch_size)")
    steps = config.epochs * int(n_batches(config.batch_size))
    warmup = config.warmup
    if warmup * steps == 1.0:
        # torch's one-cycle divides by zero when the warm-up ends exactly at step 0 (10 steps at
        # 0.1): end it a hair later, the schedule's limit from above (step 0 at the initial rate,
        # then the decay from the peak). Any other length is left as asked.
        warmup = (1.0 + 1e-6) / steps
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=warmup)


def train(
    model,
    sampler: Sampler,
    loss_fn: LossFn,
    config: TrainerConfig = TrainerConfig(),
    log: Callable[[str], None] | None = print,
    name: str = "train",
    *,
    seed_torch: bool = True,
) -> TrainHistory:
    """Train ``model`` in place with AdamW.

    Parameters
    ----------
    model : torch.nn.Module
        Moved to the resolved ``config.device``; left there, in eval mode.
    sampler : Sampler
    loss_fn : callable
        ``loss_fn(model, *batch) -> (loss tensor, {stat: float})``.
    config : TrainerConfig
    log : callable or None
        Receives one line per epoch.
    name : str
        Prefix of the log lines.
    seed_torch : bool
        Seed torch's generators with ``config.seed`` for the run (and restore them afterwards).
        False: the caller has seeded them (:func:`seeded`), typically before building the model,
        and dropout continues that stream.

    Returns
    -------
    TrainHistory

    Raises
    ------
    FitError
        A NaN or infinite loss, or a sampler that yields no batch.
    ConfigError
        A device this machine does not have; ``one_cycle`` with a sampler that cannot count its batches.
    """
    import torch

    device = resolve_device(config.device)
    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    hist = TrainHistory(device=str(device))
    t0, c0 = time.perf_counter(), time.process_time()
    best_loss, best_state, bad_epochs = math.inf, None, 0
    try:
        with seeded(config.seed, device) if seed_torch else nullcontext():
            model.to(device).train()
            opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            sched = _one_cycle(opt, config, sampler) if config.schedule == "one_cycle" else None
            for epoch in range(config.epochs):
                te = time.perf_counter()
                rng = np.random.default_rng([config.seed, epoch])
                total, n_seen, sums = 0.0, 0, {}
                for batch in sampler.batches(epoch, config.batch_size, rng):
                    batch = _to_device(batch, device)
                    loss, stats = loss_fn(model, *batch)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FitError(f"{name}: loss became {value} in epoch {epoch + 1}; lower lr (now {config.lr})")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    opt.step()
                    if sched is not None:
                        sched.step()
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
                hist.epoch_seconds.append(time.perf_counter() - te)
                if log is not None:
                    extra = "".join(f" {s} {v:.4f}" for s, v in epoch_stats.items())
                    log(f"[{name}] epoch {epoch + 1}/{config.epochs} loss {epoch_loss:.4f}{extra} "
                        f"({hist.epoch_seconds[-1]:.1f}s)")
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
