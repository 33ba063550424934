"""The content -> collaborative-filtering bridge: an MLP from an item's media vector to ALS factors.

A cold item (no interactions yet) has no ALS factors, so ALS cannot rank it. The bridge learns, on
the warm items, the map ``content vector -> ALS item factors`` and then gives every item with media
predicted factors that real ALS users can be scored against.

Pieces (each small and swappable, used together by :func:`train_bridge`):

- :class:`BridgeConfig` the settings; checkpoints carry it.
- :class:`BridgeNet` the network. Input standardisation (mean and scale of the training items'
  content) and output de-standardisation (mean factor and one factor scale) are buffers, so a
  loaded net maps raw content to factors on its own.
- :func:`regression_loss` squared error to the ALS factors, relative to the targets' spread, plus
  an optional cosine term.
- :func:`ranking_loss` BPR over (user, positive item, negative items) triples scored with the
  users' ALS factors against the items' *predicted* factors (or the negatives' given factors, see
  ``BridgeConfig.negatives``), so predicted factors rank well for real users, not just fit in L2.
- :class:`TripleSampler` item-centric triples: each training item, one of its users, negatives.
- :func:`train_bridge` the loop (AdamW, one-cycle schedule; deterministic on CPU for a seed).
- :func:`calibrate_norm` / :func:`set_output_norm` the output calibration: predictions become unit
  directions times one norm, chosen so that cold items take a given share of the top-k slots of
  real users' lists (:class:`recsys.models.bridge.Bridge` runs it after training, as only it knows
  which items are cold). The norm is a buffer of the net, so checkpoints carry it.
- :func:`save_bridge` / :func:`load_bridge` checkpoints as ``{"config", "in_dim", "out_dim",
  "state_dict"}`` read back with ``torch.load(weights_only=True)`` (no pickled objects).

torch is imported inside functions and the classes that need it are built lazily, so importing
this module (and :mod:`recsys`) stays fast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError, DataError, FitError

NEGATIVE_SOURCES = ("predicted", "given")
NEGATIVE_SAMPLING = ("in_batch", "uniform", "popularity")
# Threads for the bridge on CPU. Its matmuls are small (256 x 256); on a shared 2-core machine a
# second OpenMP thread made a training step 13x slower (spin-waiting), not faster.
CPU_THREADS = 1
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class BridgeConfig:
    """Settings of the bridge network and its training.

    Parameters
    ----------
    hidden : int
        Width of the hidden layers.
    layers : int
        Number of hidden layers (0 = a linear map).
    dropout : float
        Dropout after each hidden layer.
    skip : bool
        Add a linear path from input to output beside the MLP (on the TikTok data the content ->
        factor map is close to linear; the MLP then only adds what the linear map misses).
    epochs : int
        Passes over the training items.
    lr : float
        AdamW learning rate.
    weight_decay : float
        AdamW decoupled weight decay.
    batch_size : int
        Training items per step (each brings one triple with ``n_negatives`` negatives).
    rank_weight : float in [0, 1]
        Loss = ``(1 - rank_weight) * regression + rank_weight * ranking``. 0 is a pure regression
        to the ALS factors; 1 a pure BPR objective.
    n_negatives : int
        Negative items per (user, positive item) pair.
    cosine_weight : float
        Weight of the ``1 - cos`` term added to the regression loss.
    negatives : {"predicted", "given"}
        Which factors score the negatives in the ranking loss: the net's predictions ("predicted":
        a user's item must beat other items as predicted from their media), or the given ALS
        factors ("given": a predicted item must beat real ALS items). "given" pushes prediction
        norms up to compete and fits the training pairs rather than the content; on the planted
        test data it made cold items land with the wrong users more often, and on TikTok it was
        no better, so "predicted" is the default.
    negative_sampling : {"in_batch", "uniform", "popularity"}
        "in_batch": the other items of the step's batch (uniform over the training items, as
        batches are shuffled; with "predicted" negatives they cost no extra forward pass);
        "uniform": drawn uniformly over the training items; "popularity": proportionally to their
        number of interactions (the popular items a cold item competes with at the top of a list).
    score_scale : float or None
        The ranking loss compares ``score / score_scale``. None = the standard deviation of the
        ALS scores of the observed training pairs, so the loss is independent of the factors'
        overall scale (heavily regularised ALS has small factors).
    cold_share : float in (0, 1) or None
        Output calibration, applied after training by the recommender
        (:meth:`recsys.models.bridge.Bridge.fit`, through :func:`calibrate_norm`): predictions
        become unit directions times one norm, chosen so that the cold items take this share of
        the top-``calibration_k`` slots of the training users' lists, warm items keeping their
        ALS factors. None keeps the raw regression output (norms included).
        :func:`train_bridge` itself never calibrates.
    calibration_k : int
        List length of that calibration.
    seed : int
    device : str
        "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...
    """

    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1
    skip: bool = True
    epochs: int = 60
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    rank_weight: float = 0.5
    n_negatives: int = 8
    cosine_weight: float = 0.0
    negatives: str = "predicted"
    negative_sampling: str = "in_batch"
    score_scale: float | None = None
    cold_share: float | None = 0.15
    calibration_k: int = 20
    seed: int = 0
    device: str = "auto"

    def validate(self) -> "BridgeConfig":
        """Raise :class:`ConfigError` for settings that cannot train; returns self."""
        if self.hidden < 1 or self.layers < 0 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("bridge hidden, epochs and batch_size must be >= 1 and layers >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"bridge dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.rank_weight <= 1.0:
            raise ConfigError(f"bridge rank_weight must be in [0, 1], got {self.rank_weight}")
        if self.lr <= 0 or self.weight_decay < 0 or self.cosine_weight < 0:
            raise ConfigError("bridge lr must be > 0; weight_decay and cosine_weight >= 0")
        if self.n_negatives < 1:
            raise ConfigError(f"bridge n_negatives must be >= 1, got {self.n_negatives}")
        if self.negatives not in NEGATIVE_SOURCES:
            raise ConfigError(f"bridge negatives must be one of {NEGATIVE_SOURCES}, got {self.negatives!r}")
        if self.negative_sampling not in NEGATIVE_SAMPLING:
            raise ConfigError(
                f"bridge negative_sampling must be one of {NEGATIVE_SAMPLING}, got {self.negative_sampling!r}"
            )
        if self.cold_share is not None and not 0.0 < self.cold_share < 1.0:
            raise ConfigError(f"bridge cold_share must be in (0, 1) or None, got {self.cold_share}")
        if self.calibration_k < 1:
            raise ConfigError(f"bridge calibration_k must be >= 1, got {self.calibration_k}")
        if self.score_scale is not None and not self.score_scale > 0:
            raise ConfigError(f"bridge score_scale must be > 0 or None, got {self.score_scale}")
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BridgeConfig":
        """Rebuild from :func:`dataclasses.asdict` output; unknown keys raise."""
        known = {f.name for f in fields(cls)}
        extra = set(d) - known
        if extra:
            raise ConfigError(f"unknown bridge config keys {sorted(extra)}; known: {sorted(known)}")
        return cls(**d)


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"; other values pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# ---------------------------------------------------------------------- network
def _net_class():
    import torch
    from torch import nn

    class BridgeNet(nn.Module):
        """MLP: raw content vector (in_dim) -> item factors (out_dim).

        ``(x - in_mean) / in_scale`` -> [Linear -> LayerNorm -> GELU -> Dropout] x layers -> Linear,
        then ``out_mean + out_scale * y``; when ``out_norm > 0`` (set by :func:`calibrate_norm`)
        the result is rescaled to norm ``out_norm`` (a unit direction times one norm). These
        statistics are buffers, saved in the state_dict; :meth:`set_statistics` sets the first
        four from training data.
        """

        def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, layers: int = 2, dropout: float = 0.1,
                     skip: bool = True) -> None:
            super().__init__()
            self.in_dim, self.out_dim = int(in_dim), int(out_dim)
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


# ---------------------------------------------------------------------- losses
def regression_loss(pred, target, cosine_weight: float = 0.0, target_ms: float | None = None):
    """Squared error to the ALS factors, relative to the targets' mean squared norm.

    ``mean_i ||pred_i - target_i||^2 / target_ms`` (+ ``cosine_weight * mean_i (1 - cos_i)``).
    Dividing by ``target_ms`` (the mean squared norm of the training targets; default: of this
    batch's) makes the loss ~1 for a zero prediction whatever the factors' scale, so it can be
    mixed with the ranking loss without retuning.

    pred, target : (b, f) tensors. Returns a scalar tensor.
    """
    import torch

    se = ((pred - target) ** 2).sum(dim=1)
    ms = target_ms if target_ms is not None else float((target**2).sum(dim=1).mean().clamp_min(1e-12))
    loss = se.mean() / ms
    if cosine_weight > 0:
        cos = torch.nn.functional.cosine_similarity(pred, target, dim=1, eps=1e-8)
        loss = loss + cosine_weight * (1.0 - cos).mean()
    return loss


def ranking_loss(users, positives, negatives, valid=None, scale: float = 1.0):
    """BPR: ``-log sigmoid((u . p - u . n) / scale)`` averaged over valid (triple, negative) pairs.

    Parameters
    ----------
    users : (b, f) tensor, ALS user factors
    positives : (b, f) tensor, factors of an item each user interacted with
    negatives : (b, k, f) tensor, factors of items the user did not interact with
    valid : (b, k) bool tensor, optional; False drops a pair (a sampled "negative" that is in fact
        one of the user's items)
    scale : float, the score unit

    Returns a scalar tensor.
    """
    import torch

    s_pos = (users * positives).sum(dim=-1, keepdim=True)  # (b, 1)
    s_neg = torch.einsum("bf,bkf->bk", users, negatives)  # (b, k)
    loss = -torch.nn.functional.logsigmoid((s_pos - s_neg) / scale)
    if valid is None:
        return loss.mean()
    w = valid.to(loss.dtype)
    return (loss * w).sum() / w.sum().clamp_min(1.0)


# ---------------------------------------------------------------------- sampler
class TripleSampler:
    """Item-centric (user, positive, negatives) triples over the training items.

    An epoch visits every training item once (shuffled) in batches; each item comes with one user
    who interacted with it (uniform over its users) and ``n_negatives`` negative items: the next
    items of the same batch ("in_batch"; the batch is a random draw, so these are uniform too and
    their predictions are already computed), or drawn from the training items uniformly or by
    popularity. A "negative" the user did in fact interact with is kept but flagged invalid, so
    batch shapes stay fixed.

    Parameters
    ----------
    interactions : CSR (n_users, n_items)
    items : (m,) int, the training items (each must have at least one interaction)
    n_negatives : int
    sampling : {"in_batch", "uniform", "popularity"}
    seed : int
    """

    def __init__(self, interactions: sp.csr_matrix, items: np.ndarray, n_negatives: int,
                 sampling: str = "in_batch", seed: int = 0) -> None:
        if sampling not in NEGATIVE_SAMPLING:
            raise ConfigError(f"sampling must be one of {NEGATIVE_SAMPLING}, got {sampling!r}")
        x = sp.csr_matrix(interactions)
        self.items = np.asarray(items, dtype=np.int64)
        self.n_negatives = int(n_negatives)
        self.sampling = sampling
        csc = x.tocsc()
        self._indptr, self._users = csc.indptr, csc.indices.astype(np.int64)
        counts = np.diff(self._indptr)[self.items]
        if len(self.items) == 0 or (counts == 0).any():
            raise DataError("every training item of the bridge's ranking loss needs at least one interaction")
        self._n_items = x.shape[1]
        # sorted keys user * n_items + item of every interaction, for the false-negative check
        coo = x.tocoo()
        self._keys = np.sort(coo.row.astype(np.int64) * self._n_items + coo.col.astype(np.int64))
        self._neg_p = counts / counts.sum() if sampling == "popularity" else None
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def epoch(self, batch_size: int):
        """Yield one epoch of batches ``(items, users, negatives, in_batch, valid)``.

        items, users : (b,) int64; negatives : (b, k) int64 item indices; in_batch : (b, k) int64
        positions of the negatives within ``items`` (in-batch sampling) or None; valid : (b, k) bool.
        ``k = n_negatives`` (in-batch: at most ``b - 1``).
        """
        order = self.items[self.rng.permutation(len(self.items))]
        for start in range(0, len(order), batch_size):
            items = order[start : start + batch_size]
            b = len(items)
            lo, n = self._indptr[items], np.diff(self._indptr)[items]
            users = self._users[lo + (self.rng.random(b) * n).astype(np.int64)]
            where = None
            if self.sampling == "in_batch":
                k = min(self.n_negatives, b - 1)
                where = (np.arange(b)[:, None] + 1 + np.arange(k)[None, :]) % b
                neg = items[where]
            elif self.sampling == "uniform":
                neg = self.items[self.rng.integers(0, len(self.items), size=(b, self.n_negatives))]
            else:
                neg = self.rng.choice(self.items, size=(b, self.n_negatives), p=self._neg_p)
            yield items, users, neg, where, ~self._observed(users, neg)

    def _observed(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(b, k) bool: whether ``users[r]`` interacted with ``items[r, c]``."""
        keys = users[:, None] * self._n_items + items
        if len(self._keys) == 0 or keys.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[pos] == keys


# ---------------------------------------------------------------------- trainer
def train_bridge(
    content: np.ndarray,
    factors: np.ndarray,
    warm_mask: np.ndarray,
    config: BridgeConfig | None = None,
    user_factors: np.ndarray | None = None,
    interactions: sp.csr_matrix | None = None,
    log: Callable[[str], None] | None = None,
):
    """Train a :class:`BridgeNet` from content to ALS item factors.

    Parameters
    ----------
    content : (n_items, d) float32
        Content vectors of every item (rows outside ``warm_mask`` are not used).
    factors : (n_items, f) float32
        ALS item factors (targets; rows outside ``warm_mask`` are used only as ``"given"`` negatives,
        which are drawn from ``warm_mask`` too).
    warm_mask : (n_items,) bool
        The training items: those with interactions AND media.
    config : BridgeConfig, optional
    user_factors : (n_users, f) float32, optional
        ALS user factors; needed when ``config.rank_weight > 0``.
    interactions : CSR (n_users, n_items), optional
        Training interactions; needed when ``config.rank_weight > 0``.
    log : callable(str), optional
        Receives one line per epoch.

    Returns
    -------
    net : BridgeNet, in eval mode, on the CPU
    history : list of dict
        Per epoch: ``epoch``, ``loss``, ``regression``, ``ranking``, ``seconds``.
    """
    import torch

    config = (config or BridgeConfig()).validate()
    content = np.ascontiguousarray(content, dtype=np.float32)
    factors = np.ascontiguousarray(factors, dtype=np.float32)
    warm_mask = np.asarray(warm_mask, dtype=bool)
    n = content.shape[0]
    if content.ndim != 2 or factors.ndim != 2 or factors.shape[0] != n or warm_mask.shape != (n,):
        raise DataError(
            f"bridge inputs disagree: content {content.shape}, factors {factors.shape}, warm_mask "
            f"{warm_mask.shape}; expected (n_items, d), (n_items, f), (n_items,)"
        )
    if not (np.isfinite(content).all() and np.isfinite(factors).all()):
        raise DataError("bridge content or factors contain NaN or infinite values")
    train_items = np.flatnonzero(warm_mask)
    if len(train_items) < 2:
        raise DataError(f"the bridge needs at least 2 warm items with media to train on, got {len(train_items)}")
    ranking = config.rank_weight > 0
    if ranking:
        if user_factors is None or interactions is None:
            raise ConfigError("rank_weight > 0 needs user_factors= and interactions=; or set rank_weight=0")
        user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        interactions = sp.csr_matrix(interactions)
        if interactions.shape != (user_factors.shape[0], n) or user_factors.shape[1] != factors.shape[1]:
            raise DataError(
                f"interactions {interactions.shape} / user_factors {user_factors.shape} do not match "
                f"{n} items with {factors.shape[1]} factors"
            )

    device = torch.device(resolve_device(config.device))
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(CPU_THREADS, prev_threads)))
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(config.seed)
            net = build_net(content.shape[1], factors.shape[1], config)
            net.set_statistics(content[train_items], factors[train_items])
            net.to(device)
            history = _loop(net, config, device, content, factors, train_items, user_factors, interactions, ranking, log)
    finally:
        torch.set_num_threads(prev_threads)
    net.eval()
    return net.cpu(), history


def _loop(net, config, device, content, factors, train_items, user_factors, interactions, ranking, log):
    import torch

    x_all = torch.from_numpy(content).to(device)
    f_all = torch.from_numpy(factors).to(device)
    target_ms = float((factors[train_items].astype(np.float64) ** 2).sum(axis=1).mean()) or 1.0
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(train_items) / config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.1)
    if ranking:
        sampler = TripleSampler(interactions, train_items, config.n_negatives, config.negative_sampling, config.seed)
        u_all = torch.from_numpy(user_factors).to(device)
        scale = config.score_scale or _observed_score_std(user_factors, factors, interactions, train_items)
    else:
        rng = np.random.default_rng(config.seed)
    history: list[dict[str, float]] = []
    w = config.rank_weight
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        tot = {"loss": 0.0, "regression": 0.0, "ranking": 0.0}
        n_batches = 0
        if ranking:
            batches = sampler.epoch(config.batch_size)
        else:
            order = train_items[rng.permutation(len(train_items))]
            batches = ((order[s : s + config.batch_size], None, None, None, None)
                       for s in range(0, len(order), config.batch_size))
        for items, users, neg, where, valid in batches:
            it = torch.from_numpy(items).to(device)
            if ranking and neg.shape[1] > 0:
                b, k = neg.shape
                if config.negatives == "given":
                    pred = net(x_all[it])
                    neg_f = f_all[torch.from_numpy(neg.reshape(-1)).to(device)].view(b, k, -1)
                elif where is not None:  # in-batch: the negatives' predictions are already here
                    pred = net(x_all[it])
                    neg_f = pred[torch.from_numpy(where.reshape(-1)).to(device)].view(b, k, -1)
                else:  # one forward pass over the distinct items of the step
                    uniq, inv = np.unique(np.concatenate([items, neg.reshape(-1)]), return_inverse=True)
                    out = net(x_all[torch.from_numpy(uniq).to(device)])
                    inv_t = torch.from_numpy(inv).to(device)
                    pred, neg_f = out[inv_t[:b]], out[inv_t[b:]].view(b, k, -1)
                reg = regression_loss(pred, f_all[it], config.cosine_weight, target_ms)
                rank = ranking_loss(u_all[torch.from_numpy(users).to(device)], pred, neg_f,
                                    torch.from_numpy(valid).to(device), scale)
                loss = (1.0 - w) * reg + w * rank
            else:
                pred = net(x_all[it])
                reg = regression_loss(pred, f_all[it], config.cosine_weight, target_ms)
                rank = torch.zeros((), device=device)
                loss = reg
            if not torch.isfinite(loss):
                raise FitError(f"bridge training diverged at epoch {epoch} (loss {float(loss)}); lower lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot["loss"] += loss.item()
            tot["regression"] += reg.item()
            tot["ranking"] += rank.item()
            n_batches += 1
        row = {"epoch": epoch, **{k: v / max(n_batches, 1) for k, v in tot.items()},
               "seconds": time.perf_counter() - t0}
        history.append(row)
        if log is not None:
            log(f"bridge epoch {epoch}/{config.epochs}: loss {row['loss']:.4f} (regression "
                f"{row['regression']:.4f}, ranking {row['ranking']:.4f}) {row['seconds']:.2f}s")
    return history


def _observed_score_std(user_factors, factors, interactions, items) -> float:
    """Standard deviation of ALS scores ``u . v`` over the observed pairs on the training items."""
    coo = sp.csr_matrix(interactions).tocoo()
    keep = np.zeros(factors.shape[0], dtype=bool)
    keep[items] = True
    sel = keep[coo.col]
    s = np.einsum("ij,ij->i", user_factors[coo.row[sel]], factors[coo.col[sel]])
    sd = float(s.std()) if len(s) > 1 else 0.0
    return sd if sd > 1e-12 else 1.0


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


# ---------------------------------------------------------------------- calibration
def top_scores(user_factors: np.ndarray, item_factors: np.ndarray, interactions: sp.csr_matrix,
               items: np.ndarray, users: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best scores per user over ``items``, seen items excluded, best first.

    Returns (len(users), k) float32, padded with -inf where a user has fewer eligible items.
    """
    x = sp.csr_matrix(interactions)
    out = np.full((len(users), k), -np.inf, dtype=np.float32)
    items = np.asarray(items, dtype=np.int64)
    col = -np.ones(x.shape[1], dtype=np.int64)
    col[items] = np.arange(len(items))
    vt = np.ascontiguousarray(item_factors[items].T)
    step = max(1, (16 * 1024 * 1024) // max(len(items), 1))
    for s in range(0, len(users), step):
        u = users[s : s + step]
        sc = user_factors[u] @ vt
        rows = x[u]
        r = np.repeat(np.arange(len(u)), np.diff(rows.indptr))
        c = col[rows.indices]
        sc[r[c >= 0], c[c >= 0]] = -np.inf
        kk = min(k, sc.shape[1])
        if kk == 0:
            continue
        part = -np.partition(-sc, kk - 1, axis=1)[:, :kk] if kk < sc.shape[1] else sc
        out[s : s + step, :kk] = -np.sort(-part, axis=1)[:, :kk]
    return out


def list_share(norm: float, cold_top: np.ndarray, warm_top: np.ndarray) -> float:
    """Share of top-k slots that items with scores ``norm * cold_top`` take against ``warm_top``.

    cold_top, warm_top : (n_users, k), each row sorted best first. ``c`` cold items enter a user's
    top-k exactly when the c-th best cold score beats the (k - c + 1)-th best warm score.
    """
    k = warm_top.shape[1]
    beats = norm * cold_top > warm_top[:, ::-1]  # column c-1: c-th cold vs (k-c+1)-th warm
    return float(beats.sum()) / (k * max(len(warm_top), 1))


def calibrate_norm(directions: np.ndarray, user_factors: np.ndarray, warm_top: np.ndarray, share: float,
                   users: np.ndarray) -> float:
    """The norm for unit ``directions`` (m, f) at which they take ``share`` of the lists' slots.

    ``warm_top`` (len(users), k): the users' best warm scores (:func:`top_scores`). Bisection on
    the monotone :func:`list_share`. Returns a float > 0.
    """
    k = warm_top.shape[1]
    d = np.ascontiguousarray(directions, dtype=np.float32)
    cold_top = top_scores(user_factors, d, sp.csr_matrix((user_factors.shape[0], len(d)), dtype=np.float32),
                          np.arange(len(d)), users, k)
    lo, hi = 0.0, 1.0
    scale = float(np.abs(warm_top[np.isfinite(warm_top)]).max(initial=0.0)) + 1e-12
    scale /= max(float(np.abs(cold_top[np.isfinite(cold_top)]).max(initial=0.0)), 1e-12)
    hi = max(scale, 1e-6)
    # A share the cold items cannot reach at any norm (too few of them, or scores <= 0) would
    # otherwise send the norm to ~1e17; aim at the most they can get instead.
    share = min(share, list_share(hi * 2.0 ** 30, cold_top, warm_top))
    for _ in range(31):  # grow until the share is reached
        if list_share(hi, cold_top, warm_top) >= share:
            break
        hi *= 2.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if list_share(mid, cold_top, warm_top) >= share:
            hi = mid
        else:
            lo = mid
    return float(hi)


def set_output_norm(net, norm: float | None) -> None:
    """Make ``net`` output unit directions times ``norm`` (None or 0: raw regression output)."""
    import torch

    with torch.no_grad():
        net.out_norm.fill_(float(norm or 0.0))


# ---------------------------------------------------------------------- checkpoints
def save_bridge(net, config: BridgeConfig, path: str | Path) -> Path:
    """Write ``{"version", "config", "in_dim", "out_dim", "state_dict"}`` with ``torch.save``."""
    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "version": CHECKPOINT_VERSION,
            "config": asdict(config),
            "in_dim": int(net.in_dim),
            "out_dim": int(net.out_dim),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        },
        p,
    )
    return p


def load_bridge(path: str | Path):
    """Rebuild ``(net, config)`` from :func:`save_bridge` output; the net is in eval mode on the CPU."""
    import torch

    p = Path(path)
    if not p.exists():
        raise DataError(f"bridge checkpoint not found: {p}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and why
        raise DataError(f"{p} is not a bridge checkpoint ({exc}); write one with save_bridge") from None
    missing = {"config", "in_dim", "out_dim", "state_dict"} - set(ckpt)
    if missing:
        raise DataError(f"{p} is not a bridge checkpoint: missing {sorted(missing)}")
    config = BridgeConfig.from_dict(ckpt["config"])
    net = build_net(ckpt["in_dim"], ckpt["out_dim"], config)
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    return net, config
