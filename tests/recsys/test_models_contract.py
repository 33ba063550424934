"""One contract, every model: the same checks run over each recommender.

The data has planted tastes: two user groups, two item groups; users of group g interact only
with items of group g. So a personalised model must recommend a user's own group first.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.data import Interactions
from recsys.errors import ConfigError, DataError, NotFittedError
from recsys.models import ALS, MODELS, ItemKNN, Popularity, UserKNN, make_model

N_USERS, N_ITEMS, COLD_ITEM = 40, 21, 20  # item 20 never interacted with

FACTORIES = {
    "popularity": lambda: Popularity(),
    "itemknn": lambda: ItemKNN(k=10, shrink=1.0),
    "userknn": lambda: UserKNN(k=10, shrink=1.0),
    "als": lambda: ALS(factors=4, iterations=10, regularization=0.01, alpha=5.0, random_state=3),
}
PERSONAL = ["itemknn", "userknn", "als"]


def _planted(seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(N_USERS):
        group = u % 2
        pool = np.arange(10) + 10 * group
        for i in rng.choice(pool, size=6, replace=False):
            users.append(u)
            items.append(int(i))
    return Interactions.from_arrays(
        users, items, user_ids=np.arange(N_USERS), item_ids=np.arange(N_ITEMS)
    )


@pytest.fixture(scope="module")
def data() -> Interactions:
    return _planted()


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def fitted(request, data):
    return request.param, FACTORIES[request.param]().fit(data)


def test_registry_covers_every_factory():
    assert set(FACTORIES) <= set(MODELS)
    assert isinstance(make_model("ALS", factors=4), ALS)
    with pytest.raises(ConfigError, match="unknown model"):
        make_model("nope")
    with pytest.raises(ConfigError, match="bad parameters"):
        make_model("itemknn", nonsense=1)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_unfitted_raises(name):
    m = FACTORIES[name]()
    for call in (lambda: m.recommend(0), lambda: m.score(0, 0), lambda: m.similar_items(0), lambda: m.knows_user(0)):
        with pytest.raises(NotFittedError, match="fit"):
            call()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_fit_rejects_bad_input(name, data):
    with pytest.raises(DataError):
        FACTORIES[name]().fit(data.matrix)
    with pytest.raises(DataError, match="empty"):
        FACTORIES[name]().fit(data.subset(np.zeros(data.nnz, dtype=bool)))


def test_batch_equals_single_user(fitted):
    _, m = fitted
    users = np.arange(N_USERS)
    idx, val = m.recommend(users, n=5)
    assert idx.shape == (N_USERS, 5) and val.shape == (N_USERS, 5)
    for u in (0, 1, 7, 38):
        i1, v1 = m.recommend(u, n=5)
        assert i1.shape == (5,)
        np.testing.assert_array_equal(i1, idx[u])
        np.testing.assert_allclose(v1, val[u], rtol=1e-5, atol=1e-6)


def test_small_batches_equal_one_batch(fitted):
    _, m = fitted
    a = m.recommend(np.arange(N_USERS), n=6)
    b = m.recommend(np.arange(N_USERS), n=6, batch_size=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6)


def test_seen_items_filtered_by_default(fitted, data):
    _, m = fitted
    idx, val = m.recommend(np.arange(N_USERS), n=8)
    for u in range(N_USERS):
        assert not set(idx[u][idx[u] >= 0]) & set(data.user_items(u).tolist())
        assert np.all(np.diff(val[u][np.isfinite(val[u])]) <= 1e-6), "scores must be sorted descending"
    # without filtering, a user's own items are eligible again
    idx_all, _ = m.recommend(np.arange(N_USERS), n=N_ITEMS, filter_seen=False)
    assert (idx_all >= 0).all()


def test_items_restriction(fitted):
    _, m = fitted
    allowed = np.array([3, 5, 11, 19, COLD_ITEM])
    idx, _ = m.recommend(np.arange(N_USERS), n=3, items=allowed, filter_seen=False)
    assert set(idx.ravel().tolist()) <= set(allowed.tolist())
    with pytest.raises(DataError):
        m.recommend(0, items=np.array([N_ITEMS + 5]))


def test_short_lists_are_padded(fitted, data):
    _, m = fitted
    idx, val = m.recommend(0, n=N_ITEMS + 5)
    eligible = N_ITEMS - len(data.user_items(0))
    assert (idx[:eligible] >= 0).all() and (idx[eligible:] == -1).all()
    assert np.isneginf(val[eligible:]).all()


def test_score_matches_recommend(fitted):
    _, m = fitted
    idx, val = m.recommend(4, n=5)
    np.testing.assert_allclose(m.score(4, idx), val, rtol=1e-5, atol=1e-6)
    full = m.scores(np.array([4, 9]))
    np.testing.assert_allclose(m.score([4, 9], [2, 13]), [full[0, 2], full[1, 13]], rtol=1e-5, atol=1e-6)


def test_unknown_user_gets_a_cold_answer(fitted, data):
    _, m = fitted
    idx, val = m.recommend(-1, n=5)  # no history at all
    assert (idx >= 0).all() and np.isfinite(val).all()
    idx2, _ = m.recommend(N_USERS + 100, n=5)
    np.testing.assert_array_equal(idx, idx2)
    # a new user with a short history of group-1 items
    hist = sp.csr_matrix((np.ones(3), ([0, 0, 0], [11, 12, 13])), shape=(1, N_ITEMS))
    idx3, val3 = m.recommend(-1, hist, n=4)
    assert (idx3 >= 0).all() and np.isfinite(val3).all()
    assert not {11, 12, 13} & set(idx3.tolist())
    assert not m.knows_user(-1) and m.knows_user(0)


@pytest.mark.parametrize("name", PERSONAL)
def test_planted_tastes_recovered(name, data):
    m = FACTORIES[name]().fit(data)
    idx, _ = m.recommend(np.arange(N_USERS), n=3)
    groups = np.arange(N_USERS) % 2
    own = (idx // 10 == groups[:, None]) & (idx < COLD_ITEM)
    assert own.mean() >= 0.9, f"{name} recommended its users' own group only {own.mean():.0%} of the time"
    # a folded-in new user with group-1 history gets group-1 items
    hist = sp.csr_matrix((np.ones(3), ([0, 0, 0], [11, 12, 13])), shape=(1, N_ITEMS))
    new_idx, _ = m.recommend(-1, hist, n=3)
    assert all(10 <= i < 20 for i in new_idx)


def test_cold_item_is_known_as_cold_and_scorable(fitted):
    _, m = fitted
    assert not m.knows_item(COLD_ITEM) and m.knows_item(0)
    assert np.isfinite(m.score(np.arange(N_USERS), COLD_ITEM)).all()


def test_similar_items(fitted):
    name, m = fitted
    idx, val = m.similar_items(2, n=4)
    assert idx.shape == (4,) and 2 not in idx.tolist()
    assert np.all(np.diff(val) <= 1e-6)
    if name in PERSONAL:
        same = sum(i < 10 for i in idx)
        assert same >= 3, f"{name}: only {same} of the 4 items most similar to a group-0 item are group 0"
    with pytest.raises(DataError):
        m.similar_items(N_ITEMS)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_deterministic_with_seed(name, data):
    a = FACTORIES[name]().fit(data).recommend(np.arange(N_USERS), n=5)
    b = FACTORIES[name]().fit(data).recommend(np.arange(N_USERS), n=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


def test_params_and_repr():
    m = ALS(factors=7)
    assert m.get_params()["factors"] == 7
    assert "factors=7" in repr(m)
    assert '"model": "ALS"' in m.config_json()


def test_bad_settings_raise(data):
    with pytest.raises(ConfigError):
        ItemKNN(k=0).fit(data)
    with pytest.raises(ConfigError):
        ALS(factors=0).fit(data)
    with pytest.raises(ConfigError):
        Popularity(by="nonsense").fit(data)
    with pytest.raises(ConfigError):
        Popularity().fit(data).recommend(0, n=0)
    with pytest.raises(DataError, match="one row per requested user"):
        Popularity().fit(data).recommend([0, 1], sp.csr_matrix((1, N_ITEMS)))


def test_als_confidence_and_fold_in(data):
    """C = 1 + alpha * w; fold-in of a known user's own history reproduces its list."""
    from recsys.models.als import confidence

    c = confidence(sp.csr_matrix(np.array([[0.0, 2.0]])), alpha=3.0)
    np.testing.assert_allclose(c.data, [7.0])
    m = ALS(factors=4, iterations=15, regularization=0.01, alpha=5.0).fit(data)
    folded = m.fold_in(data.matrix[[5]])
    cos = folded[0] @ m.user_factors_[5] / (np.linalg.norm(folded) * np.linalg.norm(m.user_factors_[5]))
    assert cos > 0.95
    a, _ = m.recommend(5, n=3)
    b, _ = m.recommend(-1, data.matrix[[5]], n=3)
    assert len(set(a) & set(b)) >= 2
