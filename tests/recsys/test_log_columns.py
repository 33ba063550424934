"""Log loading as ``avrec --log`` does it: one column-detection rule (user/item/timestamp/weight/
event), a line saying which columns were used, a warning for the rest; and a property test: random
CSV/Parquet logs with injected faults load, or fail with a DataError naming file, line and column."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from recsys.data.columns import CANDIDATES, detect_columns
from recsys.errors import DataError
from recsys.jobs.load import LogSpec, load_log


# ------------------------------------------------------------------------------------------- the rule
def test_weight_is_detected_like_timestamp(tmp_path, caplog):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp,weight,note\nu1,i1,10,3,a\nu1,i2,11,1,b\nu2,i1,12,2,c\n")
    with caplog.at_level(logging.INFO, logger="recsys"):
        x = load_log(LogSpec(str(log)))
    assert x.matrix[x.user_map.index("u1"), x.item_map.index("i1")] == 3.0  # issue 15: was 1 (weight ignored)
    assert x.timestamps is not None
    assert "columns user=user_id item=item_id timestamp=timestamp weight=weight (unused: note)" in caplog.text
    assert any(r.levelno == logging.WARNING and "not used: note" in r.getMessage() for r in caplog.records)
    off = load_log(LogSpec(str(log), weight="none"))  # 'none' turns a detected column off
    assert off.matrix[off.user_map.index("u1"), off.item_map.index("i1")] == 1.0


def test_detection_rule():
    cols = detect_columns(["UserId", " Item ", "TS", "Event"], "f.csv")
    assert (cols.user, cols.item, cols.timestamp, cols.weight, cols.event) == ("UserId", " Item ", "TS", None, "Event")
    assert cols.detected == ("user", "item", "timestamp", "event")
    explicit = detect_columns(["a", "b", "weight"], "f.csv", user="a", item="b")
    assert explicit.weight == "weight" and explicit.detected == ("weight",)
    both = ["user_id", "item_id", "weight", "event"]  # two sources of confidence: one is used
    assert (detect_columns(both, "f").weight, detect_columns(both, "f").unused) == ("weight", ("event",))
    assert detect_columns(both, "f", event="event").weight is None
    for header, kw, column in [
        (["user_id", "item_id"], {"weight": "w"}, "w"),  # an explicit name the file lacks
        (["user", "thing"], {}, "item_id"),  # no item column
        (["user_id", "item_id", "user_id"], {}, "user_id"),  # a name twice
    ]:
        with pytest.raises(DataError) as err:
            detect_columns(header, "f.csv", **kw)
        assert (err.value.path, err.value.line, err.value.column) == ("f.csv", 1, column)
    with pytest.raises(DataError, match="looks ';'-separated"):
        detect_columns(["user_id;item_id"], "f.csv")
    assert all(names[0] == f"{role}_id" or role not in ("user", "item") for role, names in CANDIDATES.items())


# ------------------------------------------------------------------------------------ property test
FAULTS = ["none", "missing_column", "wrong_delimiter", "mixed_ids", "nan", "negative", "empty_file",
          "header_only", "duplicate_header", "bom", "crlf", "empty_id", "bad_timestamp"]
#: Faults that sit in one row or in the header: the error must say which line and column.
LOCATED = {"missing_column", "wrong_delimiter", "nan", "negative", "duplicate_header", "empty_id", "bad_timestamp"}


@st.composite
def logs(draw):
    n = draw(st.integers(1, 12))
    int_ids = draw(st.booleans())
    ident = st.integers(0, 50) if int_ids else st.text("abcxyz", min_size=1, max_size=4)
    users = draw(st.lists(ident, min_size=n, max_size=n))
    items = draw(st.lists(ident, min_size=n, max_size=n))
    weights = draw(st.lists(st.floats(0, 100, allow_nan=False), min_size=n, max_size=n))
    extra = draw(st.sampled_from([(), ("timestamp",), ("weight",), ("timestamp", "weight"), ("note",)]))
    rows = [{"user_id": u, "item_id": i} for u, i in zip(users, items)]
    for k, r in enumerate(rows):
        if "timestamp" in extra:
            r["timestamp"] = 1_700_000_000 + k
        if "weight" in extra:
            r["weight"] = weights[k]
        if "note" in extra:
            r["note"] = "x"
    fault = draw(st.sampled_from(FAULTS))
    row = draw(st.integers(0, n - 1))
    fmt = draw(st.sampled_from(["csv", "parquet"]))
    if fmt == "parquet" and fault in ("wrong_delimiter", "bom", "crlf", "duplicate_header"):
        fmt = "csv"  # text-only faults
    return rows, fault, row, fmt


def _write(path, rows, fault, row):
    """Write ``rows`` with ``fault`` injected at data row ``row`` (0-based)."""
    rows = [dict(r) for r in rows]
    if fault == "missing_column":
        for r in rows:
            r.pop("item_id")
    elif fault == "mixed_ids":
        rows[row]["user_id"] = f"name{row}" if isinstance(rows[row]["user_id"], int) else 7
    elif fault in ("nan", "negative"):
        for r in rows:
            r.setdefault("weight", 1.0)
        rows[row]["weight"] = float("nan") if fault == "nan" else -2.5
    elif fault == "empty_id":
        rows[row]["item_id"] = None
    elif fault == "bad_timestamp":
        for k, r in enumerate(rows):
            r.setdefault("timestamp", 1_700_000_000 + k)
        rows[row]["timestamp"] = "yesterday"
    if fault == "empty_file":
        path.write_bytes(b"")
        return
    columns = list(rows[0])
    if path.suffix == ".parquet":
        frame = pl.DataFrame({c: [("" if v is None else str(v)) if c == "user_id" and fault == "mixed_ids" else v
                                  for v in (r.get(c) for r in rows)] for c in columns}, strict=False)
        (frame.head(0) if fault == "header_only" else frame).write_parquet(path)
        return
    sep = ";" if fault == "wrong_delimiter" else ","
    header = columns + (["user_id"] if fault == "duplicate_header" else [])
    lines = [sep.join(header)]
    if fault != "header_only":
        for r in rows:
            cells = ["" if r.get(c) is None else str(r.get(c)) for c in columns]
            lines.append(sep.join(cells + (["0"] if fault == "duplicate_header" else [])))
    eol = "\r\n" if fault == "crlf" else "\n"
    text = eol.join(lines) + eol
    path.write_bytes((b"\xef\xbb\xbf" if fault == "bom" else b"") + text.encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=logs())
def test_faulty_logs_load_or_raise_a_located_data_error(tmp_path, case):
    rows, fault, row, fmt = case
    path = tmp_path / f"log.{fmt}"
    _write(path, rows, fault, row)
    try:
        x = load_log(LogSpec(str(path)))
    except DataError as exc:
        event(f"{fault} ({fmt}): DataError")
        assert exc.path == str(path), exc
        if fault in LOCATED:
            assert exc.line is not None and exc.column is not None, (fault, str(exc))
        if fault in ("nan", "negative", "empty_id", "bad_timestamp"):
            assert exc.line == row + (2 if fmt == "csv" else 1), (fault, row, str(exc))  # CSV: header is line 1
        return
    event(f"{fault} ({fmt}): loaded")
    # what loaded is what was written
    assert fault in ("none", "mixed_ids", "bom", "crlf"), (fault, "loaded without complaint")
    assert x.nnz == len({(str(r["user_id"]), str(r["item_id"])) for r in rows}) or fault == "mixed_ids"
    assert np.isfinite(x.matrix.data).all() and (x.matrix.data >= 0).all()
