"""Why an item was recommended, in data terms: :func:`explain`.

For each recommended item of one user (given the fitted model and the user's history):

``cf``
    The history items that drove the collaborative score. For ALS (and models built on one: the
    bridge, the hybrid's ALS component) these are the exact terms of the folded-in score
    ``sum_j c_j * y_i^T W_u y_j`` (implicit's ``explain``, :meth:`recsys.models.als.ALS.contributions`),
    largest first. Other models: ``None`` (no CF decomposition).
``similar``
    Per modality (``audio``: "sounds like", ``video``: "looks like", ``text``: "reads like"), the
    history item whose content vector is closest to the item (cosine of centred unit vectors, as
    ``GET /items/{id}/similar``), among history items that have that modality.
``ranker``
    The learned ranker's contributions to the item's score, grouped as :data:`RANKER_GROUPS`, for
    models that define::

        def feature_contributions(self, user_idx: int, row: CSR (1, n_items), item_idx: (m,) int)
            -> dict[str, np.ndarray]   # group name -> (m,) float32 contribution to the score

    The hybrid does (:meth:`recsys.models.hybrid.Hybrid.feature_contributions`): coefficient x
    standardised input for its linear ranker, SHAP values (LightGBM ``pred_contrib``) for its
    LightGBM rankers, summed by group (``cf``: ALS and item-kNN; ``media``: the bridge's
    media->CF score and the fused content profile; ``audio``/``video``/``text``: content profiles
    of that modality; ``popularity``; ``new_item_policy``: the cold flag's learned offset plus the
    ``cold_share`` boost; ``bias``). The groups sum to the item's score. Other models: ``None``.

Faithfulness is checked by ``bench/bench_explain.py``: removing the top CF-attributed history item
and folding the user in again must lower the item's rank more than removing a random one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

RANKER_GROUPS = ("cf", "media", "audio", "video", "text", "popularity", "new_item_policy", "bias")
PHRASES = {"audio": "sounds like", "video": "looks like", "text": "reads like"}
#: feature blocks describing each modality, in order of preference (first present wins)
MODALITY_BLOCKS = {"audio": ("audio", "audio_ae", "av_audio"),
                   "video": ("video_cnn", "video", "image", "video_desc", "av_video"),
                   "text": ("text",)}


@dataclass
class Explanation:
    """Reasons for one recommended item.

    Attributes
    ----------
    item_idx : int
    cf_method : str or None
        ``"als"`` when ``cf`` holds ALS fold-in terms.
    cf_score : float or None
        The CF score the terms add up to.
    cf : list of (history item idx, contribution), largest first
    similar : dict modality -> (history item idx, cosine)
    ranker : dict group -> contribution, or None (see the module docstring)
    """

    item_idx: int
    cf_method: str | None = None
    cf_score: float | None = None
    cf: list[tuple[int, float]] = field(default_factory=list)
    similar: dict[str, tuple[int, float]] = field(default_factory=dict)
    ranker: dict[str, float] | None = None

    def to_dict(self, item_ids: np.ndarray) -> dict[str, Any]:
        """JSON-ready, with raw item ids and a phrase per modality."""
        raw = _raw_ids(item_ids)
        return {
            "cf": None if self.cf_method is None else {
                "method": self.cf_method, "score": self.cf_score,
                "because": [{"item_id": raw(j), "contribution": c} for j, c in self.cf]},
            "similar": {m: {"item_id": raw(j), "similarity": s, "phrase": f"{PHRASES[m]} {raw(j)}"}
                        for m, (j, s) in self.similar.items()},
            "ranker": self.ranker,
        }


def _raw_ids(item_ids: np.ndarray):
    """idx -> raw id as a plain Python value (JSON-ready)."""

    def raw(j: int):
        v = item_ids[j]
        return v.item() if isinstance(v, np.generic) else v

    return raw


def cf_model(model):
    """The ALS a model's collaborative score comes from (itself, or its ``als_`` component), or None."""
    from recsys.models.als import ALS

    for cand in (model, getattr(model, "als_", None), getattr(getattr(model, "bridge_", None), "als_", None)):
        if isinstance(cand, ALS):
            return cand
    return None


def _centred_unit(x: np.ndarray, has: np.ndarray) -> np.ndarray:
    from recsys.models.content import media_mean, unit_rows

    return unit_rows(x, has, media_mean(x, has))


def modality_vectors(item_features) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per modality: ``(unit (n_items, d) float32 centred unit rows, has (n_items,) bool)``.

    Computed once and passed to :func:`explain` when many users are explained (a batch of lists).
    """
    out = {}
    for modality, names in MODALITY_BLOCKS.items():
        block = None if item_features is None else next((b for b in names if b in item_features.blocks), None)
        if block is not None:
            has = item_features.mask_of(block)
            out[modality] = (_centred_unit(item_features.blocks[block], has), has)
    return out


def nearest_history(vectors: dict[str, tuple[np.ndarray, np.ndarray]], history: np.ndarray,
                    item_idx: np.ndarray) -> list[dict[str, tuple[int, float]]]:
    """Per item and modality, the closest history item with that modality.

    Parameters
    ----------
    vectors : the output of :func:`modality_vectors`
    history : (h,) int
    item_idx : (m,) int

    Returns
    -------
    list of m dicts modality -> (history item idx, cosine)
    """
    out: list[dict[str, tuple[int, float]]] = [{} for _ in range(len(item_idx))]
    if len(history) == 0:
        return out
    for modality, (unit, has) in vectors.items():
        hist = history[has[history]]
        if len(hist) == 0:
            continue
        sims = unit[item_idx] @ unit[hist].T  # (m, h')
        for k, i in enumerate(item_idx):
            if has[i]:
                j = int(np.argmax(sims[k]))
                out[k][modality] = (int(hist[j]), float(sims[k, j]))
    return out


def ranker_contributions(model, user_idx: int, row: sp.csr_matrix, item_idx: np.ndarray) -> list[dict[str, float] | None]:
    """The extension point of the module docstring: per-group ranker contributions, or None each."""
    hook = getattr(model, "feature_contributions", None)
    if hook is None:
        return [None] * len(item_idx)
    groups = hook(user_idx, row, item_idx)
    return [{g: float(v[k]) for g, v in groups.items()} for k in range(len(item_idx))]


def explain(model, row: sp.csr_matrix, item_idx, item_features=None, user_idx: int = -1,
            top: int = 3, vectors: dict | None = None) -> list[Explanation]:
    """Explanations of items recommended to one user.

    Parameters
    ----------
    model : Recommender
        Fitted.
    row : CSR (1, n_items)
        The user's history (interaction weights): what the CF score is folded in from.
    item_idx : (m,) int
        The recommended items.
    item_features : ItemFeatures, optional
        Aligned to the model's items; without it there is no ``similar``.
    user_idx : int
        The user's index when known (for the ranker extension point), else -1.
    top : int
        CF terms kept per item.
    vectors : dict, optional
        :func:`modality_vectors` of ``item_features``, computed here when not given.

    Returns
    -------
    list of m :class:`Explanation`
    """
    row = sp.csr_matrix(row, dtype=np.float32)
    items = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
    out = [Explanation(int(i)) for i in items]
    history = row.indices[row.data > 0]
    als = cf_model(model)
    if als is not None and len(history) and len(items):
        # items the ALS has no factors for (registered while serving) score 0 with no terms
        known = items < als.n_items_
        totals, terms = als.contributions(row[:, : als.n_items_], items[known], top=top)
        for e, t, c in zip([e for e, k in zip(out, known) if k], totals, terms):
            e.cf_method, e.cf_score, e.cf = "als", float(t), c
    if vectors is None:
        vectors = modality_vectors(item_features)
    for e, sim in zip(out, nearest_history(vectors, history, items)):
        e.similar = sim
    for e, r in zip(out, ranker_contributions(model, user_idx, row, items)):
        e.ranker = r
    return out
