"""Reading tabular files (CSV, Parquet) with errors that name the file, line and column.

CSV files are read with every column as text first and parsed column by column afterwards, so a
bad value can be reported with its exact line (the header is line 1, the first data row line 2).
For Parquet files the position is reported as ``row N`` (1-based data row), passed as the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(
    path: str | Path,
    *,
    separator: str = ",",
    has_header: bool = True,
    new_columns: Sequence[str] | None = None,
    required: Sequence[str] = (),
    hint: str = "",
):
    """Read a CSV or Parquet file into a polars DataFrame; CSV columns stay text (``pl.String``).

    Parameters
    ----------
    path : str or Path
        ``.parquet``/``.pq`` is read as Parquet, anything else as delimited text.
    separator : str
        Field separator for text files. Multi-character separators (MovieLens ``::``) are
        supported by splitting lines in Python.
    has_header : bool
        Whether the text file has a header line.
    new_columns : sequence of str, optional
        Column names for a headerless file.
    required : sequence of str
        Columns that must be present.
    hint : str
        How the caller's user names other columns, added to the missing-column message.

    Raises
    ------
    DataError
        If the file is missing, empty, unreadable, or lacks a required column.
    """
    import polars as pl

    path = Path(path)
    if not path.exists():
        raise DataError("file does not exist", path=str(path))
    if path.is_dir():
        raise DataError("is a directory; expected a CSV or Parquet file", path=str(path))
    if path.stat().st_size == 0:
        raise DataError("file is empty", path=str(path))
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            df = pl.read_parquet(path)
        elif len(separator) > 1:
            df = _read_multichar(path, separator, has_header, new_columns)
        else:
            df = pl.read_csv(
                path,
                separator=separator,
                has_header=has_header,
                new_columns=list(new_columns) if new_columns else None,
                infer_schema=False,
                quote_char='"',
            )
    except DataError:
        raise
    except Exception as exc:  # polars raises several exception types for malformed text
        raise DataError(f"cannot be read as a table: {_first_line(exc)}", path=str(path)) from exc
    df = _drop_trailing_blank_rows(df)
    if df.height == 0:
        raise DataError("file has no data rows", path=str(path))
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"missing required column(s) {missing}; the file has columns {df.columns}"
            + (f"; {hint}" if hint else ""),
            path=str(path),
        )
    return df


def _drop_trailing_blank_rows(df):
    """Drop all-null rows at the end: polars reads trailing blank lines of a CSV as null rows."""
    import polars as pl

    if df.height == 0 or df.width == 0:
        return df
    blank = df.select(pl.all_horizontal(pl.all().is_null())).to_series().to_numpy()
    n = len(blank)
    while n and blank[n - 1]:
        n -= 1
    return df.head(n) if n < df.height else df


def columns_of(path: str | Path, separator: str = ",") -> list[str]:
    """Column names of a CSV (its header line) or Parquet file, without reading the data."""
    path = Path(path)
    if not path.exists():
        raise DataError("file does not exist", path=str(path))
    if path.is_dir():
        raise DataError("is a directory; expected a CSV or Parquet file", path=str(path))
    if path.stat().st_size == 0:
        raise DataError("file is empty", path=str(path))
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as exc:  # not Parquet, or cut short
            raise DataError(f"cannot be read as Parquet: {_first_line(exc)}", path=str(path)) from None
    with open(path, encoding="utf-8-sig", errors="replace") as fh:  # -sig: a byte-order mark is not a name
        header = fh.readline().rstrip("\r\n")
    return [c.strip().strip('"') for c in header.split(separator)]


def _read_multichar(path: Path, separator: str, has_header: bool, new_columns: Sequence[str] | None):
    import polars as pl

    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln.rstrip("\r\n") for ln in fh]
    offset = 1
    if has_header:
        header, lines, offset = lines[0].split(separator), lines[1:], 2
    else:
        header = list(new_columns) if new_columns else None
    rows = []
    while lines and not lines[-1].strip():  # trailing blank lines
        lines.pop()
    for n, ln in enumerate(lines):
        if not ln.strip():
            if header is not None:  # a blank line inside the data: a null row, reported by its line
                rows.append([None] * len(header))
                continue
            raise DataError("blank line before the first data row", path=str(path), line=n + offset)
        parts = ln.split(separator)
        if header is None:
            header = [f"column_{i + 1}" for i in range(len(parts))]
        if len(parts) != len(header):
            raise DataError(
                f"expected {len(header)} fields separated by {separator!r}, found {len(parts)}",
                path=str(path),
                line=n + offset,
            )
        rows.append(parts)
    if header is None:
        raise DataError("file has no data rows", path=str(path))
    return pl.DataFrame(rows, schema=list(header), orient="row") if rows else pl.DataFrame(
        schema={h: pl.String for h in header}
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def line_of(df, row: int, path: str | Path, *, has_header: bool = True) -> int:
    """Human line number of 0-based data row ``row``: header offset for CSV, 1-based for Parquet.

    ``has_header=False`` (a headerless text file such as MovieLens ``u.data``) makes the first data
    row line 1.
    """
    if Path(path).suffix.lower() in PARQUET_SUFFIXES or not has_header:
        return row + 1
    return row + 2


def parse_column(
    df, column: str, kind: str, path: str | Path, *, allow_null: bool = False, has_header: bool = True
) -> np.ndarray:
    """Parse one column to numbers, raising with the line of the first bad value.

    Parameters
    ----------
    df : polars.DataFrame
    column : str
    kind : {"float", "int", "str", "id"}
        ``id`` keeps integers as int64 when every value is an integer, else strings.
    path : str or Path
        For error messages.
    allow_null : bool
        Whether empty cells are allowed (they become NaN for floats).
    has_header : bool
        Whether the text file had a header line (decides the reported line numbers).

    Returns
    -------
    values : (n,) ndarray
    """
    import polars as pl

    s = df.get_column(column)
    nulls = s.is_null()
    if s.dtype == pl.String:
        nulls = nulls | (s.str.strip_chars() == "")
    if not allow_null and nulls.any():
        row = int(nulls.arg_max())
        raise DataError(
            "empty value", path=str(path), line=line_of(df, row, path, has_header=has_header), column=column
        )
    if kind in ("str",):
        return np.asarray(s.cast(pl.String).to_list(), dtype=object)
    if kind == "id":
        if s.dtype.is_integer():
            return s.to_numpy().astype(np.int64)
        text = s.cast(pl.String).str.strip_chars()
        as_int = text.cast(pl.Int64, strict=False)
        # "007" and "7" must stay two ids: integers only when the text is the integer's own spelling
        if as_int.null_count() == nulls.sum() and bool(
            (as_int.cast(pl.String) == text).fill_null(True).all()
        ):
            return as_int.to_numpy().astype(np.int64)
        return np.asarray(text.to_list(), dtype=object)
    target = pl.Float64 if kind == "float" else pl.Int64
    if s.dtype == pl.String:
        parsed = s.str.strip_chars().cast(target, strict=False)
    else:
        parsed = s.cast(target, strict=False)
    bad = parsed.is_null() & ~nulls
    if bad.any():
        row = int(bad.arg_max())
        raise DataError(
            f"cannot parse {s[row]!r} as {'a number' if kind == 'float' else 'an integer'}",
            path=str(path),
            line=line_of(df, row, path, has_header=has_header),
            column=column,
        )
    out = parsed.to_numpy()
    if kind == "float":
        out = out.astype(np.float64)
        finite = np.isfinite(out) | nulls.to_numpy()
        if not finite.all():
            row = int(np.argmin(finite))
            raise DataError(
                "NaN or infinite value",
                path=str(path),
                line=line_of(df, row, path, has_header=has_header),
                column=column,
            )
    return out
