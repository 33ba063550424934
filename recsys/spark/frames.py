"""Driver-side data moved into Spark: one row per user with everything a scoring task needs.

A task scores a batch of users against the broadcast item vectors with one numpy matmul, so each
row carries the user's vector and item index lists (train items to filter, held-out items to
score against). Rows are built as Arrow tables: no per-row Python objects on the driver.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError


def raw_id_type(ids: np.ndarray) -> str:
    """Spark SQL type of raw ids: ``bigint`` for integer ids, ``double`` for float ids, else ``string``."""
    kind = np.asarray(ids).dtype.kind
    return "bigint" if kind in "iu" else "double" if kind == "f" else "string"


def raw_id_array(ids: np.ndarray):
    """Raw ids as an Arrow array of the type :func:`raw_id_type` names."""
    import pyarrow as pa

    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return pa.array(ids.astype(np.int64), pa.int64())
    if ids.dtype.kind == "f":
        return pa.array(ids.astype(np.float64), pa.float64())
    return pa.array([str(v) for v in ids.tolist()], pa.string())


def list_column(matrix: sp.csr_matrix, rows: np.ndarray):
    """Arrow ``list<int32>`` of the stored column indices of ``matrix[rows]`` (sorted per row)."""
    import pyarrow as pa

    sub = sp.csr_matrix(matrix[rows])
    sub.sort_indices()
    return pa.ListArray.from_arrays(
        pa.array(sub.indptr.astype(np.int32), pa.int32()), pa.array(sub.indices.astype(np.int32), pa.int32())
    )


def vector_column(vectors: np.ndarray):
    """Arrow ``list<float32>`` with one (d,) row of ``vectors`` (b, d) per element."""
    import pyarrow as pa

    v = np.ascontiguousarray(vectors, dtype=np.float32)
    b, d = v.shape
    offsets = pa.array((np.arange(b + 1, dtype=np.int64) * d).astype(np.int32), pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(v.ravel(), pa.float32()))


def user_frame(spark, columns: dict, partitions: int | None = None):
    """A Spark DataFrame from named Arrow arrays, split into ``partitions`` (default parallelism)."""
    import pyarrow as pa

    table = pa.table(columns)
    df = spark.createDataFrame(table)
    n = partitions or spark.sparkContext.defaultParallelism
    if df.rdd.getNumPartitions() != n:
        df = df.repartition(n)
    return df


def embedding_vectors(model, interactions=None, what: str = "interactions") -> tuple[np.ndarray, np.ndarray]:
    """``(user_vectors (n_users, d), item_vectors (n_items, d))`` float32 of a fitted embedding model.

    With ``interactions``, also checks that the vectors cover exactly its users and items.

    Raises
    ------
    ConfigError
        The model does not score by a user-item dot product (kNN, popularity, hybrid).
    """
    from recsys.models.base import EmbeddingRecommender

    model._check_fitted()
    if not isinstance(model, EmbeddingRecommender):
        raise ConfigError(
            f"the Spark engine scores dot-product models (ALS, bridge, content); {type(model).__name__} "
            "is not one: use --engine local for it"
        )
    u = np.ascontiguousarray(model._user_vectors(), dtype=np.float32)
    v = np.ascontiguousarray(model._item_vectors(), dtype=np.float32)
    if interactions is not None and (v.shape[0] != interactions.n_items or u.shape[0] != interactions.n_users):
        raise ConfigError(
            f"the model knows {u.shape[0]} users x {v.shape[0]} items but the {what} have "
            f"{interactions.n_users} x {interactions.n_items}; use the data the model was fitted on"
        )
    return u, v


def csr_from_lists(lists, n_cols: int) -> sp.csr_matrix:
    """CSR (b, n_cols) with a 1 at every index of ``lists`` (a pandas Series of int arrays)."""
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate([np.asarray(x, dtype=np.int32) for x in lists]) if len(lists) else np.empty(0, np.int32)
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(lists), n_cols))


def stack_vectors(series, d: int) -> np.ndarray:
    """(b, d) float32 from a pandas Series of (d,) arrays."""
    if len(series) == 0:
        return np.empty((0, d), dtype=np.float32)
    return np.stack([np.asarray(x, dtype=np.float32) for x in series]).reshape(len(series), d)
