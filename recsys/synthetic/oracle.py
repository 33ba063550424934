"""Quality bounds on the demo catalog from its hidden answer (``truth.json``).

The demo's users draw items from ``softmax(affinity / temperature)`` with
``affinity = taste term + energy term + log popularity`` (:func:`~recsys.synthetic.world.affinity_terms`).
Two reference models read that answer, so a result on the demo can be put against what is
possible at all:

- :class:`TruthOracle` scores every (user, item) by the true affinity: the best any model can
  order the items (it knows each user's hidden taste, which no log reveals exactly).
- :class:`ItemOracle` knows the items perfectly (cluster, energy, popularity: everything the
  media and the log could ever tell about an item, in the exact functional form of the affinity)
  but learns each user from the training log, as every real model must: a weighted ridge
  regression of the user's interactions on the true item attributes (the implicit-ALS user step,
  confidence ``1 + alpha`` on observed items). It bounds what *content* can add: no media
  feature knows more about an item than its true attributes.

Neither is a recommender for real data; they are registered nowhere and exist for ``avrec
demo``'s reference line, ``bench/bench_demo_headroom.py`` and the README's demo section.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError
from recsys.models.base import Recommender
from recsys.synthetic.world import affinity_terms


def _truth(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read the demo's truth file {path}: {e}") from None


def _items(truth: dict, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cluster, energy, popularity), each (n,), in the order of ``item_ids``."""
    by_id = {d["item_id"]: d for d in truth["items"]}
    missing = [i for i in item_ids if str(i) not in by_id]
    if missing:
        raise DataError(f"{len(missing)} items are not in the truth file (first: {missing[0]!r})")
    rows = [by_id[str(i)] for i in item_ids]
    return (np.array([d["cluster"] for d in rows], dtype=np.int64),
            np.array([d["energy"] for d in rows], dtype=np.float64),
            np.array([d["popularity"] for d in rows], dtype=np.float64))


def true_affinity(truth: dict, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """(m, n) float32 hidden affinity of every user in ``user_ids`` for every item in ``item_ids``
    (the generator's formula on ``truth.json``'s values, which are rounded to 6 decimals)."""
    by_id = {d["user_id"]: d for d in truth["users"]}
    missing = [u for u in user_ids if str(u) not in by_id]
    if missing:
        raise DataError(f"{len(missing)} users are not in the truth file (first: {missing[0]!r})")
    rows = [by_id[str(u)] for u in user_ids]
    cluster, energy, popularity = _items(truth, item_ids)
    taste_term, energy_term = affinity_terms(
        np.array([d["taste"] for d in rows], dtype=np.float64),
        np.array([d["energy_pref"] for d in rows], dtype=np.float64),
        np.array([d["energy_weight"] for d in rows], dtype=np.float64), cluster, energy)
    return (taste_term + energy_term + np.log(popularity)[None, :]).astype(np.float32)


def item_attributes(truth: dict, item_ids: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
    """(n, k + 4) float64 true item attributes in which the affinity is linear for a fixed user:
    cluster one-hot (k), energy, energy squared, 1, log popularity."""
    cluster, energy, popularity = _items(truth, item_ids)
    k = int(n_clusters or truth["params"]["n_clusters"])
    return np.column_stack([np.eye(k)[cluster], energy, energy ** 2, np.ones_like(energy), np.log(popularity)])


class TruthOracle(Recommender):
    """Scores are the hidden affinity (see the module docstring).

    Parameters
    ----------
    truth_path : str
        The demo catalog's ``truth.json``.
    """

    name = "truth-oracle"
    _state_attrs = ("scores_",)

    def __init__(self, truth_path: str = "") -> None:
        self.truth_path = truth_path

    def _fit(self, interactions, item_features) -> None:
        t = _truth(self.truth_path)
        self.scores_ = true_affinity(t, interactions.user_ids, interactions.item_ids)

    def _score_users(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        return self.scores_[users].copy()

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.scores_[users, items]


class ItemOracle(Recommender):
    """True item attributes as item factors; each user's vector learned from the training log.

    ``x_u = argmin sum_i c_ui (p_ui - x_u . a_i)^2 + regularization |x_u|^2`` over every item,
    with ``p_ui = 1`` and ``c_ui = 1 + alpha`` on the user's training items, else ``p = 0, c = 1``
    (the implicit-ALS user step with the attributes ``a_i`` of :func:`item_attributes` fixed).

    Parameters
    ----------
    truth_path : str
    alpha : float > 0
    regularization : float > 0
    """

    name = "item-oracle"
    _state_attrs = ("user_vectors_", "attributes_")

    def __init__(self, truth_path: str = "", alpha: float = 10.0, regularization: float = 1.0) -> None:
        self.truth_path = truth_path
        self.alpha = alpha
        self.regularization = regularization

    def check_settings(self) -> None:
        if not self.alpha > 0 or not self.regularization > 0:
            raise ConfigError(f"ItemOracle needs alpha > 0 and regularization > 0, got {self.alpha}, "
                              f"{self.regularization}")

    def _fit(self, interactions, item_features) -> None:
        a = item_attributes(_truth(self.truth_path), interactions.item_ids)
        self.attributes_ = a
        self.user_vectors_ = self._solve(interactions.matrix.tocsr())

    def _solve(self, rows: sp.csr_matrix) -> np.ndarray:
        """(b, f) user vectors of interaction rows (b, n)."""
        a, c = self.attributes_, 1.0 + float(self.alpha)
        gram = a.T @ a + self.regularization * np.eye(a.shape[1])
        out = np.zeros((rows.shape[0], a.shape[1]))
        for u in range(rows.shape[0]):
            seen = rows.indices[rows.indptr[u]:rows.indptr[u + 1]]
            if len(seen):
                au = a[seen]
                out[u] = np.linalg.solve(gram + (c - 1.0) * au.T @ au, c * au.sum(axis=0))
        return out

    def _score_users(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        return (self.user_vectors_[users] @ self.attributes_.T).astype(np.float32)

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", self.user_vectors_[users], self.attributes_[items]).astype(np.float32)


#: (alpha, regularization) pairs :func:`fit_item_oracle` chooses from
ITEM_ORACLE_GRID = tuple((a, r) for a in (3.0, 10.0, 30.0, 100.0) for r in (0.1, 1.0, 10.0))


def fit_item_oracle(truth_path: str | Path, train: Interactions, val: Interactions,
                    grid: tuple[tuple[float, float], ...] = ITEM_ORACLE_GRID, k: int = 20) -> ItemOracle:
    """The :class:`ItemOracle` fitted on ``train`` whose ``(alpha, regularization)`` in ``grid``
    gives the highest recall@``k`` on ``val`` (val only chooses; no val label is learned from)."""
    from recsys.evaluation import evaluate

    best, best_recall = None, -1.0
    for alpha, reg in grid:
        m = ItemOracle(str(truth_path), alpha=alpha, regularization=reg).fit(train)
        recall = evaluate(m, train, val, ks=(k,), auc=False, segments=False).segments["all"][f"recall@{k}"]
        if recall > best_recall:
            best, best_recall = m, recall
    return best
