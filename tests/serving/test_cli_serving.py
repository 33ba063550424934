"""The serving commands of the CLI: ``avrec fit`` -> ``avrec recommend`` (Parquet, CSV, --users)
and ``avrec serve`` as a real subprocess answering HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

from recsys.cli import main
from serving.bundle import load_bundle

from serving_data import N_USERS, cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def als_bundle(planted, tmp_path_factory):
    """An ALS bundle made by ``avrec fit --log`` from the planted training log (CSV)."""
    d = tmp_path_factory.mktemp("cli")
    log = d / "log.csv"
    planted[0].to_frame().write_csv(log)
    out = d / "bundle"
    rc = main(["fit", "--log", str(log), "--model", "als", "--param", "als.factors=8",
               "--param", "als.regularization=0.05", "--param", "als.alpha=5.0", "--param", 'als.weighting="none"',
               "--out", str(out)])
    assert rc == 0 and (out / "manifest.json").is_file()
    return out


def test_recommend_writes_parquet_lists_of_every_user(als_bundle, tmp_path):
    out = tmp_path / "recs.parquet"
    assert main(["recommend", "--bundle", str(als_bundle), "--out", str(out), "--n", "5"]) == 0
    df = pl.read_parquet(out)
    assert df.columns == ["user_id", "rank", "item_id", "score"]
    assert df.height == N_USERS * 5 and df["user_id"].n_unique() == N_USERS
    b = load_bundle(als_bundle)
    x = b.interactions
    for uid in ("u0", "u42"):
        u = x.user_map.index(uid)
        mine = df.filter(pl.col("user_id") == uid).sort("rank")
        idx, scores = b.model.recommend(u, n=5)
        assert mine["item_id"].to_list() == x.item_ids[idx].tolist()
        np.testing.assert_allclose(mine["score"].to_numpy(), scores, rtol=1e-6)
        assert mine["rank"].to_list() == [1, 2, 3, 4, 5]
        assert not set(mine["item_id"].to_list()) & set(x.item_ids[x.user_items(u)].tolist())
    # planted tastes survive the CSV log round trip
    assert np.mean(cluster(df["item_id"].to_numpy()) == np.array([int(u[1:]) % 4 for u in df["user_id"]])) > 0.7


def test_recommend_csv_for_listed_users(als_bundle, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("u7\nu3\n")
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--bundle", str(als_bundle), "--out", str(out), "--n", "4", "--users", str(users)]) == 0
    df = pl.read_csv(out)
    assert df.columns == ["user_id", "rank", "item_id", "score"]
    assert df.height == 8 and set(df["user_id"]) == {"u7", "u3"}
    # the same lists as the Parquet path
    pq = tmp_path / "recs.parquet"
    main(["recommend", "--bundle", str(als_bundle), "--out", str(pq), "--n", "4", "--users", str(users)])
    assert df["item_id"].to_list() == pl.read_parquet(pq)["item_id"].to_list()


def test_recommend_and_serve_fail_cleanly(als_bundle, tmp_path, capsys):
    users = tmp_path / "users.txt"
    users.write_text("u1\nnobody\n")
    assert main(["recommend", "--bundle", str(als_bundle), "--out", str(tmp_path / "r.csv"), "--users", str(users)]) == 2
    assert "nobody" in capsys.readouterr().err
    assert main(["serve", "--bundle", str(tmp_path / "no-bundle")]) == 2
    assert "no-bundle" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_avrec_serve_subprocess(als_bundle, tmp_path):
    port = _free_port()
    media = tmp_path / "media"
    media.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AVREC_TOKEN": "cli-test-token-42"}
    proc = subprocess.Popen([sys.executable, "-m", "recsys.cli", "serve", "--bundle", str(als_bundle),
                             "--port", str(port), "--media-root", str(media)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"avrec serve did not come up: {proc.communicate()[0]}") from None
                time.sleep(0.1)
        assert health.status_code == 200
        assert health.json()["model"] == "als" and health.json()["n_users"] == N_USERS
        recs = httpx.get(f"{url}/users/u2/recommendations", params={"n": 3}).json()
        assert recs["known_user"] and len(recs["items"]) == 3
        # issue 15: the token comes from $AVREC_TOKEN; writes without it are 401
        assert httpx.post(f"{url}/items", json={"item_id": 999, "path": "x.mp4"}).status_code == 401
        auth = {"Authorization": "Bearer cli-test-token-42"}
        # --media-root reached the service; an ALS bundle has no extractor, so nothing to register with
        r = httpx.post(f"{url}/items", json={"item_id": 999, "path": "x.mp4"}, headers=auth)
        assert r.status_code == 400 and "no media file" in r.json()["detail"]
        (media / "x.mp4").write_bytes(b"\x00" * 16)
        r = httpx.post(f"{url}/items", json={"item_id": 999, "path": "x.mp4"}, headers=auth)
        assert r.status_code == 409 and "extractor" in r.json()["detail"]
        # issue 15: similar items of a CF-only bundle default to the CF space (was 409: by=fused)
        sim = httpx.get(f"{url}/items/3/similar", params={"n": 4})
        assert sim.status_code == 200 and sim.json()["by"] == "cf" and len(sim.json()["items"]) == 4
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
        out = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, out


# ---------------------------------------------------------------------------- a server that talks (issue 16)
class _Lines:
    """The lines a stream of a subprocess writes, read by a thread as they come."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._done = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match | None:
        """The first line matching ``pattern`` (waiting for it), or None once the stream ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := re.search(pattern, line):
                        return m
                if self._done:
                    return None
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"timed out waiting for {pattern!r}; lines so far: {self.lines}")

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


class _Serve:
    """``avrec serve ARGS --port 0`` in a subprocess; ``url`` is read from its start-up line."""

    STARTUP = r"^avrec serve: (http://127\.0\.0\.1:\d+) "

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "recsys.cli", "serve", "--port", "0", *args], cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = _Lines(self.proc.stdout), _Lines(self.proc.stderr)

    def wait_started(self) -> str:
        m = self.err.wait_for(self.STARTUP)
        if m is None:
            self.proc.wait(10)
            raise AssertionError(f"no start-up line; stderr:\n{self.err.text()}\nstdout:\n{self.out.text()}")
        return m.group(1)

    def stop(self, sig: int = signal.SIGINT) -> float:
        """Send ``sig``; seconds until the process has exited."""
        t0 = time.perf_counter()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        return time.perf_counter() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _keep_alive_connection(url: str) -> socket.socket:
    """A client connection that made one request and now sits idle, kept alive (HTTP/1.1)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=5)
    conn.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower()
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
    while len(body) < length:  # the whole answer read: nothing is left in flight
        body += conn.recv(65536)
    return conn


def test_serve_prints_its_startup_line_and_an_access_log(als_bundle):
    server = _Serve(["--bundle", str(als_bundle)])
    try:
        url = server.wait_started()
        line = server.err.wait_for(_Serve.STARTUP).string
        # where, what and with which features: one line a new user can act on
        assert f"(docs: {url}/docs)" in line and f"serving {als_bundle.resolve()}: als," in line
        assert f"{N_USERS:,} users" in line and "(0 registered)" in line
        n_items = httpx.get(f"{url}/health").json()["n_items"]
        assert f"{n_items:,} items" in line
        assert "search: off (the bundle has no text)" in line and "registration: off (no --media-root)" in line
        assert "workers" not in line and line.endswith("Ctrl-C stops")
        # the access log is on by default (stdout), at the default --log-level warning
        assert httpx.get(f"{url}/users/u1/recommendations", params={"n": 2}).status_code == 200
        assert httpx.get(f"{url}/items/nosuch/similar").status_code == 404
        assert server.out.wait_for(r'"GET /users/u1/recommendations\?n=2 HTTP/1.1" 200', timeout=10)
        assert server.out.wait_for(r'"GET /items/nosuch/similar HTTP/1.1" 404', timeout=10)
        assert server.stop(signal.SIGINT) < 5 and server.proc.returncode == 0
        # nothing else at the default level: uvicorn's info lines are not shown
        assert server.err.lines == [line], server.err.text()
    finally:
        server.kill()


def test_serve_quiet_prints_nothing_but_errors(als_bundle):
    # --quiet has no start-up line to read the port from: bind a free one
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "recsys.cli", "serve", "--bundle", str(als_bundle), "--port",
                             str(port), "--quiet"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/items/nosuch/similar").status_code == 404
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out == "" and err == "", (out, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("keep_alive", [False, True], ids=["idle", "keep-alive-client"])
def test_serve_stops_cleanly_in_under_a_second(als_bundle, sig, keep_alive):
    server = _Serve(["--bundle", str(als_bundle)])
    conn = None
    try:
        url = server.wait_started()
        if keep_alive:
            conn = _keep_alive_connection(url)
        seconds = server.stop(sig)
        print(f"avrec serve stopped {seconds:.3f} s after {signal.Signals(sig).name}"
              f"{' with an idle keep-alive client' if keep_alive else ''}")
        assert server.proc.returncode == 0, server.err.text()
        assert seconds < 1.0, f"stopped {seconds:.2f} s after the signal"
        if conn is not None:
            assert conn.recv(1) == b""  # the server closed the idle connection (not left to time out)
        assert "Traceback" not in server.err.text()
    finally:
        server.kill()
        if conn is not None:
            conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_with_workers_announces_once_and_stops_cleanly_in_under_a_second(als_bundle, sig):
    server = _Serve(["--bundle", str(als_bundle), "--workers", "2"])
    conn = None
    try:
        url = server.wait_started()
        starts = [x for x in server.err.lines if x.startswith("avrec serve:")]
        assert len(starts) == 1 and "; 2 workers; " in starts[0]
        # printed once both workers answer: requests on new connections all succeed, with access lines
        for k in range(6):
            assert httpx.get(f"{url}/users/u{k}/recommendations").status_code == 200
        assert server.out.wait_for(r'"GET /users/u5/recommendations HTTP/1.1" 200', timeout=10)
        conn = _keep_alive_connection(url)
        seconds = server.stop(sig)
        print(f"avrec serve --workers 2 stopped {seconds:.3f} s after {signal.Signals(sig).name} "
              "with an idle keep-alive client")
        assert server.proc.returncode == 0, server.err.text()
        assert seconds < 1.0, f"stopped {seconds:.2f} s after the signal"
        assert "Traceback" not in server.err.text()
    finally:
        server.kill()
        if conn is not None:
            conn.close()
