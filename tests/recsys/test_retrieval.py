"""Vector retrieval: exact and IVF indexes behind one interface, on tiny clustered data."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.errors import BundleError, ConfigError, DataError, NotFittedError
from recsys.retrieval import (
    EXACT_MAX_ITEMS,
    ExactIndex,
    IVFIndex,
    VectorIndex,
    build_index,
    load_index,
)
from recsys.retrieval.transform import mips_items, mips_queries, normalize_rows, row_norms

N, D, K = 3000, 16, 20


def _clustered(n: int, d: int, seed: int, clusters: int = 30) -> np.ndarray:
    """Clustered vectors with spread norms, like ALS factors."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, d))
    return (x * rng.lognormal(0, 0.3, (n, 1))).astype(np.float32)


@pytest.fixture(scope="module")
def items() -> np.ndarray:
    return _clustered(N, D, seed=0)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return _clustered(50, D, seed=1)


def _brute(items: np.ndarray, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every score, full sort (score descending, id ascending)."""
    x, q = (normalize_rows(items), normalize_rows(queries)) if metric == "cos" else (items, queries)
    s = q.astype(np.float64) @ x.T.astype(np.float64)
    order = np.lexsort((np.broadcast_to(np.arange(len(x)), s.shape), -s), axis=1)[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth)]))


# ---------------------------------------------------------------------------- exact
@pytest.mark.parametrize("metric", ["ip", "cos"])
def test_exact_equals_brute_force(items, queries, metric):
    idx, scores = ExactIndex(metric).build(items).search(queries, K)
    ref_idx, ref_scores = _brute(items, queries, K, metric)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    assert idx.dtype == np.int64 and scores.dtype == np.float32


def test_exact_batches_equal_single_queries(items, queries, monkeypatch):
    import recsys.retrieval.exact as exact

    index = ExactIndex("ip").build(items)
    whole = index.search(queries, K)
    monkeypatch.setattr(exact, "MAX_BLOCK_CELLS", 3 * N)  # three queries a block
    blocked = index.search(queries, K)
    single = [index.search(queries[i : i + 1], K) for i in range(len(queries))]
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_array_equal(whole[0], np.concatenate([s[0] for s in single]))


def test_ties_are_ordered_by_id():
    vecs = np.ones((6, 3), dtype=np.float32)
    index = ExactIndex("ip").build(vecs, ids=np.array([50, 10, 40, 20, 30, 60]))
    idx, scores = index.search(vecs[:1], 6)
    assert idx[0].tolist() == [10, 20, 30, 40, 50, 60]
    assert np.all(scores == 3)
    idx, _ = index.search(vecs[:1], 4)  # which tied items make the cut is unspecified, their order is not
    assert idx[0].tolist() == sorted(idx[0].tolist())


# ---------------------------------------------------------------------------- IVF
@pytest.mark.parametrize("metric", ["ip", "cos"])
def test_ivf_recall_on_small_data(items, queries, metric):
    truth, _ = _brute(items, queries, K, metric)
    index = IVFIndex(metric, nlist=32, nprobe=16).build(items)  # a high share of lists
    found, scores = index.search(queries, K)
    assert _recall(found, truth) >= 0.95
    # scores are the true inner products / cosines of the returned items
    x, q = (normalize_rows(items), normalize_rows(queries)) if metric == "cos" else (items, queries)
    true_scores = np.einsum("qd,qkd->qk", q, x[found])
    np.testing.assert_allclose(scores, true_scores, rtol=1e-4, atol=1e-4)


def test_ivf_with_every_list_probed_is_exact(items, queries):
    index = IVFIndex("ip", nlist=16, nprobe=16).build(items)
    found, _ = index.search(queries, K)
    np.testing.assert_array_equal(found, _brute(items, queries, K, "ip")[0])


# ---------------------------------------------------------------------------- MIPS transform
def test_mips_transform_preserves_inner_product_order(items, queries):
    m = float(row_norms(items).max()) * 1.2
    xt = mips_items(items, m)
    qt, qn = mips_queries(queries)
    np.testing.assert_allclose(row_norms(xt), 1.0, rtol=1e-5)  # every item on the unit sphere
    assert np.all(qt[:, -1] == 0)
    ip = queries @ items.T
    np.testing.assert_allclose((qt @ xt.T) * m * qn[:, None], ip, rtol=1e-4, atol=1e-4)
    # on the sphere, nearest in L2 == largest inner product
    l2 = ((qt[:, None, :] - xt[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(np.argsort(l2, axis=1)[:, :K], np.argsort(-ip, axis=1)[:, :K])


def test_mips_transform_rejects_items_beyond_the_bound(items):
    with pytest.raises(ValueError, match="exceeds the index bound"):
        mips_items(items, float(row_norms(items).max()) / 2)


def test_zero_vectors_stay_finite():
    z = np.zeros((2, 4), dtype=np.float32)
    assert np.all(normalize_rows(z) == 0)
    qt, qn = mips_queries(z)
    assert np.all(qt == 0) and np.all(qn == 0)


# ---------------------------------------------------------------------------- growth
@pytest.mark.parametrize("kind", [ExactIndex, IVFIndex])
def test_add_then_search_finds_new_items(kind, items, queries):
    index = kind("ip").build(items)
    # a new item pointing exactly along each of two queries, within the MIPS bound
    new = normalize_rows(queries[:2]) * float(row_norms(items).max())
    index.add(new, np.array([N + 100, N + 101]))
    assert len(index) == N + 2
    idx, scores = index.search(queries[:2], 5)
    assert idx[0, 0] == N + 100 and idx[1, 0] == N + 101
    with pytest.raises(DataError, match="already in the index"):
        index.add(new[:1], np.array([N + 100]))


def test_ivf_add_beyond_the_bound_rebuilds(items, queries):
    index = IVFIndex("ip", nlist=16, nprobe=16).build(items)
    longer = normalize_rows(queries[:1]) * float(row_norms(items).max()) * 3
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        index.add(longer, np.array([N]))
    assert index.max_norm_ >= 3 * float(row_norms(items).max())
    all_items = np.concatenate([items, longer])
    np.testing.assert_array_equal(index.search(queries, K)[0], _brute(all_items, queries, K, "ip")[0])


# ---------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("kind,metric", [(ExactIndex, "ip"), (IVFIndex, "ip"), (IVFIndex, "cos")])
def test_save_load_round_trip(kind, metric, items, queries, tmp_path):
    ids = np.arange(N) * 7 + 3  # ids need not be dense
    index = kind(metric).build(items, ids)
    files = index.save(tmp_path / "idx")
    assert {p.name for p in files} >= {"index.json", "ids.npy"}
    for p in files:
        assert p.is_file()
        if p.suffix == ".npy":
            np.load(p, allow_pickle=False)  # plain arrays, no pickle
    loaded = load_index(tmp_path / "idx")
    assert type(loaded) is kind and loaded.metric == metric and len(loaded) == N
    a, b = index.search(queries, K), loaded.search(queries, K)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1])
    assert set(a[0].ravel()) <= set(ids.tolist())
    loaded.add(items[:1] * 0.5, np.array([10**9]))  # a loaded index still grows
    assert len(loaded) == N + 1


def test_load_reports_broken_directories(items, tmp_path):
    with pytest.raises(BundleError, match="not a saved vector index"):
        VectorIndex.load(tmp_path)
    d = tmp_path / "idx"
    IVFIndex("ip").build(items).save(d)
    (d / "ivf.faiss").unlink()
    with pytest.raises(BundleError, match="missing"):
        VectorIndex.load(d)
    manifest = json.loads((d / "index.json").read_text())
    (d / "index.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(BundleError, match="version"):
        VectorIndex.load(d)


# ---------------------------------------------------------------------------- exclusion
@pytest.mark.parametrize("kind", [ExactIndex, IVFIndex])
def test_excluded_items_are_never_returned(kind, items, queries):
    index = kind("ip").build(items)
    truth, _ = _brute(items, queries, 300, "ip")
    # exclude each query's own 150 best items plus random others: the hardest case for over-fetch
    rng = np.random.default_rng(2)
    seen = [np.union1d(truth[r, :150], rng.choice(N, 200, replace=False)) for r in range(len(queries))]
    rows = np.repeat(np.arange(len(queries)), [len(s) for s in seen])
    csr = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, np.concatenate(seen))), shape=(len(queries), N))
    for exclude in (seen, csr):
        idx, scores = index.search(queries, K, exclude=exclude)
        for r in range(len(queries)):
            assert not np.isin(idx[r], seen[r]).any()
            assert (idx[r] >= 0).all() and len(set(idx[r].tolist())) == K
        assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    if kind is ExactIndex:  # exact: the best non-excluded items, exactly
        for r in range(len(queries)):
            expected = truth[r][~np.isin(truth[r], seen[r])][:K]
            np.testing.assert_array_equal(idx[r], expected)


def test_ivf_short_rows_are_searched_again():
    # two far-apart clusters; the query sits in the first, whose items are all excluded, so the
    # lists a single probe scans hold nothing eligible: the index must widen to find k items
    rng = np.random.default_rng(3)
    a = rng.normal([10.0, 0, 0, 0], 0.1, (200, 4)).astype(np.float32)
    b = rng.normal([0, 10.0, 0, 0], 0.1, (200, 4)).astype(np.float32)
    index = IVFIndex("ip", nlist=2, nprobe=1).build(np.concatenate([a, b]))
    idx, _ = index.search(a[:1], 10, exclude=[np.arange(200)])
    assert (idx[0] >= 200).all() and len(set(idx[0].tolist())) == 10


@pytest.mark.parametrize("kind", [ExactIndex, IVFIndex])
def test_k_larger_than_the_catalog_pads(kind, items, queries):
    small = items[:30]
    index = kind("ip", **({"nlist": 2} if kind is IVFIndex else {})).build(small)
    idx, scores = index.search(queries[:3], 50, exclude=[np.array([0, 1]), None, np.array([], dtype=int)])
    assert idx.shape == (3, 50)
    assert (idx[0] >= 0).sum() == 28 and (idx[1] >= 0).sum() == 30
    assert np.all(idx[:, 30:] == -1) and np.all(np.isneginf(scores[:, 30:]))
    assert set(idx[1, :30].tolist()) == set(range(30))


# ---------------------------------------------------------------------------- errors and choice
def test_empty_index_errors_clearly(items):
    for kind in (ExactIndex, IVFIndex):
        with pytest.raises(NotFittedError, match="call build"):
            kind("ip").search(items[:1], 5)
        with pytest.raises(NotFittedError, match="call build"):
            kind("ip").add(items[:1], np.array([0]))
        with pytest.raises(DataError, match="0 vectors"):
            kind("ip").build(np.empty((0, D), dtype=np.float32))
    index = ExactIndex("ip").build(items)
    with pytest.raises(DataError, match="columns"):
        index.search(items[:1, :4], 5)
    with pytest.raises(ConfigError, match="k must be"):
        index.search(items[:1], 0)
    with pytest.raises(DataError, match="one array of ids per query"):
        index.search(items[:2], 5, exclude=np.array([1, 2]))
    with pytest.raises(DataError, match="NaN"):
        ExactIndex("ip").build(np.full((2, 3), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="unique"):
        ExactIndex("ip").build(items[:2], ids=np.array([4, 4]))
    with pytest.raises(ConfigError, match="metric"):
        ExactIndex("l2")


def test_build_index_chooses_exact_below_the_threshold(items):
    assert N < EXACT_MAX_ITEMS
    assert isinstance(build_index(items), ExactIndex)
    assert isinstance(build_index(items, exact=False, nlist=8), IVFIndex)
    assert isinstance(build_index(items, metric="cos", exact=True), ExactIndex)


def test_search_does_not_warn(items, queries):
    index = IVFIndex("ip", nlist=4, nprobe=1).build(items[:200])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index.search(queries, 500, exclude=[np.arange(50)] * len(queries))


def test_heavy_exclusions_split_the_batch_without_changing_results(items, queries, monkeypatch):
    import recsys.retrieval.index as index_module

    index = ExactIndex("ip").build(items)
    rng = np.random.default_rng(4)
    seen = [rng.choice(N, int(s), replace=False) for s in rng.integers(0, 2000, len(queries))]
    whole = index.search(queries, K, exclude=seen)
    monkeypatch.setattr(index_module, "_FETCH_CELLS", 3000)  # about one query a backend call
    groups = index_module._chunks([K + len(s) for s in seen])
    assert len(groups) > len(queries) // 2
    np.testing.assert_array_equal(np.concatenate(groups), np.arange(len(queries)))
    split = index.search(queries, K, exclude=seen)
    np.testing.assert_array_equal(whole[0], split[0])


def test_similar_items_by_cosine_exclude_the_query_item(items):
    # item -> item: the query item is its own best match until excluded
    exact = ExactIndex("cos").build(items)
    ivf = IVFIndex("cos", nlist=16, nprobe=16).build(items)  # every list: exact
    probe = np.array([5, 17, 2999])
    own = [np.array([i]) for i in probe]
    assert exact.search(items[probe], 1)[0][:, 0].tolist() == probe.tolist()
    a, b = exact.search(items[probe], K, exclude=own), ivf.search(items[probe], K, exclude=own)
    assert not np.isin(probe, a[0]).any()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    assert np.all(a[1] <= 1 + 1e-5)
