"""The cold-item exposure policy on hand-made candidate lists (recsys.models.exposure): the quota
per list, the position cap under the user's best warm items, the quality bound, and the report of
a share that cannot be reached."""

from __future__ import annotations

import numpy as np

from recsys.models import exposure


def _lists(warm: np.ndarray, cold: np.ndarray):
    """One user per row: warm scores (b, nw) and cold scores (b, nc) as the policy's pair arrays."""
    b = warm.shape[0]
    p = np.hstack([warm, cold])
    flags = np.hstack([np.zeros_like(warm, bool), np.ones_like(cold, bool)])
    r = np.repeat(np.arange(b), p.shape[1])
    return p.ravel(), r, flags.ravel()


def _top_cold(p, r, cold, b, k=20):
    s = p.reshape(b, -1)
    c = cold.reshape(b, -1)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(c, top, axis=1), top


def test_quota_and_position_cap():
    """Many good cold candidates: exactly floor(share * 20) of them enter each list, none above the
    user's top (1 - share) * 20 warm items, in the ranker's order."""
    rng = np.random.default_rng(0)
    warm = np.sort(rng.normal(size=(50, 60)), axis=1)[:, ::-1]
    cold = warm[:, 15:16] - rng.uniform(0, 0.5, size=(50, 10))  # just below the 16th warm item
    p, r, c = _lists(warm, cold)
    out = exposure.apply(p, r, c, 0.25, 50)
    in_top, top = _top_cold(out, r, c, 50)
    assert (in_top.sum(axis=1) == 5).all()
    assert not in_top[:, :15].any()  # the 15 best warm items keep their places
    lifted = out.reshape(50, -1)[:, 60:]
    best5 = np.argsort(-cold, axis=1)[:, :5]
    assert (np.sort(top[:, 15:] - 60, axis=1) == np.sort(best5, axis=1)).all()
    # a share of 0 or None changes nothing
    np.testing.assert_array_equal(exposure.apply(p, r, c, None, 50), p)
    np.testing.assert_array_equal(exposure.apply(p, r, c, 0.0, 50), p)
    assert np.isfinite(lifted).all()


def test_few_cold_items_never_top_every_list():
    """The issue's case: 3 cold items, a quarter of 20 slots asked for. Each cold item may enter a
    list, but never above the user's best warm item, and the report says the share is out of reach
    because there are fewer cold items than slots."""
    rng = np.random.default_rng(1)
    warm = rng.normal(size=(200, 97))
    cold = rng.normal(size=(200, 3)) - 1.0
    p, r, c = _lists(warm, cold)
    out = exposure.apply(p, r, c, 0.25, 200)
    in_top, top = _top_cold(out, r, c, 200)
    assert not in_top[:, 0].any() and in_top.sum(axis=1).max() <= 3
    lists = [(warm[u].tolist() + cold[u].tolist(), np.r_[np.zeros(97, bool), np.ones(3, bool)]) for u in range(200)]
    rep = exposure.calibrate([(np.asarray(a), b) for a, b in lists], 0.25)
    assert not rep.reachable and rep.slots == 5 and rep.reason.startswith("fewer cold candidates")
    assert rep.reached <= 0.15 and rep.users_within_share == 1.0
    assert abs(rep.reached - in_top.sum() / (200 * 20)) < 1e-9


def test_quality_bound_keeps_poor_cold_items_out():
    """A cold candidate further below the list's end than the list's own spread does not enter the
    list, and the report names quality, not numbers, as the reason."""
    warm = np.tile(np.linspace(10.0, 0.0, 40), (30, 1))  # list spread w_1 - w_20 = 4.87
    cold = np.full((30, 6), -20.0)
    p, r, c = _lists(warm, cold)
    out = exposure.apply(p, r, c, 0.25, 30)
    in_top, top = _top_cold(out, r, c, 30)
    assert not in_top.any() and (top == np.arange(20)).all()  # the lists stay as the ranker made them
    rep = exposure.calibrate([(np.r_[warm[u], cold[u]], c.reshape(30, -1)[u]) for u in range(30)], 0.25)
    assert rep.reached == 0 and not rep.reachable and rep.reason.startswith("too few cold candidates are good")


def test_cold_items_beyond_the_share_are_held_out():
    """When the ranker alone puts more cold items in a list than the share allows, the extra ones
    (lowest scored first) move below the 20th warm item; the best ones keep their own scores."""
    warm = np.tile(np.linspace(1.0, 0.0, 30), (4, 1))
    cold = np.tile(np.linspace(5.0, 2.0, 8), (4, 1))  # all above every warm item
    p, r, c = _lists(warm, cold)
    out = exposure.apply(p, r, c, 0.1, 4)  # 2 slots
    in_top, _ = _top_cold(out, r, c, 4)
    assert (in_top.sum(axis=1) == 2).all()
    kept = out.reshape(4, -1)[:, 30:32]
    np.testing.assert_array_equal(kept, cold[:, :2])  # the ranker's own placement stands
    assert exposure.quota(0.1) == 2 and exposure.quota(0.33) == 6 and exposure.quota(None) == 0
