"""Vector retrieval behind one interface: exact brute force and approximate (faiss IVF).

:class:`VectorIndex` is the interface (``build``, ``add``, ``search`` with seen-item exclusion,
``save``/``load``); :class:`ExactIndex` and :class:`IVFIndex` implement it. :func:`build_index`
picks one: exact below :data:`EXACT_MAX_ITEMS` items or when asked (``exact=True``), approximate
above. Metrics: ``"ip"`` (user -> item, maximum inner product through the transform of
:mod:`recsys.retrieval.transform`) and ``"cos"`` (item -> item, content and cold candidates).

The index classes know nothing about models, bundles or ids beyond integer item indices;
:mod:`recsys.retrieval.model_index` gives a fitted model its indexes (:func:`attach`: the one place
that decides exact vs approximate), grows them with the catalog, and saves and loads them for
bundles.
"""

from __future__ import annotations

import numpy as np

from recsys.retrieval.ann import IVFIndex
from recsys.retrieval.exact import ExactIndex
from recsys.retrieval.index import METRICS, VectorIndex

# Below this many items exact search is the default. Measured (bench/bench_ann.py, one thread, a
# shared 2-core machine): an exact query takes 0.3 ms at 20k x 64, ~8 ms at 100k x 128 and
# 90-250 ms at 1M x 256. At 100k it is already a third of the serving p99 budget (25 ms), while
# IVF answers in ~0.1-0.3 ms at recall@100 0.99 after a ~40 s build: there the index pays. Below,
# exact is fast enough, needs no build and loses nothing.
EXACT_MAX_ITEMS = 100_000


def build_index(
    vectors: np.ndarray,
    ids: np.ndarray | None = None,
    metric: str = "ip",
    exact: bool | None = None,
    **ann_params,
) -> VectorIndex:
    """Build the index that fits the catalog: exact when small or asked, else IVF.

    Parameters
    ----------
    vectors : (n, d) float32
    ids : (n,) int, optional
        Item ids (default ``0..n-1``).
    metric : {"ip", "cos"}
    exact : bool, optional
        True forces exact search, False forces the approximate index; None (default) chooses
        exact below :data:`EXACT_MAX_ITEMS` items.
    **ann_params
        :class:`IVFIndex` settings (``nlist``, ``nprobe``, ``headroom``, ``seed``).

    Returns
    -------
    VectorIndex
    """
    use_exact = len(vectors) < EXACT_MAX_ITEMS if exact is None else exact
    index = ExactIndex(metric) if use_exact else IVFIndex(metric, **ann_params)
    return index.build(vectors, ids)


def load_index(directory) -> VectorIndex:
    """Read an index written by :meth:`VectorIndex.save` (exact or approximate)."""
    return VectorIndex.load(directory)


# last: attach builds on build_index and load_index above
from recsys.retrieval.model_index import ItemIndexes, attach, current_index, decide, grow  # noqa: E402

__all__ = ["EXACT_MAX_ITEMS", "METRICS", "ExactIndex", "IVFIndex", "ItemIndexes", "VectorIndex", "attach",
           "build_index", "current_index", "decide", "grow", "load_index"]
