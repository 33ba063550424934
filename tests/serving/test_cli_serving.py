"""The serving commands of the CLI: ``avrec fit`` -> ``avrec recommend`` (Parquet, CSV, --users)
and ``avrec serve`` as a real subprocess answering HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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
