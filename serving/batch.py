"""Per-user top-n lists for many users, scored in batches and written to Parquet or CSV."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError
from recsys.models.base import Recommender

#: rows per written block (a Parquet row group): about 24 MB of lists in memory at a time
ROWS_PER_BLOCK = 1 << 20


def recommend_all(
    model: Recommender,
    interactions: Interactions,
    n: int = 100,
    users: Sequence | None = None,
    filter_seen: bool = True,
    batch_size: int | None = None,
):
    """Top-``n`` lists of every (or the listed) user as a polars DataFrame.

    Parameters
    ----------
    model : Recommender
        Fitted on ``interactions`` (same id maps).
    interactions : Interactions
        Whose seen items are filtered, and whose id maps translate indices to raw ids.
    n : int
    users : sequence of raw user ids, optional
        Default: every user with at least one interaction. Unknown ids raise ``UnknownIdError``.
    filter_seen : bool
    batch_size : int, optional

    Returns
    -------
    polars.DataFrame
        Columns user_id, rank (1-based), item_id, score; one row per recommended item.
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    idx = _user_indices(interactions, users)
    items, scores = model.recommend(idx, interactions.matrix[idx], n=n, filter_seen=filter_seen,
                                    batch_size=batch_size)
    return _ListFrames(interactions).frame(idx, items, scores)


def _user_indices(interactions: Interactions, users: Sequence | None) -> np.ndarray:
    """Indices of the listed raw user ids (unknown ids raise), or of every active user."""
    if users is None:
        return interactions.active_users()
    return interactions.user_map.indices(list(users), missing="raise")


class _ListFrames:
    """Turns (user idx, item idx, score) blocks into output frames with raw ids.

    The id maps are converted to polars Series once and gathered in polars, instead of turning
    every output row into a Python object (~10x faster at 1M rows).
    """

    def __init__(self, interactions: Interactions) -> None:
        import polars as pl

        def table(name: str, ids: np.ndarray):
            return pl.Series(name, ids.tolist() if ids.dtype == object else ids)

        self.user_table = table("user_id", interactions.user_ids)
        self.item_table = table("item_id", interactions.item_ids)

    def frame(self, idx: np.ndarray, items: np.ndarray, scores: np.ndarray):
        """Columns user_id, rank (1-based), item_id, score; -1 padded slots dropped.

        Parameters
        ----------
        idx : (b,) int64 user indices
        items : (b, n) int64 item indices, -1 padded
        scores : (b, n) float32
        """
        import polars as pl

        n = items.shape[1]
        valid = items >= 0
        rows = np.repeat(idx, n).reshape(len(idx), n)[valid]
        ranks = np.broadcast_to(np.arange(1, n + 1), items.shape)[valid]
        return pl.DataFrame([
            self.user_table.gather(rows),
            pl.Series("rank", ranks.astype(np.int32)),
            self.item_table.gather(items[valid]),
            pl.Series("score", scores[valid].astype(np.float32)),
        ])


def write_recommendations(
    model: Recommender,
    interactions: Interactions,
    out: str | Path,
    n: int = 100,
    users: Sequence | None = None,
    filter_seen: bool = True,
    batch_size: int | None = None,
    explain_with=False,
) -> tuple[Path, float]:
    """Write :func:`recommend_all` to ``out`` (``.parquet`` or ``.csv``); returns (path, seconds).

    ``explain_with``: False (default) for no explanations; otherwise the item features (or None)
    to explain with: an ``explanation`` column of JSON (:func:`explain_frame`) is added.

    The lists are computed and written in blocks of users (about :data:`ROWS_PER_BLOCK` rows,
    one Parquet row group or a run of CSV lines each), so memory stays at one block whatever the
    number of users; the file holds the rows :func:`recommend_all` returns, in the same order.
    They are written to a temporary name beside ``out`` and renamed at the end, so an
    interrupted run leaves no half-written file under ``out`` (an older complete one stays).
    """
    import os

    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"output must end in .parquet or .csv, got {out.name}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    t0 = time.perf_counter()
    idx = _user_indices(interactions, users)
    frames = _ListFrames(interactions)
    block = max(1, ROWS_PER_BLOCK // n)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    try:
        with _BlockWriter(tmp, csv=out.suffix.lower() == ".csv") as writer:
            for start in range(0, max(len(idx), 1), block):  # one (empty) block when there are no users
                chunk = idx[start : start + block]
                items, scores = model.recommend(chunk, interactions.matrix[chunk], n=n, filter_seen=filter_seen,
                                                batch_size=batch_size)
                df = frames.frame(chunk, items, scores)
                if explain_with is not False:
                    df = explain_frame(model, interactions, df, explain_with)
                writer.write(df)
        os.replace(tmp, out)  # atomic on one file system
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out, time.perf_counter() - t0


class _BlockWriter:
    """Appends polars frames to one Parquet file (a row group each, zstd as polars writes) or CSV
    file (the header once)."""

    def __init__(self, path: Path, csv: bool) -> None:
        self.path, self.csv = path, csv
        self._fh = None
        self._parquet = None

    def __enter__(self) -> "_BlockWriter":
        return self

    def write(self, df) -> None:
        if self.csv:
            if self._fh is None:
                self._fh = open(self.path, "wb")
                df.write_csv(self._fh, include_header=True)
            else:
                df.write_csv(self._fh, include_header=False)
            return
        import pyarrow.parquet as pq

        table = df.to_arrow()
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._parquet.write_table(table, row_group_size=max(table.num_rows, 1))

    def __exit__(self, *exc) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._fh is not None:
            self._fh.close()


def explain_frame(model: Recommender, interactions: Interactions, df, item_features=None, top: int = 3):
    """``df`` (user_id, rank, item_id, score) with an ``explanation`` column: JSON of
    :meth:`recsys.explain.Explanation.to_dict` (CF history items, nearest history item per modality).

    One fold-in factorisation per user and one CF sum per item: about 0.7 ms per listed item on
    TikTok-sized ALS (2,000 rows in 1.4 s).
    """
    import json

    import polars as pl

    from recsys.explain import explain, modality_vectors

    from threadpoolctl import threadpool_limits

    vectors = modality_vectors(item_features)  # once for every user
    out = [None] * df.height
    users = df.get_column("user_id").to_list()
    items = interactions.item_map.indices(df.get_column("item_id").to_list())
    start = 0
    # one BLAS thread: every product here is tiny, and threads only add hand-off and spinning
    with threadpool_limits(1, "blas"):
        while start < len(users):  # rows of one user are consecutive (recommend_all writes them so)
            end = start
            while end < len(users) and users[end] == users[start]:
                end += 1
            u = interactions.user_map.index(users[start])
            expl = explain(model, interactions.matrix[u], items[start:end], item_features, user_idx=u, top=top,
                           vectors=vectors)
            for k, e in enumerate(expl):
                out[start + k] = json.dumps(e.to_dict(interactions.item_ids), default=str)
            start = end
    return df.with_columns(pl.Series("explanation", out, dtype=pl.String))
