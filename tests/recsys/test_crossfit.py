"""Cross-fitting folds: one held-out interaction per user and fold, the latest first with timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data import Interactions
from recsys.errors import ConfigError, DataError
from recsys.models.crossfit import crossfit_folds, fold_assignment


def _log(with_time: bool):
    # user 0: 4 items (t = 0..3), user 1: 2 items, user 2: 1 item
    users = [0, 0, 0, 0, 1, 1, 2]
    items = [0, 1, 2, 3, 0, 4, 5]
    ts = [0.0, 1.0, 2.0, 3.0, 5.0, 4.0, 0.0] if with_time else None
    return Interactions.from_arrays(users, items, timestamps=ts)


def test_temporal_folds_hold_out_latest_first():
    x = _log(True)
    folds = list(crossfit_folds(x, 3))
    assert len(folds) == 3
    (tr0, lab0), (tr1, lab1), (tr2, lab2) = folds
    # fold 0: each user's latest item (user 0: item 3; user 1: item 0 at t=5); user 2 keeps its only item
    assert sorted(zip(*np.nonzero(lab0.matrix.toarray()))) == [(0, 3), (1, 0)]
    assert sorted(zip(*np.nonzero(lab1.matrix.toarray()))) == [(0, 2)]  # user 1 keeps one item
    assert sorted(zip(*np.nonzero(lab2.matrix.toarray()))) == [(0, 1)]
    for tr, lab in folds:
        assert tr.nnz + lab.nnz == x.nnz and tr.same_maps(x)
        assert (tr.user_counts()[[0, 1, 2]] >= 1).all()  # nobody loses their whole history


def test_random_folds_are_seeded_and_partition():
    x = _log(False)
    a, b = fold_assignment(x, 3, seed=1), fold_assignment(x, 3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert (np.bincount(a[a >= 0]) == [2, 1, 1]).all()  # users 0 and 1 in fold 0, only user 0 after


def test_folds_errors():
    with pytest.raises(ConfigError):
        fold_assignment(_log(True), 0)
    single = Interactions.from_arrays([0, 1], [0, 1])
    with pytest.raises(DataError, match="at least 2"):
        list(crossfit_folds(single, 2))
