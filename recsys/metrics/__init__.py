"""Offline evaluation metrics: ranking accuracy, exact AUC and list-level measures.

Pure functions over plain arrays; nothing here loads data, trains or knows about models.

Modules: :mod:`~recsys.metrics.ranking` (precision, recall, F1, NDCG, MAP, MRR, hit rate at ``k``,
each defined once over a hit matrix), :mod:`~recsys.metrics.auc` (exact AUC),
:mod:`~recsys.metrics.beyond_accuracy` (coverage, novelty, diversity, Gini) and
:mod:`~recsys.metrics.inputs` (the validation below, :func:`restrict_columns`). Import the names
from here.

Conventions shared by every function (the evaluation runner relies on them):

``ranked``
    ``(n_users, n)`` integer array of item indices, best first, padded at the end with ``-1``
    where a user's list is shorter than ``n``. Padding must be trailing and an item may appear
    only once per row (checked inside the first ``k`` columns; a violation raises
    :class:`~recsys.errors.DataError`).
``relevant``
    scipy sparse matrix ``(n_users, n_items)`` (CSR preferred), rows aligned with ``ranked``.
    Relevance is binary and structural: every *stored* entry is a relevant item, whatever its
    value (an explicit zero counts, as in :class:`~recsys.data.interactions.Interactions`, which
    keeps zero-weight pairs); duplicate entries count once.
``k``
    Cut-off, ``1 <= k <= ranked.shape[1]``; a longer ``k`` than the list is an error because the
    caller must rank at least ``k`` items.

Every per-user metric returns a ``(n_users,)`` float64 array; users without relevant items get
NaN so that :func:`mean_over_users` (a NaN-aware mean) averages over users that have test items.
"""

# AUC_COMPARE_MAX_POSITIVES is not in __all__ but stays importable from here, as before the split.
from recsys.metrics.auc import AUC_COMPARE_MAX_POSITIVES, auc_counts, auc_per_user, global_auc  # noqa: F401
from recsys.metrics.beyond_accuracy import catalog_coverage, gini_index, intra_list_diversity, novelty
from recsys.metrics.inputs import restrict_columns
from recsys.metrics.ranking import (
    METRICS,
    f1_at_k,
    hit_matrix,
    hit_rate_at_k,
    map_at_k,
    mean_over_users,
    mrr,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

__all__ = [
    "METRICS",
    "auc_counts",
    "auc_per_user",
    "catalog_coverage",
    "f1_at_k",
    "gini_index",
    "global_auc",
    "hit_matrix",
    "hit_rate_at_k",
    "intra_list_diversity",
    "map_at_k",
    "mean_over_users",
    "mrr",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "restrict_columns",
]
