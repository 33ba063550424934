"""Interaction-log loaders: generic CSV/Parquet logs, MovieLens, and split folders.

Every loader returns :class:`~recsys.data.interactions.Interactions` (or a :class:`SplitDataset` of
them sharing one id map) and reports bad input as :class:`~recsys.errors.DataError` naming the file,
the line (CSV: the header is line 1; Parquet: the 1-based data row) and the column.

Rules shared by all loaders
---------------------------
* **Ids.** A column whose every value is an integer spelled canonically (``7``, not ``007``) gives
  int64 ids, otherwise the ids are text. Id maps are sorted, so integer ids ``0..n-1`` map to
  themselves. Empty id cells are errors.
* **Weights.** From a ``weight`` column, from an ``event`` column mapped through ``event_weights``
  (default :data:`DEFAULT_EVENT_WEIGHTS`), or 1.0 per row. NaN, infinite and negative weights are
  errors.
* **Timestamps.** Numbers are unix seconds. Text is ISO-8601 (``2024-05-01``,
  ``2024-05-01T12:30:00``, ``2024-05-01 12:30:00.5+02:00``, ``...Z``); polars ``Datetime``/``Date``
  columns are accepted too. All are converted to unix seconds (float64); times without a zone are UTC.
* **Duplicates.** Repeated (user, item) rows become one pair: ``aggregate="sum"`` (default) adds
  their weights, ``"max"`` keeps the largest, ``"last"`` the latest row's (by timestamp, else file
  order), ``"count"`` the number of rows. The pair's timestamp is the **earliest** of its rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from recsys.data.interactions import AGGREGATES, Aggregate, IdMap, Interactions, check_disjoint, sorted_unique
from recsys.data.item_features import ItemFeatures
from recsys.data.tables import PARQUET_SUFFIXES, line_of, parse_column, read_table
from recsys.errors import ConfigError, DataError, SplitError, UnknownIdError

#: Event name -> confidence weight used by :func:`read_log` when ``event=`` is given without
#: ``event_weights``. Passive signals count 1, active ones 2, sharing 3. Event values are matched
#: exactly (after trimming spaces); any other value is an error, so pass your own mapping.
DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"view": 1.0, "click": 1.0, "play": 1.0, "like": 2.0, "comment": 2.0, "share": 3.0}
)

#: MovieLens rating files by name: separator, header, and the four columns
#: (user, item, rating, timestamp) as named in the file (or given to a headerless one).
MOVIELENS_FORMATS: Mapping[str, tuple[str, bool, tuple[str, str, str, str]]] = MappingProxyType(
    {
        "u.data": ("\t", False, ("user_id", "item_id", "rating", "timestamp")),  # ml-100k
        "ratings.dat": ("::", False, ("user_id", "item_id", "rating", "timestamp")),  # ml-1m, ml-10m
        "ratings.csv": (",", True, ("userId", "movieId", "rating", "timestamp")),  # ml-latest, ml-25m
    }
)

SPLIT_PARTS = ("train", "val", "test")
_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


# ---------------------------------------------------------------------------------------- read_log
def read_log(
    path: str | Path,
    *,
    user: str = "user_id",
    item: str = "item_id",
    timestamp: str | None = None,
    weight: str | None = None,
    event: str | None = None,
    event_weights: Mapping[str, float] | None = None,
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
        (view 1, click 1, play 1, like 2, comment 2, share 3). Values not listed raise DataError.
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
        empty id, unparsable number or date, NaN/infinite or negative weight, unknown event value,
        no rows left after ``min_weight``. The message names the file, line and column.
    UnknownIdError
        An id outside the given maps with ``unknown="raise"``.
    ConfigError
        Contradictory arguments (both ``weight`` and ``event``, an unknown ``aggregate`` ...).
    """
    _check_aggregate(aggregate)
    if unknown not in ("raise", "drop"):
        raise ConfigError(f"unknown must be 'raise' or 'drop', got {unknown!r}")
    if weight is not None and event is not None:
        raise ConfigError("give either weight= (a numeric column) or event= (an event-type column), not both")
    if event_weights is not None and event is None:
        raise ConfigError("event_weights needs event= (the name of the event-type column)")
    if min_weight is not None and weight is None and event is None:
        raise ConfigError("min_weight needs a weight= or event= column to compare against")
    columns = [c for c in (user, item, timestamp, weight, event) if c is not None]
    if len(set(columns)) != len(columns):
        raise ConfigError(f"the user/item/timestamp/weight/event columns must differ, got {columns}")
    mapping = _check_event_weights(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)

    path = Path(path)
    df = read_table(path, separator=separator or _separator_for(path), required=columns)
    users = parse_column(df, user, "id", path)
    items = parse_column(df, item, "id", path)
    if weight is not None:
        w = _parse_weights(df, weight, path)
    elif event is not None:
        w = _map_events(df, event, mapping, path)
    else:
        w = None
    ts = _parse_timestamps(df, timestamp, path) if timestamp is not None else None

    keep = None
    if min_weight is not None:
        keep = w >= float(min_weight)
        if not keep.any():
            raise DataError(
                f"no rows have weight >= min_weight={min_weight} (largest weight {w.max():g})",
                path=str(path),
                column=weight or event,
            )
    return _assemble(
        df, path, (user, item), users, items, w, ts, keep,
        user_ids=user_ids, item_ids=item_ids, aggregate=aggregate, unknown=unknown,
    )


# ----------------------------------------------------------------------------------- MovieLens
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
    _check_aggregate(aggregate)
    if unknown not in ("raise", "drop"):
        raise ConfigError(f"unknown must be 'raise' or 'drop', got {unknown!r}")
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
    ratings = _parse_weights(df, rating, path, has_header=has_header, what="rating")
    ts = parse_column(df, ts_col, "float", path, has_header=has_header)

    keep = None
    weights = ratings
    if min_rating is not None:
        keep = ratings >= float(min_rating)
        if not keep.any():
            raise DataError(
                f"no rating is >= min_rating={min_rating} (largest {ratings.max():g})",
                path=str(path),
                column=rating,
            )
        weights = np.ones(len(ratings), dtype=np.float64)
    return _assemble(
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


# ---------------------------------------------------------------------------------- split folders
@dataclass
class SplitDataset:
    """A ready-made split: train/test (and optional val) sharing one id map, plus item features.

    Attributes
    ----------
    train, test : Interactions
    val : Interactions or None
    item_features : ItemFeatures or None
        Rows follow the shared item map; ``masks[block]`` is True for items the file covers.
    name : str
        The folder name (``"tiktok"``).
    path : Path or None
        The folder.

    Raises
    ------
    SplitError
        When the parts do not share one id map, or the features are not aligned to it.
    """

    train: Interactions
    test: Interactions
    val: Interactions | None = None
    item_features: ItemFeatures | None = None
    name: str = ""
    path: Path | None = None

    def __post_init__(self) -> None:
        for part_name, part in self.parts().items():
            if part_name != "train" and not self.train.same_maps(part):
                raise SplitError(f"train and {part_name} must share one id map")
        if self.item_features is not None and not (self.item_features.item_map == self.train.item_map):
            raise SplitError("item_features rows must follow the split's item map (use ItemFeatures.align)")

    @property
    def user_map(self) -> IdMap:
        return self.train.user_map

    @property
    def item_map(self) -> IdMap:
        return self.train.item_map

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def parts(self) -> dict[str, Interactions]:
        """The present parts in the order train, val, test."""
        out = {"train": self.train}
        if self.val is not None:
            out["val"] = self.val
        out["test"] = self.test
        return out

    def cold_items(self, part: str = "test") -> np.ndarray:
        """Indices of items with interactions in ``part`` and none in train, (k,) int64."""
        held_out = self.parts().get(part)
        if held_out is None or part == "train":
            raise ConfigError(f"part must be 'test' or 'val' (present: {list(self.parts())}), got {part!r}")
        return np.flatnonzero((held_out.item_counts() > 0) & (self.train.item_counts() == 0))

    def summary(self) -> dict[str, Any]:
        """Counts for a quick look, as plain Python values.

        Returns
        -------
        dict
            ``name``, ``users``, ``items`` (sizes of the shared maps), ``train_interactions``,
            ``val_interactions`` (None without val), ``test_interactions``, ``cold_test_items``
            (items in test never in train), ``cold_test_interactions`` (test interactions on
            them), ``cold_val_items`` / ``cold_val_interactions`` (None without val) and
            ``feature_blocks`` ({name: dim}, empty without features).
        """
        out: dict[str, Any] = {"name": self.name, "users": self.n_users, "items": self.n_items}
        for part in SPLIT_PARTS:
            inter = getattr(self, part)
            out[f"{part}_interactions"] = None if inter is None else int(inter.nnz)
        for part in ("test", "val"):
            inter = getattr(self, part)
            if inter is None:
                out[f"cold_{part}_items"] = out[f"cold_{part}_interactions"] = None
                continue
            cold = self.cold_items(part)
            out[f"cold_{part}_items"] = int(len(cold))
            out[f"cold_{part}_interactions"] = int(inter.item_counts()[cold].sum())
        feats = self.item_features
        out["feature_blocks"] = {} if feats is None else {k: int(v.shape[1]) for k, v in feats.blocks.items()}
        return out


def load_split_folder(directory: str | Path, *, aggregate: Aggregate = "sum") -> SplitDataset:
    """Load a folder holding a ready-made split and optional per-item feature files.

    Layout::

        train.csv   user_id,item_id[,timestamp][,weight]   (or .parquet / .pq / .tsv)
        test.csv    same columns
        val.csv     optional
        <modality>_feat.npy       (n_rows, d) array, row i = item id i (integer item ids)
        <modality>_feat.parquet   item_id + one list column, or item_id + several numeric columns

    All parts share one id map: users are the sorted union of the users of every part; items are
    the sorted union of the items of every part **and** of every item a feature file covers, so
    cold items with no interaction anywhere are still rankable. Features become one
    :class:`ItemFeatures` block per modality, float32 (``float16`` files are cast), aligned to that
    item map, with ``masks[modality]`` True exactly for the items the file covers (items it does not
    cover get zero rows).

    Parameters
    ----------
    directory : str or Path
    aggregate : {"sum", "max", "last", "count"}
        Rule for repeated (user, item) rows within one part (see :func:`read_log`); the pair's
        timestamp is the earliest.

    Returns
    -------
    SplitDataset

    Raises
    ------
    DataError
        Missing train/test file, two files for one part, malformed rows (file, line and column
        named), a feature file with NaN values or duplicate ids, ``.npy`` features with
        non-integer item ids or fewer rows than the largest item id + 1.
    SplitError
        When train shares a (user, item) pair with test or val, or val shares one with test:
        evaluating on pairs the model saw would leak, so such a folder is rejected.
    """
    _check_aggregate(aggregate)
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("split folder does not exist or is not a directory", path=str(directory))

    frames: dict[str, tuple[Path, Any]] = {}
    for part in SPLIT_PARTS:
        f = _part_file(directory, part, required=part != "val")
        if f is not None:
            frames[part] = (f, read_table(f, separator=_separator_for(f), required=["user_id", "item_id"]))
    feature_files = _feature_files(directory)

    # Ids: integers when every file's ids are integers, else text everywhere (so "5" matches 5).
    users = {p: parse_column(df, "user_id", "id", f) for p, (f, df) in frames.items()}
    items = {p: parse_column(df, "item_id", "id", f) for p, (f, df) in frames.items()}
    feature_frames = {
        m: (f, read_table(f, required=["item_id"]))
        for m, f in feature_files.items()
        if f.suffix.lower() != ".npy"
    }
    feature_ids = {m: parse_column(df, "item_id", "id", f) for m, (f, df) in feature_frames.items()}
    users = _harmonise_ids(users, {p: frames[p] for p in users}, "user_id", "user")
    both = _harmonise_ids(
        {**items, **{("feat", m): v for m, v in feature_ids.items()}},
        {**frames, **{("feat", m): v for m, v in feature_frames.items()}},
        "item_id",
        "item",
    )
    items = {p: both[p] for p in items}
    feature_ids = {m: both[("feat", m)] for m in feature_ids}

    # Feature arrays, with the item ids each one covers.
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for modality, f in feature_files.items():
        if f.suffix.lower() == ".npy":
            arr = _load_npy_features(f)
            _check_npy_rows(f, arr.shape[0], items, frames)
            arrays[modality] = (np.arange(arr.shape[0], dtype=np.int64), arr)
        else:
            fpath, fdf = feature_frames[modality]
            arrays[modality] = (feature_ids[modality], _parquet_feature_matrix(fdf, fpath))

    umap = IdMap(sorted_unique(np.concatenate(list(users.values()))), "user")
    imap = IdMap(
        sorted_unique(np.concatenate([*items.values(), *(ids for ids, _ in arrays.values())])), "item"
    )

    parts: dict[str, Interactions] = {}
    for part, (f, df) in frames.items():
        w = _parse_weights(df, "weight", f) if "weight" in df.columns else None
        ts = _parse_timestamps(df, "timestamp", f) if "timestamp" in df.columns else None
        u_idx, i_idx = _lookup(umap, users[part]), _lookup(imap, items[part])
        parts[part] = _from_indices(u_idx, i_idx, w, ts, umap, imap, aggregate)
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        if a in parts and b in parts:
            try:
                check_disjoint(parts[a], parts[b], (a, b))
            except SplitError as exc:
                files = f"files {frames[a][0].name} and {frames[b][0].name}"
                raise SplitError(f"{exc} ({files})", path=str(directory)) from None

    features = None
    if arrays:
        blocks, masks = {}, {}
        for modality, (ids, arr) in arrays.items():
            pos = _lookup(imap, ids)
            if len(pos) == len(imap) and np.array_equal(pos, np.arange(len(imap))):
                block = arr
            else:
                block = np.zeros((len(imap), arr.shape[1]), dtype=np.float32)
                block[pos] = arr
            mask = np.zeros(len(imap), dtype=bool)
            mask[pos] = True
            blocks[modality], masks[modality] = block, mask
        features = ItemFeatures(
            imap.ids,
            blocks,
            masks,
            provenance={"source": str(directory), "files": {m: f.name for m, f in feature_files.items()}},
        )
    return SplitDataset(
        train=parts["train"],
        test=parts["test"],
        val=parts.get("val"),
        item_features=features,
        name=directory.resolve().name,
        path=directory,
    )


def _part_file(directory: Path, part: str, *, required: bool) -> Path | None:
    found = [directory / f"{part}{s}" for s in _TABLE_SUFFIXES if (directory / f"{part}{s}").is_file()]
    if len(found) > 1:
        raise DataError(
            f"several files for the {part} part: {[f.name for f in found]}; keep one", path=str(directory)
        )
    if not found:
        if required:
            raise DataError(
                f"no {part} file; a split folder needs {part}.csv or {part}.parquet "
                "(columns user_id,item_id[,timestamp][,weight])",
                path=str(directory),
            )
        return None
    return found[0]


def _feature_files(directory: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in sorted(directory.iterdir()):
        suffix = f.suffix.lower()
        if not f.is_file() or suffix not in (".npy", *PARQUET_SUFFIXES) or not f.stem.endswith("_feat"):
            continue
        modality = f.stem[: -len("_feat")]
        if not modality:
            raise DataError("feature file needs a modality name: <modality>_feat.npy", path=str(f))
        if modality in out:
            raise DataError(
                f"two feature files for modality {modality!r}: {out[modality].name} and {f.name}; keep one",
                path=str(directory),
            )
        out[modality] = f
    return out


def _load_npy_features(f: Path) -> np.ndarray:
    try:
        arr = np.load(f, allow_pickle=False)
    except Exception as exc:  # corrupt header, pickled object array, truncated data
        raise DataError(f"cannot be read as a .npy array: {exc}", path=str(f)) from exc
    if arr.ndim != 2:
        raise DataError(f"feature array must be 2-D (n_items, d), got shape {arr.shape}", path=str(f))
    if arr.dtype.kind != "f":
        raise DataError(f"feature array must be floating point, got {arr.dtype}", path=str(f))
    arr = arr.astype(np.float32, copy=False)  # float16 on disk: arithmetic must not run in half precision
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"NaN or infinite value in row {row} (item id {row}), dimension {col}", path=str(f))
    return arr


def _check_npy_rows(
    f: Path, n_rows: int, items: dict[str, np.ndarray], frames: dict[str, tuple[Path, Any]]
) -> None:
    for part, ids in items.items():
        src, df = frames[part]
        if ids.dtype.kind not in "iu":
            row = next((i for i, v in enumerate(ids.tolist()) if not _is_int_text(v)), 0)
            raise DataError(
                f"{f.name} holds row i for item id i, so item ids must be integers; found {ids[row]!r} "
                "(ids are read as text when any file of the folder has a non-integer id)",
                path=str(src),
                line=line_of(df, row, src),
                column="item_id",
            )
        if len(ids) and ids.min() < 0:
            row = int(np.argmin(ids))
            raise DataError(
                f"negative item id {int(ids[row])} cannot index the rows of {f.name}",
                path=str(src),
                line=line_of(df, row, src),
                column="item_id",
            )
        if len(ids) and ids.max() >= n_rows:
            row = int(np.argmax(ids))
            raise DataError(
                f"{f.name} has {n_rows} rows (item ids 0..{n_rows - 1}) but item id {int(ids[row])} occurs "
                f"at line {line_of(df, row, src)} of {src.name}; row i must hold item id i",
                path=str(f),
            )


def _is_int_text(v: object) -> bool:
    try:
        return str(int(v)) == str(v)
    except (TypeError, ValueError):
        return False


def _parquet_feature_matrix(df, path: Path) -> np.ndarray:
    import polars as pl

    value_cols = [c for c in df.columns if c != "item_id"]
    dup = df.get_column("item_id").is_duplicated()
    if dup.any():
        row = int(dup.arg_max())
        raise DataError(
            f"duplicate item id {df.get_column('item_id')[row]!r}",
            path=str(path),
            line=line_of(df, row, path),
            column="item_id",
        )
    if not value_cols:
        raise DataError("feature file has only item_id; add a list column or numeric columns", path=str(path))
    if len(value_cols) == 1 and isinstance(df.schema[value_cols[0]], (pl.List, pl.Array)):
        col = value_cols[0]
        s = df.get_column(col)
        if isinstance(s.dtype, pl.Array):
            s = s.cast(pl.List(s.dtype.inner))
        if not s.dtype.inner.is_numeric():
            raise DataError(
                f"feature list column holds {s.dtype.inner}, expected numbers", path=str(path), column=col
            )
        lengths = s.list.len()
        null = s.is_null() | (lengths == 0)
        if null.any():
            row = int(null.arg_max())
            raise DataError("empty feature vector", path=str(path), line=line_of(df, row, path), column=col)
        d = int(lengths[0])
        wrong = lengths != d
        if wrong.any():
            row = int(wrong.arg_max())
            raise DataError(
                f"feature vector has {lengths[row]} values, the first row has {d}",
                path=str(path), line=line_of(df, row, path), column=col,
            )
        flat = s.explode()
        if flat.null_count():
            row = int(flat.is_null().arg_max()) // d
            raise DataError(
                "null inside a feature vector", path=str(path), line=line_of(df, row, path), column=col
            )
        arr = flat.cast(pl.Float64).to_numpy().reshape(len(s), d)
        names = [col]
    else:
        for c in value_cols:
            if not df.schema[c].is_numeric():
                raise DataError(
                    f"feature columns must be numeric (or one list column), got {df.schema[c]}; "
                    f"columns: {df.columns}",
                    path=str(path),
                    column=c,
                )
        arr = np.column_stack([parse_column(df, c, "float", path) for c in value_cols])
        names = value_cols
    bad = ~np.isfinite(arr)
    if bad.any():
        row, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            "NaN or infinite feature value", path=str(path), line=line_of(df, row, path),
            column=names[min(j, len(names) - 1)],
        )
    return arr.astype(np.float32)


def _harmonise_ids(
    ids: dict[Any, np.ndarray], frames: dict[Any, tuple[Path, Any]], column: str, kind: str
) -> dict[Any, np.ndarray]:
    """Integer ids everywhere, or (when any file has text ids) the ids' text everywhere."""
    text = [k for k, v in ids.items() if v.dtype.kind not in "iu"]
    if not text or len(text) == len(ids):
        return ids
    ints = [k for k in ids if k not in text]
    names = lambda keys: ", ".join(frames[k][0].name for k in keys)  # noqa: E731
    warnings.warn(
        f"{kind} ids are integers in {names(ints)} but text in {names(text)}; reading all {kind} ids as text",
        stacklevel=3,
    )
    return {k: (v if k in text else _text_ids(frames[k][1], column)) for k, v in ids.items()}


def _lookup(idmap: IdMap, ids: np.ndarray) -> np.ndarray:
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


def _from_indices(
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


def _assemble(
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
        ix = _lookup(m, ids)
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
    return _from_indices(idx[0], idx[1], weights, timestamps, maps[0], maps[1], aggregate)


# ----------------------------------------------------------------------------------- column parsing
def _check_aggregate(aggregate: str) -> None:
    if aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")


def _check_event_weights(event_weights: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for k, v in event_weights.items():
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"event weight of {k!r} must be a number, got {v!r}") from None
        if not np.isfinite(v) or v < 0:
            raise ConfigError(f"event weight of {k!r} must be finite and >= 0, got {v}")
        out[str(k)] = v
    if not out:
        raise ConfigError("event_weights is empty")
    return out


def _separator_for(path: Path) -> str:
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def _text_ids(df, column: str) -> np.ndarray:
    import polars as pl

    return np.asarray(df.get_column(column).cast(pl.String).str.strip_chars().to_list(), dtype=object)


def _ids_like_map(ids: np.ndarray, idmap: IdMap, df, column: str) -> np.ndarray:
    """Read integer-looking ids as text when the given map's ids are text (``"5"`` is not ``5``)."""
    if ids.dtype.kind in "iu" and len(idmap) and isinstance(idmap.ids[0], str):
        return _text_ids(df, column)
    return ids


def _parse_weights(
    df, column: str, path: Path, *, has_header: bool = True, what: str = "weight"
) -> np.ndarray:
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


def _map_events(df, column: str, mapping: dict[str, float], path: Path) -> np.ndarray:
    import polars as pl

    text = df.get_column(column).cast(pl.String).str.strip_chars()
    empty = text.is_null() | (text == "")
    if empty.any():
        row = int(empty.arg_max())
        raise DataError("empty event", path=str(path), line=line_of(df, row, path), column=column)
    unknown = ~text.is_in(list(mapping))
    if unknown.any():
        row = int(unknown.arg_max())
        others = text.filter(unknown).unique().sort().to_list()
        raise DataError(
            f"unknown event {text[row]!r} (all unknown: {others[:10]}{' ...' if len(others) > 10 else ''}); "
            f"known events: {sorted(mapping)}. Pass event_weights={{...}} listing every event type",
            path=str(path),
            line=line_of(df, row, path),
            column=column,
        )
    return text.replace_strict(mapping, return_dtype=pl.Float64).to_numpy()


def _parse_timestamps(df, column: str, path: Path) -> np.ndarray:
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
