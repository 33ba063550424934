"""One contract, every model: the same checks run over each registered recommender.

The data is the planted world of ``tests/model_cases.py`` (shared with the serving tests): four
item clusters whose content vectors reveal the cluster, user ``u`` likes cluster ``u % 4``, items
40..47 are cold (media, no training interactions). So a personalised model must recommend a
user's own cluster first, and the content models reach the cold items. The model table
(``SMALL``) must name exactly the registry's models.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import scipy.sparse as sp

from model_cases import COLD, N_ITEMS, N_USERS, SMALL, cluster, fit_planted, make_small
from recsys.data import ItemFeatures
from recsys.errors import BundleError, ConfigError, DataError, NotFittedError
from recsys.models import ALS, CAPABILITIES, MODELS, ItemKNN, Popularity, Recommender, capabilities, clone, make_model
from recsys.models.base import EmbeddingRecommender

NAMES = sorted(SMALL)
#: models whose lists follow the user's own tastes (popularity gives everyone the same list)
PERSONAL = ["als", "bridge", "content", "hybrid", "itemknn", "userknn"]
COLD_ITEM = int(COLD[0])
GROUP1_HISTORY = [1, 5, 9]  # warm items of cluster 1


def _history(items: list[int], n_items: int = N_ITEMS) -> sp.csr_matrix:
    """A new user's interactions with ``items``: one CSR row."""
    return sp.csr_matrix((np.ones(len(items), np.float32), ([0] * len(items), items)), shape=(1, n_items))


def _features(m: Recommender, planted):
    return planted[3] if m.uses_features else None


def _copy(m: Recommender, planted) -> Recommender:
    """An independent fitted copy of ``m`` through its state (the shared fitted models stay intact)."""
    return type(m).from_state(copy.deepcopy(m.get_params()), copy.deepcopy(m.get_state()), m.train_,
                              _features(m, planted))


def _assert_same_lists(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], rtol: float = 1e-6) -> None:
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=rtol, atol=1e-7)


@pytest.fixture(scope="module")
def data(planted):
    """The training interactions of the planted world."""
    return planted[0]


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, fitted_small):
    """(name, model) fitted on the planted world; shared with other modules, so never changed here."""
    return request.param, fitted_small(request.param)


# ---------------------------------------------------------------------------- the registry and settings
def test_contract_runs_every_registered_model():
    assert set(SMALL) == set(MODELS), "tests/model_cases.py SMALL must name exactly the registered models"
    assert isinstance(make_model("ALS", factors=4), ALS)
    with pytest.raises(ConfigError, match="unknown model"):
        make_model("nope")
    with pytest.raises(ConfigError, match="bad parameters"):
        make_model("itemknn", nonsense=1)


@pytest.mark.parametrize("name", NAMES)
def test_params_come_from_the_constructor_and_clone_round_trips(name):
    m = make_small(name)
    params = m.get_params()
    cls = MODELS[name]
    assert list(params) == cls._param_names() and set(SMALL[name]) <= set(params)
    json.dumps(params)  # settings are JSON values (bundles and reports write them)
    c = clone(m)
    assert type(c) is cls and c is not m and c.get_params() == params
    assert cls(**params).get_params() == params
    for k, v in params.items():  # deep copies: the clone shares no mutable setting
        if isinstance(v, (dict, list)):
            assert c.get_params()[k] is not v
    m.stray = "not a setting"  # a public attribute that is not a constructor parameter
    assert "stray" not in m.get_params() and "stray" not in clone(m).get_params()


def test_clone_of_a_fitted_model_is_unfitted(fitted):
    name, m = fitted
    c = clone(m)
    assert c.get_params() == m.get_params()
    with pytest.raises(NotFittedError):
        c.recommend(0)


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


# ---------------------------------------------------------------------------- abc and declared capabilities
class FixedScores(Recommender):
    """A complete model with no constructor and no optional capability."""

    name = "fixed"

    def _fit(self, interactions, item_features):
        self.table_ = np.tile(np.linspace(1.0, 0.0, interactions.n_items, dtype=np.float32), (interactions.n_users, 1))

    def _score_users(self, users, rows):
        return self.table_[users].copy()


def test_incomplete_models_fail_at_instantiation():
    class NoScores(Recommender):
        def _fit(self, interactions, item_features):
            pass

    with pytest.raises(TypeError, match="_score_users"):
        NoScores()

    class NoFoldIn(EmbeddingRecommender):
        def _fit(self, interactions, item_features):
            pass

        def _user_vectors(self):
            return np.zeros((1, 1))

        def _item_vectors(self):
            return np.zeros((1, 1))

    with pytest.raises(TypeError, match="_new_user_vectors"):
        NoFoldIn()


def test_a_capability_needs_its_hook():
    with pytest.raises(TypeError, match="supports_new_items"):
        class Claims(FixedScores):  # noqa: F841 (the class statement itself raises)
            supports_new_items = True
    with pytest.raises(TypeError, match="supports_fold_in"):
        class ClaimsFoldIn(FixedScores):  # noqa: F841
            supports_fold_in = True


def test_settings_must_be_stored_unchanged_under_their_names():
    """scikit-learn's rules: named parameters only, each stored as given (clone checks it)."""
    class Loose(FixedScores):
        def __init__(self, **settings):
            self.settings = settings

    class Renames(FixedScores):
        def __init__(self, k: int = 5):
            self.neighbours = k

    class Copies(FixedScores):
        def __init__(self, options: dict | None = None):
            self.options = dict(options or {})  # belongs in fit: clone cannot tell it is the same setting

    with pytest.raises(TypeError, match="named parameters"):
        Loose(a=1).get_params()
    with pytest.raises(AttributeError, match="k"):
        Renames().get_params()
    assert Copies({"a": 1}).get_params() == {"options": {"a": 1}}
    with pytest.raises(RuntimeError, match="cannot clone Copies.*options"):
        clone(Copies({"a": 1}))


@pytest.mark.parametrize("name", NAMES)
def test_capabilities_are_declared_on_the_class(name):
    cls = MODELS[name]
    caps = capabilities(cls)
    assert tuple(caps) == CAPABILITIES and all(type(v) is bool for v in caps.values())
    assert capabilities(make_small(name)) == caps
    assert caps == {c: getattr(cls, c) for c in CAPABILITIES}


def test_a_model_without_optional_capabilities(data, planted):
    m = FixedScores()
    assert m.get_params() == {} and clone(m).get_params() == {}
    assert not any(capabilities(m).values())
    m.fit(data)
    with pytest.raises(ConfigError, match="cannot add items"):
        m.add_items(["new-1"])
    assert m.choose_on_validation(planted[1]) == {} and m.validation_choice() == {}
    # no fold-in: a new user's history changes nothing but the filtered items
    np.testing.assert_array_equal(m.scores(np.array([-1]), _history(GROUP1_HISTORY)),
                                  m.scores(np.array([-1]), _history([])))


@pytest.mark.parametrize("name", NAMES)
def test_uses_features_capability(name, planted, fitted_small):
    train, _, _, feats = planted
    m = make_small(name)
    if m.uses_features:
        with pytest.raises(DataError, match="item features"):
            m.fit(train)
        with pytest.raises(NotFittedError):  # a refused fit leaves the model unfitted
            m.recommend(0)
    else:  # features are ignored: fitting with them answers as fitting without
        users = np.arange(N_USERS)
        _assert_same_lists(m.fit(train, feats).recommend(users, n=5), fitted_small(name).recommend(users, n=5))


def test_fold_in_capability(fitted):
    _, m = fitted
    with_history = m.scores(np.array([-1]), _history(GROUP1_HISTORY))
    without = m.scores(np.array([-1]), _history([]))
    if m.supports_fold_in:
        assert not np.allclose(with_history, without), "a folded-in history must change the scores"
        top, _ = m.recommend(-1, _history(GROUP1_HISTORY), n=3)
        assert (cluster(top) == 1).all(), f"a new user with cluster-1 history got {top}"
    else:  # the cold answer, whatever the history
        np.testing.assert_array_equal(with_history, without)


def test_new_items_capability(fitted, planted):
    name, m = fitted
    feats = planted[3]
    c = _copy(m, planted)
    src = COLD_ITEM + 1  # cold, cluster 1
    new = ItemFeatures(["new-1"], {b: v[[src]] for b, v in feats.blocks.items()}, fused=feats.fused[[src]])
    if not m.supports_new_items:
        with pytest.raises(ConfigError, match="cannot add items"):
            c.add_items(["new-1"], new)
        return
    idx = c.add_items(["new-1"], new if c.uses_features else None)
    assert idx.tolist() == [N_ITEMS] and c.n_items_ == N_ITEMS + 1
    assert m.n_items_ == N_ITEMS, "adding items to the copy changed the original"
    rec, scores = c.recommend(np.arange(N_USERS), n=10)
    assert rec.shape == (N_USERS, 10) and np.isfinite(scores).all() and rec.max() <= N_ITEMS
    s = c.scores(np.arange(N_USERS))
    assert s.shape == (N_USERS, N_ITEMS + 1) and np.isfinite(s[:, N_ITEMS]).all()
    assert c.similar_items(N_ITEMS, n=3)[0].shape == (3,)
    if c.uses_features:  # identical media, identical treatment: scored exactly like its cold source
        if getattr(c, "cold_share", None):
            # the hybrid's per-list exposure quota lifts only some of the tied cold items of a
            # list (by design); the ranker's own scores must still be identical
            c.cold_share = None
            s = c.scores(np.arange(N_USERS))
        np.testing.assert_allclose(s[:, N_ITEMS], s[:, src], rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match="already known"):
        c.add_items(["new-1"], new if c.uses_features else None)


def test_learns_from_validation_capability(fitted, planted):
    _, m = fitted
    val = planted[1]
    users = np.arange(N_USERS)
    if m.learns_from_validation:
        choice = m.validation_choice()  # fit_small chose on val, as the jobs do
        assert choice and "rule" in choice
        c = _copy(m, planted)
        assert c.validation_choice() == {}  # not a learned state: nothing chosen yet
        again = c.choose_on_validation(val)
        assert again == choice and c.validation_choice() == choice
        _assert_same_lists(c.recommend(users, n=10), m.recommend(users, n=10))
    else:  # nothing to choose, and choosing changes nothing
        before = m.recommend(users, n=10)
        assert m.choose_on_validation(val) == {} and m.validation_choice() == {}
        _assert_same_lists(m.recommend(users, n=10), before, rtol=0)


# ---------------------------------------------------------------------------- unfitted, bad input, state
@pytest.mark.parametrize("name", NAMES)
def test_unfitted_raises(name):
    m = make_small(name)
    for call in (lambda: m.recommend(0), lambda: m.score(0, 0), lambda: m.similar_items(0), lambda: m.knows_user(0),
                 lambda: m.knows_item(0), lambda: m.scores(np.array([0])), lambda: m.get_state(),
                 lambda: m.add_items(["new-1"])):
        with pytest.raises(NotFittedError, match="fit"):
            call()


@pytest.mark.parametrize("name", NAMES)
def test_fit_rejects_bad_input(name, planted):
    train, feats = planted[0], planted[3]
    with pytest.raises(DataError):
        make_small(name).fit(train.matrix, feats)
    with pytest.raises(DataError, match="empty"):
        make_small(name).fit(train.subset(np.zeros(train.nnz, dtype=bool)), feats)


def test_state_round_trip(fitted, planted):
    _, m = fitted
    c = _copy(m, planted)
    assert type(c) is type(m) and c.get_params() == m.get_params()
    users = np.arange(N_USERS)
    _assert_same_lists(c.recommend(users, n=10), m.recommend(users, n=10))
    hist = _history(GROUP1_HISTORY)
    _assert_same_lists(c.recommend(-1, hist, n=5), m.recommend(-1, hist, n=5))
    _assert_same_lists(c.similar_items(2, n=5), m.similar_items(2, n=5))
    np.testing.assert_allclose(c.score([0, 7], [3, COLD_ITEM]), m.score([0, 7], [3, COLD_ITEM]), rtol=1e-6, atol=1e-7)


def test_from_state_refuses_unknown_settings(fitted, planted):
    _, m = fitted
    with pytest.raises(BundleError, match="stray"):
        type(m).from_state({**m.get_params(), "stray": 1}, m.get_state(), m.train_, _features(m, planted))


# ---------------------------------------------------------------------------- answers
def test_shapes_and_dtypes(fitted):
    _, m = fitted
    idx, val = m.recommend(np.arange(5), n=4)
    assert idx.shape == val.shape == (5, 4) and idx.dtype == np.int64 and val.dtype == np.float32
    i1, v1 = m.recommend(3, n=4)
    assert i1.shape == v1.shape == (4,)
    s = m.scores(np.arange(5))
    assert s.shape == (5, N_ITEMS) and s.dtype == np.float32
    pairs = m.score(np.arange(3)[:, None], np.arange(4)[None, :])
    assert pairs.shape == (3, 4) and pairs.dtype == np.float32
    np.testing.assert_allclose(pairs, s[:3, :4], rtol=1e-5, atol=1e-6)
    si, sv = m.similar_items(0, n=6)
    assert si.shape == sv.shape == (6,) and si.dtype == np.int64


def test_batch_equals_single_user(fitted):
    _, m = fitted
    users = np.arange(N_USERS)
    idx, val = m.recommend(users, n=5)
    assert idx.shape == (N_USERS, 5) and val.shape == (N_USERS, 5)
    for u in (0, 1, 7, 38, N_USERS - 1):
        i1, v1 = m.recommend(u, n=5)
        assert i1.shape == (5,)
        np.testing.assert_array_equal(i1, idx[u])
        np.testing.assert_allclose(v1, val[u], rtol=1e-5, atol=1e-6)


def test_small_batches_equal_one_batch(fitted):
    _, m = fitted
    a = m.recommend(np.arange(N_USERS), n=6)
    b = m.recommend(np.arange(N_USERS), n=6, batch_size=7)
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


def test_unknown_user_gets_a_cold_answer(fitted):
    _, m = fitted
    idx, val = m.recommend(-1, n=5)  # no history at all
    assert (idx >= 0).all() and np.isfinite(val).all()
    idx2, _ = m.recommend(N_USERS + 100, n=5)
    np.testing.assert_array_equal(idx, idx2)
    # a new user with a short history of cluster-1 items
    idx3, val3 = m.recommend(-1, _history(GROUP1_HISTORY), n=4)
    assert (idx3 >= 0).all() and np.isfinite(val3).all()
    assert not set(GROUP1_HISTORY) & set(idx3.tolist())
    assert not m.knows_user(-1) and m.knows_user(0)


@pytest.mark.parametrize("name", PERSONAL)
def test_planted_tastes_recovered(name, fitted_small):
    m = fitted_small(name)
    idx, _ = m.recommend(np.arange(N_USERS), n=3)
    own = cluster(idx) == cluster(np.arange(N_USERS))[:, None]
    if not m.uses_features:  # a CF model cannot know a cold item's cluster
        own &= ~np.isin(idx, COLD)
    assert own.mean() >= 0.9, f"{name} recommended its users' own cluster only {own.mean():.0%} of the time"
    # a folded-in new user with cluster-1 history gets cluster-1 items
    new_idx, _ = m.recommend(-1, _history(GROUP1_HISTORY), n=3)
    assert all(cluster(i) == 1 for i in new_idx)


def test_cold_item_is_known_as_cold_and_scorable(fitted):
    _, m = fitted
    # content models know a cold item from its media; collaborative ones only by interactions
    assert m.knows_item(COLD_ITEM) == m.uses_features and m.knows_item(0)
    assert np.isfinite(m.score(np.arange(N_USERS), COLD_ITEM)).all()


def test_similar_items(fitted):
    name, m = fitted
    idx, val = m.similar_items(2, n=4)
    assert idx.shape == (4,) and 2 not in idx.tolist()
    assert np.all(np.diff(val) <= 1e-6)
    if name in PERSONAL:
        same = int((cluster(idx) == cluster(2)).sum())
        assert same >= 3, f"{name}: only {same} of the 4 items most similar to a cluster-2 item are cluster 2"
    with pytest.raises(DataError):
        m.similar_items(N_ITEMS)


def test_deterministic_with_seed(fitted, planted):
    """A clone refitted on the same data answers exactly as the original."""
    _, m = fitted
    again = fit_planted(clone(m), planted)
    users = np.arange(N_USERS)
    _assert_same_lists(again.recommend(users, n=5), m.recommend(users, n=5))


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


def test_csr_rows_equals_fancy_row_indexing():
    """The batch row gather of ``_user_rows``: scipy's ``m[rows]``, repeats, order and empty rows kept."""
    import scipy.sparse as sp

    from recsys.models.base import csr_rows

    m = sp.random(40, 30, density=0.1, format="lil", dtype=np.float32, random_state=1)
    m[7, :] = 0  # an empty row
    m = m.tocsr()
    assert m[7].nnz == 0
    for rows in ([3, 0, 39, 3, 7], [7], []):
        got, want = csr_rows(m, np.asarray(rows, dtype=np.int64)), m[np.asarray(rows, dtype=np.int64)]
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.data, want.data)
