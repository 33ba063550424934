"""Rows of an interaction log -> :class:`~recsys.data.interactions.Interactions`: the rules every loader shares.

:func:`~recsys.data.logs.read_log`, :func:`~recsys.data.movielens.read_movielens` and
:func:`~recsys.data.split_folder.load_split_folder` read their files with
:mod:`recsys.data.tables` and then parse weights and timestamps, map ids and aggregate duplicates
here, so the rules below hold for all of them. Bad input is a :class:`~recsys.errors.DataError`
naming the file, the line (CSV: the header is line 1; Parquet: the 1-based data row) and the column.

* **Ids.** A column whose every value is an integer spelled canonically (``7``, not ``007``) gives
  int64 ids, otherwise the ids are text. Id maps are sorted, so integer ids ``0..n-1`` map to
  themselves. Empty id cells are errors.
* **Weights.** From a ``weight`` column, from an ``event`` column mapped through ``event_weights``
  (default :data:`~recsys.data.logs.DEFAULT_EVENT_WEIGHTS`), or 1.0 per row. NaN, infinite and
  negative weights are errors.
* **Timestamps.** Numbers are unix seconds. Text is ISO-8601 (``2024-05-01``,
  ``2024-05-01T12:30:00``, ``2024-05-01 12:30:00.5+02:00``, ``...Z``); polars ``Datetime``/``Date``
  columns are accepted too. All are converted to unix seconds (float64); times without a zone are UTC.
* **Duplicates.** Repeated (user, item) rows become one pair: ``aggregate="sum"`` (default) adds
  their weights, ``"max"`` keeps the largest, ``"last"`` the latest row's (by timestamp, else file
  order), ``"count"`` the number of rows. The pair's timestamp is the **earliest** of its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from recsys.data.interactions import AGGREGATES, Aggregate, IdMap, Interactions, sorted_unique
from recsys.data.tables import line_of, parse_column
from recsys.errors import ConfigError, DataError, UnknownIdError


# ------------------------------------------------------------------------------------- options
def check_aggregate(aggregate: str) -> None:
    """ConfigError unless ``aggregate`` is one of :data:`~recsys.data.interactions.AGGREGATES`."""
    if aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")


def check_unknown(unknown: str) -> None:
    """ConfigError unless ``unknown`` is ``"raise"`` or ``"drop"``."""
    if unknown not in ("raise", "drop"):
        raise ConfigError(f"unknown must be 'raise' or 'drop', got {unknown!r}")


def separator_for(path: Path) -> str:
    """Tab for ``.tsv``/``.tab`` files, comma for any other text file."""
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


# ----------------------------------------------------------------------------------- column parsing
def text_ids(df, column: str) -> np.ndarray:
    """The ids of ``column`` as trimmed text, (n,) object: for a file whose ids must match text ids."""
    import polars as pl

    return np.asarray(df.get_column(column).cast(pl.String).str.strip_chars().to_list(), dtype=object)


def _ids_like_map(ids: np.ndarray, idmap: IdMap, df, column: str) -> np.ndarray:
    """Read integer-looking ids as text when the given map's ids are text (``"5"`` is not ``5``)."""
    if ids.dtype.kind in "iu" and len(idmap) and isinstance(idmap.ids[0], str):
        return text_ids(df, column)
    return ids


def parse_weights(
    df, column: str, path: Path, *, has_header: bool = True, what: str = "weight"
) -> np.ndarray:
    """Non-negative finite weights of ``column``, (n,) float64; DataError naming the line otherwise.

    ``what`` names the values in the message (``"rating"`` for MovieLens).
    """
    w = parse_column(df, column, "float", path, has_header=has_header)  # NaN/inf and bad text raise here
    neg = w < 0
    if neg.any():
        row = int(np.argmax(neg))
        raise DataError(
            f"negative {what} {w[row]:g}; {what}s must be >= 0",
            path=str(path),
            line=line_of(df, row, path, has_header=has_header),
            column=column,
        )
    return w


def parse_timestamps(df, column: str, path: Path) -> np.ndarray:
    """Unix seconds (float64) from numbers, ISO-8601 text, or Datetime/Date columns."""
    import polars as pl

    s = df.get_column(column)
    if isinstance(s.dtype, pl.Datetime) or s.dtype == pl.Date:
        if s.null_count():
            row = int(s.is_null().arg_max())
            raise DataError("empty timestamp", path=str(path), line=line_of(df, row, path), column=column)
        if s.dtype == pl.Date:
            s = s.cast(pl.Datetime("us"))
        return s.dt.epoch("us").to_numpy().astype(np.float64) / 1e6  # naive datetimes count as UTC
    if s.dtype != pl.String:
        return parse_column(df, column, "float", path)
    text = s.str.strip_chars()
    empty = text.is_null() | (text == "")
    if empty.any():
        row = int(empty.arg_max())
        raise DataError("empty timestamp", path=str(path), line=line_of(df, row, path), column=column)
    numeric = text.cast(pl.Float64, strict=False)
    if numeric[0] is not None:  # the first value decides: unix seconds
        bad = numeric.is_null()
        if bad.any():
            row = int(bad.arg_max())
            raise DataError(
                f"cannot parse {text[row]!r} as a timestamp; earlier rows are unix seconds",
                path=str(path),
                line=line_of(df, row, path),
                column=column,
            )
        out = numeric.to_numpy()
        finite = np.isfinite(out)
        if not finite.all():
            row = int(np.argmin(finite))
            raise DataError(
                "NaN or infinite timestamp", path=str(path), line=line_of(df, row, path), column=column
            )
        return out
    # ISO-8601: vectorised where polars' inferred format fits, Python's parser for the rest.
    try:
        parsed = text.str.to_datetime(strict=False, time_unit="us", time_zone="UTC")
        out = parsed.dt.epoch("us").to_numpy().astype(np.float64) / 1e6
        todo = np.flatnonzero(parsed.is_null().to_numpy())
    except Exception:  # polars could not infer a format at all
        out = np.empty(len(text), dtype=np.float64)
        todo = np.arange(len(text))
    values = text.to_list()
    for row in todo:
        try:
            dt = datetime.fromisoformat(values[row])
        except ValueError:
            raise DataError(
                f"cannot parse {values[row]!r} as a timestamp "
                "(unix seconds, or ISO-8601 such as 2024-05-01T12:30:00Z)",
                path=str(path),
                line=line_of(df, int(row), path),
                column=column,
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        out[row] = dt.timestamp()
    return out


# ------------------------------------------------------------------------------ ids -> Interactions
def lookup_ids(idmap: IdMap, ids: np.ndarray) -> np.ndarray:
    """Indices of raw ``ids`` in ``idmap``, -1 where absent; (n,) int64.

    Integer ids are looked up with a vectorised binary search: ``IdMap.indices`` goes through a
    Python generator (about 1 s per million rows), too slow for real logs.
    """
    ref = idmap.ids
    if ref.dtype.kind in "iu" and ids.dtype.kind in "iu":
        if len(ref) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        order = None if bool(np.all(ref[1:] > ref[:-1])) else np.argsort(ref, kind="stable")
        sref = ref if order is None else ref[order]
        pos = np.minimum(np.searchsorted(sref, ids), len(sref) - 1)
        hit = sref[pos] == ids
        pos = pos if order is None else order[pos]
        return np.where(hit, pos, -1).astype(np.int64)
    return np.fromiter(map(idmap.get, ids.tolist()), dtype=np.int64, count=len(ids))


def from_indices(
    u_idx: np.ndarray,
    i_idx: np.ndarray,
    weights: np.ndarray | None,
    timestamps: np.ndarray | None,
    umap: IdMap,
    imap: IdMap,
    aggregate: Aggregate,
) -> Interactions:
    """Interactions from index arrays, with the aggregation rules of ``Interactions.from_arrays``.

    The loaders have already validated weights, timestamps and ids (with line numbers) and mapped
    the ids vectorised, so they call the index-level constructor that ``from_arrays`` itself ends in.
    """
    w = np.ones(len(u_idx), dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    t = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
    return Interactions._from_index_arrays(u_idx, i_idx, w, t, umap, imap, aggregate)


def assemble(
    df,
    path: Path,
    columns: tuple[str, str],
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray | None,
    timestamps: np.ndarray | None,
    keep: np.ndarray | None,
    *,
    has_header: bool = True,
    user_ids: Sequence | np.ndarray | IdMap | None,
    item_ids: Sequence | np.ndarray | IdMap | None,
    aggregate: Aggregate,
    unknown: str,
) -> Interactions:
    """Parsed rows -> Interactions: id maps (given, or sorted over kept rows), unknown ids, aggregation."""
    maps, idx = [], []
    sides = ((user_ids, users, columns[0], "user"), (item_ids, items, columns[1], "item"))
    for given, ids, column, kind in sides:
        if given is None:
            m = IdMap(sorted_unique(ids if keep is None else ids[keep]), kind)
        else:
            m = given if isinstance(given, IdMap) else IdMap(given, kind)
            ids = _ids_like_map(ids, m, df, column)
        ix = lookup_ids(m, ids)
        if given is not None and unknown == "raise":
            bad = ix < 0 if keep is None else (ix < 0) & keep
            if bad.any():
                row = int(np.argmax(bad))
                raw = ids[row].item() if isinstance(ids[row], np.generic) else ids[row]
                raise UnknownIdError(
                    f"{path}, line {line_of(df, row, path, has_header=has_header)}, column {column!r}: "
                    f"unknown {kind} id {raw!r} ({int(bad.sum())} rows in all) is not in the given id map"
                    "; pass unknown='drop' to skip such rows"
                )
        maps.append(m)
        idx.append(ix)
    ok = (idx[0] >= 0) & (idx[1] >= 0)
    if keep is not None:
        ok &= keep
    if not ok.all():
        idx = [ix[ok] for ix in idx]
        weights = None if weights is None else weights[ok]
        timestamps = None if timestamps is None else timestamps[ok]
    return from_indices(idx[0], idx[1], weights, timestamps, maps[0], maps[1], aggregate)
