"""The maximum-inner-product to nearest-neighbour transform, and the cosine normalisation.

Graph indexes (HNSW) find nearest neighbours under a metric; a user -> item recommendation wants
the items of largest inner product ``q . x``, which is not a metric (an item is not its own best
match, long vectors win everywhere). The standard reduction (Bachrach et al. 2014, "Speeding up
the Xbox recommender system using a Euclidean transformation for inner-product spaces") appends one
coordinate so that every item lands on one sphere::

    item  x  ->  x' = (x, sqrt(M^2 - ||x||^2)) / M        M >= max ||x|| over the catalog
    query q  ->  q' = (q / ||q||, 0)

Every ``x'`` has norm 1 and ``q' . x' = (q . x) / (M ||q||)``: for a fixed query a positive
multiple of the inner product, so the order by ``q' . x'`` (equivalently by cosine, or by L2
distance, all three agree on the unit sphere) is the inner-product order. The inner product itself
is recovered exactly as ``q' . x' * M * ||q||``. Scaling by ``1 / M`` and normalising the query
change no order; they put items and queries on the same unit sphere, where the graph was built, so
the search behaves like a plain cosine search.

``M`` must bound every item ever added. An index keeps ``M`` with a headroom above the largest norm
it was built on; an item longer than ``M`` forces a rebuild with a larger ``M`` (see
:class:`~recsys.retrieval.ann.IVFIndex`).

The cosine metric (item -> item similarity) needs no extra coordinate: items and queries are
normalised, and the same unit-sphere search applies. Zero vectors stay zero (score 0 with
everything) instead of becoming NaN.
"""

from __future__ import annotations

import numpy as np


def row_norms(vectors: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row.

    Parameters
    ----------
    vectors : (n, d) float32

    Returns
    -------
    (n,) float32
    """
    v = np.asarray(vectors, dtype=np.float32)
    return np.sqrt(np.einsum("ij,ij->i", v, v, dtype=np.float64)).astype(np.float32)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm; all-zero rows stay zero.

    Parameters
    ----------
    vectors : (n, d) float32

    Returns
    -------
    (n, d) float32, a new array
    """
    v = np.asarray(vectors, dtype=np.float32)
    norms = row_norms(v)
    return v / np.where(norms > 0, norms, 1.0)[:, None]


def mips_items(vectors: np.ndarray, max_norm: float) -> np.ndarray:
    """Items on the unit sphere of ``d + 1`` dimensions: ``(x, sqrt(M^2 - ||x||^2)) / M``.

    Parameters
    ----------
    vectors : (n, d) float32
        Item vectors, every norm ``<= max_norm`` (rounding of a few ulp is tolerated).
    max_norm : float
        ``M``, the bound on item norms the index was built with.

    Returns
    -------
    (n, d + 1) float32, every row of norm 1

    Raises
    ------
    ValueError
        When an item is longer than ``max_norm`` (the caller must rebuild with a larger bound).
    """
    v = np.asarray(vectors, dtype=np.float32)
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norms = row_norms(v).astype(np.float64)
    if len(norms) and norms.max() > max_norm * (1 + 1e-6):
        raise ValueError(f"an item of norm {norms.max():.6g} exceeds the index bound {max_norm:.6g}")
    extra = np.sqrt(np.maximum(max_norm**2 - norms**2, 0.0))
    out = np.empty((len(v), v.shape[1] + 1), dtype=np.float32)
    out[:, :-1] = v / max_norm
    out[:, -1] = extra / max_norm
    return out


def mips_queries(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Queries on the unit sphere of ``d + 1`` dimensions: ``(q / ||q||, 0)``, and their norms.

    Parameters
    ----------
    queries : (q, d) float32

    Returns
    -------
    transformed : (q, d + 1) float32 (a zero query stays zero)
    norms : (q,) float32, ``||q||``, to turn ``q' . x'`` back into ``q . x``
    """
    q = np.asarray(queries, dtype=np.float32)
    norms = row_norms(q)
    out = np.zeros((len(q), q.shape[1] + 1), dtype=np.float32)
    out[:, :-1] = q / np.where(norms > 0, norms, 1.0)[:, None]
    return out, norms
