"""Bundles: every model round-trips to identical recommendations; tampering and version
mismatches fail clearly; nothing is pickled; new items can be added to a loaded model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.data import ItemFeatures
from recsys.errors import BundleError, DataError
from serving.bundle import load_bundle, read_manifest, save_bundle

from serving_data import COLD, N_USERS, SMALL, cluster, fit_small

MODELS = sorted(SMALL)


@pytest.fixture(scope="module", params=MODELS)
def saved(request, planted, fitted_small, tmp_path_factory):
    m = fitted_small(request.param)
    path = save_bundle(m, tmp_path_factory.mktemp(request.param) / "b",
                       item_features=planted[3] if m.uses_features else None)
    return m, path


def test_round_trip_gives_identical_recommendations(saved):
    m, path = saved
    b = load_bundle(path)
    assert type(b.model) is type(m) and b.model.get_params() == m.get_params()
    users = np.arange(N_USERS)
    i1, s1 = m.recommend(users, n=10)
    i2, s2 = b.model.recommend(users, n=10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-6, atol=1e-7)
    assert b.interactions.user_ids.tolist() == m.train_.user_ids.tolist()
    # new users are folded in the same way after loading
    hist = m.train_.matrix[[3]]
    np.testing.assert_array_equal(m.recommend(-1, hist, n=5)[0], b.model.recommend(-1, hist, n=5)[0])


def test_bundle_holds_no_pickle(saved):
    _, path = saved
    suffixes = {p.suffix for p in path.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".npy", ".npz", ".parquet", ".txt"}, suffixes
    for p in path.rglob("*.np[yz]"):
        np.load(p, allow_pickle=False)  # raises if any array needed pickle
    manifest = read_manifest(path)
    assert manifest["model"]["name"] == saved[0].name and manifest["avrec_version"]
    assert set(manifest["files"]) == {p.relative_to(path).as_posix() for p in path.rglob("*")
                                      if p.is_file() and p.name != "manifest.json"}


def test_tampered_file_is_refused(planted, tmp_path):
    path = save_bundle(fit_small("als", planted), tmp_path / "b")
    target = next((path / "model").glob("item_factors*.npy"))
    arr = np.load(target)
    arr[0, 0] += 1.0
    np.save(target, arr)
    with pytest.raises(BundleError, match="checksum mismatch.*item_factors"):
        load_bundle(path)
    (path / "stray.txt").write_text("x")
    with pytest.raises(BundleError):
        load_bundle(path, verify=True)


def test_version_mismatch_and_non_bundles_are_refused(planted, tmp_path):
    path = save_bundle(fit_small("popularity", planted), tmp_path / "b")
    mp = path / "manifest.json"
    doc = json.loads(mp.read_text())
    doc["avrec_version"] = "0.0.0-other"
    mp.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="written by avrec 0.0.0-other"):
        load_bundle(path)
    assert load_bundle(path, strict_version=False).model.name == "popularity"
    doc["format_version"] = 99
    mp.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="format version 99"):
        load_bundle(path)
    with pytest.raises(BundleError, match="not an avrec bundle"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="exists"):
        save_bundle(fit_small("popularity", planted), path)


def test_stray_public_attribute_does_not_break_loading(planted, tmp_path):
    """Settings come from the constructor signature: a public attribute set after construction is
    not saved as a setting, so the bundle still loads (it used to fail in the constructor)."""
    m = fit_small("popularity", planted)
    m.note = "set by a notebook"
    b = load_bundle(save_bundle(m, tmp_path / "b"))
    assert "note" not in b.model.get_params() and b.model.get_params() == m.get_params()


def test_added_items_can_be_recommended(saved, planted):
    """A new item (cloned media of cluster 1) joins the item map of a loaded model; content models
    rank it for cluster-1 users, CF models accept it without crashing (they cannot know it yet)."""
    train, _, _, feats = planted
    m = load_bundle(saved[1]).model
    name = m.name
    src = int(COLD[1])  # cold, cluster 1
    new = ItemFeatures(["new-1"], {b: v[[src]] for b, v in feats.blocks.items()}, fused=feats.fused[[src]])
    idx = m.add_items(["new-1"], new if m.uses_features else None)
    assert idx.tolist() == [feats.n_items] and m.n_items_ == feats.n_items + 1
    users = np.flatnonzero(cluster(np.arange(N_USERS)) == 1)
    rec, scores = m.recommend(users, n=10)
    assert np.isfinite(scores).all() and rec.max() <= feats.n_items
    if name in ("content", "bridge", "hybrid"):
        # identical media, identical treatment: the clone scores exactly like its cold source
        s = m.scores(users)
        np.testing.assert_allclose(s[:, feats.n_items], s[:, src], rtol=1e-5, atol=1e-6)
    if name in ("content", "hybrid"):
        assert (rec == feats.n_items).any(axis=1).mean() > 0.5, "a new cluster-1 item belongs in cluster-1 users' lists"
    with pytest.raises(DataError, match="already known"):
        m.add_items(["new-1"], new)
