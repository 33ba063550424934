"""Serving test data: planted data with content features, and fitted bundles of it.

Four item clusters whose content vectors (two modality blocks plus a fused matrix) reveal the
cluster; users like one cluster; items 40..47 are cold (no training interactions).
"""

from __future__ import annotations

import numpy as np
from recsys.data import Interactions, ItemFeatures

N_USERS, N_ITEMS, N_CLUSTERS = 120, 48, 4
COLD = np.arange(40, 48)


def cluster(i):
    return np.asarray(i) % N_CLUSTERS


def planted_data(seed: int = 0):
    """(train, val, test, features) with string user ids and integer item ids."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLUSTERS, 16)) * 3
    items = np.arange(N_ITEMS)
    audio = centres[cluster(items)] + rng.normal(size=(N_ITEMS, 16))
    video = centres[cluster(items)][:, ::-1] + rng.normal(size=(N_ITEMS, 16))
    feats = ItemFeatures(items, {"audio": audio, "video_cnn": video}, fused=np.hstack([audio, video]))
    users, its, ts = [], [], []
    for u in range(N_USERS):
        pool = items[cluster(items) == u % N_CLUSTERS]
        for t, i in enumerate(rng.choice(pool, size=8, replace=False)):
            users.append(f"u{u}"), its.append(int(i)), ts.append(float(t))
    x = Interactions.from_arrays(users, its, timestamps=ts, user_ids=[f"u{u}" for u in range(N_USERS)],
                                 item_ids=items)
    cold = np.isin(x.matrix.indices, COLD)
    rows = np.repeat(np.arange(N_USERS), np.diff(x.matrix.indptr))
    last = x.timestamps >= 6
    train = x.subset(~cold & ~last)
    val = x.subset(~cold & last & (rows % 2 == 0))
    test = x.subset(cold | (last & (rows % 2 == 1)))
    return train, val, test, feats


SMALL = {
    "popularity": {},
    "itemknn": {"k": 10, "shrink": 1.0},
    "userknn": {"k": 10, "shrink": 1.0},
    "als": {"factors": 8, "regularization": 0.05, "alpha": 5.0, "weighting": "none"},
    "content": {"half_life_days": None},
    "bridge": {"epochs": 30, "hidden": 32,
               "als_params": {"factors": 8, "regularization": 0.05, "alpha": 5.0, "weighting": "none"}},
    "hybrid": {"candidates": {"als": 20, "media": 20, "itemknn": 10, "content": 10},
               "ranker_params": {"rounds": 60, "min_data_in_leaf": 5},
               "als_params": {"factors": 8, "regularization": 0.05, "alpha": 5.0, "weighting": "none"},
               "bridge_params": {"epochs": 30, "hidden": 32}},
}


def fit_small(name: str, data=None):
    from recsys.models import make_model

    train, val, _, feats = data or planted_data()
    m = make_model(name, **SMALL[name])
    m.fit(train, feats if m.uses_features else None)
    if m.chooses_on_validation:
        m.choose_on_validation(val)
    return m


