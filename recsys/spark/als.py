"""ALS training with Spark MLlib, exported as a local :class:`recsys.models.ALS`: :func:`fit_als_spark`.

The factors come back to the driver and become an ordinary fitted ``ALS`` (``ALS.from_factors``),
so bundles, serving, evaluation and ``recommend`` do not care where they were learned.

**Ids.** Raw ids are mapped to dense indices exactly as :class:`~recsys.data.Interactions` (and
``read_log``) map them: users and items sorted ascending (numbers numerically, text by code
point, which is Spark's UTF-8 byte order). Row ``u`` of the user factors belongs to
``interactions.user_ids[u]``, as everywhere else in avrec.

**Confidence.** Spark's implicit ALS uses ``c = 1 + alpha * r`` with preference ``p = [r > 0]``;
avrec's ``weighting="none"`` ALS uses the same ``c`` (with ``p = 1`` for every stored pair, which
differs only for explicit zero weights). There is no BM25/TF-IDF re-weighting on this path.

**Regularization is not interchangeable.** Spark's ALS-WR multiplies ``regularization`` by the
number of ratings of each user (item) in that user's (item's) least-squares problem; implicit
uses it as it is. A Spark ``regularization`` of 0.01-0.1 corresponds roughly to implicit's
``regularization x (interactions per user)``; tune each engine on its own. The returned model
carries the Spark value, which its ``fold_in`` (implicit's solver, unscaled) then uses as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.data.interactions import IdMap, Interactions
from recsys.errors import ConfigError, DataError
from recsys.spark.session import DEFAULT_MASTER, resolve_session

#: Settings of :func:`fit_als_spark` (avrec's ALS names) and their defaults. Spark's ALS-WR scales
#: the penalty per user/item, so its useful ``regularization`` is far below implicit's.
SPARK_ALS_DEFAULTS: dict[str, Any] = {
    "factors": 64,
    "regularization": 0.05,
    "alpha": 3.0,
    "iterations": 10,
    "random_state": 0,
}

#: Column names of the log (``weight=None``: every row weighs 1).
DEFAULT_LOG_COLUMNS: dict[str, str | None] = {"user": "user_id", "item": "item_id", "weight": None}


def fit_als_spark(
    log: str | Path | Interactions,
    params: Mapping[str, Any] | None = None,
    master: str = DEFAULT_MASTER,
    log_columns: Mapping[str, str | None] | None = None,
    *,
    spark=None,
    num_blocks: int | None = None,
) -> "ALS":  # noqa: F821 (recsys.models.ALS, imported lazily)
    """Fit implicit-feedback ALS with Spark MLlib and return a local fitted ALS.

    Parameters
    ----------
    log : path or Interactions
        A Parquet file/folder or a CSV file (header line) every executor can read (local path on
        ``local[*]``, HDFS/S3/shared file system on a cluster), or training :class:`Interactions`
        (for example the train part of a split: its id maps are kept).
    params : mapping, optional
        ``factors``, ``regularization``, ``alpha``, ``iterations``, ``random_state`` (defaults
        :data:`SPARK_ALS_DEFAULTS`). ``weighting`` may be given but must be ``"none"``.
    master : str
        Spark master URL (ignored when ``spark`` is given).
    log_columns : mapping, optional
        ``{"user": ..., "item": ..., "weight": ...}`` column names of a file log (defaults
        ``user_id``, ``item_id``, no weight). Repeated (user, item) rows are summed, as
        ``read_log``'s default ``aggregate="sum"``.
    spark : SparkSession, optional
        Use this session.
    num_blocks : int, optional
        Spark ALS user and item blocks; default the session's parallelism.

    Returns
    -------
    recsys.models.ALS
        Fitted, with ``user_factors_ (n_users, factors)`` and ``item_factors_ (n_items, factors)``
        float32 aligned to ``model.train_`` (the log as Interactions), ``weighting="none"``.

    Raises
    ------
    ConfigError
        Unknown or invalid settings, ``weighting`` other than ``"none"``, Spark unavailable.
    DataError
        Missing columns, null ids, NaN/infinite or negative weights, an empty log.
    FitError
        Spark produced NaN factors.
    """
    from recsys.models import ALS

    p = _check_params(params)
    spark = resolve_session(spark, master)
    if isinstance(log, Interactions):
        interactions = log
        if interactions.nnz == 0:
            raise DataError("cannot fit on empty interactions")
        ratings = _ratings_from_interactions(spark, interactions)
    elif isinstance(log, (str, Path)):
        ratings, interactions = _ratings_from_file(spark, str(log), {**DEFAULT_LOG_COLUMNS, **(log_columns or {})})
    else:
        raise DataError(f"log must be a path or Interactions, got {type(log).__name__}")
    user_factors, item_factors = train_factors(spark, ratings, interactions.shape, p, num_blocks)
    ratings.unpersist()
    return ALS.from_factors(
        user_factors, item_factors, interactions,
        factors=p["factors"], regularization=p["regularization"], alpha=p["alpha"],
        iterations=p["iterations"], random_state=p["random_state"], weighting="none", use_gpu=False,
    )


def train_factors(
    spark, ratings, shape: tuple[int, int], params: Mapping[str, Any], num_blocks: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run Spark MLlib ALS on a ``(user_idx int, item_idx int, weight float)`` DataFrame.

    Returns
    -------
    user_factors : (n_users, factors) float32
    item_factors : (n_items, factors) float32
        Zero rows for indices Spark saw no rating for.
    """
    from pyspark.ml.recommendation import ALS as SparkALS

    blocks = num_blocks or spark.sparkContext.defaultParallelism
    als = SparkALS(
        rank=int(params["factors"]), maxIter=int(params["iterations"]), regParam=float(params["regularization"]),
        alpha=float(params["alpha"]), implicitPrefs=True, seed=int(params["random_state"]),
        userCol="user_idx", itemCol="item_idx", ratingCol="weight", nonnegative=False,
        numUserBlocks=blocks, numItemBlocks=blocks,
    )
    fitted = als.fit(ratings)
    f = int(params["factors"])
    return _collect_factors(fitted.userFactors, shape[0], f), _collect_factors(fitted.itemFactors, shape[1], f)


def _collect_factors(frame, n: int, f: int) -> np.ndarray:
    out = np.zeros((n, f), dtype=np.float32)
    pdf = frame.toPandas()
    if len(pdf):
        idx = pdf["id"].to_numpy(dtype=np.int64)
        out[idx] = np.stack(pdf["features"].to_numpy()).astype(np.float32)
    return out


def _check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    p = dict(SPARK_ALS_DEFAULTS)
    given = dict(params or {})
    weighting = given.pop("weighting", "none")
    if weighting != "none":
        raise ConfigError(
            f"Spark ALS has no {weighting!r} weighting; pass weighting='none' (confidence 1 + alpha * weight) "
            "or use --engine local"
        )
    for ignored in ("use_gpu", "num_threads", "bm25_k1", "bm25_b"):  # local-only knobs
        given.pop(ignored, None)
    unknown = sorted(set(given) - set(p))
    if unknown:
        raise ConfigError(f"unknown Spark ALS settings {unknown}; known: {sorted(p)}")
    p.update(given)
    if int(p["factors"]) < 1 or int(p["iterations"]) < 1:
        raise ConfigError(f"factors and iterations must be >= 1, got {p['factors']} and {p['iterations']}")
    if float(p["regularization"]) < 0 or float(p["alpha"]) < 0:
        raise ConfigError(f"regularization and alpha must be >= 0, got {p['regularization']} and {p['alpha']}")
    return p


def _ratings_from_interactions(spark, interactions: Interactions):
    import pyarrow as pa

    from recsys.spark.frames import user_frame

    rows, cols, w, _ = interactions.to_coo()
    return user_frame(spark, {
        "user_idx": pa.array(rows.astype(np.int32)),
        "item_idx": pa.array(cols.astype(np.int32)),
        "weight": pa.array(w.astype(np.float32)),
    })


def _ratings_from_file(spark, path: str, cols: Mapping[str, str | None]):
    """Read, validate and aggregate a log in Spark; index maps as ``read_log`` builds them."""
    from pyspark.sql import functions as F

    df = read_table(spark, path)
    user, item, weight = cols["user"], cols["item"], cols.get("weight")
    for c in (user, item, weight):
        if c is not None and c not in df.columns:
            raise DataError(f"column {c!r} not found; the log's columns are {df.columns}", path=path)
    w = F.col(weight).cast("double") if weight else F.lit(1.0)
    df = df.select(F.col(user).alias("user_id"), F.col(item).alias("item_id"), w.alias("weight"))
    bad = df.filter(
        F.col("user_id").isNull() | F.col("item_id").isNull() | F.col("weight").isNull()
        | F.isnan("weight") | (F.col("weight") < 0) | (F.abs(F.col("weight")) == float("inf"))
    )
    first = bad.limit(1).collect()
    if first:
        r = first[0]
        raise DataError(
            f"{bad.count()} rows have an empty id or a missing, NaN, infinite or negative weight; "
            f"first: user {r['user_id']!r}, item {r['item_id']!r}, weight {r['weight']!r}",
            path=path,
        )
    pairs = df.groupBy("user_id", "item_id").agg(F.sum("weight").alias("weight")).cache()
    umap = _sorted_map(pairs, "user_id", "user")
    imap = _sorted_map(pairs, "item_id", "item")
    if len(umap) == 0:
        raise DataError("the log has no rows", path=path)
    ratings = (
        pairs.join(F.broadcast(_index_frame(spark, umap, "user")), "user_id")
        .join(F.broadcast(_index_frame(spark, imap, "item")), "item_id")
        .select(F.col("user_idx").cast("int"), F.col("item_idx").cast("int"), F.col("weight").cast("float"))
        .cache()
    )
    # The driver keeps the aggregated pairs as Interactions: seen-item filtering and the bundle need them.
    pdf = ratings.toPandas()
    m = sp.csr_matrix(
        (pdf["weight"].to_numpy(np.float32), (pdf["user_idx"].to_numpy(), pdf["item_idx"].to_numpy())),
        shape=(len(umap), len(imap)), dtype=np.float32,
    )
    m.sort_indices()
    pairs.unpersist()
    return ratings, Interactions(m, umap, imap)


def read_table(spark, path: str):
    """A Spark DataFrame of a log: Parquet (``.parquet``/``.pq``, a local folder, or a URL without a text
    suffix), else CSV/TSV text with a header line (``.tsv``/``.tab`` are tab-separated)."""
    lower = path.lower().rstrip("/")
    url = "://" in path
    parquet = lower.endswith((".parquet", ".pq")) or (not url and Path(path).is_dir())
    if url and not lower.endswith((".csv", ".tsv", ".tab", ".txt")):
        parquet = True  # a folder on HDFS/S3: Spark writes Parquet folders without a suffix
    try:
        if parquet:
            return spark.read.parquet(path)
        sep = "\t" if lower.endswith((".tsv", ".tab")) else ","
        return spark.read.csv(path, header=True, inferSchema=True, sep=sep)
    except Exception as e:  # AnalysisException: missing path, unreadable file
        raise DataError(f"Spark cannot read the log: {str(e).splitlines()[0]}", path=path) from None


def _sorted_map(pairs, column: str, kind: str) -> IdMap:
    ids = pairs.select(column).distinct().orderBy(column).toPandas()[column]
    arr = ids.to_numpy()
    if arr.dtype.kind not in "iuf":  # text ids: object array, as sorted_unique builds it
        arr = np.asarray(ids.astype(str).tolist(), dtype=object)
    return IdMap(arr, kind)


def _index_frame(spark, idmap: IdMap, kind: str):
    import pyarrow as pa

    from recsys.spark.frames import raw_id_array

    table = pa.table({f"{kind}_id": raw_id_array(idmap.ids), f"{kind}_idx": pa.array(np.arange(len(idmap), dtype=np.int64))})
    return spark.createDataFrame(table)
