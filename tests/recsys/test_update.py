"""Incremental updates (``recsys.models.incremental``, ``avrec update``): an empty log changes
nothing, new users get personal lists, items with interactions stop being cold, the parts that
are exact equal a refit, and the updated bundle verifies and records its drift."""

from __future__ import annotations

import copy
import json

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from model_cases import COLD, N_USERS, SMALL, cluster, make_small
from recsys.cli import main
from recsys.data import Interactions, ItemFeatures
from recsys.data.interactions import IdMap
from recsys.errors import DataError
from recsys.jobs.load import LogSpec
from recsys.jobs.update import REFIT_THRESHOLDS, list_change, on_maps, refit_reasons, update_bundle
from recsys.models.incremental import changes, extend, update_model
from serving.bundle import load_bundle, read_manifest, save_bundle

NAMES = sorted(SMALL)
#: models whose update is exact: their fit is a closed form over the rows or counts it changes
EXACT = ["content", "popularity", "userknn"]


def _copy(m, planted):
    """An independent fitted copy (the session's fitted models are shared: never change them)."""
    feats = planted[3] if m.uses_features else None
    return type(m).from_state(copy.deepcopy(m.get_params()), copy.deepcopy(m.get_state()), m.train_, feats)


def _log(fitted: Interactions, users: list, items: list, ts: float = 10.0, new_users=(), new_items=()) -> Interactions:
    """New interactions (weight 1, one timestamp) on the fitted maps with ``new_users``/``new_items`` appended."""
    um = IdMap(fitted.user_ids.tolist() + list(new_users), "user")
    im = IdMap(fitted.item_ids.tolist() + list(new_items), "item")
    return Interactions.from_arrays(users, items, timestamps=[ts] * len(users), user_ids=um, item_ids=im)


def _empty(fitted: Interactions) -> Interactions:
    return Interactions(sp.csr_matrix(fitted.shape, dtype=np.float32), fitted.user_map, fitted.item_map,
                        np.zeros(0))


# ---------------------------------------------------------------------------- core
@pytest.mark.parametrize("name", NAMES)
def test_empty_log_changes_nothing(name, fitted_small, planted):
    m = _copy(fitted_small(name), planted)
    users = np.arange(N_USERS)
    before = m.recommend(users, n=10)
    summary = update_model(m, _empty(m.train_), planted[3])
    after = m.recommend(users, n=10)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], rtol=1e-6, atol=1e-6)
    assert summary.touched_users == summary.touched_items == summary.new_pairs == 0


def test_als_update_with_empty_log_equals_refit(planted):
    train = planted[0]
    fitted = make_small("als").fit(train)
    update_model(fitted, _empty(train))
    refit = make_small("als").fit(train)
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(fitted.recommend(users, n=10)[0], refit.recommend(users, n=10)[0])
    np.testing.assert_allclose(fitted.item_factors_, refit.item_factors_, atol=1e-6)


@pytest.mark.parametrize("name", EXACT)
def test_closed_form_models_update_to_the_refit(name, fitted_small, planted):
    train, val, _, feats = planted
    m = _copy(fitted_small(name), planted)
    update_model(m, val, feats)
    refit = make_small(name).fit(train.union(val), feats if m.uses_features else None)
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(m.recommend(users, n=10)[0], refit.recommend(users, n=10)[0])


def test_itemknn_touched_items_get_the_refit_neighbours(fitted_small, planted):
    train, val, _, _ = planted
    m = _copy(fitted_small("itemknn"), planted)
    update_model(m, val)
    refit = make_small("itemknn").fit(train.union(val))
    touched = np.unique(val.matrix.indices)
    # column j of similarity_ holds item j's neighbours (ItemKNN._fit)
    a, b = m.similarity_[:, touched].toarray(), refit.similarity_[:, touched].toarray()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.item_norms_, refit.item_norms_, rtol=1e-6)


@pytest.mark.parametrize("name", ["als", "bridge", "hybrid", "content", "itemknn", "userknn"])
def test_a_new_user_gets_personal_lists(name, fitted_small, planted):
    m = _copy(fitted_small(name), planted)
    train = m.train_
    history = [1, 5, 9, 13]  # cluster 1
    summary = update_model(m, _log(train, ["new"] * 4, history, new_users=["new"]), planted[3])
    assert summary.new_users == 1 and m.n_users_ == train.n_users + 1
    u = m.train_.user_map.index("new")
    assert m.knows_user(u)
    idx, _ = m.recommend(u, n=5)
    assert not np.isin(idx, history).any()  # seen items filtered through the updated rows
    assert (cluster(idx[idx >= 0]) == 1).mean() >= 0.8, idx


@pytest.mark.parametrize("name", ["als", "bridge", "hybrid"])
def test_an_item_with_interactions_stops_being_cold(name, fitted_small, planted):
    m = _copy(fitted_small(name), planted)
    train = m.train_
    cold = int(COLD[0])  # cluster 0, media only at fit
    fans = [f"u{u}" for u in range(0, 40, 4)]  # users who like cluster 0
    x = _log(train, fans + fans[:5], [cold] * len(fans) + [999] * 5, new_items=[999])
    assert not m.knows_item(train.item_map.index(999) if 999 in train.item_map else -1)
    summary = update_model(m, x, planted[3])
    new = m.train_.item_map.index(999)
    assert summary.warmed_items == 2 and summary.new_items == 1
    for i in (cold, new):
        assert m.knows_item(i) and m.item_popularity_[i] > 0
    als = m if name == "als" else m.als_
    assert np.abs(als.item_factors_[[cold, new]]).sum(axis=1).min() > 0  # folded in
    if name == "hybrid":
        assert m.cold_[cold] == 0 and m.cold_[new] == 0 and not m.bridge_.cold_mask_[[cold, new]].any()
    # a cluster-0 user who has not seen it is recommended the item, a cluster-1 user is not
    fan, other = m.train_.user_map.index("u44"), m.train_.user_map.index("u1")
    assert cold in m.recommend(fan, n=8)[0]
    assert cold not in m.recommend(other, n=8)[0]


def test_new_items_with_media_are_scored_from_it(fitted_small, planted):
    m = _copy(fitted_small("hybrid"), planted)
    feats = planted[3]
    row = ItemFeatures([777], {b: feats.blocks[b][[2]] for b in feats.blocks}, block_masks=feats.block_masks,
                       fused=feats.fused[[2]])  # the media of item 2 (cluster 2)
    with pytest.raises(DataError, match="features of every item"):  # the bridge net is retrained on all items
        update_model(m, _log(m.train_, ["u2"], [777], new_items=[777]), row)
    both = ItemFeatures(feats.item_ids.tolist() + [777], {b: np.vstack([v, v[[2]]]) for b, v in feats.blocks.items()},
                        block_masks=feats.block_masks, fused=np.vstack([feats.fused, feats.fused[[2]]]))
    summary = update_model(m, _log(m.train_, ["u2"], [777], new_items=[777]), both)
    assert summary.new_items_with_media == 1
    new = m.train_.item_map.index(777)
    assert m.bridge_.has_media_[new] and m.cold_[new] == 0
    np.testing.assert_allclose(m.bridge_.predicted_factors_[new], m.bridge_.predicted_factors_[2], rtol=1e-5)


def test_update_helpers_refuse_maps_that_do_not_extend(planted):
    train = planted[0]
    shuffled = IdMap(train.item_ids[::-1].tolist(), "item")
    with pytest.raises(DataError, match="do not begin with the fitted item ids"):
        extend(train, train.user_map, shuffled)
    model = make_small("als").fit(train)
    with pytest.raises(DataError, match="smaller"):
        update_model(model, Interactions(sp.csr_matrix((2, 2), dtype=np.float32), ["a", "b"], [0, 1]))
    users, items = changes(train, train.union(planted[1]))
    np.testing.assert_array_equal(users, planted[1].active_users())
    np.testing.assert_array_equal(items, np.unique(planted[1].matrix.indices))


def test_list_change_and_reasons():
    a = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
    b = np.array([[4, 3, 2, 9], [6, 5, -1, -1]])
    assert list_change(a, b) == pytest.approx(0.125)
    drift = {k: 0.0 for k in REFIT_THRESHOLDS}
    assert refit_reasons(drift) == []
    drift["interactions_added"] = 0.5
    assert len(refit_reasons(drift)) == 1 and "50.0%" in refit_reasons(drift)[0]


# ---------------------------------------------------------------------------- job and CLI
@pytest.fixture()
def als_bundle(tmp_path, fitted_small):
    return save_bundle(fitted_small("als"), tmp_path / "als")


def _write_log(path, planted, extra: list[tuple] = ()):
    """The planted val part as a CSV log (raw ids), plus ``extra`` (user_id, item_id) rows."""
    val = planted[1]
    r, c, w, t = val.to_coo()
    users = val.user_ids[r].tolist() + [u for u, _ in extra]
    items = [int(i) for i in val.item_ids[c]] + [i for _, i in extra]
    ts = t.tolist() + [20.0] * len(extra)
    pl.DataFrame({"user_id": users, "item_id": items, "timestamp": ts}).write_csv(path)
    return path


def test_update_bundle_writes_a_verified_bundle_with_its_drift(als_bundle, planted, tmp_path):
    log = _write_log(tmp_path / "new.csv", planted, [("newcomer", 0), ("newcomer", 4), ("u1", 555)])
    rep = update_bundle(als_bundle, LogSpec(str(log)), out=tmp_path / "b2", drift_users=50, log_fn=lambda m: None)
    b2 = load_bundle(rep.path)  # verifies every checksum
    manifest = read_manifest(rep.path)
    record = manifest["extra"]["updates"][-1]
    assert record["summary"]["new_users"] == 1 and record["summary"]["new_items"] == 1
    assert record["log"].endswith("new.csv") and record["drift"] == rep.drift
    assert manifest["extra"]["fitted"]["interactions"] == planted[0].nnz
    assert 0 < rep.drift["interactions_added"] < 1 and rep.drift["untouched_users_sampled"] == 50
    assert rep.drift["untouched_list_change"] is not None
    assert rep.refit_due == bool(refit_reasons(rep.drift))
    x = b2.interactions
    assert x.nnz == planted[0].union(planted[1]).nnz + 3 and "newcomer" in x.user_map and 555 in x.item_map
    # the bundle answers exactly as the same update applied in memory
    mem = load_bundle(als_bundle).model
    update_model(mem, on_maps(_read(log), mem.train_))
    users = np.arange(x.n_users)
    np.testing.assert_array_equal(mem.recommend(users, n=10)[0], b2.model.recommend(users, n=10)[0])
    # a second update accumulates drift against the same fitted state
    log2 = tmp_path / "more.csv"
    pl.DataFrame({"user_id": ["u3"], "item_id": [555], "timestamp": [30.0]}).write_csv(log2)
    rep2 = update_bundle(rep.path, LogSpec(str(log2)), drift_users=0, log_fn=lambda m: None)
    assert rep2.path == rep.path and rep2.drift["updates_since_fit"] == 2
    assert rep2.drift["interactions_added"] > rep.drift["interactions_added"]
    assert read_manifest(rep.path)["extra"]["fitted"] == manifest["extra"]["fitted"]


def _read(path):
    from recsys.jobs.load import load_log

    return load_log(LogSpec(str(path)))


def test_update_adds_registered_and_featured_items_with_media(fitted_small, planted, tmp_path):
    from features.fusion import Fusion, FusionConfig
    from serving.registry import RegistrationLog, log_path_for

    train, _, _, raw = planted
    fusion = Fusion(FusionConfig(method="concat")).fit(raw)
    feats = fusion.transform(raw)
    model = make_small("content").fit(train, feats)
    path = save_bundle(model, tmp_path / "content", item_features=feats, fusion=fusion)
    # item 601 was registered while the bundle was served; item 602's media is in a features folder
    RegistrationLog(log_path_for(path)).append({"item_id": 601, "path": "a.mp4", "blocks": {
        b: raw.blocks[b][1].tolist() for b in raw.blocks}})
    folder = ItemFeatures([602], {b: raw.blocks[b][[3]] for b in raw.blocks}, block_masks=raw.block_masks)
    folder.save(tmp_path / "features")
    log = tmp_path / "new.csv"
    pl.DataFrame({"user_id": ["u1", "u3", "u5"], "item_id": [601, 602, 603],
                  "timestamp": [9.0, 9.0, 9.0]}).write_csv(log)
    rep = update_bundle(path, LogSpec(str(log)), out=tmp_path / "b2", features=str(tmp_path / "features"),
                        log_fn=lambda m: None)
    assert rep.summary["registered_items"] == 1 and rep.summary["new_items_with_media"] == 1
    b2 = load_bundle(rep.path)
    idx = b2.interactions.item_map
    has = b2.model.has_media_
    assert has[idx.index(601)] and has[idx.index(602)] and not has[idx.index(603)]
    assert b2.item_features.n_items == b2.interactions.n_items
    # the new items are fused like the catalog's: the same media gives the same fused row
    np.testing.assert_allclose(b2.item_features.fused[idx.index(602)], feats.fused[3], rtol=1e-5, atol=1e-6)


def test_timestamps_are_required_for_recency_models(fitted_small, planted):
    m = _copy(fitted_small("content"), planted)
    x = Interactions.from_arrays(["u1"], [3], user_ids=m.train_.user_map, item_ids=m.train_.item_map)
    with pytest.raises(DataError, match="timestamps"):
        update_model(m, x)


def test_cli_update(als_bundle, planted, tmp_path, capsys):
    log = _write_log(tmp_path / "new.csv", planted)
    report = tmp_path / "update.json"
    code = main(["update", "--bundle", str(als_bundle), "--log", str(log), "--out", str(tmp_path / "b2"),
                 "--drift-users", "40", "--json", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    assert "drift since the fit (1 update(s))" in out and "interactions_added" in out
    data = json.loads(report.read_text())
    # the planted val part is 13% of the fitted interactions: past the 10% threshold
    assert data["refit_due"] and "refit recommended" in out
    load_bundle(tmp_path / "b2")
    # an existing --out is not replaced without --overwrite; the error is one line
    code = main(["update", "--bundle", str(als_bundle), "--log", str(log), "--out", str(tmp_path / "b2")])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    # ids of the wrong kind are named
    bad = tmp_path / "bad.csv"
    pl.DataFrame({"user_id": ["u1"], "item_id": ["not-an-int"]}).write_csv(bad)
    assert main(["update", "--bundle", str(als_bundle), "--log", str(bad)]) == 2
    assert "not-an-int" in capsys.readouterr().err


def test_an_item_only_new_users_took_gets_factors(fitted_small, planted):
    m = _copy(fitted_small("als"), planted)
    train = m.train_
    x = _log(train, ["n1", "n1", "n1", "n2", "n2", "n2"], [0, 4, 888, 8, 12, 888], new_users=["n1", "n2"],
             new_items=[888])
    update_model(m, x)
    new = m.train_.item_map.index(888)
    assert np.abs(m.item_factors_[new]).sum() > 0
    # it sits with cluster 0 (its takers' tastes): a cluster-0 user scores it above a cluster-1 user
    fan, other = m.train_.user_map.index("u4"), m.train_.user_map.index("u1")
    assert m.score(fan, new) > m.score(other, new)
