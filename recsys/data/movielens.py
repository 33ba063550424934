"""MovieLens rating files (ml-100k, ml-1m, ml-10m, ml-latest, ml-25m): :func:`read_movielens`.

The format is detected from the file name; ids, weights and duplicates follow the rules of
:mod:`recsys.data.log_rows`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np

from recsys.data.interactions import Aggregate, IdMap, Interactions
from recsys.data.log_rows import assemble, check_aggregate, check_unknown, parse_weights
from recsys.data.tables import parse_column, read_table
from recsys.errors import DataError

#: MovieLens rating files by name: separator, header, and the four columns
#: (user, item, rating, timestamp) as named in the file (or given to a headerless one).
MOVIELENS_FORMATS: Mapping[str, tuple[str, bool, tuple[str, str, str, str]]] = MappingProxyType(
    {
        "u.data": ("\t", False, ("user_id", "item_id", "rating", "timestamp")),  # ml-100k
        "ratings.dat": ("::", False, ("user_id", "item_id", "rating", "timestamp")),  # ml-1m, ml-10m
        "ratings.csv": (",", True, ("userId", "movieId", "rating", "timestamp")),  # ml-latest, ml-25m
    }
)


def read_movielens(
    path: str | Path,
    *,
    min_rating: float | None = None,
    aggregate: Aggregate = "sum",
    user_ids: Sequence | np.ndarray | IdMap | None = None,
    item_ids: Sequence | np.ndarray | IdMap | None = None,
    unknown: Literal["raise", "drop"] = "raise",
) -> Interactions:
    """Read MovieLens ratings, detecting the format from the file name.

    * ``u.data`` (ml-100k; also its ``u1.base`` ... ``ub.test`` splits): tab-separated, no header,
      ``user item rating timestamp``.
    * ``ratings.dat`` (ml-1m, ml-10m): ``::``-separated, no header, same four fields.
    * ``ratings.csv`` (ml-latest, ml-latest-small, ml-25m): header ``userId,movieId,rating,timestamp``.

    Parameters
    ----------
    path : str or Path
        One of those files, or a directory that directly contains exactly one of them.
    min_rating : float, optional
        Turn explicit ratings into implicit positives: keep rows with ``rating >= min_rating``,
        each with weight 1. Without it the weight is the rating itself.
    aggregate, user_ids, item_ids, unknown
        As in :func:`read_log` (MovieLens has no duplicate pairs, so ``aggregate`` rarely matters).

    Returns
    -------
    Interactions
        float32 weights, ``timestamps`` (nnz,) float64 unix seconds.

    Raises
    ------
    DataError
        Unrecognised file name, a directory with none (or several) of the files, a line with the
        wrong number of fields, an unparsable or negative rating, ``min_rating`` above every rating.
    """
    check_aggregate(aggregate)
    check_unknown(unknown)
    path = _find_movielens_file(Path(path))
    separator, has_header, (user, item, rating, ts_col) = _movielens_format(path)
    try:
        df = read_table(
            path,
            separator=separator,
            has_header=has_header,
            new_columns=None if has_header else [user, item, rating, ts_col],
            required=[user, item, rating, ts_col],
        )
    except DataError as exc:
        if not has_header and len(separator) == 1 and exc.line is None:
            _raise_ragged_line(path, separator, 4)  # polars does not say which line was too long
        raise
    if not has_header and df.width != 4:
        raise DataError(
            f"expected 4 fields separated by {separator!r}, found {df.width}", path=str(path), line=1
        )
    users = parse_column(df, user, "id", path, has_header=has_header)
    items = parse_column(df, item, "id", path, has_header=has_header)
    ratings = parse_weights(df, rating, path, has_header=has_header, what="rating")
    ts = parse_column(df, ts_col, "float", path, has_header=has_header)

    keep = None
    weights = ratings
    if min_rating is not None:
        keep = ratings >= float(min_rating)
        if not keep.any():
            raise DataError(
                f"no rating is >= min_rating={min_rating} (avrec: --min-rating; largest rating {ratings.max():g})",
                path=str(path),
                column=rating,
            )
        weights = np.ones(len(ratings), dtype=np.float64)
    return assemble(
        df, path, (user, item), users, items, weights, ts, keep, has_header=has_header,
        user_ids=user_ids, item_ids=item_ids, aggregate=aggregate, unknown=unknown,
    )


def _movielens_format(path: Path) -> tuple[str, bool, tuple[str, str, str, str]]:
    name = path.name.lower()
    if name in MOVIELENS_FORMATS:
        return MOVIELENS_FORMATS[name]
    # ml-100k's ready-made splits (u1.base ... u5.test, ua.base, ub.test) share u.data's layout
    if name.startswith("u") and name.endswith((".base", ".test")) and len(name.split(".")[0]) == 2:
        return MOVIELENS_FORMATS["u.data"]
    raise DataError(
        f"not a recognised MovieLens ratings file; expected one of {sorted(MOVIELENS_FORMATS)} "
        "(ml-100k, ml-1m, ml-latest). For other logs use read_log with a column mapping.",
        path=str(path),
    )


def _find_movielens_file(path: Path) -> Path:
    if not path.is_dir():
        if not path.exists():
            raise DataError("file does not exist", path=str(path))
        return path
    found = [path / n for n in MOVIELENS_FORMATS if (path / n).is_file()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(
            f"directory contains none of the MovieLens ratings files {sorted(MOVIELENS_FORMATS)}; "
            "pass the ratings file itself or the extracted release folder",
            path=str(path),
        )
    raise DataError(
        f"directory contains several MovieLens ratings files {[f.name for f in found]}; pass one file",
        path=str(path),
    )


def _raise_ragged_line(path: Path, separator: str, n_fields: int) -> None:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, ln in enumerate(fh, start=1):
            ln = ln.rstrip("\r\n")
            found = len(ln.split(separator))
            if ln.strip() and found != n_fields:
                raise DataError(
                    f"expected {n_fields} fields separated by {separator!r}, found {found}",
                    path=str(path),
                    line=n,
                )
