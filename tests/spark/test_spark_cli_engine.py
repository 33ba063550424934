"""``--engine spark`` through the CLI: fit ALS into a bundle, lists from Spark, evaluation in Spark;
the bundle loads and serves like a local one, and Spark's metrics equal the local ones."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from recsys.cli import main
from serving.bundle import load_bundle


def _log(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        for i in rng.choice(np.arange(12) + 12 * (u % 2), size=6, replace=False):
            rows.append((f"u{u}", int(i), float(rng.integers(1, 1000))))
    path = tmp_path / "log.csv"
    pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row").write_csv(path)
    return path


def test_fit_recommend_evaluate_with_spark(spark, tmp_path):
    log = _log(tmp_path)
    params = ["--param", "als.factors=4", "--param", "als.iterations=5", "--param", "als.regularization=0.05"]
    engine = ["--engine", "spark", "--spark-master", "local[2]"]
    assert main(["fit", "--log", str(log), "--model", "als", "--out", str(tmp_path / "b"), *params, *engine]) == 0
    b = load_bundle(tmp_path / "b")
    assert b.manifest["extra"]["engine"] == "spark" and b.model.factors == 4
    assert b.model.user_factors_.shape == (40, 4) and np.isfinite(b.model.item_factors_).all()
    # users of group 0 get group-0 items first
    idx, _ = b.model.recommend(b.interactions.user_map.index("u0"), n=3)
    assert (idx < 12).all()

    assert main(["recommend", "--bundle", str(tmp_path / "b"), "--out", str(tmp_path / "recs.parquet"),
                 "--n", "5", *engine]) == 0
    spark_recs = pl.read_parquet(f"{tmp_path / 'recs.parquet'}/*.parquet").sort(["user_id", "rank"])
    assert main(["recommend", "--bundle", str(tmp_path / "b"), "--out", str(tmp_path / "local.parquet"),
                 "--n", "5"]) == 0
    local = pl.read_parquet(tmp_path / "local.parquet").sort(["user_id", "rank"])
    assert spark_recs.select("user_id", "rank", "item_id").equals(local.select("user_id", "rank", "item_id"))

    out = tmp_path / "eval.json"
    assert main(["evaluate", "--log", str(log), "--split", "random", "--models", "als", "--k", "5",
                 "--json", str(out), *params, *engine]) == 0
    res = json.loads(out.read_text())
    assert 0 < res["als"]["recall@5"] <= 1 and 0 <= res["als"]["auc"] <= 1
