"""Tests for recsys.metrics: hand-worked examples, brute-force references and properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.errors import DataError
from recsys.metrics import (
    METRICS,
    auc_counts,
    auc_per_user,
    catalog_coverage,
    f1_at_k,
    gini_index,
    global_auc,
    hit_matrix,
    hit_rate_at_k,
    intra_list_diversity,
    map_at_k,
    mean_over_users,
    mrr,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

L2 = math.log2
NAN = float("nan")


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    """Binary CSR with one row per list of item indices."""
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([i for r in rows for i in r], dtype=np.int64)
    return sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), n_items))


def close(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=1e-12, atol=1e-12
    )


# ------------------------------------------------------------------------ the shared example
# 8 items, 3 users:
#   user 0 ranks [3, 1, 4, 0, 6], relevant {0, 1, 7}  -> hits at positions 2 and 4 (1-based)
#   user 1 ranks [2, 5, -1, -1, -1] (short list), relevant {5} -> hit at position 2
#   user 2 ranks [0, 1, 2, 3, 4], relevant {}  -> NaN for every metric
N_ITEMS = 8
RANKED = np.array([[3, 1, 4, 0, 6], [2, 5, -1, -1, -1], [0, 1, 2, 3, 4]], dtype=np.int64)
RELEVANT = csr([[0, 1, 7], [5], []], N_ITEMS)


def test_hit_matrix_example() -> None:
    expected = np.array(
        [[0, 1, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=bool
    )
    np.testing.assert_array_equal(hit_matrix(RANKED, RELEVANT), expected)
    np.testing.assert_array_equal(hit_matrix(RANKED, RELEVANT, 3), expected[:, :3])
    assert hit_matrix(RANKED, RELEVANT).dtype == bool


def test_precision_example() -> None:
    # k=3: user 0 has 1 hit in [3, 1, 4] -> 1/3; user 1 has 1 hit in [2, 5, pad] -> 1/3 (the
    # denominator stays k for a short list); user 2 has no relevant items -> NaN.
    close(precision_at_k(RANKED, RELEVANT, 3), [1 / 3, 1 / 3, NAN])
    # k=5: 2 hits / 5 and 1 hit / 5.
    close(precision_at_k(RANKED, RELEVANT, 5), [2 / 5, 1 / 5, NAN])


def test_recall_example() -> None:
    # k=3: 1 of 3 relevant, 1 of 1 relevant. k=5: 2 of 3, 1 of 1.
    close(recall_at_k(RANKED, RELEVANT, 3), [1 / 3, 1.0, NAN])
    close(recall_at_k(RANKED, RELEVANT, 5), [2 / 3, 1.0, NAN])
    # k=1: no hit at the first position for either user.
    close(recall_at_k(RANKED, RELEVANT, 1), [0.0, 0.0, NAN])


def test_f1_example() -> None:
    # k=3: user 0 P=R=1/3 -> F1=1/3; user 1 P=1/3, R=1 -> 2*(1/3)/(4/3) = 1/2.
    close(f1_at_k(RANKED, RELEVANT, 3), [1 / 3, 0.5, NAN])
    # k=5: user 0 P=2/5, R=2/3 -> 2*(4/15)/(16/15) = 1/2; user 1 P=1/5, R=1 -> 2*(1/5)/(6/5) = 1/3.
    close(f1_at_k(RANKED, RELEVANT, 5), [0.5, 1 / 3, NAN])
    # k=1: P=R=0 -> F1 defined as 0, not NaN.
    close(f1_at_k(RANKED, RELEVANT, 1), [0.0, 0.0, NAN])


def test_ndcg_example() -> None:
    # k=3: user 0 DCG = 1/log2(3) (hit at 0-based position 1), IDCG = 3 ideal hits
    #      = 1 + 1/log2(3) + 1/log2(4); user 1 DCG = 1/log2(3), IDCG = 1 (one relevant item).
    idcg0 = 1 + 1 / L2(3) + 1 / L2(4)
    close(ndcg_at_k(RANKED, RELEVANT, 3), [(1 / L2(3)) / idcg0, 1 / L2(3), NAN])
    # k=5: user 0 DCG = 1/log2(3) + 1/log2(5); IDCG still min(3, 5) = 3 ideal hits.
    close(ndcg_at_k(RANKED, RELEVANT, 5), [(1 / L2(3) + 1 / L2(5)) / idcg0, 1 / L2(3), NAN])


def test_ndcg_two_of_three() -> None:
    # Ranked [a, x, b] with {a, b} relevant: DCG = 1/log2(2) + 1/log2(4), IDCG = 1 + 1/log2(3).
    ranked = np.array([[0, 2, 1]])
    close(ndcg_at_k(ranked, csr([[0, 1]], 3), 3), [(1 / L2(2) + 1 / L2(4)) / (1 + 1 / L2(3))])


def test_map_example() -> None:
    # k=3: user 0 hit at position 2 with precision 1/2 -> AP = (1/2) / min(3, 3) = 1/6;
    #      user 1 hit at position 2 -> (1/2) / min(1, 3) = 1/2.
    close(map_at_k(RANKED, RELEVANT, 3), [1 / 6, 0.5, NAN])
    # k=5: user 0 hits at 2 (P=1/2) and 4 (P=2/4) -> (1/2 + 1/2) / 3 = 1/3.
    close(map_at_k(RANKED, RELEVANT, 5), [1 / 3, 0.5, NAN])


def test_map_normalised_by_k_when_more_relevant() -> None:
    # 4 relevant items, top-2 both relevant: AP@2 = (1/1 + 2/2) / min(4, 2) = 1.
    # AP@3 with third item irrelevant: (1 + 1) / min(4, 3) = 2/3.
    ranked = np.array([[0, 1, 5]])
    rel = csr([[0, 1, 2, 3]], 6)
    close(map_at_k(ranked, rel, 2), [1.0])
    close(map_at_k(ranked, rel, 3), [2 / 3])


def test_mrr_example() -> None:
    # First hits at position 2 for users 0 and 1 -> 1/2.
    close(mrr(RANKED, RELEVANT), [0.5, 0.5, NAN])
    close(mrr(RANKED, RELEVANT, 1), [0.0, 0.0, NAN])
    # First hit at position 4: 1/4 over the whole list, 0 when cut at k=3.
    ranked = np.array([[5, 6, 7, 2]])
    rel = csr([[2]], 8)
    close(mrr(ranked, rel), [0.25])
    close(mrr(ranked, rel, 3), [0.0])


def test_hit_rate_example() -> None:
    close(hit_rate_at_k(RANKED, RELEVANT, 2), [1.0, 1.0, NAN])
    close(hit_rate_at_k(RANKED, RELEVANT, 1), [0.0, 0.0, NAN])


def test_metrics_registry_and_ranking_metrics() -> None:
    assert set(METRICS) == {"precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate"}
    together = ranking_metrics(RANKED, RELEVANT, 4)
    assert set(together) == set(METRICS)
    for name, fn in METRICS.items():
        one = fn(RANKED, RELEVANT, 4)
        assert one.shape == (3,) and one.dtype == np.float64
        np.testing.assert_array_equal(one, together[name])
    assert set(ranking_metrics(RANKED, RELEVANT, 4, names=["ndcg"])) == {"ndcg"}
    with pytest.raises(DataError, match="unknown metric"):
        ranking_metrics(RANKED, RELEVANT, 4, names=["auc"])


def test_public_metrics_are_named_documented_and_picklable() -> None:
    # The seven public metrics come from one generic front over their kernels: each must still
    # look like a plain function of recsys.metrics (name, signature, numpy docstring) and pickle by
    # reference, since the Spark evaluator ships them to executors.
    import inspect
    import pickle

    import recsys.metrics as M

    for fn in METRICS.values():
        assert getattr(M, fn.__name__) is fn
        assert pickle.loads(pickle.dumps(fn)) is fn
        assert list(inspect.signature(fn).parameters) == ["ranked", "relevant", "k"]
        doc = inspect.getdoc(fn)
        assert doc is not None
        summary, rest = doc.split("\n", 1)
        assert summary and not summary.startswith(("Parameters", " "))
        for section in ("Parameters\n----------", "Returns\n-------", "Raises\n------"):
            assert rest.count(section) == 1, (fn.__name__, section)
    assert inspect.signature(M.mrr).parameters["k"].default is None
    assert inspect.signature(M.recall_at_k).parameters["k"].default is inspect.Parameter.empty
    assert inspect.getdoc(M.ndcg_at_k).startswith("NDCG@k with binary relevance.")


def test_mean_over_users() -> None:
    assert mean_over_users(np.array([NAN, 0.5, 1.0])) == pytest.approx(0.75)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nanmean would warn "Mean of empty slice"
        assert math.isnan(mean_over_users(np.array([NAN, NAN])))
        assert math.isnan(mean_over_users(np.array([])))
    assert mean_over_users(precision_at_k(RANKED, RELEVANT, 3)) == pytest.approx(1 / 3)


# --------------------------------------------------------------------- relevance input forms
def test_padding_never_hits_even_when_previous_row_holds_last_item() -> None:
    # key(user 1, item -1) == key(user 0, item n_items - 1): a naive flat search would see a hit.
    ranked = np.array([[0, 1], [2, -1]])
    rel = csr([[4], [3]], 5)
    np.testing.assert_array_equal(hit_matrix(ranked, rel), [[False, False], [False, False]])


def test_duplicates_in_csr_count_once_and_input_untouched() -> None:
    # Row 0 stores item 1 twice and item 2 once, unsorted: 2 relevant items, not 3.
    indptr = np.array([0, 3])
    indices = np.array([2, 1, 1], dtype=np.int32)
    rel = sp.csr_matrix((np.ones(3), indices, indptr), shape=(1, 4))
    assert not rel.has_canonical_format
    close(recall_at_k(np.array([[1, 0]]), rel, 2), [0.5])
    np.testing.assert_array_equal(rel.indices, [2, 1, 1])  # caller's matrix not sorted in place


def test_values_ignored_explicit_zero_is_relevant() -> None:
    rel = sp.csr_matrix((np.array([0.0, 5.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 3))
    close(recall_at_k(np.array([[0, 2]]), rel, 2), [0.5])


def test_other_sparse_formats_accepted() -> None:
    close(precision_at_k(RANKED, RELEVANT.tocoo(), 3), [1 / 3, 1 / 3, NAN])
    close(precision_at_k(RANKED, sp.csr_array(RELEVANT), 3), [1 / 3, 1 / 3, NAN])


def test_hit_matrix_matches_python_reference() -> None:
    rng = np.random.default_rng(7)
    n_users, n_items, n = 40, 30, 12
    ranked = np.full((n_users, n), -1, dtype=np.int64)
    rel_rows = []
    for u in range(n_users):
        length = rng.integers(0, n + 1)
        ranked[u, :length] = rng.choice(n_items, size=length, replace=False)
        rel_rows.append(sorted(rng.choice(n_items, size=rng.integers(0, 6), replace=False).tolist()))
    rel = csr(rel_rows, n_items)
    expected = np.array([[item in rel_rows[u] for item in ranked[u]] for u in range(n_users)])
    np.testing.assert_array_equal(hit_matrix(ranked, rel), expected)


# ------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    ("ranked", "k", "match"),
    [
        (RANKED, 6, "rank at least k"),
        (RANKED, 0, "at least 1"),
        (RANKED, 2.0, "integer"),
        (RANKED.astype(float), 2, "integer item indices"),
        (np.array([[0, 0, 1], [1, 2, 3], [4, 5, 6]]), 3, "twice"),
        (np.array([[0, -1, 1], [1, 2, 3], [4, 5, 6]]), 3, "padding must be trailing"),
        (np.array([[0, -2, 1], [1, 2, 3], [4, 5, 6]]), 3, "only -1"),
        (np.array([[0, 8, 1], [1, 2, 3], [4, 5, 6]]), 3, "only 8 items"),
        (RANKED[0], 3, "2-D"),
    ],
)
def test_bad_ranked_raises(ranked: np.ndarray, k: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        precision_at_k(ranked, RELEVANT, k)  # type: ignore[arg-type]


def test_problems_after_k_are_ignored() -> None:
    # A repeated item in column 3 does not matter for k=2.
    close(precision_at_k(np.array([[0, 1, 1]]), csr([[1]], 3), 2), [0.5])


def test_bad_relevant_raises() -> None:
    with pytest.raises(DataError, match="rows"):
        recall_at_k(RANKED, csr([[0]], N_ITEMS), 3)
    with pytest.raises(DataError, match="scipy sparse"):
        recall_at_k(RANKED, RELEVANT.toarray(), 3)


# --------------------------------------------------------------------------------------- AUC
def brute_auc(scores: np.ndarray, rel: sp.csr_matrix, exc: sp.csr_matrix) -> tuple[np.ndarray, ...]:
    """O(pos * neg) reference, one pair at a time."""
    b, n = scores.shape
    rel_d = np.zeros((b, n), bool)  # from the structure, not the values
    exc_d = np.zeros((b, n), bool)
    for u in range(b):
        rel_d[u, rel.indices[rel.indptr[u] : rel.indptr[u + 1]]] = True
        exc_d[u, exc.indices[exc.indptr[u] : exc.indptr[u + 1]]] = True
    correct, n_pos, n_neg = np.zeros(b), np.zeros(b), np.zeros(b)
    for u in range(b):
        pos = [scores[u, i] for i in range(n) if rel_d[u, i]]
        neg = [scores[u, i] for i in range(n) if not rel_d[u, i] and not exc_d[u, i]]
        n_pos[u], n_neg[u] = len(pos), len(neg)
        for p in pos:
            for q in neg:
                correct[u] += 1.0 if p > q else 0.5 if p == q else 0.0
    return correct, n_pos, n_neg


def random_auc_case(seed: int, b: int, n: int, max_pos: int, max_exc: int, levels: int):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, size=(b, n)).astype(np.float64)  # few levels: many ties
    rel_rows, exc_rows = [], []
    for _ in range(b):
        chosen = rng.permutation(n)
        n_pos = int(rng.integers(0, min(max_pos, n) + 1))
        n_exc = int(rng.integers(0, min(max_exc, n - n_pos) + 1))
        rel_rows.append(sorted(chosen[:n_pos].tolist()))
        exc_rows.append(sorted(chosen[n_pos : n_pos + n_exc].tolist()))
    return scores, csr(rel_rows, n), csr(exc_rows, n)


def test_auc_hand_example() -> None:
    # User 0: scores [0.9, 0.5, 0.5, 0.1], positive item 1, item 3 excluded -> negatives {0, 2}:
    #   0.5 vs 0.9 wrong (0), 0.5 vs 0.5 tie (0.5) -> correct 0.5 of 1*2 pairs, AUC 0.25.
    # User 1: scores [0.2, 0.8, 0.8, 0.4], positives {1, 2}, nothing excluded -> negatives {0, 3}:
    #   both positives beat both negatives (the positives' own tie is not a pair) -> 4 of 4.
    # User 2: scores [-inf, -inf, 3, +inf], positive 0, item 3 excluded -> negatives {1, 2}:
    #   -inf vs -inf tie (0.5), -inf vs 3 wrong -> 0.5 of 2, AUC 0.25.
    # User 3: no positives -> 0 pairs, AUC NaN.
    # User 4: positive 0, everything else excluded -> no negatives, AUC NaN.
    scores = np.array(
        [
            [0.9, 0.5, 0.5, 0.1],
            [0.2, 0.8, 0.8, 0.4],
            [-np.inf, -np.inf, 3.0, np.inf],
            [0.1, 0.2, 0.3, 0.4],
            [0.1, 0.2, 0.3, 0.4],
        ]
    )
    rel = csr([[1], [1, 2], [0], [], [0]], 4)
    exc = csr([[3], [], [3], [0], [1, 2, 3]], 4)
    for method in ("auto", "compare", "rank"):
        correct, n_pos, n_neg = auc_counts(scores, rel, exc, method=method)
        close(correct, [0.5, 4.0, 0.5, 0.0, 0.0])
        close(n_pos, [1, 2, 1, 0, 1])
        close(n_neg, [2, 2, 2, 3, 0])
    close(auc_per_user(scores, rel, exc), [0.25, 1.0, 0.25, NAN, NAN])
    # Micro AUC: (0.5 + 4 + 0.5) / (2 + 4 + 2) = 5/8.
    assert global_auc(*auc_counts(scores, rel, exc)) == pytest.approx(5 / 8)
    assert math.isnan(global_auc(np.zeros(2), np.zeros(2), np.ones(2)))


def test_auc_float32_and_int_scores() -> None:
    scores = np.array([[0.9, 0.5, 0.5, 0.1]], dtype=np.float32)
    rel, exc = csr([[1]], 4), csr([[3]], 4)
    close(auc_per_user(scores, rel, exc), [0.25])
    close(auc_per_user(np.array([[9, 5, 5, 1]]), rel, exc), [0.25])


def test_auc_overlap_raises_with_count() -> None:
    scores = np.zeros((2, 4))
    rel = csr([[1, 2], [0]], 4)
    exc = csr([[2, 1], [0]], 4)  # all three relevant pairs are also train items
    with pytest.raises(DataError, match=r"^3 \(user, item\) pairs .* 2 rows"):
        auc_counts(scores, rel, exc)


def test_auc_bad_inputs_raise() -> None:
    scores = np.array([[0.1, np.nan, 0.3]])
    with pytest.raises(DataError, match="NaN"):
        auc_counts(scores, csr([[0]], 3), csr([[]], 3))
    with pytest.raises(DataError, match="item columns"):
        auc_counts(np.zeros((1, 3)), csr([[0]], 4), csr([[]], 4))
    with pytest.raises(DataError, match="rows"):
        auc_counts(np.zeros((2, 3)), csr([[0]], 3), csr([[]], 3))
    with pytest.raises(DataError, match="2-D"):
        auc_counts(np.zeros(3), csr([[0]], 3), csr([[]], 3))
    with pytest.raises(DataError, match="method"):
        auc_counts(np.zeros((1, 3)), csr([[0]], 3), csr([[]], 3), method="x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seed", "max_pos", "levels"),
    [(0, 3, 3), (1, 8, 5), (2, 40, 4), (3, 70, 2), (4, 1, 6)],
)
def test_auc_both_paths_match_brute_force(seed: int, max_pos: int, levels: int) -> None:
    scores, rel, exc = random_auc_case(seed, b=25, n=90, max_pos=max_pos, max_exc=15, levels=levels)
    expected = brute_auc(scores, rel, exc)
    for method in ("compare", "rank", "auto"):
        got = auc_counts(scores, rel, exc, method=method)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)  # exact: counts are halves of integers


def test_auc_with_infinities_matches_brute_force() -> None:
    rng = np.random.default_rng(11)
    scores, rel, exc = random_auc_case(5, b=20, n=40, max_pos=6, max_exc=8, levels=3)
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    scores[rng.random(scores.shape) < 0.2] = np.inf
    expected = brute_auc(scores, rel, exc)
    for method in ("compare", "rank"):
        for g, e in zip(auc_counts(scores, rel, exc, method=method), expected):
            np.testing.assert_array_equal(g, e)


def test_auc_batched_equals_row_by_row() -> None:
    scores, rel, exc = random_auc_case(9, b=30, n=60, max_pos=5, max_exc=10, levels=4)
    batched = auc_counts(scores, rel, exc)
    for u in range(scores.shape[0]):
        single = auc_counts(scores[u : u + 1], rel[u : u + 1], exc[u : u + 1])
        for g, s in zip(batched, single):
            assert g[u] == s[0]
    np.testing.assert_array_equal(
        auc_per_user(scores, rel, exc),
        np.concatenate(
            [auc_per_user(scores[u : u + 1], rel[u : u + 1], exc[u : u + 1]) for u in range(30)]
        ),
    )


def test_auc_empty_batch() -> None:
    correct, n_pos, n_neg = auc_counts(np.zeros((0, 5)), csr([], 5), csr([], 5))
    assert correct.shape == n_pos.shape == n_neg.shape == (0,)


# ---------------------------------------------------------------------------- list-level
def test_catalog_coverage_example() -> None:
    ranked = np.array([[0, 1, -1], [1, 2, 3]])
    # k=2: items {0, 1, 2} of 8 -> 3/8; k=3: {0, 1, 2, 3} -> 4/8 (padding is not an item).
    assert catalog_coverage(ranked, 8, 2) == pytest.approx(3 / 8)
    assert catalog_coverage(ranked, 8, 3) == pytest.approx(4 / 8)
    assert catalog_coverage(ranked, 8) == pytest.approx(4 / 8)
    with pytest.raises(DataError):
        catalog_coverage(ranked, 3, 3)  # item 3 out of a 3-item catalogue


def test_novelty_example() -> None:
    # popularity [4, 2, 1, 0] over 4 users -> p = [1, 1/2, 1/4, 0 clipped to 1/4]
    # -> self-information [0, 1, 2, 2] bits.
    ranked = np.array([[0, 1, -1], [2, 3, 1], [-1, -1, -1]])
    pop = np.array([4, 2, 1, 0])
    close(novelty(ranked, pop, 3, n_users=4), [(0 + 1) / 2, (2 + 2 + 1) / 3, NAN])
    close(novelty(ranked, pop, 1, n_users=4), [0.0, 2.0, NAN])
    with pytest.raises(DataError):
        novelty(ranked, np.array([4, -1, 1, 0]), 3, n_users=4)
    with pytest.raises(DataError):
        novelty(ranked, pop, 3, n_users=0)


def test_intra_list_diversity_example() -> None:
    # item vectors: 0=[1,0], 1=[0,1], 2=[1,1], 3=[0,0] (zero), 4=[2,0] (same direction as 0)
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])
    ranked = np.array([[0, 1, 2], [0, 4, -1], [3, 0, -1], [2, -1, -1]])
    # user 0: distances 1 - 0, 1 - 1/sqrt2, 1 - 1/sqrt2 -> mean (3 - sqrt2) / 3
    # user 1: parallel vectors -> 0; user 2: zero vector has cosine 0 -> 1; user 3: one item -> NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = intra_list_diversity(ranked, vectors, 3)
    close(got, [(3 - math.sqrt(2)) / 3, 0.0, 1.0, NAN])
    # k=2 for user 0: only the pair (0, 1) -> 1.
    assert intra_list_diversity(ranked, vectors, 2)[0] == pytest.approx(1.0)


def test_gini_example() -> None:
    # Exposure counts [2, 1, 1, 0] sorted [0, 1, 1, 2]: sum (2i - 5) x_i = -1 + 1 + 6 = 6,
    # divided by n * total = 4 * 4 -> 0.375 (equals sum|xi - xj| / (2 n^2 mean) = 12 / 32).
    assert gini_index(np.array([[0, 1], [0, 2]]), 4, 2) == pytest.approx(0.375)
    assert gini_index(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)
    assert math.isnan(gini_index(np.array([[-1, -1]]), 4))


# ------------------------------------------------------------------------------ properties
@st.composite
def ranking_cases(draw):
    """Random users x items with relevant sets and rankings (with padding), plus a valid k."""
    n_users = draw(st.integers(1, 5))
    n_items = draw(st.integers(2, 12))
    n = draw(st.integers(1, n_items))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    ranked = np.full((n_users, n), -1, dtype=np.int64)
    rel_rows = []
    for u in range(n_users):
        length = int(rng.integers(0, n + 1))
        ranked[u, :length] = rng.choice(n_items, size=length, replace=False)
        n_rel = int(rng.integers(0, n_items + 1))
        rel_rows.append(sorted(rng.choice(n_items, size=n_rel, replace=False).tolist()))
    k = draw(st.integers(1, n))
    return ranked, csr(rel_rows, n_items), k


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_metrics_in_unit_interval_and_nan_iff_no_relevant(case) -> None:
    ranked, rel, k = case
    n_rel = np.diff(rel.indptr)
    for name, fn in METRICS.items():
        values = fn(ranked, rel, k)
        assert values.shape == (ranked.shape[0],) and values.dtype == np.float64
        np.testing.assert_array_equal(np.isnan(values), n_rel == 0, err_msg=name)
        ok = values[~np.isnan(values)]
        assert ((ok >= 0) & (ok <= 1 + 1e-12)).all(), name


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_hits_identity_precision_times_k_equals_recall_times_n_rel(case) -> None:
    ranked, rel, k = case
    n_rel = np.diff(rel.indptr)
    has = n_rel > 0
    hits = hit_matrix(ranked, rel, k).sum(axis=1)
    p = precision_at_k(ranked, rel, k)
    r = recall_at_k(ranked, rel, k)
    np.testing.assert_allclose((p * k)[has], (r * n_rel)[has])
    np.testing.assert_allclose((p * k)[has], hits[has])
    np.testing.assert_array_equal(hit_rate_at_k(ranked, rel, k)[has], (hits > 0)[has])


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_perfect_ranking_scores_one(case) -> None:
    _, rel, _ = case
    n_users, n_items = rel.shape
    rng = np.random.default_rng(0)
    # Every item ranked, the user's relevant items first (in a random order), then the rest.
    ranked = np.empty((n_users, n_items), dtype=np.int64)
    for u in range(n_users):
        items = rel.indices[rel.indptr[u] : rel.indptr[u + 1]]
        rest = np.setdiff1d(np.arange(n_items), items)
        ranked[u] = np.concatenate([rng.permutation(items), rng.permutation(rest)])
    n_rel = np.diff(rel.indptr)
    for k in range(1, n_items + 1):
        has = n_rel > 0
        np.testing.assert_allclose(ndcg_at_k(ranked, rel, k)[has], 1.0)
        np.testing.assert_allclose(map_at_k(ranked, rel, k)[has], 1.0)
        np.testing.assert_allclose(mrr(ranked, rel, k)[has], 1.0)
        small = has & (n_rel <= k)
        np.testing.assert_allclose(recall_at_k(ranked, rel, k)[small], 1.0)
    # Scores that put every positive above every negative: AUC 1 wherever defined.
    scores = np.zeros((n_users, n_items))
    scores[rel.nonzero()] = 1.0
    auc = auc_per_user(scores, rel, csr([[]] * n_users, n_items))
    defined = (n_rel > 0) & (n_rel < n_items)
    np.testing.assert_array_equal(auc[defined], 1.0)
    assert np.isnan(auc[~defined]).all()


@st.composite
def auc_cases(draw, distinct: bool):
    b = draw(st.integers(1, 6))
    n = draw(st.integers(2, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if distinct:
        scores = np.stack([rng.permutation(n) for _ in range(b)]).astype(np.float32)
    else:
        scores = rng.integers(-2, 3, size=(b, n)).astype(np.float32)
    rel_rows, exc_rows = [], []
    for _ in range(b):
        perm = rng.permutation(n)
        n_pos = int(rng.integers(0, n + 1))
        n_exc = int(rng.integers(0, n - n_pos + 1))
        rel_rows.append(sorted(perm[:n_pos].tolist()))
        exc_rows.append(sorted(perm[n_pos : n_pos + n_exc].tolist()))
    return scores, csr(rel_rows, n), csr(exc_rows, n)


@settings(max_examples=150, deadline=None)
@given(auc_cases(distinct=False))
def test_auc_in_unit_interval_and_paths_agree(case) -> None:
    scores, rel, exc = case
    compare = auc_counts(scores, rel, exc, method="compare")
    rank = auc_counts(scores, rel, exc, method="rank")
    for a, b in zip(compare, rank):
        np.testing.assert_array_equal(a, b)
    auc = auc_per_user(scores, rel, exc)
    ok = auc[~np.isnan(auc)]
    assert ((ok >= 0) & (ok <= 1)).all()
    correct, n_pos, n_neg = compare
    np.testing.assert_array_equal(np.isnan(auc), (n_pos == 0) | (n_neg == 0))
    g = global_auc(correct, n_pos, n_neg)
    assert math.isnan(g) or 0 <= g <= 1


@settings(max_examples=150, deadline=None)
@given(auc_cases(distinct=True))
def test_auc_reversed_scores_complement(case) -> None:
    scores, rel, exc = case
    auc = auc_per_user(scores, rel, exc)
    flipped = auc_per_user(-scores, rel, exc)
    np.testing.assert_allclose(flipped, 1.0 - auc)  # NaNs line up too
