"""Held-out evaluation computed in Spark tasks: :func:`evaluate_spark`.

The protocol is :func:`recsys.evaluation.evaluate`'s, computed with the same functions
(:func:`recsys.models.base.top_n`, :func:`recsys.metrics.ranking_metrics`,
:func:`recsys.metrics.auc_counts`), only spread over tasks: each task scores a partition of the test
users against the broadcast item vectors (batched matmul), ranks ALL items with the user's train
items excluded, and emits per-partition sums and counts of every per-user metric; Spark adds
them up (a grouped aggregation) and the driver divides. Users without test items are left out,
AUC is exact over every item that is in neither the user's train nor test items (ties count one
half), and the warm / cold / warm_only / cold_only segments are the local ones. Results agree with
the local evaluation on the same factors to float64 rounding (a test checks 1e-6).

What the local runner has and this one does not: the sampled ROC points for the plot
(``roc_sample`` is None) and intra-list diversity.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recsys.data.interactions import Interactions, check_disjoint
from recsys.errors import ConfigError
from recsys.spark.session import DEFAULT_MASTER, resolve_session

_SCHEMA = "segment string, metric string, total double, count long, items array<int>"
_LISTS = "_lists"
_BEYOND = "_beyond"


def evaluate_spark(
    model,
    train: Interactions,
    test: Interactions,
    ks: Sequence[int] = (10, 20),
    master: str = DEFAULT_MASTER,
    *,
    auc: bool = True,
    segments: bool = True,
    batch_size: int | None = None,
    partitions: int | None = None,
    spark=None,
):
    """Evaluate a fitted dot-product model on ``test`` in Spark, exactly as ``recsys.evaluation.evaluate``.

    Parameters
    ----------
    model : EmbeddingRecommender
        Fitted on ``train`` (ALS from :func:`fit_als_spark` or local, bridge, content).
    train : Interactions
        Items excluded from each user's ranking (and from AUC negatives).
    test : Interactions
        Held-out interactions, same id maps, no overlap with ``train`` (else ``SplitError``).
    ks : sequence of int
        Cut-offs.
    master : str
        Spark master URL (ignored when ``spark`` is given).
    auc : bool
        Exact per-user AUC and the pair-weighted ``global_auc``.
    segments : bool
        Also the warm / cold / warm_only / cold_only segments.
    batch_size : int, optional
        Users per matmul inside a task (capped at ~256 MiB of scores).
    partitions : int, optional
        User partitions (tasks); default the session's parallelism.
    spark : SparkSession, optional

    Returns
    -------
    recsys.evaluation.EvalResult
        ``segments["all"]`` holds ``users``, ``{precision,recall,f1,ndcg,map,mrr,hit_rate}@k``,
        ``auc`` and ``global_auc`` (the keys of the local result); ``beyond_accuracy`` holds
        ``coverage@K`` and ``novelty@K`` for the largest cut-off; ``recall_curve`` per segment.
        ``roc_sample`` is None.
    """
    from recsys.evaluation import EvalResult, RANKING_METRICS
    from recsys.spark import frames

    check_disjoint(train, test, ("train", "test"))
    ks = tuple(sorted(set(int(k) for k in ks)))
    if not ks or ks[0] < 1:
        raise ConfigError(f"cut-offs must be positive integers, got {ks}")
    t0 = time.perf_counter()
    spark = resolve_session(spark, master)
    user_vecs, item_vecs = frames.embedding_vectors(model, train, "training interactions")
    users = np.flatnonzero(test.user_counts() > 0)
    item_counts = train.item_counts()
    shared = {
        "item_vecs": item_vecs,
        "warm": item_counts > 0,
        "item_counts": item_counts,
        "n_active": int(len(train.active_users())),
        "ks": ks,
        "auc": bool(auc),
        "segments": bool(segments),
        "batch_size": batch_size,
    }
    df = frames.user_frame(spark, {
        "factors": frames.vector_column(user_vecs[users]),
        "train": frames.list_column(train.matrix, users),
        "test": frames.list_column(test.matrix, users),
    }, partitions)
    bc = spark.sparkContext.broadcast(shared)
    from pyspark.sql import functions as F

    parts = df.mapInPandas(_evaluate_task(bc), _SCHEMA).cache()
    sums = {
        (r["segment"], r["metric"]): (r["total"], r["count"])
        for r in parts.filter(F.col("segment") != _LISTS)
        .groupBy("segment", "metric").agg(F.sum("total").alias("total"), F.sum("count").alias("count"))
        .collect()
    }
    covered = parts.filter(F.col("segment") == _LISTS).select(F.explode("items").alias("i")).distinct().count()
    parts.unpersist()
    bc.unpersist()

    kmax = max(ks)
    names = ["all", *(["warm", "cold", "warm_only", "cold_only"] if segments else [])]

    def mean(seg: str, metric: str) -> float:
        total, count = sums.get((seg, metric), (0.0, 0))
        return float(total / count) if count else float("nan")

    seg_out: dict[str, dict[str, float]] = {}
    curves: dict[str, np.ndarray] = {}
    for s in names:
        row: dict[str, float] = {"users": int(sums.get((s, "users"), (0.0, 0))[0])}
        for k in ks:
            for name in RANKING_METRICS:
                row[f"{name}@{k}"] = mean(s, f"{name}@{k}")
        if auc and s in ("all", "warm", "cold"):
            row["auc"] = mean(s, "auc")
            correct, pairs = sums.get((s, "auc_correct"), (0.0, 0))[0], sums.get((s, "auc_pairs"), (0.0, 0))[0]
            row["global_auc"] = float(correct / pairs) if pairs > 0 else float("nan")
        seg_out[s] = row
        curves[s] = np.array([mean(s, f"curve@{j}") for j in range(1, kmax + 1)])
    beyond = {
        f"coverage@{kmax}": float(covered / train.n_items),
        f"novelty@{kmax}": mean(_BEYOND, f"novelty@{kmax}"),
    }
    return EvalResult(
        model=getattr(model, "name", type(model).__name__),
        segments=seg_out,
        ks=ks,
        recall_curve=curves,
        roc_sample=None,
        beyond_accuracy=beyond,
        seconds=time.perf_counter() - t0,
        params={**model.get_params(), "engine": "spark"},
    )


def evaluate_block(
    scores: np.ndarray, excl: sp.csr_matrix, rel_all: sp.csr_matrix, shared: dict
) -> list[tuple[str, str, float, int, list | None]]:
    """Sums and counts of every per-user metric for one block of users (the body of one task batch).

    Mirrors one batch of :func:`recsys.evaluation.evaluate`.

    Parameters
    ----------
    scores : (b, n_items) float32
        Scores of the block's users over all items; overwritten (train items set to -inf).
    excl, rel_all : CSR (b, n_items)
        The users' train items and held-out items.
    shared : dict
        ``warm`` (n_items,) bool, ``item_counts`` (n_items,), ``n_active``, ``ks``, ``auc``, ``segments``.

    Returns
    -------
    list of (segment, metric, total, count, items)
        ``total`` sums the finite per-user values and ``count`` counts them.
    """
    from recsys import metrics as M
    from recsys.evaluation import RANKING_METRICS
    from recsys.models.base import mask_seen, top_n

    ks, warm = shared["ks"], shared["warm"]
    kmax = max(ks)
    out: list[tuple[str, str, float, int, list | None]] = []

    def add(seg: str, metric: str, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        ok = ~np.isnan(v)
        out.append((seg, metric, float(v[ok].sum()), int(ok.sum()), None))

    seg_keep: dict[str, np.ndarray | None] = {"all": None}
    restricted: dict[str, np.ndarray] = {}
    if shared["segments"]:
        seg_keep.update({"warm": warm, "cold": ~warm})
        restricted = {"warm_only": warm, "cold_only": ~warm}
    if shared["auc"]:
        for s, keep in seg_keep.items():
            if keep is None:
                correct, n_pos, n_neg = M.auc_counts(scores, rel_all, excl)
            else:
                # held-out items outside the segment are neither positives nor negatives
                rel = M.restrict_columns(rel_all, keep)
                other = M.restrict_columns(rel_all, ~keep)
                correct, n_pos, n_neg = M.auc_counts(scores, rel, (excl + other).tocsr())
            with np.errstate(invalid="ignore", divide="ignore"):
                per_user = np.where((n_pos > 0) & (n_neg > 0), correct / (n_pos * n_neg), np.nan)
            add(s, "auc", per_user)
            out.append((s, "auc_correct", float(correct.sum()), len(correct), None))
            out.append((s, "auc_pairs", float((n_pos * n_neg).sum()), len(correct), None))
    mask_seen(scores, excl)
    ranked, _ = top_n(scores, kmax)
    lists = {s: ranked for s in seg_keep}
    for s, keep in restricted.items():
        lists[s] = top_n(np.where(keep[None, :], scores, -np.inf), kmax)[0]
    for s, keep in {**seg_keep, **restricted}.items():
        rel = rel_all if keep is None else M.restrict_columns(rel_all, keep)
        n_rel = np.diff(rel.indptr)
        out.append((s, "users", float((n_rel > 0).sum()), len(n_rel), None))
        for k in ks:
            for name, values in M.ranking_metrics(lists[s], rel, k, RANKING_METRICS).items():
                add(s, f"{name}@{k}", values)
        hits = M.hit_matrix(lists[s], rel, kmax)
        with np.errstate(invalid="ignore", divide="ignore"):
            curve = np.where(n_rel[:, None] > 0, np.cumsum(hits, axis=1) / n_rel[:, None], np.nan)
        for j in range(kmax):
            add(s, f"curve@{j + 1}", curve[:, j])
    add(_BEYOND, f"novelty@{kmax}", M.novelty(ranked, shared["item_counts"], kmax, n_users=shared["n_active"]))
    listed = np.unique(ranked[ranked >= 0]).astype(np.int32)
    out.append((_LISTS, "items", 0.0, 0, listed.tolist()))
    return out


def _evaluate_task(bc):
    """The function each task runs: batches of test users in, metric sums out."""

    def run(batches):
        import pandas as pd

        from recsys.models.base import batch_size_for
        from recsys.spark.frames import csr_from_lists, stack_vectors

        shared = bc.value
        item_vecs = shared["item_vecs"]
        m, d = item_vecs.shape
        bs = batch_size_for(m, shared["batch_size"])
        for pdf in batches:
            for start in range(0, len(pdf), bs):
                part = pdf.iloc[start : start + bs]
                scores = stack_vectors(part["factors"], d) @ item_vecs.T
                rows = evaluate_block(
                    scores, csr_from_lists(part["train"], m), csr_from_lists(part["test"], m), shared
                )
                yield pd.DataFrame(rows, columns=["segment", "metric", "total", "count", "items"])

    return run
