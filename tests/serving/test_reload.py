"""Hot reload over real HTTP: ``POST /admin/reload`` and SIGHUP swap bundles atomically.

Two bundles of the planted data with different lists (the hybrid and an ALS) are swapped ten
times while four clients ask for recommendations; every answer must be one of the two bundles'
own answers for that user (computed beforehand on independently loaded copies), and none may
fail. A bundle that does not load or verify must leave the old one serving with a 409.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from serving.bundle import load_bundle, save_bundle
from serving.metrics import parse_exposition
from serving.reload import Reloader, ReloadError, bundle_checksum
from serving.service import RecommendationService

from live import live_server
from serving_data import N_ITEMS, fit_small

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "reload-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USERS = [f"u{i}" for i in range(0, 120, 6)]  # 20 users, every cluster


def ids(body) -> list:
    return [it["item_id"] for it in body["items"]]


@pytest.fixture(scope="module")
def als_bundle(tmp_path_factory, planted):
    return save_bundle(fit_small("als", planted), tmp_path_factory.mktemp("reload") / "als")


@pytest.fixture(scope="module")
def expected(hybrid_bundle, als_bundle):
    """{user: [hybrid's top 5, ALS's top 5]} from the services on their own copies of the bundles."""
    out: dict[str, list] = {u: [] for u in USERS}
    for b in (hybrid_bundle, als_bundle):
        svc = RecommendationService(load_bundle(b))
        for u in USERS:
            out[u].append(ids(svc.recommend_user(u, n=5)))
    return out


def metric(client, name: str, **labels) -> float:
    samples = parse_exposition(client.get("/metrics").text)
    return sum(v for fam in samples.values() for n, lab, v in fam if n == name and labels.items() <= lab.items())


def test_ten_swaps_under_load_fail_no_request(hybrid_bundle, als_bundle, expected):
    differ = [u for u, (a, b) in expected.items() if a != b]
    assert len(differ) >= 10  # otherwise "one of the two bundles" would prove nothing
    results: list[tuple[str, int | None, object]] = []
    stop = threading.Event()
    with live_server(hybrid_bundle, token=TOKEN) as client:

        def hammer(k: int) -> None:
            with httpx.Client(base_url=client.base_url, timeout=30) as c:
                i = k
                while not stop.is_set():
                    u = USERS[i % len(USERS)]
                    i += 1
                    try:
                        r = c.get(f"/users/{u}/recommendations", params={"n": 5})
                        results.append((u, r.status_code, ids(r.json()) if r.status_code == 200 else r.text))
                    except httpx.HTTPError as exc:  # a dropped connection is a failed request too
                        results.append((u, None, repr(exc)))

        threads = [threading.Thread(target=hammer, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        swaps = []
        for swap in range(10):
            while len(results) < 20 * (swap + 1):  # every bundle answers some requests before the next swap
                time.sleep(0.01)
            target = als_bundle if swap % 2 == 0 else hybrid_bundle
            r = client.post("/admin/reload", json={"path": str(target)}, headers=AUTH)
            assert r.status_code == 200, r.text
            swaps.append(r.json())
        while len(results) < 20 * 11:
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(30)
        health = client.get("/health").json()
        reloads = metric(client, "avrec_bundle_reloads_total", outcome="ok")
    failed = [r for r in results if r[1] != 200]
    assert not failed, failed[:5]
    inconsistent = [(u, got) for u, _, got in results if got not in expected[u]]
    assert not inconsistent, inconsistent[:5]
    # both bundles really answered, and the swaps are what the answers say
    assert {tuple(got) for u, _, got in results if u in differ} & {tuple(expected[u][0]) for u in differ}
    assert {tuple(got) for u, _, got in results if u in differ} & {tuple(expected[u][1]) for u in differ}
    assert [s["current"]["model"] for s in swaps] == ["als", "hybrid"] * 5
    assert [s["current"]["generation"] for s in swaps] == list(range(1, 11))
    assert swaps[0]["current"]["checksum"] == bundle_checksum(als_bundle)
    assert swaps[0]["previous"]["checksum"] == bundle_checksum(hybrid_bundle)
    assert health["model"] == "hybrid" and health["bundle_checksum"] == bundle_checksum(hybrid_bundle)
    assert reloads == 10


def test_a_bundle_that_fails_to_load_or_verify_leaves_the_old_one_serving(als_bundle, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(als_bundle, tampered)
    data = bytearray((tampered / "interactions.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    (tampered / "interactions.npz").write_bytes(bytes(data))
    with live_server(als_bundle, token=TOKEN) as client:
        before = client.get("/users/u3/recommendations", params={"n": 5}).json()
        for path, reason in ((tampered, "checksum mismatch"), (tmp_path / "nothing", "not an avrec bundle")):
            r = client.post("/admin/reload", json={"path": str(path)}, headers=AUTH)
            assert r.status_code == 409, r.text
            assert reason in r.json()["detail"] and "still serving" in r.json()["detail"]
        assert client.get("/health").json()["bundle_checksum"] == bundle_checksum(als_bundle)
        assert client.get("/users/u3/recommendations", params={"n": 5}).json() == before
        assert metric(client, "avrec_bundle_reloads_total", outcome="failed") == 2
        assert metric(client, "avrec_bundle_generation") == 0
        # a reload is a write route: no token, no reload
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", json={"path": 5}).status_code == 401  # auth first
        assert client.post("/admin/reload", json={"bogus": 1}, headers=AUTH).status_code == 422
        # the default reloads the served path: a new snapshot of the same bundle
        r = client.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200 and r.json()["current"]["generation"] == 1
        assert r.json()["current"]["checksum"] == r.json()["previous"]["checksum"]
    with live_server(als_bundle) as client:  # no token configured: write routes are off
        assert client.post("/admin/reload", headers=AUTH).status_code == 403


def test_one_reload_at_a_time_and_none_with_several_workers(als_bundle):
    r = Reloader(registry=None)
    r.start(als_bundle)
    r._reload_lock.acquire()  # a reload in progress
    try:
        with pytest.raises(ReloadError, match="in progress"):
            r.reload()
    finally:
        r._reload_lock.release()
    assert r.reload()["current"]["generation"] == 1
    several = Reloader(registry=None, workers=2)
    several.start(als_bundle)
    with pytest.raises(ReloadError, match="SIGHUP"):
        several.reload()


def test_registered_items_survive_a_reload_of_the_served_path(media_bundle, tmp_path):
    bundle, root = media_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    with live_server(copy, media_root=root, token=TOKEN) as client:
        r = client.post("/items", json={"item_id": "fresh1", "path": "media/i0003.mp4"}, headers=AUTH)
        assert r.status_code == 201, r.text
        r = client.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["current"]["registered_items"] == 1  # replayed from the log beside the bundle
        assert client.get("/items/fresh1/similar", params={"n": 2}).status_code == 200
        # search knows the item too: the new snapshot's index was built with it
        assert client.get("/health").json()["registered_items"] == 1


def test_a_registration_that_outlives_its_service_lands_on_the_successor(media_bundle, tmp_path):
    from serving.app import build_service
    from serving.registry import RegistrationLog, log_path_for

    bundle, root = media_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    old = build_service(load_bundle(copy), media_root=root, token=TOKEN)
    new = build_service(load_bundle(copy), media_root=root, token=TOKEN)
    old.retire(new)  # a reload swapped while the media was being extracted
    out = old.register_item("late1", "media/i0004.mp4")
    assert out["item_idx"] == new.item_index("late1") and old.item_index("late1") < 0
    assert [r["item_id"] for r in RegistrationLog(log_path_for(copy)).read()] == ["late1"]  # logged once


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_up(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/health", timeout=2).raise_for_status()
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"the server did not come up: {proc.communicate()[0]}") from None
            time.sleep(0.1)


def _wait_for(check, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_sighup_reloads_the_served_path(als_bundle, hybrid_bundle, tmp_path):
    from test_cli_serving import _free_port

    served = tmp_path / "served"
    shutil.copytree(als_bundle, served)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(["-m", "recsys.cli", "serve", "--bundle", str(served), "--port", str(port)], {})
    try:
        _wait_up(proc, url)
        assert httpx.get(f"{url}/health").json()["bundle_checksum"] == bundle_checksum(als_bundle)
        # a deploy replaces the folder at the served path, then signals the server
        shutil.rmtree(served)
        shutil.copytree(hybrid_bundle, served)
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: httpx.get(f"{url}/health").json()["bundle_checksum"] == bundle_checksum(hybrid_bundle))
        assert httpx.get(f"{url}/health").json()["model"] == "hybrid"
        # a broken bundle at the path: logged, and the hybrid keeps serving
        (served / "manifest.json").write_text("{")
        proc.send_signal(signal.SIGHUP)
        with httpx.Client(base_url=url) as client:
            _wait_for(lambda: metric(client, "avrec_bundle_reloads_total", outcome="failed") == 1)
            assert client.get("/health").json()["model"] == "hybrid"
            assert client.get("/users/u1/recommendations").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert "SIGHUP" in out and "not valid JSON" in out  # the refused reload was logged with its reason


@pytest.mark.slow
def test_several_workers_sum_their_metrics_and_restart_on_sighup(als_bundle, tmp_path):
    from test_cli_serving import _free_port

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    proc = _start(["-m", "recsys.cli", "serve", "--bundle", str(als_bundle), "--port", str(port), "--workers", "2",
                   "--log-level", "info"], {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "AVREC_TOKEN": TOKEN})
    try:
        _wait_up(proc, url)
        for k in range(30):  # a new connection each: the kernel spreads them over the two workers
            assert httpx.get(f"{url}/users/u{k}/recommendations").status_code == 200
        route = {"route": "/users/{user_id}/recommendations", "status": "200"}
        counts = set()
        for _ in range(8):  # whichever worker answers the scrape sums both
            samples = parse_exposition(httpx.get(f"{url}/metrics").text)
            counts.add(sum(v for n, lab, v in samples["avrec_http_requests"]
                           if n == "avrec_http_requests_total" and route.items() <= lab.items()))
            assert sum(v for n, _, v in samples["avrec_items"]) == N_ITEMS
        assert counts == {30}
        assert len({p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}) == 2  # two writers
        r = httpx.post(f"{url}/admin/reload", headers=AUTH)
        assert r.status_code == 409 and "SIGHUP" in r.json()["detail"]
        # SIGHUP to the parent: uvicorn starts a new worker before stopping each old one
        t0 = time.time()
        proc.send_signal(signal.SIGHUP)

        def all_new() -> bool:
            stamps = [sum(v for n, _, v in parse_exposition(httpx.get(f"{url}/metrics").text)[
                "avrec_bundle_loaded_timestamp_seconds"]) for _ in range(6)]
            return min(stamps) > t0

        _wait_for(all_new)
        assert httpx.get(f"{url}/users/u1/recommendations").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out


def test_settle_heap_frees_cycles_and_freezes_the_rest():
    """After start-up and each reload the collector skips the served objects (no full-collection
    pauses in the tail), and cycles the retired bundle left are freed first."""
    import gc
    import weakref

    from serving.reload import settle_heap

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle only the collector can free
    gone = weakref.ref(a)
    del a, b
    try:
        settle_heap()
        assert gone() is None
        assert gc.get_freeze_count() > 0
        kept = Node()
        settle_heap()  # a reload: unfreeze, collect, freeze again
        assert gc.get_freeze_count() > 0 and kept is not None
    finally:
        gc.unfreeze()
