"""The one data object that travels: :class:`Interactions`.

A float32 CSR matrix of users x items holding confidence weights, the raw<->index id maps and, when
the log had them, one timestamp per (user, item) pair aligned to the CSR ``data`` order.
Splits produce new ``Interactions`` that keep the same id maps, so every part of a split, every model
and every metric speaks the same indices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp

from recsys.errors import DataError, UnknownIdError

Aggregate = Literal["sum", "max", "last", "count"]
AGGREGATES: tuple[str, ...] = ("sum", "max", "last", "count")


class IdMap:
    """Bijection between raw ids (any hashable: int, str) and dense indices ``0..n-1``.

    Parameters
    ----------
    ids : sequence
        Raw ids in index order; must be unique.
    kind : str
        ``"user"`` or ``"item"``, used in error messages.
    """

    def __init__(self, ids: Sequence | np.ndarray, kind: str = "item") -> None:
        if isinstance(ids, np.ndarray):
            arr = ids
        else:
            # Build object arrays directly from Python lists of str: numpy's fixed-width strings
            # drop trailing NULs and would turn [1, "a"] into ["1", "a"].
            seq = list(ids)
            arr = np.asarray(seq, dtype=object) if any(isinstance(v, str) for v in seq) else np.asarray(seq)
        if arr.ndim != 1:
            raise DataError(f"{kind} ids must be one-dimensional, got shape {arr.shape}")
        if arr.dtype.kind == "U":  # fixed-width unicode arrays truncate on assignment; keep objects
            arr = arr.astype(object)
        self.ids = arr
        self.kind = kind
        self._index = {_py(v): i for i, v in enumerate(arr.tolist())}
        self._lookup = None
        if len(self._index) != len(arr):
            raise DataError(f"{kind} ids contain duplicates ({len(arr) - len(self._index)} repeated)")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, raw: object) -> bool:
        return _py(raw) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and len(self) == len(other) and bool(
            np.all(self.ids == other.ids)
        )

    def __hash__(self) -> int:  # pragma: no cover - maps are compared, not hashed
        return id(self)

    def index(self, raw: object) -> int:
        """Dense index of one raw id; raises :class:`UnknownIdError` if absent."""
        try:
            return self._index[_py(raw)]
        except KeyError:
            raise UnknownIdError(f"unknown {self.kind} id {raw!r}") from None

    def get(self, raw: object, default: int = -1) -> int:
        """Dense index of one raw id, or ``default`` if absent."""
        return self._index.get(_py(raw), default)

    def find(self, raw: object) -> int:
        """Index of ``raw``, where text that spells an integer also matches an integer id (ids that
        arrive as text, from URLs or files, find ``42`` as ``"42"``); -1 when absent."""
        idx = self.get(raw)
        if idx < 0 and isinstance(raw, str):
            try:
                idx = self.get(int(raw))
            except ValueError:
                pass
        return idx

    def indices(self, raws: Iterable, *, missing: Literal["raise", "drop", "mark"] = "raise") -> np.ndarray:
        """Dense indices of many raw ids.

        Parameters
        ----------
        raws : iterable
            Raw ids.
        missing : {"raise", "drop", "mark"}
            Unknown ids raise, are dropped, or map to -1.

        Returns
        -------
        idx : (n,) int64
        """
        raws = raws if isinstance(raws, np.ndarray) else np.asarray(list(raws), dtype=object)
        import pandas as pd

        if self._lookup is None:  # a hashed index: vectorised lookups, ~100x faster than a loop
            # object dtype for text: pandas' default pyarrow strings reject some valid Python str
            numeric = self.ids.dtype.kind in "iuf"
            self._lookup = pd.Index(self.ids if numeric else self.ids.astype(object), dtype=None if numeric else object)
        if raws.dtype.kind in "US":
            raws = raws.astype(object)
        target = pd.Index(raws, dtype=object) if raws.dtype == object else raws
        out = np.asarray(self._lookup.get_indexer(target), dtype=np.int64) if len(raws) else np.empty(0, np.int64)
        if missing == "raise" and (out < 0).any():
            bad = [_py(r) for r in raws[out < 0][:5]]
            raise UnknownIdError(f"unknown {self.kind} ids: {bad!r}{' ...' if (out < 0).sum() > 5 else ''}")
        if missing == "drop":
            out = out[out >= 0]
        return out

    def raw(self, idx: int | np.ndarray) -> object:
        """Raw id(s) of dense index/indices."""
        return self.ids[idx]


def _py(v: object) -> object:
    """Normalise numpy scalars to Python scalars so ``np.int64(3)`` and ``3`` are one key."""
    return v.item() if isinstance(v, np.generic) else v


class Interactions:
    """Implicit-feedback interactions: users x items confidence matrix plus id maps.

    Parameters
    ----------
    matrix : scipy.sparse matrix, (n_users, n_items)
        Confidence weights; converted to canonical float32 CSR (sorted indices, no duplicates).
    user_ids, item_ids : sequence or IdMap
        Raw ids in index order.
    timestamps : (nnz,) float64, optional
        One timestamp per stored entry, aligned to the canonical CSR ``data`` order.

    Raises
    ------
    DataError
        On NaN/inf or negative weights, or maps whose length does not match the matrix.
    """

    def __init__(
        self,
        matrix: sp.spmatrix | sp.sparray,
        user_ids: Sequence | np.ndarray | IdMap,
        item_ids: Sequence | np.ndarray | IdMap,
        timestamps: np.ndarray | None = None,
    ) -> None:
        self.user_map = user_ids if isinstance(user_ids, IdMap) else IdMap(user_ids, "user")
        self.item_map = item_ids if isinstance(item_ids, IdMap) else IdMap(item_ids, "item")
        m = sp.csr_matrix(matrix, dtype=np.float32)
        if m.shape != (len(self.user_map), len(self.item_map)):
            raise DataError(
                f"matrix shape {m.shape} does not match {len(self.user_map)} user ids x "
                f"{len(self.item_map)} item ids"
            )
        if not m.has_canonical_format:
            if timestamps is not None:
                raise DataError("timestamps need a canonical CSR matrix; build with Interactions.from_arrays")
            m.sum_duplicates()
        if m.nnz and not np.isfinite(m.data).all():
            raise DataError("interaction weights contain NaN or infinite values")
        if m.nnz and (m.data < 0).any():
            raise DataError("interaction weights must be non-negative")
        if timestamps is not None:
            timestamps = np.asarray(timestamps, dtype=np.float64)
            if timestamps.shape != (m.nnz,):
                raise DataError(f"timestamps have shape {timestamps.shape}, expected ({m.nnz},)")
        self.matrix: sp.csr_matrix = m
        self.timestamps = timestamps

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        users: Sequence | np.ndarray,
        items: Sequence | np.ndarray,
        weights: Sequence | np.ndarray | None = None,
        timestamps: Sequence | np.ndarray | None = None,
        *,
        user_ids: Sequence | np.ndarray | IdMap | None = None,
        item_ids: Sequence | np.ndarray | IdMap | None = None,
        aggregate: Aggregate = "sum",
        unknown: Literal["raise", "drop"] = "raise",
    ) -> "Interactions":
        """Build from parallel arrays of raw ids.

        Duplicate (user, item) rows are aggregated: ``sum`` adds weights (repeat views count more),
        ``max`` keeps the largest, ``last`` keeps the weight of the latest row (by timestamp, else
        by order), ``count`` uses the number of rows. The pair's timestamp is always the earliest
        one: the moment the user first engaged decides which side of a temporal cut the pair is on.

        Parameters
        ----------
        users, items : (n,) raw ids
        weights : (n,) float, optional
            Defaults to 1.0 per row.
        timestamps : (n,) numeric, optional
        user_ids, item_ids : optional
            Use these id maps (for example a training set's) instead of building new ones;
            ids are otherwise sorted, so integer ids ``0..n-1`` map to themselves.
        aggregate : {"sum", "max", "last", "count"}
        unknown : {"raise", "drop"}
            What to do with ids absent from given maps.
        """
        users = np.asarray(users)
        items = np.asarray(items)
        n = len(users)
        if len(items) != n:
            raise DataError(f"users ({n}) and items ({len(items)}) differ in length")
        if aggregate not in AGGREGATES:
            raise DataError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
        w = np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != n:
            raise DataError(f"weights ({len(w)}) and users ({n}) differ in length")
        if n and not np.isfinite(w).all():
            raise DataError(f"interaction weights contain NaN or infinite values (row {int(np.argmin(np.isfinite(w)))})")
        if n and (w < 0).any():
            raise DataError(f"interaction weights must be non-negative (row {int(np.argmax(w < 0))})")
        t = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        if t is not None and len(t) != n:
            raise DataError(f"timestamps ({len(t)}) and users ({n}) differ in length")

        umap = _as_map(user_ids, users, "user")
        imap = _as_map(item_ids, items, "item")
        u_idx = umap.indices(users, missing="mark")
        i_idx = imap.indices(items, missing="mark")
        bad = (u_idx < 0) | (i_idx < 0)
        if bad.any():
            if unknown == "raise":
                r = int(np.argmax(bad))
                which = "user" if u_idx[r] < 0 else "item"
                raw = users[r] if which == "user" else items[r]
                raise UnknownIdError(f"row {r}: unknown {which} id {_py(raw)!r} (not in the given id map)")
            keep = ~bad
            u_idx, i_idx, w = u_idx[keep], i_idx[keep], w[keep]
            t = None if t is None else t[keep]
        return cls._from_index_arrays(u_idx, i_idx, w, t, umap, imap, aggregate)

    @classmethod
    def _from_index_arrays(
        cls,
        u_idx: np.ndarray,
        i_idx: np.ndarray,
        w: np.ndarray,
        t: np.ndarray | None,
        umap: IdMap,
        imap: IdMap,
        aggregate: Aggregate = "sum",
    ) -> "Interactions":
        n_items, n_users = len(imap), len(umap)
        key = u_idx.astype(np.int64) * max(n_items, 1) + i_idx.astype(np.int64)
        # Order rows by (pair, time) so "last" and "earliest timestamp" are positional: a stable
        # sort by pair (file order within a pair), then by time only inside runs of repeated pairs,
        # which is lexsort((t, key)) without sorting every row twice (most logs repeat few pairs).
        order = np.argsort(key, kind="stable")
        key = key[order]
        if t is not None and len(key) > 1:
            rep = key[1:] == key[:-1]
            if rep.any():
                in_run = np.zeros(len(key), dtype=bool)
                in_run[1:] |= rep
                in_run[:-1] |= rep
                sel = np.flatnonzero(in_run)
                order[sel] = order[sel][np.lexsort((t[order[sel]], key[sel]))]
            del rep
        w = w[order]
        t = None if t is None else t[order]
        del order
        # key is sorted: a pair's rows are one run, found without sorting again (np.unique would)
        first = np.empty(len(key), dtype=bool)
        first[:1] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
        start = np.flatnonzero(first)
        del first
        if aggregate == "sum":
            agg = np.add.reduceat(w, start) if len(w) else w
        elif aggregate == "max":
            agg = np.maximum.reduceat(w, start) if len(w) else w
        elif aggregate == "last":
            agg = w[np.append(start[1:], len(key))[: len(start)] - 1]  # each run's last row
        else:  # count
            agg = np.diff(np.append(start, len(key))).astype(np.float64)
        ts = None if t is None else t[start]  # earliest, rows are time-sorted within a pair
        uniq = key[start]
        del key, w, t
        # uniq is sorted by (row, col), which is exactly canonical CSR order (ts aligns with data):
        # build the CSR arrays directly instead of converting from COO
        rows, cols = np.divmod(uniq, max(n_items, 1))
        index_dtype = np.int32 if max(len(uniq), n_users, n_items) < 2**31 else np.int64
        indptr = np.searchsorted(rows, np.arange(n_users + 1)).astype(index_dtype)
        m = sp.csr_matrix(
            (agg.astype(np.float32), cols.astype(index_dtype), indptr), shape=(n_users, n_items), dtype=np.float32
        )
        m.has_sorted_indices = True
        return cls(m, umap, imap, ts)

    # ------------------------------------------------------------------ basic facts
    @property
    def user_ids(self) -> np.ndarray:
        return self.user_map.ids

    @property
    def item_ids(self) -> np.ndarray:
        return self.item_map.ids

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        return self.matrix.nnz

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        ts = ", timestamps" if self.timestamps is not None else ""
        return f"Interactions({self.n_users} users x {self.n_items} items, {self.nnz} pairs{ts})"

    def user_counts(self) -> np.ndarray:
        """Interactions per user, (n_users,) int64."""
        return np.diff(self.matrix.indptr).astype(np.int64)

    def item_counts(self) -> np.ndarray:
        """Interactions per item, (n_items,) int64."""
        return np.bincount(self.matrix.indices, minlength=self.n_items).astype(np.int64)

    def active_users(self) -> np.ndarray:
        """Indices of users with at least one interaction, (k,) int64."""
        return np.flatnonzero(self.user_counts() > 0)

    def user_items(self, user_idx: int) -> np.ndarray:
        """Item indices of one user's interactions, (k,) int32, sorted."""
        m = self.matrix
        return m.indices[m.indptr[user_idx] : m.indptr[user_idx + 1]]

    def to_coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Entries as arrays ``(user_idx, item_idx, weight, timestamp)`` in CSR order."""
        m = self.matrix
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        return rows, m.indices.astype(np.int64), m.data.copy(), (
            None if self.timestamps is None else self.timestamps.copy()
        )

    def pair_keys(self) -> np.ndarray:
        """One int64 key per stored pair, ``user_idx * n_items + item_idx`` (CSR order, so sorted)."""
        m = self.matrix
        keys = np.repeat(np.arange(m.shape[0], dtype=np.int64) * self.n_items, np.diff(m.indptr))
        keys += m.indices
        return keys

    # ------------------------------------------------------------------ derived sets
    def subset(self, mask: np.ndarray) -> "Interactions":
        """The entries where ``mask`` is true, keeping the same id maps.

        Parameters
        ----------
        mask : (nnz,) bool, aligned to CSR data order.
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.nnz,):
            raise DataError(f"mask has shape {mask.shape}, expected ({self.nnz},)")
        # Masking a canonical CSR keeps it canonical: rows stay in order, columns sorted within
        # them, so the kept entries are sliced directly (no COO round trip, no sort).
        src = self.matrix
        kept = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        index_dtype = src.indices.dtype
        m = sp.csr_matrix(
            (src.data[mask], src.indices[mask], kept[src.indptr].astype(index_dtype)), shape=self.shape,
            dtype=np.float32,
        )
        m.has_sorted_indices = True
        t = self.timestamps
        return Interactions(m, self.user_map, self.item_map, None if t is None else t[mask])

    def union(self, other: "Interactions") -> "Interactions":
        """Entries of both (same id maps required); a pair in both sums its weights."""
        if not self.same_maps(other):
            raise DataError("union needs Interactions with the same id maps (parts of one split)")
        a, b = self.to_coo(), other.to_coo()
        ts = None
        if a[3] is not None and b[3] is not None:
            ts = np.concatenate([a[3], b[3]])
        return Interactions._from_index_arrays(
            np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]),
            np.concatenate([a[2], b[2]]).astype(np.float64), ts, self.user_map, self.item_map,
        )

    def with_weights(self, matrix: sp.csr_matrix) -> "Interactions":
        """Same ids and structure, new weights (e.g. a confidence transform)."""
        return Interactions(matrix, self.user_map, self.item_map, self.timestamps)

    def with_new_items(self, item_ids: Sequence) -> "Interactions":
        """Same entries with item columns appended for ``item_ids`` (unknown, no interactions yet)."""
        ids = list(item_ids)
        known = [i for i in ids if i in self.item_map]
        if known:
            raise DataError(f"items already in the item map: {known[:5]}")
        old = self.item_map.ids.tolist()
        m = sp.csr_matrix((self.matrix.data, self.matrix.indices, self.matrix.indptr),
                          shape=(self.n_users, self.n_items + len(ids)))
        return Interactions(m, self.user_map, IdMap(old + ids, "item"), self.timestamps)

    def same_maps(self, other: "Interactions") -> bool:
        """Whether ``other`` uses the same user and item id maps."""
        return (self.user_map is other.user_map or self.user_map == other.user_map) and (
            self.item_map is other.item_map or self.item_map == other.item_map
        )

    def to_frame(self):
        """Entries as a polars DataFrame with columns user_id, item_id, weight[, timestamp]."""
        import polars as pl

        rows, cols, w, t = self.to_coo()
        cols_ = {
            "user_id": self.user_ids[rows].tolist(),
            "item_id": self.item_ids[cols].tolist(),
            "weight": w,
        }
        if t is not None:
            cols_["timestamp"] = t
        return pl.DataFrame(cols_)


def _as_map(given: Sequence | np.ndarray | IdMap | None, raws: np.ndarray, kind: str) -> IdMap:
    if isinstance(given, IdMap):
        return given
    if given is not None:
        return IdMap(given, kind)
    return IdMap(sorted_unique(raws), kind)


def sorted_unique(raws: np.ndarray | Sequence) -> np.ndarray:
    """Unique raw ids in a deterministic order (sorted; mixed types sorted by their string)."""
    arr = np.asarray(raws)
    if arr.dtype.kind in "iuf":
        return np.unique(arr)
    try:
        return np.array(sorted(set(arr.tolist())), dtype=object)
    except TypeError:  # mixed int/str ids
        return np.array(sorted(set(arr.tolist()), key=str), dtype=object)


def check_disjoint(a: Interactions, b: Interactions, names: tuple[str, str] = ("train", "test")) -> None:
    """Raise :class:`~recsys.errors.SplitError` if two parts share a (user, item) pair or id maps differ."""
    from recsys.errors import SplitError

    if not a.same_maps(b):
        raise SplitError(f"{names[0]} and {names[1]} use different id maps; build them from one split")
    # Both key arrays are sorted (canonical CSR order): the smaller one is looked up in the larger
    # by binary search, instead of intersect1d's sort of both (seconds at 20M pairs).
    small, large = sorted((a.pair_keys(), b.pair_keys()), key=len)
    pos = np.minimum(np.searchsorted(large, small), max(len(large) - 1, 0))
    common = small[large[pos] == small] if len(large) else small[:0]
    if len(common):
        u, i = divmod(int(common[0]), a.n_items)
        raise SplitError(
            f"{names[0]} and {names[1]} overlap in {len(common)} (user, item) pairs, e.g. user "
            f"{_py(a.user_ids[u])!r} item {_py(a.item_ids[i])!r}; evaluation on seen pairs would leak"
        )
