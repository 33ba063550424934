"""The bridge's training batches: :class:`TripleSampler` and :class:`BridgeBatches`.

:class:`TripleSampler` draws item-centric (user, positive item, negative items) triples for the
ranking loss; :class:`BridgeBatches` serves them (or, for a pure regression, shuffled items) to the
shared loop of :mod:`training.trainer` as tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError, DataError
from training.bridge_config import NEGATIVE_SAMPLING


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


class BridgeBatches:
    """The bridge's batches for :func:`training.trainer.train` (its ``Sampler``).

    Each batch is ``(items, users, negatives, in_batch, valid)`` as CPU tensors (shapes in
    :meth:`TripleSampler.epoch`); without a ranking loss (``triples=None``) only ``items`` is set
    and the other four are None.

    The loop hands every epoch a fresh generator seeded from ``(seed, epoch)``; the bridge keeps
    its own instead, one generator seeded once from ``seed`` and drawn from epoch after epoch
    (the :class:`TripleSampler`'s, or one for the regression's shuffles). Both are deterministic
    and device-independent; this one keeps the bridge's batches, and so its fitted factors, what
    they were before the bridge ran on the shared loop.

    Parameters
    ----------
    items : (m,) int, the training items
    triples : TripleSampler or None
    seed : int
    """

    def __init__(self, items: np.ndarray, triples: TripleSampler | None, seed: int = 0) -> None:
        self.items = np.asarray(items, dtype=np.int64)
        self.triples = triples
        self._rng = np.random.default_rng(seed) if triples is None else None

    def n_batches(self, batch_size: int) -> int:
        """Batches per epoch (every training item once)."""
        return math.ceil(len(self.items) / batch_size)

    def batches(self, epoch: int, batch_size: int, rng: np.random.Generator) -> Iterator[tuple]:
        """One epoch of batches; ``rng`` is not used (see the class docstring)."""
        import torch

        if self.triples is None:
            order = self.items[self._rng.permutation(len(self.items))]
            for start in range(0, len(order), batch_size):
                yield torch.from_numpy(order[start : start + batch_size]), None, None, None, None
            return
        for items, users, neg, where, valid in self.triples.epoch(batch_size):
            yield (torch.from_numpy(items), torch.from_numpy(users), torch.from_numpy(neg),
                   None if where is None else torch.from_numpy(where), torch.from_numpy(valid))
