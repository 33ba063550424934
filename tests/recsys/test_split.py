from __future__ import annotations

import numpy as np
import pytest

from recsys.data import Interactions
from recsys.errors import SplitError
from recsys.split import Split, cold_item_split, leave_last_out, make_split, random_split, temporal_split


@pytest.fixture()
def log() -> Interactions:
    rng = np.random.default_rng(1)
    users, items, ts = [], [], []
    for u in range(30):
        k = 3 + u % 8
        for j, i in enumerate(rng.choice(50, size=k, replace=False)):
            users.append(f"u{u}")
            items.append(int(i))
            ts.append(1000 * u + 10 * j + rng.random())
    return Interactions.from_arrays(users, items, timestamps=ts)


def _pairs(x: Interactions) -> set[tuple[int, int]]:
    r, c, _, _ = x.to_coo()
    return set(zip(r.tolist(), c.tolist()))


def _check_partition(x: Interactions, s: Split) -> None:
    parts = [s.train, s.test] + ([s.val] if s.val is not None else [])
    for p in parts:
        assert p.user_map is x.user_map and p.item_map is x.item_map
    union = set().union(*(_pairs(p) for p in parts))
    assert union == _pairs(x), "a split must neither lose nor invent pairs"
    assert sum(p.nnz for p in parts) == x.nnz


def test_random_split_holds_out_share_per_user(log):
    s = random_split(log, test_size=0.25, val_size=0.0, seed=3)
    _check_partition(log, s)
    n = log.user_counts()
    t = s.test.user_counts()
    np.testing.assert_array_equal(t, np.clip(np.maximum(np.rint(n * 0.25), 1), 0, n - 1))
    assert (s.train.user_counts() >= 1).all()
    # deterministic per seed, different across seeds
    assert _pairs(random_split(log, 0.25, seed=3).test) == _pairs(s.test)
    assert _pairs(random_split(log, 0.25, seed=4).test) != _pairs(s.test)


def test_random_split_with_validation(log):
    s = random_split(log, test_size=0.2, val_size=0.2, seed=0)
    _check_partition(log, s)
    assert s.val.nnz > 0 and (s.train.user_counts() >= 1).all()


def test_temporal_global_cut(log):
    s = temporal_split(log, test_size=0.3, val_size=0.1)
    _check_partition(log, s)
    cut = s.info["cut"]
    assert s.train.timestamps.max() < s.info["val_cut"] <= s.val.timestamps.min()
    assert s.val.timestamps.max() < cut <= s.test.timestamps.min()
    assert abs(s.test.nnz / log.nnz - 0.3) < 0.05
    fixed = temporal_split(log, cut=15000.0)
    assert fixed.test.timestamps.min() >= 15000.0 and fixed.train.timestamps.max() < 15000.0


def test_temporal_per_user_takes_each_users_latest(log):
    s = temporal_split(log, test_size=0.34, per_user=True)
    _check_partition(log, s)
    for u in range(log.n_users):
        tr = s.train.timestamps[s.train.matrix.indptr[u] : s.train.matrix.indptr[u + 1]]
        te = s.test.timestamps[s.test.matrix.indptr[u] : s.test.matrix.indptr[u + 1]]
        assert len(tr) >= 1 and len(te) >= 1
        assert tr.max() < te.min()


def test_leave_last_out(log):
    s = leave_last_out(log, val=True)
    _check_partition(log, s)
    assert (s.test.user_counts() == 1).all() and (s.val.user_counts() == 1).all()
    for u in range(log.n_users):
        lo, hi = log.matrix.indptr[u], log.matrix.indptr[u + 1]
        latest = log.matrix.indices[lo + np.argmax(log.timestamps[lo:hi])]
        assert s.test.user_items(u).tolist() == [latest]


def test_cold_item_split_items_wholly_held_out(log):
    s = cold_item_split(log, test_size=0.2, val_size=0.1, seed=0)
    _check_partition(log, s)
    train_items = set(np.flatnonzero(s.train.item_counts()))
    test_items = set(np.flatnonzero(s.test.item_counts()))
    val_items = set(np.flatnonzero(s.val.item_counts()))
    assert not train_items & test_items and not train_items & val_items and not val_items & test_items
    assert s.summary()["test"]["cold_interactions"] == s.test.nnz


def test_overlap_raises(log):
    with pytest.raises(SplitError, match="overlap"):
        Split(log, log.subset(np.arange(log.nnz) < 3))
    other = Interactions.from_arrays(["x"], [1])
    with pytest.raises(SplitError, match="different id maps"):
        Split(log, other)


def test_bad_arguments(log):
    with pytest.raises(SplitError):
        random_split(log, test_size=1.2)
    with pytest.raises(SplitError):
        random_split(log, test_size=0.6, val_size=0.5)
    with pytest.raises(SplitError, match="unknown split"):
        make_split(log, "nope")
    no_time = Interactions.from_arrays([1, 2], [1, 2])
    for f in (temporal_split, leave_last_out):
        with pytest.raises(SplitError, match="timestamps"):
            f(no_time)
    with pytest.raises(SplitError):
        temporal_split(log, cut=1e12)


@pytest.mark.parametrize("strategy", ["random", "temporal", "loo", "cold-item"])
def test_make_split_dispatch(log, strategy):
    s = make_split(log, strategy, test_size=0.2, val_size=0.1, seed=0)
    _check_partition(log, s)
    assert s.summary()["test"]["interactions"] == s.test.nnz
