"""The one interface of vector retrieval: :class:`VectorIndex`.

An index holds item vectors under integer ids and answers top-``k`` queries under one of two
metrics:

- ``"ip"``: maximum inner product, ``score = q . x`` (user -> item with ALS factors);
- ``"cos"``: cosine similarity, ``score = q . x / (||q|| ||x||)`` (item -> item similar items,
  content and cold-start candidates).

Subclasses (:class:`~recsys.retrieval.exact.ExactIndex`, :class:`~recsys.retrieval.ann.IVFIndex`)
store vectors and return raw candidates; this base class owns what must behave the same for all of
them: input checks, seen-item exclusion, padding, deterministic order and the on-disk manifest.

Exclusion works by over-fetching: a query that must skip ``s`` items asks the backend for
``k + s`` candidates (a backend's top ``k + s`` keeps at least ``k`` once the ``s`` are removed) and
drops the excluded ones. A row that still comes back short while the index holds enough eligible
items is asked again with more effort (:meth:`VectorIndex._search` ``effort``), up to an exhaustive
search, so a result never contains an excluded item and has ``k`` entries whenever the index holds
``k`` eligible ones. Rows are padded with id ``-1`` and score ``-inf`` otherwise.

Files
-----
``save(dir)`` writes plain files only (``index.json``, ``.npy`` arrays without pickle, the
backend's own binary format), so a bundle can checksum each of them.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recsys.errors import BundleError, ConfigError, DataError, NotFittedError

METRICS = ("ip", "cos")
MANIFEST = "index.json"
FORMAT = "avrec-vector-index"
FORMAT_VERSION = 1

# queries per backend call, and candidate cells (queries x (k + most excluded)) per call: a user
# who has seen 100k items must not make the whole batch fetch 100k candidates a query
_QUERY_CHUNK = 1024
_FETCH_CELLS = 4 * 1024 * 1024

Exclude = sp.spmatrix | sp.sparray | Sequence[np.ndarray] | None


def read_manifest(path: Path, fmt: str, version: int, missing: str) -> dict[str, Any]:
    """The JSON manifest at ``path``, checked to be format ``fmt`` version ``version``.

    Raises
    ------
    BundleError
        No such file (the message ends with ``missing``), invalid JSON, or another format or version.
    """
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path} not found: {missing}") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{path} is not valid JSON ({e})") from None
    if manifest.get("format") != fmt or manifest.get("format_version") != version:
        raise BundleError(f"{path}: expected {fmt} version {version}, got "
                          f"{manifest.get('format')} version {manifest.get('format_version')}")
    return manifest


class VectorIndex:
    """Top-``k`` retrieval of item vectors by inner product or cosine.

    Parameters
    ----------
    metric : {"ip", "cos"}
        ``"ip"`` ranks by ``q . x``; ``"cos"`` by the cosine of the angle.

    Attributes
    ----------
    ids_ : (n,) int64
        Item ids in insertion order (set by :meth:`build`, grown by :meth:`add`).
    dim_ : int
        Vector length ``d``.
    """

    #: short name written to the manifest; :meth:`load` dispatches on it
    kind: ClassVar[str] = "base"
    _kinds: ClassVar[dict[str, str]] = {
        "exact": "recsys.retrieval.exact:ExactIndex",
        "ivf": "recsys.retrieval.ann:IVFIndex",
    }

    def __init__(self, metric: str = "ip") -> None:
        if metric not in METRICS:
            raise ConfigError(f"metric must be one of {METRICS}, got {metric!r}")
        self.metric = metric

    # ------------------------------------------------------------------ public API
    def build(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> "VectorIndex":
        """Index ``vectors`` under ``ids``, replacing any previous content.

        Parameters
        ----------
        vectors : (n, d) float32
            Item vectors (other float dtypes are cast to float32); n >= 1, all finite.
        ids : (n,) int, optional
            Unique non-negative item ids; default ``0..n-1`` (dense item indices).

        Returns
        -------
        self
        """
        v = _as_vectors(vectors, None, "build")
        if len(v) == 0:
            raise DataError("cannot build an index of 0 vectors: pass at least one item vector")
        ids_ = _as_ids(np.arange(len(v)) if ids is None else ids, len(v))
        self.dim_ = v.shape[1]
        self._build(v, ids_)
        self.ids_ = ids_
        self._sorted_ids = np.sort(ids_)
        return self

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> "VectorIndex":
        """Add items (newly registered ones) to a built index.

        Parameters
        ----------
        vectors : (m, d) float32
        ids : (m,) int
            New ids: unique, non-negative and not already in the index.

        Returns
        -------
        self
        """
        self._check_built()
        v = _as_vectors(vectors, self.dim_, "add")
        new = _as_ids(ids, len(v))
        if len(new) == 0:
            return self
        pos = np.searchsorted(self._sorted_ids, new)
        clash = (pos < len(self._sorted_ids)) & (self._sorted_ids[np.minimum(pos, len(self._sorted_ids) - 1)] == new)
        if clash.any():
            raise DataError(f"ids already in the index: {new[clash][:5].tolist()}; ids must be new in add()")
        self._add(v, new)
        self.ids_ = np.concatenate([self.ids_, new])
        self._sorted_ids = np.sort(self.ids_)
        return self

    def search(
        self, queries: np.ndarray, k: int, exclude: Exclude = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for each query, best first.

        Parameters
        ----------
        queries : (q, d) float32
            User vectors (``"ip"``) or item vectors (``"cos"``).
        k : int
            List length, >= 1; may exceed the number of items (rows are padded).
        exclude : CSR (q, >= max id + 1) or sequence of q int arrays, optional
            Item ids never to return for each query (the user's seen items, the query item
            itself): the column indices of each CSR row's stored entries, or one array per query.

        Returns
        -------
        idx : (q, k) int64
            Item ids, ``-1`` where fewer than ``k`` eligible items exist.
        scores : (q, k) float32
            ``q . x`` (``"ip"``) or cosine (``"cos"``); ``-inf`` at padded positions. Tied items
            are listed by id, ascending (which of several items tied at the cut-off make the list
            is unspecified).
        """
        self._check_built()
        q = _as_vectors(queries, self.dim_, "search")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {k!r}")
        k = int(k)
        excl = _exclusions(exclude, len(q))
        out_idx = np.full((len(q), k), -1, dtype=np.int64)
        out_val = np.full((len(q), k), -np.inf, dtype=np.float32)
        n = len(self.ids_)
        for rows in _chunks([min(n, k + len(e)) for e in excl]):
            effort = 0
            while len(rows):
                fetch = min(n, k + max(len(excl[r]) for r in rows))
                ids, vals, exhaustive = self._search(q[rows], fetch, effort)
                if not any(len(excl[r]) for r in rows) and (ids[:, : min(k, n)] >= 0).all():
                    # the common case, vectorised: nothing to drop, every row full
                    ids, vals = ids[:, :k], vals[:, :k]
                    order = np.lexsort((ids, -vals), axis=1)
                    out_idx[rows, : ids.shape[1]] = np.take_along_axis(ids, order, axis=1)
                    out_val[rows, : ids.shape[1]] = np.take_along_axis(vals, order, axis=1)
                    break
                short = []
                for j, r in enumerate(rows):
                    keep = ids[j] >= 0
                    if len(excl[r]):
                        keep &= ~np.isin(ids[j], excl[r])
                    got_i, got_v = ids[j][keep][:k], vals[j][keep][:k]
                    if len(got_i) < k and not exhaustive and len(got_i) < self._eligible(excl[r]):
                        short.append(r)  # the backend missed eligible items: ask again, harder
                        continue
                    order = np.lexsort((got_i, -got_v))
                    out_idx[r, : len(got_i)] = got_i[order]
                    out_val[r, : len(got_i)] = got_v[order]
                rows, effort = np.asarray(short, dtype=np.int64), effort + 1
        return out_idx, out_val

    def save(self, directory: str | Path) -> list[Path]:
        """Write the index to ``directory`` (created; existing index files are replaced).

        Returns
        -------
        list of Path
            The files written (``index.json`` last), each a plain file a bundle can checksum.
        """
        self._check_built()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "ids.npy", self.ids_, allow_pickle=False)
        files = [d / "ids.npy", *self._save(d)]
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
                    "metric": self.metric, "dim": int(self.dim_), "n": int(len(self.ids_)),
                    "params": self._params(), "files": sorted(p.name for p in files)}
        (d / MANIFEST).write_text(json.dumps(manifest, indent=1))
        return [*files, d / MANIFEST]

    @classmethod
    def load(cls, directory: str | Path) -> "VectorIndex":
        """Read an index written by :meth:`save`; the class comes from its manifest.

        Raises
        ------
        BundleError
            Missing files, another format or version, or contents that disagree with the manifest.
        """
        d = Path(directory)
        manifest = read_manifest(d / MANIFEST, FORMAT, FORMAT_VERSION, f"{d} is not a saved vector index")
        target = cls._kinds.get(manifest.get("kind"))
        if target is None:
            raise BundleError(f"{d / MANIFEST}: unknown index kind {manifest.get('kind')!r}")
        module, name = target.split(":")
        klass = getattr(importlib.import_module(module), name)
        for f in manifest["files"]:
            if not (d / f).is_file():
                raise BundleError(f"{d / f} is missing: the index at {d} is incomplete")
        index = klass(metric=manifest["metric"], **klass._init_params(manifest["params"]))
        index.dim_ = int(manifest["dim"])
        index.ids_ = np.load(d / "ids.npy", allow_pickle=False).astype(np.int64, copy=False)
        index._sorted_ids = np.sort(index.ids_)
        index._load(d, manifest["params"])
        if len(index.ids_) != manifest["n"] or index._size() != manifest["n"]:
            raise BundleError(f"{d}: the manifest says {manifest['n']} items, the files hold "
                              f"{len(index.ids_)} ids and {index._size()} vectors")
        return index

    def __len__(self) -> int:
        return len(self.ids_) if hasattr(self, "ids_") else 0

    # ------------------------------------------------------------------ for subclasses
    def _build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        raise NotImplementedError

    def _add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        raise NotImplementedError

    def _search(self, queries: np.ndarray, k: int, effort: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """Raw candidates: ``(ids (q, k) int64 with -1 padding, scores (q, k) float32, exhaustive)``.

        Rows are best first. ``effort`` grows (0, 1, ...) each time a row came back short of
        eligible items; ``exhaustive`` is True when the search considered every item.
        """
        raise NotImplementedError

    def _save(self, directory: Path) -> list[Path]:
        raise NotImplementedError

    def _load(self, directory: Path, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    @classmethod
    def _init_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments among the saved params."""
        return {}

    def _size(self) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def _check_built(self) -> None:
        if not hasattr(self, "ids_"):
            raise NotFittedError(f"{type(self).__name__} is empty: call build(vectors, ids) before "
                                 "add() or search(), or VectorIndex.load(dir)")

    def _eligible(self, excluded: np.ndarray) -> int:
        """How many indexed items a query excluding ``excluded`` (unique ids) may return."""
        if not len(excluded):
            return len(self._sorted_ids)
        pos = np.searchsorted(self._sorted_ids, excluded)
        inside = self._sorted_ids[np.minimum(pos, len(self._sorted_ids) - 1)] == excluded
        return len(self._sorted_ids) - int(inside.sum())


def _chunks(fetch: list[int]) -> list[np.ndarray]:
    """Consecutive query rows grouped so that ``len(group) * max(fetch in group)`` stays under
    :data:`_FETCH_CELLS` (a single query may exceed it) and no group exceeds :data:`_QUERY_CHUNK`."""
    groups, start = [], 0
    while start < len(fetch):
        stop, widest = start + 1, fetch[start]
        while stop < len(fetch) and stop - start < _QUERY_CHUNK:
            w = max(widest, fetch[stop])
            if (stop - start + 1) * w > _FETCH_CELLS:
                break
            stop, widest = stop + 1, w
        groups.append(np.arange(start, stop))
        start = stop
    return groups


def _as_vectors(vectors: Any, dim: int | None, where: str) -> np.ndarray:
    """Checked (n, d) C-contiguous float32 vectors."""
    try:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: vectors must be a numeric (n, d) array ({e})") from None
    if v.ndim != 2:
        raise DataError(f"{where}: vectors must be 2-D (n, d), got shape {v.shape}")
    if dim is not None and v.shape[1] != dim:
        raise DataError(f"{where}: vectors have {v.shape[1]} columns, the index holds {dim}-d vectors")
    if v.shape[1] == 0:
        raise DataError(f"{where}: vectors have 0 columns")
    if not np.isfinite(v).all():
        bad = int(np.flatnonzero(~np.isfinite(v).all(axis=1))[0])
        raise DataError(f"{where}: row {bad} holds NaN or inf; every vector must be finite")
    return v


def _as_ids(ids: Any, n: int) -> np.ndarray:
    """Checked (n,) int64 ids: unique and non-negative."""
    a = np.asarray(ids)
    if a.ndim != 1 or len(a) != n:
        raise DataError(f"ids must be 1-D with one id per vector ({n}), got shape {a.shape}")
    if len(a) and not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"ids must be integers (dense item indices), got dtype {a.dtype}")
    a = a.astype(np.int64)
    if len(a) and a.min() < 0:
        raise DataError(f"ids must be >= 0, got {int(a.min())}")
    if len(np.unique(a)) != len(a):
        raise DataError("ids must be unique")
    return a


def _exclusions(exclude: Exclude, n_queries: int) -> list[np.ndarray]:
    """One sorted unique int64 array of excluded ids per query."""
    empty = np.empty(0, dtype=np.int64)
    if exclude is None:
        return [empty] * n_queries
    if sp.issparse(exclude):
        m = sp.csr_matrix(exclude)
        if m.shape[0] != n_queries:
            raise DataError(f"exclude has {m.shape[0]} rows for {n_queries} queries")
        return [np.unique(m.indices[m.indptr[r] : m.indptr[r + 1]]).astype(np.int64) for r in range(n_queries)]
    if isinstance(exclude, np.ndarray) and exclude.ndim == 1 and exclude.dtype != object:
        # ambiguous (one id per query, or one query's ids?): ask for the explicit form
        raise DataError("exclude must hold one array of ids per query, e.g. [ids] for a single query")
    if len(exclude) != n_queries:
        raise DataError(f"exclude has {len(exclude)} entries for {n_queries} queries")
    out = []
    for r, e in enumerate(exclude):
        a = np.asarray(e if e is not None else empty)
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise DataError(f"exclude[{r}] must hold integer ids, got dtype {a.dtype}")
        out.append(np.unique(a.astype(np.int64).ravel()))
    return out
