"""Top-n lists for every user computed in Spark: :func:`recommend_all_spark`.

Users are split into partitions; each task scores its users against the broadcast item vectors
with batched numpy matmuls (never a users x items cross join), filters seen items and keeps the
top n with :func:`recsys.models.base.top_n`, so ties break exactly as locally (score descending,
then item index ascending). The output has ``serving.batch``'s schema.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError
from recsys.spark.session import DEFAULT_MASTER, resolve_session


def recommend_all_spark(
    model,
    interactions: Interactions,
    out: str | Path,
    n: int = 100,
    master: str = DEFAULT_MASTER,
    *,
    users: Sequence | None = None,
    filter_seen: bool = True,
    batch_size: int | None = None,
    partitions: int | None = None,
    spark=None,
) -> tuple[Path | str, float]:
    """Write the top-``n`` list of every (or the listed) user, computed in Spark tasks.

    Parameters
    ----------
    model : EmbeddingRecommender
        A fitted dot-product model (ALS from :func:`fit_als_spark` or local, bridge, content) whose
        id maps are those of ``interactions``.
    interactions : Interactions
        Seen items to filter and the id maps that turn indices into raw ids.
    out : path
        ``*.parquet`` or ``*.csv``; Spark writes a folder of that name holding part files
        (``polars.read_parquet(f"{out}/*.parquet")`` or ``pandas.read_parquet(out)`` read it
        whole). An existing output is replaced. On a cluster it must be a path every executor can
        write (HDFS, S3, a shared file system).
    n : int
        List length.
    master : str
        Spark master URL (ignored when ``spark`` is given).
    users : sequence of raw user ids, optional
        Default: every user with at least one interaction (as ``serving.batch``).
    filter_seen : bool
        Leave out each user's items in ``interactions``.
    batch_size : int, optional
        Users per matmul inside a task (capped so one (batch, n_items) float32 block stays under
        ~256 MiB).
    partitions : int, optional
        User partitions (tasks); default the session's parallelism.
    spark : SparkSession, optional

    Returns
    -------
    path : Path or str
        ``out`` (a URL stays a str).
    seconds : float
        Wall time, Spark job included.

    Notes
    -----
    Output columns: ``user_id`` (raw id, int64 or string), ``rank`` (int32, 1-based), ``item_id``,
    ``score`` (float32); one row per recommended item; users with fewer than ``n`` eligible items
    get shorter lists.
    """
    from recsys.spark import frames

    target = str(out)  # kept as text: Path would mangle hdfs:// and s3a:// URLs
    if not target.lower().rstrip("/").endswith((".parquet", ".csv")):
        raise ConfigError(f"output must end in .parquet or .csv, got {target}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    t0 = time.perf_counter()
    spark = resolve_session(spark, master)
    user_vecs, item_vecs = frames.embedding_vectors(model, interactions)
    if users is None:
        idx = interactions.active_users()
    else:
        idx = interactions.user_map.indices(list(users), missing="raise")
    df = frames.user_frame(spark, {
        "user_id": frames.raw_id_array(interactions.user_ids[idx]),
        "factors": frames.vector_column(user_vecs[idx]),
        "seen": frames.list_column(interactions.matrix, idx),
    }, partitions)
    item_type = frames.raw_id_type(interactions.item_ids)
    schema = f"user_id {frames.raw_id_type(interactions.user_ids)}, rank int, item_id {item_type}, score float"
    bc = spark.sparkContext.broadcast((item_vecs, np.asarray(interactions.item_ids)))
    lists = df.mapInPandas(_top_n_task(bc, n, filter_seen, batch_size), schema)
    writer = lists.write.mode("overwrite")
    if target.lower().rstrip("/").endswith(".csv"):
        writer.option("header", True).csv(target)
    else:
        writer.parquet(target)
    bc.unpersist()
    return (target if "://" in target else Path(target)), time.perf_counter() - t0


def _top_n_task(bc, n: int, filter_seen: bool, batch_size: int | None):
    """The function each task runs: batches of user rows in, top-n rows out."""

    def run(batches):
        import pandas as pd

        from recsys.models.base import batch_size_for, mask_seen, top_n
        from recsys.spark.frames import csr_from_lists, stack_vectors

        item_vecs, item_ids = bc.value
        m, d = item_vecs.shape
        bs = batch_size_for(m, batch_size)
        for pdf in batches:
            for start in range(0, len(pdf), bs):
                part = pdf.iloc[start : start + bs]
                scores = stack_vectors(part["factors"], d) @ item_vecs.T
                if filter_seen:
                    mask_seen(scores, csr_from_lists(part["seen"], m))
                idx, val = top_n(scores, n)
                valid = idx >= 0
                rows = np.repeat(np.arange(len(part)), n).reshape(len(part), n)[valid]
                yield pd.DataFrame({
                    "user_id": part["user_id"].to_numpy()[rows],
                    "rank": np.broadcast_to(np.arange(1, n + 1, dtype=np.int32), idx.shape)[valid],
                    "item_id": item_ids[idx[valid]],
                    "score": val[valid].astype(np.float32),
                })

    return run
