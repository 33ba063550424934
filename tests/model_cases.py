"""The model table and the planted world every model test shares (contract and serving tests).

The world: four item clusters whose content vectors (two modality blocks plus a fused matrix)
reveal the cluster; user ``u`` likes cluster ``u % 4``; items 40..47 are cold (no training
interactions, media only). :data:`SMALL` holds small, fast settings for every registered model;
the contract test checks that it names exactly the registry's models.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys.data import Interactions, ItemFeatures

N_USERS, N_ITEMS, N_CLUSTERS = 120, 48, 4
COLD = np.arange(40, 48)  # two cold items per cluster

_ALS = {"factors": 8, "regularization": 0.05, "alpha": 5.0, "weighting": "none"}

#: constructor settings per registered model name: small and fast on the planted world
SMALL: dict[str, dict[str, Any]] = {
    "popularity": {},
    "itemknn": {"k": 10, "shrink": 1.0},
    "userknn": {"k": 10, "shrink": 1.0},
    "als": dict(_ALS),
    "content": {"half_life_days": None},
    "bridge": {"epochs": 30, "hidden": 32, "als_params": dict(_ALS)},
    "hybrid": {"candidates": {"als": 20, "media": 20, "itemknn": 10, "content": 10},
               "ranker_params": {"rounds": 60, "min_data_in_leaf": 5},
               "als_params": dict(_ALS),
               "bridge_params": {"epochs": 30, "hidden": 32}},
}


def cluster(i):
    """The planted cluster of item index (or indices) ``i``; user ``u`` likes cluster ``u % 4``."""
    return np.asarray(i) % N_CLUSTERS


def planted_data(seed: int = 0) -> tuple[Interactions, Interactions, Interactions, ItemFeatures]:
    """(train, val, test, features) with string user ids and integer item ids.

    Each user draws 8 items of their cluster; their last two (timestamps 6, 7) go to val (even
    users) or test (odd users), interactions with cold items to test; the rest (<= 6 warm items a
    user) is train. Features: ``audio`` and ``video_cnn`` (16 dims each) and the fused (32).
    """
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


def make_small(name: str):
    """An unfitted model of the registry with its :data:`SMALL` settings."""
    from recsys.models import make_model

    return make_model(name, **SMALL[name])


def fit_planted(model, data=None):
    """``model`` fitted as the jobs fit one: on train, with the item features when it uses them,
    then choosing its settings on val when it learns from validation."""
    train, val, _, feats = data or planted_data()
    model.fit(train, feats if model.uses_features else None)
    if model.learns_from_validation:
        model.choose_on_validation(val)
    return model


def fit_small(name: str, data=None):
    """The registry model ``name`` with its :data:`SMALL` settings, fitted by :func:`fit_planted`."""
    return fit_planted(make_small(name), data)
