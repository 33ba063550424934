"""Models answering through their item indexes (:func:`recsys.retrieval.attach`).

- an exact index gives the very lists of the dense path (ALS, bridge, content, hybrid: known
  users, seen items kept or not, a folded-in history, a user without one), and the same similar items;
- an approximate (IVF) index, forced on the planted world and chosen by the rule on a synthetic
  catalog above a lowered threshold, overlaps the exact lists >= 0.95 and never lists a seen item;
- the one rule (:func:`recsys.retrieval.decide`), growth with the catalog, staleness.

The shared fitted models are never changed: every test works on a copy rebuilt from its state.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp

from model_cases import COLD, N_ITEMS
from recsys.data import Interactions
from recsys.errors import BundleError
from recsys.models import ALS
from recsys.retrieval import EXACT_MAX_ITEMS, ExactIndex, IVFIndex, ItemIndexes, attach, current_index, decide, grow

EMBEDDING = ["als", "bridge", "content"]
N = 10


def _copy(m, planted):
    feats = planted[3] if m.uses_features else None
    return type(m).from_state(copy.deepcopy(m.get_params()), copy.deepcopy(m.get_state()), m.train_, feats)


def _history(items: list[int], n_items: int = N_ITEMS) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(items), np.float32), ([0] * len(items), items)), shape=(1, n_items))


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(x[x >= 0], y[y >= 0])) / max((y >= 0).sum(), 1) for x, y in zip(a, b)]))


def _assert_no_seen(idx: np.ndarray, rows: sp.csr_matrix) -> None:
    for r in range(len(idx)):
        seen = rows.indices[rows.indptr[r] : rows.indptr[r + 1]]
        assert not np.isin(idx[r], seen).any(), f"row {r} lists a seen item"


# ---------------------------------------------------------------------------- exact == dense
@pytest.mark.parametrize("name", [*EMBEDDING, "hybrid"])
def test_exact_index_gives_the_dense_lists(name, fitted_small, planted):
    dense = fitted_small(name)
    model = _copy(dense, planted)
    info = attach(model)
    assert info["kind"] == "exact" and "below" in info["reason"]
    users = np.arange(dense.n_users_)
    for n, filter_seen in ((N, True), (N_ITEMS + 5, False), (N_ITEMS + 5, True)):
        a = dense.recommend(users, n=n, filter_seen=filter_seen)
        b = model.recommend(users, n=n, filter_seen=filter_seen)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(dense.recommend(3, n=N)[0], model.recommend(3, n=N)[0])  # one user: 1-D
    for history in (_history([1, 5, 9]), _history([])):  # folded in; no history: the popularity answer
        np.testing.assert_array_equal(dense.recommend(-1, history, n=N)[0], model.recommend(-1, history, n=N)[0])
    mixed = sp.vstack([dense.train_.matrix[[2]], _history([1, 5, 9]), _history([])]).tocsr()
    np.testing.assert_array_equal(dense.recommend(np.array([2, -1, -1]), mixed, n=N)[0],
                                  model.recommend(np.array([2, -1, -1]), mixed, n=N)[0])
    # items= restricts the candidates: the dense path, as before
    only = np.arange(0, N_ITEMS, 3)
    np.testing.assert_array_equal(dense.recommend(users, n=5, items=only)[0],
                                  model.recommend(users, n=5, items=only)[0])


@pytest.mark.parametrize("name", EMBEDDING)
def test_exact_cosine_index_gives_the_dense_similar_items(name, fitted_small, planted):
    dense = fitted_small(name)
    model = _copy(dense, planted)
    attach(model)
    assert isinstance(current_index(model, "cos"), ExactIndex)
    for i in (0, 3, int(COLD[0]), N_ITEMS - 1):  # ALS: cold items have zero factors (merged in at 0)
        a, b = dense.similar_items(i, N), model.similar_items(i, N)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], atol=1e-6)
        assert i not in b[0]


# ---------------------------------------------------------------------------- approximate
@pytest.mark.parametrize("name", [*EMBEDDING, "hybrid"])
def test_ivf_index_overlaps_the_exact_lists_and_skips_seen_items(name, fitted_small, planted):
    dense = fitted_small(name)
    model = _copy(dense, planted)
    info = attach(model, exact=False, nlist=8, nprobe=7)  # forced on 48 items; 7 of 8 lists a query
    assert info["kind"] == "ivf"
    assert all(ix["kind"] == "ivf" and ix["nprobe"] == 7 for ix in info["indexes"].values())
    users = np.arange(dense.n_users_)
    rows = dense.train_.matrix
    a, b = dense.recommend(users, n=N), model.recommend(users, n=N)
    assert _overlap(b[0], a[0]) >= 0.95
    _assert_no_seen(b[0], rows)
    assert (b[0] >= 0).all()  # full lists after the exclusion


def _synthetic_als(n_users: int = 300, n_items: int = 6000, factors: int = 16, seed: int = 0) -> ALS:
    """An ALS model of clustered factors on a random log: a catalog 'above the threshold' once it is lowered."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, factors))
    items = centres[rng.integers(0, 40, n_items)] + 0.5 * rng.standard_normal((n_items, factors))
    items *= rng.lognormal(0, 0.25, (n_items, 1))
    users = centres[rng.integers(0, 40, n_users)] + 0.3 * rng.standard_normal((n_users, factors))
    u = np.repeat(np.arange(n_users), 20)
    i = rng.integers(0, n_items, len(u))
    x = Interactions.from_arrays([f"u{k}" for k in u], i.tolist(), item_ids=list(range(n_items)),
                                 user_ids=[f"u{k}" for k in range(n_users)])
    return ALS.from_factors(users.astype(np.float32), items.astype(np.float32), x, factors=factors)


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic_als()


def test_rule_chooses_ivf_above_the_threshold_with_high_recall(synthetic):
    model = copy.copy(synthetic)
    exact = copy.copy(synthetic)
    attach(exact, threshold=10**9)
    info = attach(model, threshold=1000, nprobe=24)  # ~6000 items: 'large'; default nlist (153 lists)
    assert info["kind"] == "ivf" and "at or above" in info["reason"]
    assert isinstance(current_index(model), IVFIndex) and isinstance(current_index(exact), ExactIndex)
    users = np.arange(model.n_users_)
    rows = model.train_.matrix
    a, b = exact.recommend(users, n=100), model.recommend(users, n=100)
    assert _overlap(b[0], a[0]) >= 0.95
    _assert_no_seen(b[0], rows)
    # scores are the model's own inner products of the returned items
    np.testing.assert_allclose(b[1], model.score(users[:, None], b[0]), rtol=1e-4, atol=1e-4)
    # a folded-in history through the index (ALS fold-in), seen items excluded
    h = _history([5, 17, 300], model.n_items_)
    hi, _ = model.recommend(-1, h, n=100)
    assert _overlap(hi[None], exact.recommend(-1, h, n=100)[0][None]) >= 0.95 and not np.isin([5, 17, 300], hi).any()
    # similar items by cosine: the item itself never listed
    for i in (0, 1234, 5999):
        s_ann, s_exact = model.similar_items(i, 50)[0], exact.similar_items(i, 50)[0]
        assert i not in s_ann and _overlap(s_ann[None], s_exact[None]) >= 0.9


# ---------------------------------------------------------------------------- the rule
def test_one_rule_decides_exact_or_approximate():
    t = EXACT_MAX_ITEMS
    assert decide(10, exact=True)[0] == "exact" and "--exact" in decide(10**7, exact=True)[1]
    assert decide(t - 1)[0] == "exact"
    assert decide(t)[0] == "ivf"
    assert decide(10, exact=False)[0] == "ivf"
    assert decide(10, saved=True)[0] == "ivf"  # a bundle's saved approximate index is used
    kind, reason = decide(t, build=False)  # loading a large bundle without one: exact, and why
    assert kind == "exact" and "refit without --exact" in reason
    assert decide(5, threshold=5)[0] == "ivf"


def test_models_without_item_vectors_get_none(fitted_small, planted):
    model = _copy(fitted_small("itemknn"), planted)
    info = attach(model)
    assert info["kind"] == "none" and info["indexes"] == {}
    assert current_index(model) is None


# ---------------------------------------------------------------------------- growth
@pytest.mark.parametrize("exact", [True, False])
def test_grow_adds_new_items_and_a_stale_index_is_never_used(exact, fitted_small, planted):
    from recsys.data import ItemFeatures

    model = _copy(fitted_small("bridge"), planted)
    attach(model, exact=exact, nlist=4, nprobe=4)
    feats = planted[3]
    rows = [3, 7]  # the media of two existing items, under new ids
    new = ItemFeatures(["n0", "n1"], {b: feats.blocks[b][rows] for b in feats.blocks}, fused=feats.fused[rows])
    added = model.add_items(["n0", "n1"], new)
    assert current_index(model) is None  # stale: the dense path answers meanwhile
    dense = model.recommend(np.arange(10), n=N_ITEMS + 2)
    assert grow(model) == 2
    ip, cos = current_index(model, "ip"), current_index(model, "cos")
    assert len(ip) == N_ITEMS + 2 and set(added) <= set(cos.ids_.tolist())
    assert model.retrieval_["n_items"] == N_ITEMS + 2
    got = model.recommend(np.arange(10), n=N_ITEMS + 2)
    np.testing.assert_array_equal(np.sort(got[0], axis=1), np.sort(dense[0], axis=1))  # every item, new ones too
    assert set(added) <= set(got[0][0].tolist())
    # similar items of a new item as on the dense path; a new item is among the similar of others
    from recsys.models.base import Recommender

    a, b = Recommender.similar_items(model, int(added[0]), 5), model.similar_items(int(added[0]), 5)
    np.testing.assert_array_equal(a[0], b[0])
    assert set(added) <= set(model.similar_items(0, N_ITEMS + 2)[0].tolist())
    assert grow(model) == 0  # current: nothing to do


def test_grow_refuses_vectors_changed_in_place_of_a_refit(fitted_small, planted):
    model = _copy(fitted_small("als"), planted)
    attach(model)
    model.item_factors_ = model.item_factors_ * 2  # a new array with other values, not appended rows
    assert current_index(model) is None
    with pytest.raises(BundleError, match="attach"):
        grow(model)


def test_indexes_are_fitted_state_not_settings(fitted_small, planted):
    model = _copy(fitted_small("hybrid"), planted)
    params = model.get_params()
    attach(model)
    assert model.get_params() == params and "index_" not in model.get_state()
    assert isinstance(model.index_, dict) and isinstance(model.index_["als"], ItemIndexes)
    assert model.index_["media"] is model.bridge_.index_ and model.bridge_.index_.cos is not None
