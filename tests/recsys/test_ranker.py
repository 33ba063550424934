"""Rankers learn a planted ordering and survive a state round trip exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.errors import ConfigError, DataError
from recsys.models.ranker import Ranker, coordinate_ascent, grouped_ndcg


def _lists(seed=0, n_users=60, per_user=20):
    """Each user has 20 candidates; relevance is driven by feature 0 (feature 1 is noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_users * per_user, 2)).astype(np.float32)
    y = np.zeros(len(x), np.float32)
    for u in range(n_users):
        sl = slice(u * per_user, (u + 1) * per_user)
        y[sl][np.argsort(-x[sl, 0])[:2]] = 1.0  # the two highest feature-0 items are relevant
    return x, y, np.full(n_users, per_user)


@pytest.mark.parametrize("kind", ["linear", "lambdarank", "binary", "logistic"])
def test_ranker_learns_and_round_trips(kind):
    x, y, g = _lists()
    r = Ranker(kind, rounds=40, min_data_in_leaf=5).fit(x, y, g)
    xt, yt, _ = _lists(seed=1)
    s = r.predict(xt)
    # relevant items outscore irrelevant ones on fresh lists
    assert s[yt == 1].mean() > s[yt == 0].mean() + 0.5 * s.std()
    assert np.argmax(r.feature_importance()) == 0
    state = r.get_state()
    json.dumps({k: v for k, v in state.items() if not isinstance(v, np.ndarray)})  # plain values
    np.testing.assert_allclose(Ranker.from_state(state).predict(xt), s, rtol=1e-9)


def test_ranker_rejects_bad_input():
    x, y, g = _lists()
    with pytest.raises(ConfigError):
        Ranker("svm")
    with pytest.raises(DataError, match="disagree"):
        Ranker().fit(x, y, g[:-1])
    with pytest.raises(DataError, match="positives and negatives"):
        Ranker().fit(x, np.zeros_like(y), g)
    r = Ranker("logistic").fit(x, y, g)
    with pytest.raises(DataError, match="features"):
        r.predict(x[:, :1])


def test_grouped_ndcg_hand_worked():
    """Two lists. List A (3 rows): the positive scores second -> 1/log2(3). List B (2 rows, both
    positive): positions 0 and 1 -> ideal, 1. A tie counts half a position: C (2 rows, equal
    scores, one positive) -> position floor(0.5) = 0 -> 1."""
    s = np.array([0.9, 0.5, 0.1, 0.7, 0.6, 0.3, 0.3])
    y = np.array([0, 1, 0, 1, 1, 0, 1])
    g = np.array([3, 2, 2])
    assert grouped_ndcg(s, y, g, k=20) == pytest.approx((1 / np.log2(3) + 1 + 1) / 3)
    assert grouped_ndcg(s[:3], y[:3], g[:1], k=1) == 0.0  # second place is outside the top 1


def test_coordinate_ascent_finds_the_signal_and_drops_noise():
    x, y, g = _lists()
    w, ndcg = coordinate_ascent(x, y, g, k=5)
    assert w[0] > 0 and abs(w[1]) < w[0] / 2 and ndcg > 0.95
