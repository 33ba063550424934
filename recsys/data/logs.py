"""Generic interaction logs (CSV, TSV, Parquet) with named columns: :func:`read_log`.

Ids, weights, timestamps and duplicates follow the rules of :mod:`recsys.data.log_rows`.

Event logs: an ``event`` column is mapped to weights by ``event_weights`` (default
:data:`DEFAULT_EVENT_WEIGHTS`). A value the mapping does not list is an *unknown event*; by default
its rows are **dropped** and one warning (logger ``recsys.data.logs``) names every such value with
its row count, because an unlisted event may as well be a negative signal (``skip``, ``dislike``)
as a positive one, and counting it as a view would invent interest. ``unknown_events`` chooses
instead: ``"raise"`` (stop with a DataError naming the first such line) or a number (the weight
those rows get, also with the warning). On the command line: ``--event-weights view=1,like=3`` and
``--unknown-events drop|raise|WEIGHT``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import logging

import numpy as np

from recsys.data.interactions import Aggregate, IdMap, Interactions
from recsys.data.log_rows import (
    assemble,
    check_aggregate,
    check_unknown,
    parse_timestamps,
    parse_weights,
    separator_for,
)
from recsys.data.tables import line_of, parse_column, read_table
from recsys.errors import ConfigError, DataError

_log = logging.getLogger(__name__)

#: Event name -> confidence weight used by :func:`read_log` when ``event=`` is given without
#: ``event_weights``. Passive signals count 1, active ones 2, sharing 3. Event values are matched
#: exactly (after trimming spaces); rows of any other value follow ``unknown_events`` (default:
#: dropped, with a warning naming them), so pass your own mapping (``--event-weights``).
DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"view": 1.0, "click": 1.0, "play": 1.0, "like": 2.0, "comment": 2.0, "share": 3.0}
)


def read_log(
    path: str | Path,
    *,
    user: str = "user_id",
    item: str = "item_id",
    timestamp: str | None = None,
    weight: str | None = None,
    event: str | None = None,
    event_weights: Mapping[str, float] | None = None,
    unknown_events: Literal["drop", "raise"] | float = "drop",
    min_weight: float | None = None,
    aggregate: Aggregate = "sum",
    user_ids: Sequence | np.ndarray | IdMap | None = None,
    item_ids: Sequence | np.ndarray | IdMap | None = None,
    unknown: Literal["raise", "drop"] = "raise",
    separator: str | None = None,
) -> Interactions:
    """Read an interaction log (CSV, TSV or Parquet) into :class:`Interactions`.

    Parameters
    ----------
    path : str or Path
        ``.parquet``/``.pq`` files are read as Parquet, ``.tsv``/``.tab`` as tab-separated,
        anything else as comma-separated text with a header line.
    user, item : str
        Names of the user-id and item-id columns.
    timestamp : str, optional
        Name of the timestamp column: unix seconds, ISO-8601 text, or a Datetime/Date column.
        Converted to float64 unix seconds (UTC when no zone is given).
    weight : str, optional
        Name of a numeric weight (confidence) column. Mutually exclusive with ``event``.
    event : str, optional
        Name of an event-type column; each row's weight is ``event_weights[value]``.
    event_weights : mapping of str to float, optional
        Defaults to :data:`DEFAULT_EVENT_WEIGHTS`
        (view 1, click 1, play 1, like 2, comment 2, share 3). A given mapping replaces the
        defaults as a whole.
    unknown_events : "drop", "raise" or float
        Rows whose event value ``event_weights`` does not list: ``"drop"`` (default) removes them,
        a number gives them that weight; both log one warning naming every such value with its
        row count. ``"raise"`` stops with a DataError naming the first such line.
    min_weight : float, optional
        Keep only rows whose weight (after event mapping) is ``>= min_weight``; applied per row,
        before duplicates are aggregated. Weights are kept as they are.
    aggregate : {"sum", "max", "last", "count"}
        How repeated (user, item) rows combine: ``sum`` adds the weights (the default: repeat
        views count more), ``max`` keeps the largest, ``last`` the weight of the latest row (by
        timestamp, else file order), ``count`` the number of rows. The pair's timestamp is always
        the **earliest** of its rows, so a temporal split puts it where the user first engaged.
    user_ids, item_ids : sequence or IdMap, optional
        Use these id maps (for example a training set's) instead of building sorted ones.
    unknown : {"raise", "drop"}
        With given maps: rows with ids outside them raise :class:`UnknownIdError` (naming the
        line) or are dropped.
    separator : str, optional
        Field separator for text files; overrides the choice made from the file suffix.

    Returns
    -------
    Interactions
        float32 CSR (n_users, n_items); ``timestamps`` (nnz,) float64 when ``timestamp`` is given.

    Raises
    ------
    DataError
        Missing file or column (the message lists the file's columns), empty file or header only,
        empty id, unparsable number or date, NaN/infinite or negative weight, unknown event value
        with ``unknown_events="raise"``, no rows left after unknown events or ``min_weight``. The
        message names the file, line and column.
    UnknownIdError
        An id outside the given maps with ``unknown="raise"``.
    ConfigError
        Contradictory arguments (both ``weight`` and ``event``, an unknown ``aggregate`` ...).
    """
    check_aggregate(aggregate)
    check_unknown(unknown)
    if weight is not None and event is not None:
        raise ConfigError("give either weight= (a numeric column) or event= (an event-type column), not both")
    if event_weights is not None and event is None:
        raise ConfigError("event_weights needs event= (the name of the event-type column; avrec: --event-col)")
    if min_weight is not None and weight is None and event is None:
        raise ConfigError("min_weight needs a weight= or event= column to compare against "
                          "(avrec: --min-rating needs --weight-col or --event-col)")
    columns = [c for c in (user, item, timestamp, weight, event) if c is not None]
    if len(set(columns)) != len(columns):
        raise ConfigError(f"the user/item/timestamp/weight/event columns must differ, got {columns}")
    mapping = check_event_weights(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
    check_unknown_events(unknown_events)

    path = Path(path)
    df = read_table(path, separator=separator or separator_for(path), required=columns,
                    hint="name the columns with user=, item=, timestamp=, weight=, event= "
                         "(avrec: --user-col, --item-col, --time-col, --weight-col, --event-col)")
    users = parse_column(df, user, "id", path)
    items = parse_column(df, item, "id", path)
    known = None
    if weight is not None:
        w = parse_weights(df, weight, path)
    elif event is not None:
        w, known = _map_events(df, event, mapping, unknown_events, path)
    else:
        w = None
    ts = parse_timestamps(df, timestamp, path) if timestamp is not None else None

    keep = known  # rows of unknown events, when dropped
    if min_weight is not None:
        keep = w >= float(min_weight) if keep is None else keep & (w >= float(min_weight))
        if not keep.any():
            raise DataError(
                f"no rows have weight >= min_weight={min_weight} (avrec: --min-rating; largest weight {w.max():g})",
                path=str(path),
                column=weight or event,
            )
    return assemble(
        df, path, (user, item), users, items, w, ts, keep,
        user_ids=user_ids, item_ids=item_ids, aggregate=aggregate, unknown=unknown,
    )


def check_event_weights(event_weights: Mapping[str, float], name: str = "event_weights") -> dict[str, float]:
    """``event_weights`` as a dict of str -> float; ConfigError (naming ``name``, e.g. the CLI's
    ``--event-weights``) for an empty mapping or a weight that is not a finite number >= 0."""
    out = {}
    for k, v in event_weights.items():
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: the weight of {k!r} must be a number, got {v!r}") from None
        if not np.isfinite(v) or v < 0:
            raise ConfigError(f"{name}: the weight of {k!r} must be finite and >= 0, got {v}")
        out[str(k).strip()] = v
    if not out:
        raise ConfigError(f"{name} is empty")
    return out


def check_unknown_events(value, name: str = "unknown_events") -> None:
    """ConfigError unless ``value`` is ``"drop"``, ``"raise"`` or a finite weight >= 0."""
    if isinstance(value, str) and value in ("drop", "raise"):
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) and value >= 0
    if not ok:
        raise ConfigError(f"{name} must be drop, raise or a weight >= 0 for rows of unlisted events; got {value!r}")


def _map_events(df, column: str, mapping: dict[str, float], unknown_events, path: Path
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Weights of an event column, (n,) float64, and the rows to keep ((n,) bool; None: all).

    Unknown values follow ``unknown_events`` (module docstring); the warning lists them by count.
    """
    import polars as pl

    text = df.get_column(column).cast(pl.String).str.strip_chars()
    empty = text.is_null() | (text == "")
    if empty.any():
        row = int(empty.arg_max())
        raise DataError("empty event", path=str(path), line=line_of(df, row, path), column=column)
    unknown = ~text.is_in(list(mapping))
    if not unknown.any():
        return text.replace_strict(mapping, return_dtype=pl.Float64).to_numpy(), None
    known = ",".join(f"{k}={v:g}" for k, v in mapping.items())  # as --event-weights spells it
    if unknown_events == "raise":
        row = int(unknown.arg_max())
        others = text.filter(unknown).unique().sort().to_list()
        raise DataError(
            f"unknown event {text[row]!r} (all unknown: {others[:10]}{' ...' if len(others) > 10 else ''}); "
            f"the event weights are {known}. List every event type in event_weights= (avrec: --event-weights "
            f"{known},{text[row]}=W), or drop such rows with unknown_events='drop' (--unknown-events drop)",
            path=str(path),
            line=line_of(df, row, path),
            column=column,
        )
    counts = text.filter(unknown).value_counts(sort=True)
    listed = [f"{v!r} ({n})" for v, n in counts.iter_rows()]
    n_rows = int(unknown.sum())
    drop = unknown_events == "drop"
    more = f" and {len(listed) - 10} more" if len(listed) > 10 else ""
    _log.warning(
        "%s: column %r: %d row(s) have events the event weights (%s) do not list: %s; %s. Map them with "
        "event_weights= (avrec: --event-weights %s,%s=W)%s",
        path, column, n_rows, known, ", ".join(listed[:10]) + more,
        "those rows are dropped" if drop else f"those rows get weight {float(unknown_events):g}",
        known, counts.item(0, 0),
        ", or keep them with unknown_events=W (--unknown-events W)" if drop else "",
    )
    if drop and n_rows == len(text):
        raise DataError(
            f"no rows left: no event value is in the event weights ({known}); values found: "
            f"{', '.join(listed[:10])}. Map them with event_weights= (avrec: --event-weights)",
            path=str(path),
            column=column,
        )
    fill = 0.0 if drop else float(unknown_events)
    w = text.replace_strict(mapping, default=fill, return_dtype=pl.Float64).to_numpy()
    return w, (~unknown).to_numpy() if drop else None
