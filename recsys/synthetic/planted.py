"""A small interaction log with planted tastes and item feature vectors, no media files.

The demo catalog (:mod:`recsys.synthetic`) writes real MP4 files and is sized like a small service
(300 items, 1,500 users). This module builds what a new user's first catalog looks like at a
tenth of that size -- about 100 items and 200 users, a few new items -- in milliseconds, so tests
and ``bench/bench_small_catalog.py`` can check that default settings hold at that size.

The hidden world: every item belongs to one of ``n_groups`` groups and has a Zipf-like base
popularity; every user likes 1-3 groups. Each user draws a lognormal number of distinct items
from ``softmax((2 log taste[group] + log popularity) / temperature)`` (the demo's rule, without its
energy attribute). Timestamps are uniform over ``days``; ``n_cold`` items are released at
``cut`` and only watched after it, so a temporal split at ``cut`` makes exactly those items cold.
Item features have an ``audio`` and a ``video`` block, each a noisy group centre (the two
modalities use different centres), and a ``fused`` matrix of both blocks L2-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.data.interactions import Interactions
from recsys.data.item_features import ItemFeatures
from recsys.errors import ConfigError
from recsys.split import Split, temporal_split

DAY = 86_400.0


@dataclass
class PlantedCatalog:
    """A generated log, its item features and the hidden answer.

    Attributes
    ----------
    interactions : Interactions
        Every pair, with timestamps (seconds) and weights (1 view, 2 like, 3 share).
    item_features : ItemFeatures
        ``audio`` and ``video`` blocks (n_items, 16) and ``fused`` (n_items, 32), aligned to
        ``interactions.item_ids``.
    item_group : (n_items,) int
        Hidden group of every item.
    user_groups : list of (1-3,) int arrays
        Each user's favourite groups.
    cold : (n_items,) bool
        Items released at ``cut`` (no interaction before it).
    cut, val_cut : float
        Test starts at ``cut`` (the last fifth of the period), validation at ``val_cut`` (the tenth
        before it).
    """

    interactions: Interactions
    item_features: ItemFeatures
    item_group: np.ndarray
    user_groups: list[np.ndarray]
    cold: np.ndarray
    cut: float
    val_cut: float

    def split(self) -> Split:
        """Temporal split at ``cut`` with validation from ``val_cut``: the cold items are cold in train."""
        return temporal_split(self.interactions, cut=self.cut, val_cut=self.val_cut)


def planted_catalog(
    n_items: int = 100,
    n_users: int = 200,
    n_groups: int = 10,
    n_cold: int = 3,
    seed: int = 0,
    days: int = 60,
    temperature: float = 0.6,
    mean_items_per_user: float = 15.0,
) -> PlantedCatalog:
    """Generate a planted catalog (see the module docstring).

    Parameters
    ----------
    n_items, n_users : int
    n_groups : int
        Hidden item groups (every group gets at least two items).
    n_cold : int
        Items released at the test cut.
    seed : int
    days : int
        Length of the period; test is its last fifth, validation the tenth before.
    temperature : float
        Lower = users follow their tastes more strictly.
    mean_items_per_user : float
        Median of the lognormal number of distinct items a user draws (clipped to 5..n_items/2).

    Returns
    -------
    PlantedCatalog
    """
    if n_groups < 2 or n_items < 2 * n_groups:
        raise ConfigError(f"need n_groups >= 2 and n_items >= 2 x n_groups, got {n_items} items, {n_groups} groups")
    if not 0 <= n_cold < n_items // 2:
        raise ConfigError(f"n_cold must be in [0, n_items / 2), got {n_cold}")
    if n_users < 2 or temperature <= 0 or days < 1:
        raise ConfigError("need n_users >= 2, temperature > 0 and days >= 1")
    rng = np.random.default_rng(seed)
    group = rng.permutation(np.concatenate([np.repeat(np.arange(n_groups), 2),
                                            rng.integers(n_groups, size=n_items - 2 * n_groups)]))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = popularity[rng.permutation(n_items)]

    taste = np.full((n_users, n_groups), 0.03)
    favourites = []
    for u in range(n_users):
        fav = rng.choice(n_groups, size=int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2])), replace=False)
        taste[u, fav] += rng.dirichlet(np.full(len(fav), 2.0))
        favourites.append(np.sort(fav))
    taste /= taste.sum(axis=1, keepdims=True)
    logits = (2.0 * np.log(taste[:, group] / taste.max(axis=1, keepdims=True)) + np.log(popularity)) / temperature
    count = np.clip(np.round(rng.lognormal(np.log(mean_items_per_user), 0.5, n_users)), 5, n_items // 2).astype(int)
    order = np.argsort(-(logits + rng.gumbel(size=logits.shape)), axis=1, kind="stable")  # Gumbel top-k
    users = np.repeat(np.arange(n_users), count)
    items = np.concatenate([order[u, : count[u]] for u in range(n_users)])

    period = days * DAY
    cut, val_cut = 0.8 * period, 0.7 * period
    cold = np.zeros(n_items, dtype=bool)
    cold[rng.choice(n_items, size=n_cold, replace=False)] = True
    start = np.where(cold[items], cut, 0.0)  # cold items are watched only from their release on
    ts = np.floor(start + rng.uniform(0, 1, len(items)) * (period - start))
    enjoy = taste[users, group[items]] / taste[users].max(axis=1)
    roll = rng.uniform(size=len(items))
    weight = 1.0 + (roll < 0.1 + 0.4 * enjoy) + (roll < 0.03 + 0.12 * enjoy)

    x = Interactions.from_arrays(users, items, weights=weight, timestamps=ts,
                                 user_ids=np.arange(n_users), item_ids=np.arange(n_items))
    centres_a = rng.normal(size=(n_groups, 16)) * 2.0
    centres_v = rng.normal(size=(n_groups, 16)) * 2.0
    audio = centres_a[group] + rng.normal(size=(n_items, 16))
    video = centres_v[group] + rng.normal(size=(n_items, 16))
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    feats = ItemFeatures(np.arange(n_items), {"audio": audio, "video": video},
                         fused=np.hstack([unit(audio), unit(video)]) / np.sqrt(2.0),
                         provenance={"extractor": "recsys.synthetic.planted", "seed": seed})
    return PlantedCatalog(x, feats, group, favourites, cold, cut, val_cut)
