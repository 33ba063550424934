"""API fuzzing: schemathesis drives every operation of the OpenAPI schema of a real uvicorn server
on loopback (a bridge bundle with a media root and a token, so registration is live), bounded in
examples and time; plus the hostile inputs a schema cannot describe: large n, unicode ids,
percent-encoded traversal, symlinks escaping --media-root, oversized bodies. No answer may be a
5xx, and every 4xx must carry a reason."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from live import live_server

TOKEN = "fuzz-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 50  # per operation and generation mode: ~400 requests in ~6 s
TALLY = {"requests": 0, "5xx": 0, "4xx_without_reason": 0, "seconds": 0.0, "by_status": {}}


@pytest.fixture(scope="module")
def fuzz_server(media_bundle, tmp_path_factory):
    bundle, root = media_bundle
    copy = tmp_path_factory.mktemp("fuzz") / "bundle"
    shutil.copytree(bundle, copy)  # its own registrations log
    outside = root.parent / "outside.mp4"
    shutil.copy(root / "media" / "i0002.mp4", outside)
    for name, target in (("escape.mp4", outside), ("up", root.parent)):
        if not (root / name).is_symlink():
            (root / name).symlink_to(target)
    with live_server(copy, media_root=root, token=TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_server):
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json")


#: Every operation of the app; a route added without fuzzing fails test_every_operation_is_fuzzed.
OPERATIONS = [("GET", "/health"), ("GET", "/users/{user_id}/recommendations"), ("POST", "/recommendations"),
              ("GET", "/items/{item_id}/similar"), ("POST", "/items"), ("GET", "/metrics"),
              ("GET", "/search"), ("POST", "/search/by-media"), ("POST", "/admin/reload")]


def _judge(status: int, body: bytes) -> None:
    TALLY["requests"] += 1
    TALLY["by_status"][status] = TALLY["by_status"].get(status, 0) + 1
    if status >= 500:
        TALLY["5xx"] += 1
    if 400 <= status < 500:
        try:
            detail = httpx.Response(status, content=body).json().get("detail")
        except ValueError:
            detail = None
        if not detail:
            TALLY["4xx_without_reason"] += 1
        assert detail, (status, body[:200])
    assert status < 500, (status, body[:300])


def test_every_operation_is_fuzzed(fuzz_schema):
    ops = {(r.ok().method.upper(), r.ok().path) for r in fuzz_schema.get_all_operations()}
    assert ops == set(OPERATIONS)


# schemathesis's own pytest plumbing (schema.parametrize / from_fixture) does not run under pytest 9,
# so each operation's schemathesis strategy is driven by hypothesis here: the same generated cases
RUNS = [(m, p, mode) for m, p in OPERATIONS for mode in ("positive", "negative")
        if mode == "positive" or p not in ("/health", "/metrics")]  # no inputs: nothing to make invalid


@pytest.mark.parametrize(("method", "path", "mode"), RUNS, ids=[f"{m} {p} {mode}" for m, p, mode in RUNS])
def test_schema_fuzz(fuzz_schema, method, path, mode):
    from hypothesis import given
    from schemathesis import GenerationMode

    operation = fuzz_schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    @given(case=strategy)
    def run(case):
        t0 = time.perf_counter()
        # half the cases carry the token, so registration is fuzzed past authentication too
        headers = AUTH if TALLY["requests"] % 2 == 0 else {}
        response = case.call(headers=headers, timeout=30)
        TALLY["seconds"] += time.perf_counter() - t0
        _judge(response.status_code, response.content)

    run()


HOSTILE = [
    ("GET", "/users/u0001/recommendations?n=1000", None),
    ("GET", "/users/u0001/recommendations?n=1001", None),
    ("GET", "/users/u0001/recommendations?n=99999999999999999999999", None),
    ("GET", "/users/%F0%9F%8E%B5%E2%80%AE%00x/recommendations", None),
    ("GET", "/users/" + "%C3%A9" * 3000 + "/recommendations", None),
    ("GET", "/items/%E2%80%8B/similar", None),
    ("GET", "/items/..%2F..%2Fetc%2Fpasswd/similar", None),
    ("GET", "/items/%2e%2e/similar?by=audio&n=1000", None),
    ("GET", "/items/i0001/similar?by=%00", None),
    ("GET", "/%2e%2e/%2e%2e/etc/passwd", None),
    ("POST", "/items", {"item_id": "t1", "path": "..%2F..%2Foutside.mp4"}),
    ("POST", "/items", {"item_id": "t2", "path": "../outside.mp4"}),
    ("POST", "/items", {"item_id": "t3", "path": "escape.mp4"}),  # a symlink out of the media root
    ("POST", "/items", {"item_id": "t4", "path": "up/outside.mp4"}),  # a symlinked folder out of it
    ("POST", "/items", {"item_id": "t5", "path": "media/\u0000.mp4"}),
    ("POST", "/items", {"item_id": "\u202e\U0001f3b5", "path": "media/" + "a" * 4000}),
    ("POST", "/items", {"item_id": 10**30, "path": "media/i0001.mp4"}),
    ("POST", "/recommendations", {"items": ["\U0001f3b5", "i0001", -1, 2**63], "n": 1000}),
    ("POST", "/recommendations", {"items": ["i0001"] * 10_001}),
    ("GET", "/search?q=" + "a" * 600, None),
    ("GET", "/search?q=%00%F0%9F%8E%B5&user=%E2%80%AE&n=1000", None),
    ("POST", "/search/by-media", {"path": "escape.mp4", "by": "fused", "n": 10}),
    ("POST", "/search/by-media", {"path": "../outside.mp4", "by": "audio"}),
    ("POST", "/admin/reload", {"path": "/etc"}),
    ("POST", "/admin/reload", {"path": "media/\u0000"}),
    ("POST", "/admin/reload", {"path": "~nobody-such/x"}),
    ("POST", "/admin/reload", {"path": "up"}),  # a symlink to a folder that is no bundle
]


@pytest.mark.parametrize(("method", "url", "body"), HOSTILE, ids=[f"{m} {u[:40]}" for m, u, _ in HOSTILE])
def test_hostile_inputs(fuzz_server, method, url, body):
    r = fuzz_server.request(method, url, json=body, headers=AUTH)
    _judge(r.status_code, r.content)
    if body and str(body.get("item_id", "")).startswith("t"):  # nothing outside the media root is registered
        assert r.status_code in (400, 404, 409, 422), r.text


def test_oversized_bodies_are_refused(fuzz_server):
    big = b'{"items": [' + b'"x",' * 1_000_000 + b'"x"]}'  # 4 MB
    r = fuzz_server.post("/recommendations", content=big, headers={"content-type": "application/json"})
    _judge(r.status_code, r.content)
    assert r.status_code == 413

    def chunks():  # no Content-Length: the cap must hold while the body streams in
        for _ in range(64):
            yield b" " * 65536

    r = fuzz_server.post("/recommendations", content=chunks(), headers={"content-type": "application/json"})
    _judge(r.status_code, r.content)
    assert r.status_code == 413
    assert fuzz_server.get("/health").status_code == 200  # and the server is still there


def test_fuzz_totals(fuzz_server):
    """The closing-note numbers (run with -s to see them): requests, 5xx (must be 0), time."""
    health = fuzz_server.get("/health").json()
    assert health["n_items"] == 12 + health["registered_items"]
    print(f"\nfuzz: {TALLY['requests']} requests, {TALLY['5xx']} 5xx, "
          f"{TALLY['4xx_without_reason']} 4xx without a reason, {TALLY['seconds']:.1f} s in schemathesis calls; "
          f"statuses {dict(sorted(TALLY['by_status'].items()))}")
    assert TALLY["5xx"] == 0 and TALLY["4xx_without_reason"] == 0
    assert TALLY["requests"] >= 100
