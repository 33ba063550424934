"""Nothing lost: ``avrec fit`` and ``avrec recommend`` killed (SIGKILL) while they write leave no
half-written bundle or list under the output name; the previous complete output survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from recsys.cli import main
from serving.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big_log(tmp_path_factory) -> Path:
    """4,000 users x 1,500 items: enough that writing a list of 1,000 items a user takes a while."""
    import numpy as np

    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("kill")
    n = 40_000
    pl.DataFrame({"user_id": rng.integers(0, 4000, n), "item_id": rng.integers(0, 1500, n)}).write_csv(d / "log.csv")
    return d / "log.csv"


def _kill_while_writing(argv: list[str], watch: Path, pattern: str, timeout: float = 90.0) -> bool:
    """Run ``avrec argv``; SIGKILL it the moment a file matching ``pattern`` appears in ``watch``.

    Returns whether it was caught mid-write (False: it finished first)."""
    proc = subprocess.Popen([sys.executable, "-m", "recsys.cli", *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if any(watch.glob(pattern)):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.0005)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_killed_recommend_leaves_no_half_list(big_log, tmp_path):
    bundle = tmp_path / "bundle"
    assert main(["fit", "--log", str(big_log), "--model", "popularity", "--out", str(bundle)]) == 0
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"recs{suffix}"
        args = ["recommend", "--bundle", str(bundle), "--out", str(out), "--n", "1000", "--include-seen"]
        caught = _kill_while_writing(args, tmp_path, f".recs.tmp-*{suffix}")
        assert caught, "the write finished before it could be interrupted"
        assert not out.exists()  # nothing under the real name
        assert main(args[:-1] + ["--n", "3"]) == 0  # a complete list ...
        first = pl.read_csv(out) if suffix == ".csv" else pl.read_parquet(out)
        assert first.height == 4000 * 3 or first.height > 3000 * 3
        caught = _kill_while_writing(args, tmp_path, f".recs.tmp-*{suffix}")
        assert caught
        again = pl.read_csv(out) if suffix == ".csv" else pl.read_parquet(out)
        assert again.equals(first)  # ... survives a killed rewrite whole


def test_killed_fit_leaves_no_half_bundle(big_log, tmp_path):
    out = tmp_path / "b"
    args = ["fit", "--log", str(big_log), "--model", "als", "--param", "als.factors=64", "--param",
            "als.iterations=1", "--out", str(out)]
    assert _kill_while_writing(args, tmp_path, ".b.tmp-*")
    assert not out.exists()
    assert main(args) == 0  # the next run replaces the dead run's temporary folder
    assert load_bundle(out).model.name == "als" and not list(tmp_path.glob(".b.tmp-*"))
    assert _kill_while_writing(args + ["--overwrite"], tmp_path, ".b.tmp-*")
    assert load_bundle(out).model.name == "als"  # the complete bundle is still there, checksums intact
