"""Approximate retrieval: a faiss IVF-Flat index over MIPS-transformed vectors.

Why faiss IVF-Flat
------------------
Measured with ``python bench/bench_ann.py --items 100000 --factors 128 --compare`` on the
synthetic ALS-like catalog of ``bench/bench_ann.py`` (clustered low-rank factors, lognormal norms),
1,000 queries, recall@100 against exact, builds on 2 threads, one thread per query, on a shared
2-core machine (timings noisy: a repeat moved build times by up to 2x):

============================================  =========  ===========  =========
index (all on the MIPS-transformed vectors)    build (s)  recall@100   ms/query
============================================  =========  ===========  =========
hnswlib 0.8 HNSW M=16 efC=200, ef=400          38         0.74         0.73
faiss 1.15 HNSW M=16 efC=200, ef=400           43         0.76         1.06
usearch 2.26 HNSW M=16 efC=200, ef=400         54         0.66         0.93
faiss 1.15 IVF-Flat nlist=1264, nprobe=16      37         0.989        0.08
faiss 1.15 IVF-Flat nlist=1264, nprobe=32      37         0.998        0.26
============================================  =========  ===========  =========

(exact: 8 ms a query, one thread.) The three HNSW libraries agree with each other, and all fail
at inner-product search with the transform: most items (those shorter than the longest) sit near
the pole of the added coordinate while every query lies on the equator, so all items are almost
equally far from a query and the greedy graph walk stops early (ef=100: 0.45-0.52; HNSW on the raw
inner product, without the transform, reached 0.70 at ef=400 in a side run). IVF has no greedy
walk: it scores a query against ``nlist`` centroids (spherical k-means on the unit sphere), scans
the ``nprobe`` best lists exactly, and its recall depends only on how many true neighbours fall in
those lists. The transform matters for IVF too (without it, nprobe=16 gives 0.85 instead of
0.989): on the sphere, clusters group items by direction *and* norm. faiss is also actively
maintained (Meta), its index file is a plain binary file, IVF grows without a rebuild (a new item
joins its nearest list), and an exhaustive search (``nprobe = nlist``) is exact, which guarantees
full result lists after filtering.

Costs
-----
Memory ``n * (d + 1) * 4`` bytes (the vectors, uncompressed) + 8 bytes an id + ``nlist`` centroids.
Build: k-means on ``64 * nlist`` sampled items (10 iterations) and one assignment pass over all.
Threads: faiss uses OpenMP and its own BLAS for training and batch search; limit both with
``threadpoolctl.threadpool_limits`` (the index never changes thread settings itself). A single
query runs on one thread whatever the limit.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import BundleError, ConfigError
from recsys.retrieval.index import VectorIndex
from recsys.retrieval.transform import mips_items, mips_queries, normalize_rows, row_norms

# training points per centroid: faiss warns below 39; more points barely move the centroids
TRAIN_PER_LIST = 64
# items transformed and added per faiss call, so the (d + 1)-column copy stays small
_ADD_CHUNK = 65_536
INDEX_FILE = "ivf.faiss"


def default_nlist(n: int) -> int:
    """Inverted lists for ``n`` items: ``4 sqrt(n)`` (faiss's guideline), >= 39 items a list.

    At 1M x 256 (bench/bench_ann.py), 4000 lists beat 2000 at every nprobe (recall@100 0.982 vs
    0.969 at nprobe 16) and scan half as many items a query, for a build ~2.5x longer (k-means and
    assignment both grow with ``nlist``).
    """
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def default_nprobe(nlist: int) -> int:
    """Lists scanned per query: 64 (all of them when fewer).

    Measured on the synthetic catalog with ``nlist = 4 sqrt(n)`` (bench/bench_ann.py):

    - 256 factors, recall@100: nprobe 16 gives 0.970 / 0.988 / 0.982 at 20k / 100k / 1M items,
      nprobe 32 gives 0.996 / 0.997 / 0.990;
    - 64 factors, recall@10 (a served list) at 1M items: nprobe 16 / 32 / 64 / 128 give 0.877 /
      0.933 / 0.972 / 0.991, at 0.17 / 0.39 / 0.65 / 0.82 ms a query (exact: ~27 ms).

    Fewer factors and shorter lists need more lists scanned: 32 missed the 0.95 target for a
    top-10 at 1M x 64 (0.933 offline, 0.930 over HTTP in bench/bench_ann_serving.py); 64 keeps a
    margin at 1M items for a fraction of a millisecond more, still 40x faster than exact.
    """
    return min(nlist, 64)


class IVFIndex(VectorIndex):
    """faiss IVF-Flat over unit-sphere vectors: inner product (MIPS transform) or cosine.

    Parameters
    ----------
    metric : {"ip", "cos"}
    nlist : int, optional
        Inverted lists (k-means centroids); default :func:`default_nlist` of the build size.
    nprobe : int, optional
        Lists scanned per query (recall vs speed); default :func:`default_nprobe`. A query that
        comes back short after filtering is retried with 4x as many, up to all of them (exact).
        The effective value is ``nprobe_``, which may be changed after build.
    headroom : float
        ``"ip"`` only: the MIPS bound is ``headroom`` x the longest item at build, so items added
        later may be that much longer before the index must be rebuilt (done automatically, with
        a warning).
    seed : int
        Seed of the training sample and of k-means.

    Attributes
    ----------
    max_norm_ : float
        The MIPS bound ``M`` (``"ip"``), see :mod:`recsys.retrieval.transform`.
    trained_n_ : int
        Items the centroids were trained on. Lists grow with :meth:`add`; once the index holds
        several times ``trained_n_`` items, rebuild it (queries slow down as lists lengthen, and
        the centroids may no longer fit the new items).
    """

    kind = "ivf"

    def __init__(
        self,
        metric: str = "ip",
        nlist: int | None = None,
        nprobe: int | None = None,
        headroom: float = 1.1,
        seed: int = 0,
    ) -> None:
        super().__init__(metric)
        if nlist is not None and nlist < 1:
            raise ConfigError(f"nlist must be >= 1, got {nlist}")
        if nprobe is not None and nprobe < 1:
            raise ConfigError(f"nprobe must be >= 1, got {nprobe}")
        if headroom < 1:
            raise ConfigError(f"headroom must be >= 1, got {headroom}")
        self.nlist = nlist
        self.nprobe = nprobe
        self.headroom = headroom
        self.seed = seed

    # ------------------------------------------------------------------ backend
    def _build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        faiss = _faiss()
        n, d = vectors.shape
        nlist = min(self.nlist or default_nlist(n), n)
        if self.metric == "ip":
            longest = float(row_norms(vectors).max())
            self.max_norm_ = self.headroom * longest if longest > 0 else 1.0
        dim = d + 1 if self.metric == "ip" else d
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.seed
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(n, min(n, TRAIN_PER_LIST * nlist), replace=False))
        index.train(self._transform_items(vectors[sample]))
        self._index, self._quantizer = index, quantizer  # the quantizer must outlive the index
        self.nlist_, self.nprobe_ = nlist, self.nprobe or default_nprobe(nlist)
        self.trained_n_ = n
        self._insert(vectors, ids)

    def _add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if self.metric == "ip" and float(row_norms(vectors).max()) > self.max_norm_:
            # the MIPS bound no longer holds: every item moves on the sphere, so rebuild
            warnings.warn(
                f"an added item is longer than the index's MIPS bound {self.max_norm_:.4g}: "
                f"rebuilding the IVF index over {self._index.ntotal + len(vectors)} items "
                "(build with a larger headroom= to avoid this)", RuntimeWarning, stacklevel=3)
            old_v, old_ids = self._stored()
            self._build(np.concatenate([old_v, vectors]), np.concatenate([old_ids, ids]))
            return
        self._insert(vectors, ids)

    def _search(self, queries: np.ndarray, k: int, effort: int) -> tuple[np.ndarray, np.ndarray, bool]:
        faiss = _faiss()
        nprobe = min(self.nlist_, self.nprobe_ * 4**effort)
        if self.metric == "ip":
            q, norms = mips_queries(queries)
        else:
            q = normalize_rows(queries)
        dist, ids = self._index.search(q, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
        missing = ids < 0
        dist[missing] = 0  # faiss pads with -FLT_MAX, which would overflow the product below
        # faiss returns q'.x'; the inner product is q'.x' * M * ||q|| (see transform.py)
        scores = dist * np.float32(self.max_norm_) * norms[:, None] if self.metric == "ip" else dist
        scores[missing] = -np.inf
        return ids, scores, nprobe >= self.nlist_

    def _save(self, directory: Path) -> list[Path]:
        faiss = _faiss()
        faiss.write_index(self._index, str(directory / INDEX_FILE))
        return [directory / INDEX_FILE]

    def _load(self, directory: Path, params: dict[str, Any]) -> None:
        faiss = _faiss()
        index = faiss.read_index(str(directory / INDEX_FILE))
        dim = self.dim_ + 1 if self.metric == "ip" else self.dim_
        if index.d != dim or index.nlist != params["nlist"]:
            raise BundleError(f"{directory / INDEX_FILE}: a {index.d}-d index of {index.nlist} lists, "
                              f"the manifest says {dim}-d and {params['nlist']} lists")
        self._index = index
        self.nlist_, self.nprobe_ = int(params["nlist"]), int(params["nprobe"])
        self.trained_n_ = int(params["trained_n"])
        if self.metric == "ip":
            self.max_norm_ = float(params["max_norm"])

    def _params(self) -> dict[str, Any]:
        # the constructor's settings (None = derive from the catalog size at the next build) and
        # the values in use, so a loaded index rebuilds exactly as the original would
        settings = {"nlist": self.nlist, "nprobe": self.nprobe, "headroom": self.headroom, "seed": self.seed}
        out = {"settings": settings, "nlist": self.nlist_, "nprobe": self.nprobe_,
               "trained_n": self.trained_n_, "faiss_version": _faiss().__version__}
        if self.metric == "ip":
            out["max_norm"] = self.max_norm_
        return out

    @classmethod
    def _init_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        return dict(params["settings"])

    def _size(self) -> int:
        return int(self._index.ntotal)

    # ------------------------------------------------------------------ helpers
    def _transform_items(self, vectors: np.ndarray) -> np.ndarray:
        return mips_items(vectors, self.max_norm_) if self.metric == "ip" else normalize_rows(vectors)

    def _insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        for s in range(0, len(vectors), _ADD_CHUNK):
            self._index.add_with_ids(self._transform_items(vectors[s : s + _ADD_CHUNK]), ids[s : s + _ADD_CHUNK])

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """Every stored item back in the caller's space: ``(vectors (n, d), ids (n,))``.

        Only for ``"ip"``, where the stored ``x' = (x, extra) / M`` gives ``x = x'[:d] * M``.
        """
        from faiss.contrib.inspect_tools import get_invlist

        invlists = self._index.invlists
        vecs, ids = [], []
        for lst in range(self.nlist_):
            list_ids, codes = get_invlist(invlists, lst)
            ids.append(list_ids)
            vecs.append(codes.view(np.float32).reshape(len(list_ids), -1)[:, :-1] * np.float32(self.max_norm_))
        return np.concatenate(vecs), np.concatenate(ids)


def _faiss():
    """faiss, imported on first use (a heavy import: the core must start fast)."""
    import faiss

    return faiss
