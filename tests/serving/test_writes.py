"""Write routes over real HTTP: the bearer token, registrations that survive a restart, the
registrations log's crash and tamper handling; and the similar-items default of a CF-only bundle."""

from __future__ import annotations

import shutil

import pytest

from recsys.errors import BundleError
from serving.app import build_service
from serving.bundle import load_bundle, save_bundle
from serving.registry import log_path_for

from live import live_server
from serving_data import fit_small

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def bundle_copy(media_bundle, tmp_path):
    """(bundle, media root): a private copy of the media bundle, so its registrations log is this test's."""
    bundle, root = media_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    (root / "uploads").mkdir(exist_ok=True)
    shutil.copy(root / "media" / "i0005.mp4", root / "uploads" / "writes.mp4")
    return copy, root


def test_write_routes_need_the_token(bundle_copy):
    bundle, root = bundle_copy
    body = {"item_id": "t1", "path": "uploads/writes.mp4"}
    with live_server(bundle, media_root=root, token=TOKEN) as api:
        assert api.get("/health").json()["registration"] is True
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": TOKEN}):
            r = api.post("/items", json=body, headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert "Bearer" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
        assert api.get("/health").json()["n_items"] == 12  # nothing was added
        # read routes need no token
        assert api.get("/users/u0001/recommendations").status_code == 200
        r = api.post("/items", json=body, headers=AUTH)
        assert r.status_code == 201 and r.json()["item_id"] == "t1"
    # no token configured: write routes are off, whatever the client sends
    with live_server(bundle, media_root=root) as api:
        assert api.get("/health").json()["registration"] is False
        r = api.post("/items", json={"item_id": "t2", "path": "uploads/writes.mp4"}, headers=AUTH)
        assert r.status_code == 403 and "--token" in r.json()["detail"]


def test_registered_items_survive_a_restart(bundle_copy):
    bundle, root = bundle_copy
    with live_server(bundle, media_root=root, token=TOKEN) as api:
        assert api.post("/items", json={"item_id": "kept", "path": "uploads/writes.mp4"}, headers=AUTH).status_code == 201
        before = api.get("/users/u0007/recommendations", params={"n": 1000}).json()["items"]
        similar = api.get("/items/kept/similar", params={"n": 3}).json()
    assert log_path_for(bundle).is_file() and not (bundle / "kept").exists()  # beside the bundle, not in it
    load_bundle(bundle)  # the bundle itself is untouched: its checksums still hold
    with live_server(bundle, media_root=root, token=TOKEN) as api:
        health = api.get("/health").json()
        assert health["n_items"] == 13 and health["registered_items"] == 1 and health["registrations_persisted"]
        after = api.get("/users/u0007/recommendations", params={"n": 1000}).json()["items"]
        assert [i["item_id"] for i in after] == [i["item_id"] for i in before] and "kept" in {i["item_id"] for i in after}
        assert [i["score"] for i in after] == pytest.approx([i["score"] for i in before], rel=1e-5)
        assert api.get("/items/kept/similar", params={"n": 3}).json() == similar
        r = api.post("/items", json={"item_id": "kept", "path": "uploads/writes.mp4"}, headers=AUTH)
        assert r.status_code == 409  # still known after the restart
    # without a media root or token the registered items are still served (they are data)
    with live_server(bundle) as api:
        assert api.get("/items/kept/similar").status_code == 200


def test_torn_record_is_dropped_and_a_damaged_log_refused(bundle_copy, caplog):
    bundle, root = bundle_copy
    service = build_service(load_bundle(bundle), media_root=root, token=TOKEN)
    service.register_item("a1", "uploads/writes.mp4")
    service.register_item("a2", "uploads/writes.mp4")
    log = log_path_for(bundle)
    good = log.read_bytes()
    log.write_bytes(good + good.splitlines(keepends=True)[0][:100])  # a crash in the middle of a third write
    with caplog.at_level("WARNING"):
        again = build_service(load_bundle(bundle))
    assert again.n_registered == 2 and "torn record" in caplog.text
    assert log.read_bytes() == good  # cut back to the last whole record
    lines = good.splitlines(keepends=True)
    log.write_bytes(lines[0].replace(b'"a1"', b'"a9"') + lines[1])  # edited by hand
    with pytest.raises(BundleError, match="line 1: record fails its checksum"):
        build_service(load_bundle(bundle))


def test_similar_items_default_to_what_the_bundle_can_answer(planted, hybrid_bundle, tmp_path):
    als = save_bundle(fit_small("als", planted), tmp_path / "als")
    with live_server(als) as api:
        r = api.get("/items/3/similar", params={"n": 5})
        assert r.status_code == 200 and r.json()["by"] == "cf" and len(r.json()["items"]) == 5
        assert api.get("/items/3/similar", params={"by": "fused"}).status_code == 409  # asked for explicitly
    with live_server(hybrid_bundle) as api:
        assert api.get("/items/3/similar").json()["by"] == "fused"
