"""The HTTP API over real HTTP: uvicorn on a loopback port, httpx as the client.

Two servers: the planted hybrid bundle (integer item ids in four content clusters, string user
ids, registration off) for every read endpoint and the error contract; and a bridge bundle fitted
on a tiny generated catalog of real MP4 files, started with a media root, for ``POST /items``.
Answers are checked against :class:`RecommendationService` on an independently loaded copy of the
bundle, so the HTTP layer must add nothing and lose nothing.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from serving.bundle import load_bundle
from serving.service import RecommendationService

from live import live_server
from serving_data import COLD, N_ITEMS, N_USERS, cluster

ROUTES = ["/health", "/users/{user_id}/recommendations", "/recommendations", "/items/{item_id}/similar",
          "/items", "/metrics"]


@pytest.fixture(scope="module")
def api(hybrid_bundle):
    with live_server(hybrid_bundle) as client:
        yield client


@pytest.fixture(scope="module")
def reference(hybrid_bundle):
    """The service on its own copy of the bundle: what every answer must equal."""
    return RecommendationService(load_bundle(hybrid_bundle))


def seen(reference, user_id):
    x = reference.interactions
    return set(x.item_ids[x.user_items(x.user_map.index(user_id))].tolist())


def ids(body):
    return [it["item_id"] for it in body["items"]]


# ---------------------------------------------------------------------------- read endpoints
def test_health(api):
    r = api.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body | {"avrec_version": None, "bundle_created": None, "bundle_checksum": None, "retrieval": None} == {
        "status": "ok", "model": "hybrid", "n_users": N_USERS, "n_items": N_ITEMS, "registration": False,
        "avrec_version": None, "bundle_created": None, "registered_items": 0, "registrations_persisted": True,
        "bundle_checksum": None, "retrieval": None}
    assert len(body["bundle_checksum"]) == 64  # SHA-256 of the manifest
    # a small catalog: exact search, one inner-product index per embedding component, cosine on the bridge
    retrieval = body["retrieval"]
    assert retrieval["kind"] == "exact" and "below the approximate-search threshold" in retrieval["reason"]
    assert {"als.ip", "media.ip", "media.cos"} <= set(retrieval["indexes"])
    assert all(ix["kind"] == "exact" and ix["n"] <= N_ITEMS for ix in retrieval["indexes"].values())


def test_user_recommendations_equal_the_service_and_skip_seen(api, reference):
    for user in ("u0", "u5", "u118"):
        r = api.get(f"/users/{user}/recommendations", params={"n": 7})
        assert r.status_code == 200
        body = r.json()
        assert body == reference.recommend_user(user, n=7) | {"items": body["items"]}
        want = reference.recommend_user(user, n=7)["items"]
        assert ids(body) == [w["item_id"] for w in want]
        np.testing.assert_allclose([it["score"] for it in body["items"]], [w["score"] for w in want], rtol=1e-6)
        assert body["known_user"] is True and len(body["items"]) == 7
        assert not seen(reference, user) & set(ids(body))
        scores = [it["score"] for it in body["items"]]
        assert scores == sorted(scores, reverse=True)
        # planted tastes: user u likes cluster u % 4
        assert np.mean(cluster(ids(body)) == int(user[1:]) % 4) >= 0.7


def test_exclude_seen_false_may_return_training_items(api, reference):
    # the hybrid ranks seen items below every candidate, so ask for the whole catalog
    body = api.get("/users/u3/recommendations", params={"n": 1000, "exclude_seen": "false"}).json()
    assert seen(reference, "u3") <= set(ids(body)) and len(body["items"]) == N_ITEMS
    assert ids(body) == ids(reference.recommend_user("u3", n=1000, exclude_seen=False))


def test_unknown_user_gets_cold_start_list_and_flag(api, reference):
    r = api.get("/users/somebody-new/recommendations", params={"n": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["known_user"] is False and body["user_id"] == "somebody-new"
    assert ids(body) == ids(reference.recommend_user("somebody-new", n=5)) and len(body["items"]) == 5


def test_ad_hoc_history_reports_unknown_items(api, reference):
    history = [0, "4", 8, "no-such-item", 4242]
    r = api.post("/recommendations", json={"items": history, "n": 6})
    assert r.status_code == 200
    body = r.json()
    assert body["unknown_items"] == ["no-such-item", 4242] and body["n_history"] == 3
    assert ids(body) == ids(reference.recommend_history(history, n=6))
    assert not {0, 4, 8} & set(ids(body))  # the history is excluded by default
    assert np.mean(cluster(ids(body)) == 0) >= 0.7  # a cluster-0 history gets cluster-0 items
    weighted = api.post("/recommendations", json={"items": [0, 1], "weights": [0.0, 1.0], "n": 6}).json()
    assert np.mean(cluster(ids(weighted)) == 1) >= 0.7  # all the weight on the cluster-1 item
    kept = api.post("/recommendations", json={"items": [0, 4, 8], "n": 1000, "exclude_seen": False}).json()
    assert {0, 4, 8} <= set(ids(kept))


def test_similar_items_by_every_view(api, reference):
    for by in ("fused", "audio", "video", "cf"):
        r = api.get("/items/1/similar", params={"n": 5, "by": by})
        assert r.status_code == 200, (by, r.text)
        body = r.json()
        assert body["by"] == by and body["item_id"] == "1" and 1 not in ids(body)
        assert ids(body) == ids(reference.similar_items(1, n=5, by=by))
        if by != "cf":  # content views reveal the planted cluster
            assert np.mean(cluster(ids(body)) == 1) >= 0.8
    # a cold item (no interactions) is similar to its content cluster too
    body = api.get(f"/items/{COLD[2]}/similar", params={"n": 5}).json()
    assert np.mean(cluster(ids(body)) == cluster(COLD[2])) >= 0.8


def test_unknown_item_is_404_with_reason(api):
    r = api.get("/items/nope/similar")
    assert r.status_code == 404 and r.json() == {"detail": "unknown item 'nope'"}


def test_registration_disabled_without_token(api):
    # issue 15: write routes are off unless the server has a token (was: 403 for no --media-root)
    r = api.post("/items", json={"item_id": "new", "path": "x.mp4"})
    assert r.status_code == 403 and "--token" in r.json()["detail"]


# ---------------------------------------------------------------------------- error contract
@pytest.mark.parametrize(("method", "url", "body", "field"), [
    ("GET", "/users/u0/recommendations?n=0", None, ["query", "n"]),
    ("GET", "/users/u0/recommendations?n=1001", None, ["query", "n"]),
    ("GET", "/users/u0/recommendations?n=ten", None, ["query", "n"]),
    ("GET", "/users/u0/recommendations?exclude_seen=maybe", None, ["query", "exclude_seen"]),
    ("GET", "/items/1/similar?by=smell", None, ["query", "by"]),
    ("POST", "/recommendations", {"n": 5}, ["body", "items"]),
    ("POST", "/recommendations", {"items": [1], "n": -3}, ["body", "n"]),
    ("POST", "/recommendations", {"items": [1, 2], "weights": [1.0]}, ["body", "weights"]),
    ("POST", "/recommendations", {"items": [1], "weights": [-1.0]}, ["body", "weights", 0]),
    ("POST", "/recommendations", {"items": [1], "colour": "red"}, ["body", "colour"]),
    ("POST", "/recommendations", {"items": [[1]]}, ["body", "items", 0, "str"]),
])
def test_invalid_parameters_are_422_naming_the_field(api, method, url, body, field):
    r = api.request(method, url, json=body)
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert field in locs, locs


BAD_REQUESTS = [
    ("GET", "/users/%00/recommendations", None),
    ("GET", "/users/" + "u" * 5000 + "/recommendations", None),
    ("GET", "/users/ünïcødé 🎵/recommendations?n=1000", None),
    ("GET", "/users/-1/recommendations", None),
    ("GET", "/users/u0/recommendations?n=1e3", None),
    ("GET", "/items/-1/similar", None),
    ("GET", "/items/48/similar", None),
    ("GET", "/items/1.0/similar?n=1000&by=cf", None),
    ("GET", "/items/%20/similar", None),
    ("GET", "/nowhere", None),
    ("DELETE", "/health", None),
    ("POST", "/recommendations", "not json"),
    ("POST", "/recommendations", "[1, 2]"),
    ("POST", "/recommendations", '{"items": [1], "weights": [NaN]}'),
    ("POST", "/recommendations", '{"items": [1], "weights": [Infinity]}'),
    ("POST", "/recommendations", '{"items": [1e999]}'),
    ("POST", "/recommendations", '{"items": [], "n": 3}'),
    ("POST", "/recommendations", '{"items": ["' + "x" * 10000 + '"]}'),
    ("POST", "/recommendations", '{"items": [null, true, 1.5]}'),
    ("POST", "/items", '{"item_id": "n", "path": "../outside.mp4"}'),
    ("POST", "/items", '{"item_id": 3, "path": "/etc/passwd"}'),
    ("POST", "/items", None),
]


def test_no_bad_request_gives_a_5xx(api):
    for method, url, content in BAD_REQUESTS:
        headers = {"content-type": "application/json"} if content is not None else {}
        r = api.request(method, url, content=content, headers=headers)
        assert r.status_code < 500, (method, url[:80], r.status_code, r.text[:200])
        if r.status_code >= 400:  # some are fine (an odd user id is a cold-start user)
            assert "detail" in r.json()


def test_empty_history_is_a_cold_start_list(api, reference):
    body = api.post("/recommendations", json={"items": [], "n": 3}).json()
    assert body["n_history"] == 0 and ids(body) == ids(reference.recommend_user("nobody", n=3))


# ---------------------------------------------------------------------------- metrics and docs
def _samples(client) -> dict:
    """The /metrics answer, parsed as Prometheus text by prometheus_client's own parser."""
    from serving.metrics import parse_exposition

    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return parse_exposition(r.text)


def _value(samples, name, **labels) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(v for family in samples.values() for n, lab, v in family if n == name and labels.items() <= lab.items())


def test_metrics_count_requests_per_route_and_status(api):
    before = _samples(api)
    for _ in range(3):
        api.get("/health")
    api.get("/items/nope/similar")
    api.get("/items/1/similar", params={"n": 2})
    api.get("/not-a-route/9")
    api.request("PROPFIND", "/health")  # methods are a label too: non-standard ones share one value
    after = _samples(api)

    def delta(route, status, method="GET"):
        name = "avrec_http_requests_total"
        labels = {"method": method, "route": route, "status": status}
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("/health", "200") == 3
    assert delta("/items/{item_id}/similar", "404") == 1
    assert delta("/items/{item_id}/similar", "200") == 1
    assert delta("unmatched", "404") == 1
    assert delta("/metrics", "200") == 1  # the first scrape, counted once it was sent
    assert delta("/health", "405", method="other") == 1
    # the latency histogram counts the same requests, in buckets that add up
    hist = "avrec_http_request_duration_seconds"
    count = (_value(after, f"{hist}_count", route="/health", method="GET")
             - _value(before, f"{hist}_count", route="/health", method="GET"))
    assert count == 3
    buckets = sorted((float(lab["le"]), v) for n, lab, v in after[hist]
                     if n == f"{hist}_bucket" and lab["route"] == "/health" and lab["method"] == "GET")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1] == (float("inf"), _value(after, f"{hist}_count", route="/health", method="GET"))
    assert 0 < _value(after, f"{hist}_sum", route="/health", method="GET") < 10
    # raw ids never become series of their own
    assert not any("nope" in str(lab) for fam in after.values() for _, lab, _ in fam)


def test_metrics_describe_the_served_bundle(api, hybrid_bundle):
    from serving.reload import bundle_checksum

    samples = _samples(api)
    info = [lab for n, lab, v in samples["avrec_bundle_info"] if v == 1]
    assert len(info) == 1
    assert info[0]["checksum"] == bundle_checksum(hybrid_bundle) and info[0]["model"] == "hybrid"
    assert info[0]["path"] == str(hybrid_bundle.resolve())
    assert info[0]["retrieval"] == "exact"  # a small catalog
    assert _value(samples, "avrec_items") == N_ITEMS and _value(samples, "avrec_users") == N_USERS
    assert _value(samples, "avrec_registered_items") == 0
    assert _value(samples, "avrec_bundle_generation") == 0
    assert _value(samples, "avrec_bundle_reloads_total", outcome="ok") == 0
    assert "avrec_search_cache_entries" in samples and "process_resident_memory_bytes" in samples


def test_openapi_docs(api):
    spec = api.get("/openapi.json").json()
    assert set(ROUTES) <= set(spec["paths"])
    by = spec["paths"]["/items/{item_id}/similar"]["get"]["parameters"][2]["schema"]  # optional since issue 15
    assert any(alt.get("$ref", "").endswith("SimilarBy") for alt in by["anyOf"])
    # the write route declares its bearer token
    assert spec["paths"]["/items"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "HistoryIn" in spec["components"]["schemas"]
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# ---------------------------------------------------------------------------- new media items
TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def media_api(media_bundle):
    bundle, media_root = media_bundle
    with live_server(bundle, media_root=media_root, token=TOKEN) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client


def test_register_new_media_item_end_to_end(media_api, media_bundle):
    bundle, root = media_bundle
    (root / "uploads").mkdir(exist_ok=True)
    shutil.copy(root / "media" / "i0003.mp4", root / "uploads" / "clip.mp4")
    assert media_api.get("/health").json()["registration"] is True
    r = media_api.post("/items", json={"item_id": "n1", "path": "uploads/clip.mp4"})
    assert r.status_code == 201, r.text
    assert r.json() == {"item_id": "n1", "item_idx": 12, "has_audio": True, "has_video": True, "duration_s": 1.0,
                        "cold": True}
    assert media_api.get("/health").json()["n_items"] == 13
    # the same media as i0003: identical fused content
    sim = media_api.get("/items/n1/similar", params={"n": 3}).json()
    assert sim["items"][0]["item_id"] == "i0003" and sim["items"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    # and the new item is now an answer for i0003 too (the similarity cache was refreshed)
    back = media_api.get("/items/i0003/similar", params={"n": 1}).json()
    assert ids(back) == ["n1"]
    cf = media_api.get("/items/n1/similar", params={"n": 3, "by": "cf"})
    assert cf.status_code == 200 and len(cf.json()["items"]) == 3
    # recommendable at once: in full lists, with the score the library gives after the same registration
    ref = RecommendationService(load_bundle(bundle), media_root=root)
    ref.register_item("n1", "uploads/clip.mp4")
    for user in ("u0001", "u0030"):
        body = media_api.get(f"/users/{user}/recommendations", params={"n": 1000}).json()
        assert "n1" in ids(body)
        want = {it["item_id"]: it["score"] for it in ref.recommend_user(user, n=1000)["items"]}
        got = {it["item_id"]: it["score"] for it in body["items"]}
        assert got.keys() == want.keys() and got["n1"] == pytest.approx(want["n1"], rel=1e-5)
    hist = media_api.post("/recommendations", json={"items": ["i0003"], "n": 1000}).json()
    assert "n1" in ids(hist)
    # ids take the item map's type: this catalog's ids are strings, so 77 is registered as "77"
    shutil.copy(root / "media" / "i0007.mp4", root / "uploads" / "other.mp4")
    r = media_api.post("/items", json={"item_id": 77, "path": "uploads/other.mp4"})
    assert r.status_code == 201 and r.json()["item_id"] == "77" and r.json()["item_idx"] == 13
    assert ids(media_api.get("/items/77/similar", params={"n": 1}).json()) == ["i0007"]
    # a second registration of the id is a conflict
    again = media_api.post("/items", json={"item_id": "n1", "path": "uploads/clip.mp4"})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]


@pytest.mark.parametrize(("body", "field"), [
    ({"item_id": "", "path": "a.mp4"}, ["body", "item_id", "constrained-str"]),
    ({"item_id": "x"}, ["body", "path"]),
])
def test_invalid_registration_is_422_naming_the_field(media_api, body, field):
    # moved from test_invalid_parameters_are_422_naming_the_field: the token is checked first
    r = media_api.post("/items", json=body)
    assert r.status_code == 422, r.text
    assert field in [e["loc"] for e in r.json()["detail"]]


def test_bad_media_is_refused_with_a_reason(media_api, media_bundle):
    _, root = media_bundle
    outside = root.parent / "outside.mp4"
    shutil.copy(root / "media" / "i0001.mp4", outside)  # a real file: refused for where it is
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    n_items = media_api.get("/health").json()["n_items"]
    cases = [
        ("../outside.mp4", 400, "outside the media root"),
        (str(outside), 400, "outside the media root"),
        ("media/../../outside.mp4", 400, "outside the media root"),
        ("missing.mp4", 400, "no media file"),
        ("media", 400, "no media file"),
        ("corrupt.mp4", 422, "corrupt.mp4"),
    ]
    for i, (path, status, reason) in enumerate(cases):
        r = media_api.post("/items", json={"item_id": f"bad{i}", "path": path})
        assert r.status_code == status and reason in r.json()["detail"], (path, r.status_code, r.text)
    assert str(root) not in r.json()["detail"]  # the decode error names the file as the client did
    assert media_api.get("/health").json()["n_items"] == n_items
    assert media_api.get("/items/bad0/similar").status_code == 404
