"""Item indexes in bundles and in the server: saved and checksummed, reloaded, forced exact with
``--exact``, grown by registration over HTTP, chosen by the fit job and visible in its log,
``/health`` and ``/metrics``."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

import recsys.retrieval
from recsys.errors import BundleError
from recsys.retrieval import ExactIndex, IVFIndex, attach, current_index
from serving.bundle import load_bundle, save_bundle

from live import live_server
from serving_data import N_ITEMS

TOKEN = "retrieval-token-0123456789"


def _copy(m, planted):
    feats = planted[3] if m.uses_features else None
    return type(m).from_state(copy.deepcopy(m.get_params()), copy.deepcopy(m.get_state()), m.train_, feats)


@pytest.fixture(scope="module")
def ann_bundle(tmp_path_factory, fitted_small, planted):
    """(path, the model it was saved from): an ALS bundle with forced approximate indexes."""
    model = _copy(fitted_small("als"), planted)
    attach(model, exact=False, nlist=4, nprobe=3)
    return save_bundle(model, tmp_path_factory.mktemp("ann") / "als"), model


def test_approximate_indexes_are_saved_checksummed_and_reloaded(ann_bundle, fitted_small):
    path, saved = ann_bundle
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["retrieval"] == "retrieval"
    files = set(manifest["files"])
    assert {"retrieval/retrieval.json", "retrieval/model/ip/ivf.faiss", "retrieval/model/ip/index.json",
            "retrieval/model/cos/ivf.faiss"} <= files  # every index file checksummed like the rest
    b = load_bundle(path)
    assert b.model.retrieval_["kind"] == "ivf" and "bundle's approximate indexes" in b.model.retrieval_["reason"]
    assert isinstance(current_index(b.model), IVFIndex) and current_index(b.model).nprobe_ == 3
    users = np.arange(b.model.n_users_)
    for a, c in (saved.recommend(users, n=10), b.model.recommend(users, n=10)), (
            saved.similar_items(5, 10), b.model.similar_items(5, 10)):
        np.testing.assert_array_equal(a[0], c[0])
        np.testing.assert_allclose(a[1], c[1], rtol=1e-6)
    # --exact: the saved indexes are ignored, the lists are the dense path's
    e = load_bundle(path, exact=True)
    assert e.model.retrieval_["kind"] == "exact" and "--exact" in e.model.retrieval_["reason"]
    assert isinstance(current_index(e.model), ExactIndex)
    np.testing.assert_array_equal(e.model.recommend(users, n=10)[0], fitted_small("als").recommend(users, n=10)[0])


def test_a_tampered_index_file_is_refused(ann_bundle, tmp_path):
    path, _ = ann_bundle
    copy_ = tmp_path / "b"
    shutil.copytree(path, copy_)
    with open(copy_ / "retrieval" / "model" / "ip" / "ivf.faiss", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    with pytest.raises(BundleError, match="checksum mismatch.*ivf.faiss"):
        load_bundle(copy_)


def test_exact_indexes_are_not_saved(fitted_small, planted, tmp_path):
    model = _copy(fitted_small("als"), planted)
    attach(model)
    path = save_bundle(model, tmp_path / "exact")
    assert json.loads((path / "manifest.json").read_text())["retrieval"] is None and not (path / "retrieval").exists()
    assert load_bundle(path).model.retrieval_["kind"] == "exact"


def test_fit_job_chooses_builds_saves_and_logs(tmp_path, monkeypatch):
    from recsys.jobs.fit import fit_bundle
    from recsys.jobs.load import LogSpec

    rng = np.random.default_rng(0)
    log = tmp_path / "log.csv"
    pairs = [(u, i) for u in range(60) for i in rng.choice(300, 8, replace=False)]
    log.write_text("user_id,item_id\n" + "".join(f"u{u},i{i}\n" for u, i in pairs))
    params = {"factors": 8, "iterations": 3}
    monkeypatch.setattr(recsys.retrieval, "EXACT_MAX_ITEMS", 100)  # ~300 items: 'large' here
    lines: list[str] = []
    path = fit_bundle("als", tmp_path / "ann", log=LogSpec(str(log)), params=params, log_fn=lines.append)
    assert any(line.startswith("retrieval: ivf (") and "at or above the approximate-search threshold of 100" in line
               for line in lines), lines
    assert (path / "retrieval" / "retrieval.json").is_file()
    assert load_bundle(path).model.retrieval_["kind"] == "ivf"
    lines.clear()
    path = fit_bundle("als", tmp_path / "exact", log=LogSpec(str(log)), params=params, log_fn=lines.append, exact=True)
    assert "retrieval: exact (exact search asked for (--exact))" in lines
    assert not (path / "retrieval").exists()
    b = load_bundle(path)  # a large catalog without a saved index: exact, and the reason says so
    assert b.model.retrieval_["kind"] == "exact" and "refit without --exact" in b.model.retrieval_["reason"]


def test_server_reports_the_retrieval_and_exact_forces_it(ann_bundle):
    path, _ = ann_bundle
    with live_server(path) as api:
        r = api.get("/health").json()["retrieval"]
        assert r["kind"] == "ivf" and r["indexes"]["model.ip"] == {
            "kind": "ivf", "metric": "ip", "n": N_ITEMS, "dim": 8, "nlist": 4, "nprobe": 3}
        assert 'retrieval="ivf"' in api.get("/metrics").text
        assert api.get("/users/u3/recommendations", params={"n": 5}).status_code == 200
    with live_server(path, exact=True) as api:
        assert api.get("/health").json()["retrieval"]["kind"] == "exact"
        assert 'retrieval="exact"' in api.get("/metrics").text
    with live_server(path, token=TOKEN, exact=True) as api:  # a reload keeps --exact
        r = api.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
        assert api.get("/health").json()["retrieval"]["kind"] == "exact"


def test_similar_by_cf_comes_from_the_cosine_index(ann_bundle):
    from serving.service import build_service

    path, saved = ann_bundle
    service = build_service(load_bundle(path), registry=None)
    out = service.similar_items(5, n=10, by="cf")
    expected = saved.similar_items(5, 10)[0]
    expected = expected[expected >= 0]
    # the model lists zero-factor (cold) items at 0 after the positive ones; the server leaves them out
    zero = set(saved.index_.zero.tolist())
    assert [it["item_id"] for it in out["items"]][: 3] == [int(i) for i in expected if i not in zero][: 3]
    assert out["n_candidates"] == N_ITEMS - len(zero) - 1
    with pytest.raises(Exception, match="no cf vector"):
        service.similar_items(int(saved.index_.zero[0]), by="cf")


def test_registration_grows_an_approximate_index_over_http(media_bundle, tmp_path):
    bundle, root = media_bundle
    b = load_bundle(bundle, exact=False)  # build approximate indexes on the 12-item bridge bundle
    assert b.model.retrieval_["kind"] == "ivf"
    ann = save_bundle(b.model, tmp_path / "ann", item_features=b.item_features, fusion=b.fusion, extractor=b.extractor)
    (root / "uploads").mkdir(exist_ok=True)
    shutil.copy(root / "media" / "i0004.mp4", root / "uploads" / "ann.mp4")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with live_server(ann, media_root=root, token=TOKEN) as api:
        health = api.get("/health").json()
        assert health["retrieval"]["kind"] == "ivf" and health["retrieval"]["indexes"]["model.ip"]["n"] == 12
        r = api.post("/items", json={"item_id": "ann-new", "path": "uploads/ann.mp4"}, headers=auth)
        assert r.status_code == 201, r.text
        health = api.get("/health").json()
        assert health["n_items"] == 13
        assert health["retrieval"]["indexes"]["model.ip"]["n"] == 13  # the index grew, not replaced by dense
        assert health["retrieval"]["indexes"]["model.cos"]["n"] == 13
        # found similar: the new item lists neighbours by cf, and is listed among another item's
        sim = api.get("/items/ann-new/similar", params={"by": "cf", "n": 20}).json()
        assert sim["by"] == "cf" and len(sim["items"]) == 12 and sim["n_candidates"] == 12
        other = api.get("/items/i0004/similar", params={"by": "cf", "n": 20}).json()
        assert "ann-new" in [it["item_id"] for it in other["items"]]
        # recommended: a long list of a history holds it (retrieved from the grown index)
        rec = api.post("/recommendations", json={"items": ["i0001"], "n": 20}).json()
        assert "ann-new" in [it["item_id"] for it in rec["items"]]
