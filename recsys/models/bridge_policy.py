"""The bridge's list-space policy: how much of users' top-k lists cold items get.

A regression to ALS factors shrinks an uncertain item towards the mean factor, so predicted cold
items score far below the warm items that ALS puts at the top of a list. The
:class:`~recsys.models.bridge.Bridge` recommender therefore keeps each prediction's direction and
sets one norm for all of them, chosen by how much list space cold items should take
(``cold_share``): :func:`calibrate_norm` finds that norm by bisection on :func:`list_share`, against
the users' best warm scores from :func:`top_scores`. numpy only; the net applies the norm
(:func:`training.bridge_net.set_output_norm`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


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
