"""The shared training loop (training.trainer): schedule, seeding, batch weighting, absent batch parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.errors import ConfigError
from training.trainer import TrainerConfig, seeded, train


class Fixed:
    """Batches of given sizes; ``n_batches`` only when asked for."""

    def __init__(self, sizes, countable: bool = True) -> None:
        self.sizes = sizes
        if countable:
            self.n_batches = lambda batch_size: len(self.sizes)

    def batches(self, epoch, batch_size, rng):
        for k in self.sizes:
            yield torch.ones(k, 2), None  # the second part is absent: passed through as None


def _lr_log(monkeypatch, config: TrainerConfig, sizes=(4,)):
    """The learning rate of every step of a run (read from the loop's AdamW)."""
    groups = []

    class Recorded(torch.optim.AdamW):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            groups.append(self.param_groups[0])

    monkeypatch.setattr(torch.optim, "AdamW", Recorded)
    lrs: list[float] = []

    def loss_fn(m, x, absent):
        assert absent is None
        lrs.append(groups[0]["lr"])  # the rate of this step (the loop steps the schedule after it)
        return (m(x) ** 2).mean(), {}

    hist = train(torch.nn.Linear(2, 1), Fixed(list(sizes)), loss_fn, config, log=None)
    return lrs, hist


def test_constant_and_one_cycle_schedules(monkeypatch):
    lrs, hist = _lr_log(monkeypatch, TrainerConfig(epochs=3, lr=1e-2, device="cpu"))
    assert lrs == [1e-2] * 3 and len(hist.epoch_seconds) == 3
    lrs, _ = _lr_log(monkeypatch, TrainerConfig(epochs=20, lr=1e-2, device="cpu", schedule="one_cycle", warmup=0.25))
    peak = int(np.argmax(lrs))
    assert lrs[0] < 1e-3 and peak == 4 and abs(lrs[peak] - 1e-2) < 1e-9 and lrs[-1] < 1e-5
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))  # warms up, then decays
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))


def test_one_cycle_whose_warmup_ends_at_step_zero(monkeypatch):
    """10 steps at 10 % warm-up: torch's one-cycle divided by zero there; now it decays from step 1."""
    lrs, _ = _lr_log(monkeypatch, TrainerConfig(epochs=10, lr=1e-2, device="cpu", schedule="one_cycle", warmup=0.1))
    assert len(lrs) == 10 and lrs[0] < 1e-3 and lrs[1] > 0.9e-2
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))


def test_one_cycle_needs_a_sampler_that_counts_its_batches():
    with pytest.raises(ConfigError, match="n_batches"):
        train(torch.nn.Linear(2, 1), Fixed([4], countable=False), lambda m, x, a: ((m(x) ** 2).mean(), {}),
              TrainerConfig(epochs=2, device="cpu", schedule="one_cycle"), log=None)
    for bad in ({"schedule": "cosine"}, {"warmup": 0.0}, {"warmup": 1.0}, {"batch_size": 0}):
        with pytest.raises(ConfigError):
            TrainerConfig(**bad)
    from training.encoders import EncoderConfig

    with pytest.raises(ConfigError, match="av_trainer.batch_size"):  # the encoders need 2 (the loop does not)
        EncoderConfig(av_trainer=TrainerConfig(batch_size=1))


def test_epoch_loss_is_the_mean_over_examples():
    model = torch.nn.Linear(2, 1)
    values = iter([1.0, 5.0] * 2)

    def loss_fn(m, x, absent):  # a batch of 3 at loss 1, then a batch of 1 at loss 5
        return (m(x) * 0).sum() + next(values), {"twice": 2 * len(x)}

    hist = train(model, Fixed([3, 1]), loss_fn, TrainerConfig(epochs=2, device="cpu"), log=None)
    assert hist.losses == [2.0, 2.0]  # (3 * 1 + 1 * 5) / 4
    assert hist.stats[0] == {"twice": (3 * 6 + 1 * 2) / 4}


def _seeded_run(seed: int) -> np.ndarray:
    with seeded(seed, torch.device("cpu")):
        model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
        train(model, Fixed([4, 4]), lambda m, x, a: (((m(x) - 1) ** 2).mean(), {}),
              TrainerConfig(epochs=3, device="cpu"), log=None, seed_torch=False)
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()


def test_seed_torch_false_continues_the_callers_stream():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b, c = _seeded_run(5), _seeded_run(5), _seeded_run(6)
    np.testing.assert_array_equal(a, b)  # the build and the training draw from one seeded stream
    assert not np.array_equal(a, c)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's generator is left as it was
