"""The avrec command: help is fast, evaluate runs end to end on small files, errors are clear."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import polars as pl
import pytest

from recsys.cli import main


@pytest.fixture()
def log_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 1500
    users = rng.integers(0, 80, n)
    items = (users % 4) * 10 + rng.integers(0, 10, n)
    ts = rng.uniform(0, 1e6, n)
    path = tmp_path / "log.csv"
    pl.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": items, "timestamp": ts}).write_csv(path)
    return path


def test_help_is_fast_and_lists_every_command():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "recsys.cli", "--help"], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    for cmd in ("demo", "demo-data", "evaluate", "features", "info"):
        assert cmd in out.stdout
    assert elapsed < 5.0  # includes interpreter start-up; the import itself must not load torch
    probe = subprocess.run([sys.executable, "-c", "import sys, recsys.cli; print('torch' in sys.modules, 'cv2' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False False"


def test_evaluate_log_end_to_end(log_csv, tmp_path, capsys):
    report = tmp_path / "report"
    code = main(["evaluate", "--log", str(log_csv), "--split", "random", "--models", "popularity,als",
                 "--k", "5,10", "--param", "als.factors=8", "--param", "als.iterations=5",
                 "--json", str(tmp_path / "r.json"), "--report", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    assert "recall@10" in out and "als" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) >= {"popularity", "als", "_meta"}
    assert data["als"]["recall@10"] > data["popularity"]["recall@10"]
    assert data["als"]["params"]["factors"] == 8
    assert (report / "recall_at_k.png").exists() and (report / "results.md").exists()


def test_evaluate_with_tuning(log_csv, tmp_path):
    code = main(["evaluate", "--log", str(log_csv), "--split", "random", "--models", "als", "--k", "10",
                 "--tune", "als", "--trials", "2", "--param", "als.iterations=3", "--report", str(tmp_path)])
    assert code == 0
    tuning = json.loads((tmp_path / "tuning_als.json").read_text())
    assert len(tuning["trials"]) == 3  # the defaults plus two random points
    assert tuning["best"]["score"] == max(t["score"] for t in tuning["trials"])


def test_user_errors_exit_2_with_a_reason(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,weight\nu1,i1,1\nu2,i2,oops\n")
    assert main(["evaluate", "--log", str(bad), "--weight-col", "weight", "--split", "random"]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "weight" in err
    assert main(["evaluate", "--log", str(bad), "--weight-col", "weight"]) == 2  # temporal: needs a timestamp
    assert "--split temporal" in capsys.readouterr().err
    assert main(["evaluate", "--log", str(tmp_path / "missing.csv")]) == 2
    assert "--log" in (err := capsys.readouterr().err) and "missing.csv: not found" in err
    assert main(["evaluate", "--dataset", str(tmp_path), "--log", str(bad)]) == 2
    assert main(["evaluate", "--log", str(bad), "--models", "nope"]) == 2
