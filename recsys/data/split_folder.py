"""Ready-made splits on disk: a folder of train/val/test files and per-item feature files.

:func:`load_split_folder` reads it into a :class:`SplitDataset` whose parts share one id map and
whose features are aligned to it. Rows follow the rules of :mod:`recsys.data.log_rows`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.data.interactions import Aggregate, IdMap, Interactions, check_disjoint, sorted_unique
from recsys.data.item_features import ItemFeatures
from recsys.data.log_rows import (
    check_aggregate,
    from_indices,
    lookup_ids,
    parse_timestamps,
    parse_weights,
    separator_for,
    text_ids,
)
from recsys.data.tables import PARQUET_SUFFIXES, line_of, parse_column, read_table
from recsys.errors import ConfigError, DataError, SplitError

SPLIT_PARTS = ("train", "val", "test")
_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


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
    check_aggregate(aggregate)
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("split folder does not exist or is not a directory", path=str(directory))

    frames: dict[str, tuple[Path, Any]] = {}
    for part in SPLIT_PARTS:
        f = _part_file(directory, part, required=part != "val")
        if f is not None:
            frames[part] = (f, read_table(f, separator=separator_for(f), required=["user_id", "item_id"]))
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
        w = parse_weights(df, "weight", f) if "weight" in df.columns else None
        ts = parse_timestamps(df, "timestamp", f) if "timestamp" in df.columns else None
        u_idx, i_idx = lookup_ids(umap, users[part]), lookup_ids(imap, items[part])
        parts[part] = from_indices(u_idx, i_idx, w, ts, umap, imap, aggregate)
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
            pos = lookup_ids(imap, ids)
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
    return {k: (v if k in text else text_ids(frames[k][1], column)) for k, v in ids.items()}
