"""The cold-item exposure policy on hand-made candidate lists (recsys.models.exposure): the quota
per list (ceiling 1), the calibrated lift that fills the share on average (ceiling 3), the position
cap under the user's best warm items, the quality bound, and the report of a share that cannot be
reached."""

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



def _calibrated(p, r, c, b, share, ceiling=3):
    lists = [(pp, cc) for pp, cc in zip(p.reshape(b, -1), c.reshape(b, -1))]
    rep = exposure.calibrate(lists, share, ceiling=ceiling)
    return rep, exposure.apply(p, r, c, share, b, ceiling=ceiling, lift=rep.lift)


def test_calibrated_lift_fills_the_share_on_average_where_cold_items_score_best():
    """With a ceiling above 1, one calibrated lift fills ``share`` of the slots on average over the
    calibration lists, gives more slots to users whose cold candidates the ranker scores well for
    them and fewer to the others, is the smallest lift that does so, and keeps the per-list
    guarantees: at most ``list_slots`` cold items per list, none above the user's top
    ``k - list_slots`` warm items."""
    rng = np.random.default_rng(2)
    b = 400
    warm = np.sort(rng.normal(size=(b, 80)), axis=1)[:, ::-1]
    fit = np.where(np.arange(b) % 2 == 0, 0.0, -1.5)[:, None]  # even users: cold items that suit them
    cold = warm[:, 19:20] + fit - rng.uniform(0.0, 1.0, size=(b, 12))
    p, r, c = _lists(warm, cold)
    rep, out = _calibrated(p, r, c, b, 0.25)
    assert rep.slots == 5 and rep.list_slots == 15 and rep.reachable and rep.lift > 0
    in_top, top = _top_cold(out, r, c, b)
    n = in_top.sum(axis=1)
    assert abs(n.mean() - 5) < 0.5 and abs(rep.reached - n.mean() / 20) < 1e-9
    assert n[::2].mean() > 2 * n[1::2].mean()  # adaptive: slots go where cold items score best
    assert n.max() <= rep.list_slots and not in_top[:, :20 - rep.list_slots].any()
    assert rep.users_within_share == np.mean(n <= 5)
    # the smallest such lift: a little less fills fewer slots
    less = exposure.apply(p, r, c, 0.25, b, ceiling=3, lift=rep.lift * 0.98)
    assert _top_cold(less, r, c, b)[0].sum(axis=1).mean() < 5
    # the same lists with the fixed quota: exactly 5 in every list that has 5 good cold candidates
    fixed, out1 = _calibrated(p, r, c, b, 0.25, ceiling=1)
    assert fixed.lift is None and _top_cold(out1, r, c, b)[0].sum(axis=1).max() == 5


def test_calibrated_lift_guarantees_on_hard_lists():
    """The fixed-quota cases above, with a calibrated lift: poor cold candidates stay out (their
    lists' bound), 3 cold items for 5 slots are reported and never first, and when the ranker alone
    already fills the share no lift is added (cold items beyond the ceiling are still held out)."""
    warm = np.tile(np.linspace(10.0, 0.0, 40), (30, 1))
    cold = np.full((30, 6), -20.0)
    p, r, c = _lists(warm, cold)
    rep, out = _calibrated(p, r, c, 30, 0.25)
    assert rep.reached == 0 and rep.reason.startswith("too few cold candidates are good")
    assert not _top_cold(out, r, c, 30)[0].any()

    rng = np.random.default_rng(1)
    warm, cold = rng.normal(size=(200, 97)), rng.normal(size=(200, 3)) - 1.0
    p, r, c = _lists(warm, cold)
    rep, out = _calibrated(p, r, c, 200, 0.25)
    assert rep.reason.startswith("fewer cold candidates") and rep.users_within_share == 1.0
    in_top, _ = _top_cold(out, r, c, 200)
    assert in_top.sum(axis=1).max() <= 3 and not in_top[:, 0].any()
    # a lift ends below the user's 5th warm item (20 - 15); a cold item the ranker alone puts higher stays there
    fifth = np.sort(warm, axis=1)[:, -5]
    lifted = (out != p).reshape(200, -1)[:, 97:]
    assert (out.reshape(200, -1)[:, 97:][lifted] < np.broadcast_to(fifth[:, None], (200, 3))[lifted]).all()

    warm = np.tile(np.linspace(1.0, 0.0, 30), (4, 1))
    cold = np.tile(np.linspace(5.0, 2.0, 8), (4, 1))  # the ranker alone puts all 8 on top
    p, r, c = _lists(warm, cold)
    rep, out = _calibrated(p, r, c, 4, 0.1)
    assert rep.lift == 0.0 and rep.list_slots == 6 and rep.ranker_alone == 0.4
    assert (_top_cold(out, r, c, 4)[0].sum(axis=1) == 6).all() and abs(rep.reached - 0.3) < 1e-9
    assert exposure.slots_per_list(0.1, ceiling=3) == 6 and exposure.slots_per_list(0.1) == 2
    assert exposure.slots_per_list(0.4, ceiling=3) == 19
