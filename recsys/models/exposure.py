"""Exposure policy for cold items (no training interactions: new uploads) in a ranked list.

The hybrid's ranker alone gives new items few slots. The policy gives them ``q = floor(share * k)``
of the top-``k`` slots, either in every list or on average over the users, and lets a new item in
only when the ranker finds it good enough for that user, and never above the user's best warm
items. Per user, with the warm candidates' ranker scores ``w_1 >= w_2 >= ...`` and the cold
candidates' scores ``p``, and ``Q = min(ceiling * q, k - 1)`` the most cold items one list may hold:

- **ceiling**: the ``Q`` cold candidates the ranker scores highest may be lifted; any further cold
  candidate is held below the user's ``k``-th warm candidate, so no list with ``k`` warm candidates
  holds more than ``Q`` cold items in its top ``k``;
- **lift**: ``ceiling=1`` (``Q = q``, the same quota in every list): each list lifts by its whole
  quality bound. ``ceiling > 1``: one lift ``L``, calibrated by :func:`calibrate` on training
  users' lists so cold items fill ``q`` of the slots on average, is added to every list's chosen
  cold candidates, so a user whose cold candidates score close to their warm ones gets more slots
  (up to ``Q``) and one whose cold candidates score poorly fewer or none;
- **quality bound**: the lift is at most the user's own list spread ``B = w_1 - w_k``
  (``min(L, B)``): a cold candidate enters only if the ranker puts it less than a list's length of
  scores below the list's end (``p > w_k - B``);
- **position cap**: a lifted score is at most just below ``w_(k-Q)``, so the top ``k - Q`` warm
  candidates are never displaced by the policy (a lifted cold item is never above every warm
  one). A cold item the ranker alone places higher keeps its own score.

A share the policy cannot give (fewer cold candidates than reserved slots, or too few of them
within the quality bound) is not forced: :func:`calibrate` measures the share reached on training
users' lists and says why it falls short, so the model can warn and record it.

History. The first policy added one constant to every cold candidate (no ceiling, bound or cap),
calibrated to fill ``share`` on average; with 3 cold items and ``share=0.25`` (5 of 20 slots) it
ran to its limit and put every cold item at ranks 1-3 for every user. The per-list quota
(``ceiling=1``) fixed that, but on TikTok giving every user the same number of cold slots costs
more val recall per cold hit (val chose 0.1: cold recall@20 0.045 on val, 1.25x the best content
model's, not the 2x asked for). The calibrated lift with ``ceiling=3`` reaches 2x on val at share
0.2 within 3% of the ranker alone's val recall (README "Cold-item exposure"; ceilings 2 and 4 and
bounds of 0.5 and 2 spreads did no better there). The hybrid lets val choose share and ceiling
together and keeps ``ceiling=1`` where val cannot choose (no cold item in val: the demo, small
catalogs), so their lists stay as issue 16 measured them (on the demo, ``ceiling=3`` trades 0.007
recall@20 for 0.008 NDCG@20 on test: a trade-off shown, not a choice made on test).

Why the cap sits at ``w_(k-Q)`` (one hybrid fit each, recall@20 / ndcg@20 on test, varying only
the cap, ``ceiling=1``): capping just below the user's best warm item instead gives the demo more
NDCG (0.6420 vs 0.6202, same recall 0.8135, since its 30 new items are often the right answer) but
on a 100-item planted catalog puts one of its 3 new items in the top 5 of 92-99% of users (19-26%
with ``w_(k-q)``) and costs 0.025-0.045 NDCG there. A lift of twice the spread changes the demo by
under 0.002 recall@20.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: list length the policy reserves slots in (the cut-off of the metrics it was chosen on)
EXPOSURE_K = 20
#: the lift is at most this multiple of the user's list spread ``w_1 - w_k`` (the quality bound)
MAX_LIFT = 1.0


def quota(share: float | None, k: int = EXPOSURE_K) -> int:
    """Cold slots a top-``k`` list gets on average: ``floor(share * k)`` (0 for None)."""
    return 0 if not share else int(np.floor(float(share) * k + 1e-9))


def slots_per_list(share: float | None, k: int = EXPOSURE_K, ceiling: int = 1) -> int:
    """Cold slots one top-``k`` list may hold: ``min(ceiling * quota, k - 1)``."""
    return min(int(ceiling) * quota(share, k), k - 1)


class _Lists:
    """Padded rows of candidate scores with everything the policy needs that does not depend on
    the calibrated lift (computed once, then scored for many lifts during calibration)."""

    def __init__(self, s: np.ndarray, c: np.ndarray, slots: int, k: int) -> None:
        b = s.shape[0]
        rows = np.arange(b)
        self.s, self.c = s, c
        warm = np.where(c, -np.inf, s)
        ws = -np.sort(-warm, axis=1)  # warm scores, best first (-inf padding last)
        n_warm = np.isfinite(ws).sum(axis=1)
        self.has = n_warm > 0
        self.w_k = ws[rows, np.maximum(np.minimum(k, n_warm) - 1, 0)]
        spread = np.where(self.has, ws[:, 0] - self.w_k, 0.0)
        self.room = MAX_LIFT * spread  # the quality bound of each list
        self.cap = ws[rows, np.maximum(np.minimum(k - slots, n_warm) - 1, 0)]
        # ties must survive float32 scores: offsets relative to the row's scale
        eps = 1e-5 * np.maximum(np.maximum(np.abs(np.where(self.has, self.cap, 0.0)), spread), 1e-3)
        cold_s = np.where(c, s, -np.inf)
        order = np.argsort(-cold_s, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(s.shape[1])[None, :].repeat(b, 0), axis=1)
        self.step = (rank + 1) * eps[:, None]
        self.lifted = c & (rank < slots)  # the list's best cold candidates, up to its ceiling
        self.held = np.minimum(s, self.w_k[:, None] - self.step)

    def scores(self, lift: float | None) -> np.ndarray:
        """(b, width) scores after lifting the chosen cold candidates by ``min(lift, room)``."""
        up = self.room if lift is None else np.minimum(float(lift), self.room)
        lifted = np.maximum(self.s, np.minimum(self.s + up[:, None], self.cap[:, None] - self.step))
        out = np.where(self.lifted, lifted, np.where(self.c, self.held, self.s))
        # a user without warm candidates has nothing to protect: the ranker's order stands
        return np.where(self.has[:, None], out, self.s)


def _padded(p: np.ndarray, r: np.ndarray, cold: np.ndarray, n_rows: int):
    """Row-major pairs as (n_rows, width) arrays: scores (-inf padding), cold flags, positions."""
    bounds = np.searchsorted(r, np.arange(n_rows + 1))
    pos = np.arange(len(r)) - bounds[r]
    width = max(int(np.diff(bounds).max(initial=0)), 1)
    s = np.full((n_rows, width), -np.inf)
    s[r, pos] = p
    c = np.zeros((n_rows, width), dtype=bool)
    c[r, pos] = cold
    return s, c, pos


def apply(p: np.ndarray, r: np.ndarray, cold: np.ndarray, share: float | None, n_rows: int,
          k: int = EXPOSURE_K, ceiling: int = 1, lift: float | None = None) -> np.ndarray:
    """Candidate scores after the policy (see the module docstring).

    Parameters
    ----------
    p : (m,) float
        Ranker scores of the candidate pairs, row-major (each user's pairs consecutive).
    r : (m,) int, sorted
        The pair's user row in ``0..n_rows-1``.
    cold : (m,) bool
        Whether the pair's item is cold.
    share : float in [0, 1) or None
        Share of the top-``k`` slots cold items fill on average; None or 0 leaves ``p`` as it is.
    n_rows : int
    k : int
    ceiling : int >= 1
        A list holds at most ``min(ceiling * floor(share * k), k - 1)`` cold items. 1: every list
        the same quota (use ``lift=None``).
    lift : float >= 0 or None
        The lift calibrated for ``share`` and ``ceiling`` (:func:`calibrate`, ``Exposure.lift``);
        None lifts every list by its whole bound (the fixed quota, ``ceiling=1``).

    Returns
    -------
    (m,) float64
    """
    p = np.asarray(p, dtype=np.float64)
    slots = slots_per_list(share, k, ceiling)
    cold = np.asarray(cold, dtype=bool)
    if not len(p) or slots == 0 or not cold.any():
        return p
    s, c, pos = _padded(p, np.asarray(r), cold, n_rows)
    return _Lists(s, c, slots, k).scores(lift)[r, pos]


@dataclass
class Exposure:
    """What the policy gives on a set of lists (training users' lists at fit time).

    Attributes
    ----------
    share : float or None
        The configured share.
    slots : int
        Cold slots per top-``k`` list on average (``floor(share * k)``): the calibration target.
    ceiling : int
        The configured ceiling (multiple of ``slots``).
    list_slots : int
        Cold slots one list may hold (:func:`slots_per_list`).
    lift : float or None
        The calibrated lift (ranker-score units): the smallest that fills ``slots`` on average,
        the largest any list's bound allows when none does, 0 when the ranker alone does. None
        with ``ceiling=1``: every list lifted by its whole bound (the fixed quota).
    k : int
    reached : float
        Mean share of top-``k`` slots cold items fill under the policy.
    ranker_alone : float
        The same without the policy.
    users_within_share : float
        Share of users whose top-``k`` has at most ``slots`` cold items.
    users_with_cold : float
        Share of users with at least one cold item in their top ``k``.
    cold_candidates : float
        Mean number of cold candidates per list.
    reachable : bool
        Whether ``reached`` is within half a slot of ``slots / k``.
    reason : str or None
        Why not, in words (None when reachable).
    """

    share: float | None
    slots: int
    ceiling: int
    list_slots: int
    lift: float | None
    k: int
    reached: float
    ranker_alone: float
    users_within_share: float
    users_with_cold: float
    cold_candidates: float
    reachable: bool
    reason: str | None

    def to_json(self) -> dict:
        """Plain values (bundles, ``results.json``); the lift unrounded, it is a setting."""
        return {key: (round(v, 4) if isinstance(v, float) and key != "lift" else v)
                for key, v in asdict(self).items()}


def calibrate(lists: list[tuple[np.ndarray, np.ndarray]], share: float | None, k: int = EXPOSURE_K,
              ceiling: int = 1) -> Exposure:
    """Calibrate the lift on ``lists`` and say whether ``share`` is reached, and if not why.

    With ``ceiling > 1`` the lift is found by bisection (the number of cold items in a list's top
    ``k`` never falls as the lift grows). With ``ceiling=1`` every list's quota is the average, so
    each list takes what its bound lets in and there is no lift to calibrate (``lift=None``).

    Parameters
    ----------
    lists : list of ((m_u,) float, (m_u,) bool)
        Ranker scores and cold flags of each user's candidates.
    share : float or None
    k : int
    ceiling : int >= 1

    Returns
    -------
    Exposure
    """
    q = quota(share, k)
    qmax = slots_per_list(share, k, ceiling)
    adaptive = ceiling > 1
    if q == 0 or not lists:
        return Exposure(share, q, ceiling, qmax, 0.0 if adaptive else None, k, 0.0, 0.0, 1.0, 0.0, 0.0, q == 0,
                        None if q == 0 else "no calibration lists")
    p = np.concatenate([a for a, _ in lists])
    cold = np.concatenate([b for _, b in lists])
    r = np.repeat(np.arange(len(lists)), [len(a) for a, _ in lists])
    s, c, _ = _padded(p, r, cold, len(lists))
    prepared = _Lists(s, c, qmax, k)

    def filled(lift: float | None) -> np.ndarray:
        return _cold_in_top(prepared.scores(lift), c, k)

    lift = None
    if adaptive:
        lo, hi = 0.0, float(prepared.room.max(initial=0.0))
        if filled(lo).mean() >= q:
            hi = 0.0
        elif filled(hi).mean() >= q:
            for _ in range(40):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if filled(mid).mean() < q else (lo, mid)
            # the smallest such lift puts one cold item exactly level with a list's k-th item;
            # a margin at the scale of the scores keeps that order once scores are float32
            scale = max(float(np.abs(prepared.w_k[prepared.has]).max(initial=0.0)), hi, 1e-3)
            hi += 1e-5 * scale
        lift = hi
    after = filled(lift)
    n_cold = c.sum(axis=1)
    reached = float(after.mean()) / k
    reachable = reached >= (q - 0.5) / k
    reason = None
    if not reachable:
        if float(np.minimum(n_cold, qmax).mean()) < q - 0.5:
            reason = (f"fewer cold candidates than reserved slots: {q} of {k} slots reserved, "
                      f"{float(n_cold.mean()):.1f} cold candidates per list on average")
        else:
            reason = (f"too few cold candidates are good enough: a cold item enters only within the list's own "
                      f"score spread of its end; cold items reach {reached:.3f} of the slots, not {q / k:.3f}")
    return Exposure(share, q, int(ceiling), qmax, lift, k, reached, float(_cold_in_top(s, c, k).mean()) / k,
                    float((after <= q).mean()), float((after > 0).mean()), float(n_cold.mean()),
                    bool(reachable), reason)


def _cold_in_top(s: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """(b,) number of cold entries among each row's top ``k`` finite scores."""
    kk = min(k, s.shape[1])
    top = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if kk < s.shape[1] else \
        np.broadcast_to(np.arange(s.shape[1]), s.shape)
    finite = np.isfinite(np.take_along_axis(s, top, axis=1))
    return (np.take_along_axis(c, top, axis=1) & finite).sum(axis=1)
