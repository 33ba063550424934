"""Train/validation/test splits of one :class:`~recsys.data.Interactions`.

Every split returns a :class:`Split` whose parts keep the same id maps and never share a
(user, item) pair: :class:`Split` checks that on construction and raises
:class:`~recsys.errors.SplitError` otherwise, so a leaking split cannot be evaluated.

Strategies
----------
- :func:`random_split`: per-user random holdout of a share of each user's items.
- :func:`temporal_split`: a global time cut (everything at or after the cut is test), or per user
  the latest share of each user's interactions.
- :func:`leave_last_out`: each user's latest interaction is test (the one before it validation).
- :func:`cold_item_split`: a share of items is held out wholly; they are cold at training time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.data.interactions import Interactions, check_disjoint
from recsys.errors import SplitError

SPLITS = ("random", "temporal", "loo", "cold-item")


@dataclass
class Split:
    """The parts of a split; ``val`` is optional. Parts are checked pairwise for overlap."""

    train: Interactions
    test: Interactions
    val: Interactions | None = None
    name: str = "split"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_disjoint(self.train, self.test, ("train", "test"))
        if self.val is not None:
            check_disjoint(self.train, self.val, ("train", "val"))
            check_disjoint(self.val, self.test, ("val", "test"))

    def train_and_val(self) -> Interactions:
        """Train plus validation: what a final model fits on once validation has chosen settings."""
        return self.train if self.val is None else self.train.union(self.val)

    def summary(self) -> dict:
        """Counts per part, and how many test pairs fall on items cold in train."""
        train_items = self.train.item_counts() > 0
        out = {"name": self.name, "users": self.train.n_users, "items": self.train.n_items}
        for part in ("train", "val", "test"):
            x = getattr(self, part)
            if x is None:
                continue
            cols = x.matrix.indices
            out[part] = {
                "interactions": x.nnz,
                "users": int((x.user_counts() > 0).sum()),
                "cold_items": int(len(np.unique(cols[~train_items[cols]]))) if part != "train" else 0,
                "cold_interactions": int((~train_items[cols]).sum()) if part != "train" else 0,
            }
        return out


def _entry_rows(x: Interactions) -> np.ndarray:
    """The user index of every stored pair, (nnz,) int64 in CSR order, without the copies of
    columns, weights and timestamps that ``to_coo`` makes (400 MB at 20M pairs)."""
    return np.repeat(np.arange(x.n_users, dtype=np.int64), np.diff(x.matrix.indptr))


def _rank_within_user(rows: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each entry within its user when ordered by ``key`` (ascending), and user sizes.

    Returns
    -------
    pos : (nnz,) int64, 0-based position among the user's entries
    size : (nnz,) int64, the user's number of entries
    """
    order = np.lexsort((key, rows))
    counts = np.bincount(rows, minlength=rows.max() + 1 if len(rows) else 0)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(len(rows), dtype=np.int64)
    pos[order] = np.arange(len(rows)) - np.repeat(starts, counts)
    return pos, counts[rows]


def _holdout_counts(size: np.ndarray, share: float, min_train: int) -> np.ndarray:
    """Items to hold out of each user with ``size`` items: round(share*size), keeping min_train."""
    k = np.rint(size * share).astype(np.int64)
    k = np.where((k == 0) & (size > min_train) & (share > 0), 1, k)  # every user with room gets one
    return np.clip(k, 0, np.maximum(size - min_train, 0))


def _check_share(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise SplitError(f"{name} must be in [0, 1), got {value}")


def _parts(x: Interactions, test_mask: np.ndarray, val_mask: np.ndarray | None, name: str, **info) -> Split:
    train_mask = ~test_mask if val_mask is None else ~(test_mask | val_mask)
    val = None if val_mask is None else x.subset(val_mask)
    return Split(x.subset(train_mask), x.subset(test_mask), val, name, info)


def random_split(
    x: Interactions, test_size: float = 0.2, val_size: float = 0.0, seed: int = 0, min_train: int = 1
) -> Split:
    """Per-user random holdout: each user keeps at least ``min_train`` items in train.

    Parameters
    ----------
    x : Interactions
    test_size, val_size : float
        Share of each user's items in test / validation (rounded, at least one when the user has
        more than ``min_train`` items).
    seed : int
    min_train : int
    """
    _check_share("test_size", test_size)
    _check_share("val_size", val_size)
    if test_size + val_size >= 1:
        raise SplitError("test_size + val_size must be < 1")
    rows = _entry_rows(x)
    rng = np.random.default_rng(seed)
    pos, size = _rank_within_user(rows, rng.random(len(rows)))
    n_test = _holdout_counts(size, test_size, min_train)
    test = pos < n_test
    val = None
    if val_size > 0:
        n_val = _holdout_counts(size - n_test, val_size / (1 - test_size), min_train)
        val = (pos >= n_test) & (pos < n_test + n_val)
    return _parts(x, test, val, "random", test_size=test_size, val_size=val_size, seed=seed)


def temporal_split(
    x: Interactions,
    test_size: float = 0.2,
    val_size: float = 0.0,
    *,
    cut: float | None = None,
    val_cut: float | None = None,
    per_user: bool = False,
    min_train: int = 1,
) -> Split:
    """Split by time.

    Global (default): pairs whose (earliest) timestamp is at or after the cut are test; the cut is
    ``cut`` if given, else the ``1 - test_size`` quantile of all timestamps. Items whose first
    interaction is after the cut are therefore cold in train, as they would be in production.
    ``val_cut`` (or the ``1 - test_size - val_size`` quantile) carves validation from before the cut.

    Per user (``per_user=True``): the latest ``test_size`` share of each user's pairs is test and the
    ``val_size`` share before it validation, keeping at least ``min_train`` in train.
    """
    if x.timestamps is None:
        raise SplitError("a temporal split needs timestamps; load the log with a timestamp column")
    _check_share("test_size", test_size)
    _check_share("val_size", val_size)
    t = x.timestamps
    if per_user:
        rows = _entry_rows(x)
        # newest first, ties broken by item index so the split is deterministic
        pos, size = _rank_within_user(rows, -t)
        n_test = _holdout_counts(size, test_size, min_train)
        test = pos < n_test
        val = None
        if val_size > 0:
            n_val = _holdout_counts(size - n_test, val_size / max(1 - test_size, 1e-9), min_train)
            val = (pos >= n_test) & (pos < n_test + n_val)
        return _parts(x, test, val, "temporal-per-user", test_size=test_size, val_size=val_size)
    if cut is None:
        cut = float(np.quantile(t, 1 - test_size))
    test = t >= cut
    val = None
    if val_size > 0 or val_cut is not None:
        if val_cut is None:
            val_cut = float(np.quantile(t, 1 - test_size - val_size))
        if val_cut > cut:
            raise SplitError(f"val_cut {val_cut} is after the test cut {cut}")
        val = (t >= val_cut) & ~test
    if not test.any() or test.all():
        raise SplitError(f"cut {cut} leaves an empty train or test part")
    return _parts(x, test, val, "temporal", cut=cut, val_cut=val_cut)


def leave_last_out(x: Interactions, val: bool = False, min_train: int = 1) -> Split:
    """Each user's latest pair is test (and, with ``val``, the one before it validation).

    Users with at most ``min_train`` pairs (``min_train + 1`` with ``val``) stay wholly in train.
    Without timestamps the order is random-free but arbitrary (highest item index last), so
    timestamps are required.
    """
    if x.timestamps is None:
        raise SplitError("leave-last-out needs timestamps; load the log with a timestamp column")
    rows, cols = _entry_rows(x), x.matrix.indices
    pos, size = _rank_within_user(rows, -x.timestamps * (x.n_items + 1) - cols)
    need = min_train + (2 if val else 1)
    test = (pos == 0) & (size >= need)
    val_mask = ((pos == 1) & (size >= need)) if val else None
    return _parts(x, test, val_mask, "loo")


def cold_item_split(
    x: Interactions, test_size: float = 0.1, val_size: float = 0.0, seed: int = 0
) -> Split:
    """Hold out a share of items wholly: all their pairs go to test (or validation).

    Parameters
    ----------
    test_size, val_size : float
        Share of the items that have interactions.
    """
    _check_share("test_size", test_size)
    _check_share("val_size", val_size)
    rng = np.random.default_rng(seed)
    items = np.flatnonzero(x.item_counts() > 0)
    perm = rng.permutation(items)
    n_test = max(1, int(round(test_size * len(items))))
    n_val = int(round(val_size * len(items)))
    if n_test + n_val >= len(items):
        raise SplitError(f"cannot hold out {n_test + n_val} of {len(items)} items and keep any for training")
    cold = np.zeros(x.n_items, dtype=bool)
    cold[perm[:n_test]] = True
    cols = x.matrix.indices
    test = cold[cols]
    val = None
    if n_val:
        vcold = np.zeros(x.n_items, dtype=bool)
        vcold[perm[n_test : n_test + n_val]] = True
        val = vcold[cols]
    return _parts(x, test, val, "cold-item", test_size=test_size, val_size=val_size, seed=seed)


def make_split(x: Interactions, strategy: str, *, test_size: float = 0.2, val_size: float = 0.1, seed: int = 0) -> Split:
    """Dispatch by name (``random``, ``temporal``, ``loo``, ``cold-item``), as the CLI does."""
    if strategy == "random":
        return random_split(x, test_size, val_size, seed)
    if strategy == "temporal":
        return temporal_split(x, test_size, val_size)
    if strategy == "loo":
        return leave_last_out(x, val=val_size > 0)
    if strategy == "cold-item":
        return cold_item_split(x, test_size, val_size, seed)
    raise SplitError(f"unknown split {strategy!r}; choose one of {SPLITS}")
