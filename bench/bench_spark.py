"""ALS fit time: local (implicit) vs Spark MLlib (``recsys.spark.fit_als_spark``) on the same log.

Both fit the same confidence ``1 + alpha * w`` (``weighting="none"``), same factors and iterations.
Spark's time excludes starting the session (reported apart) but includes moving the ratings into
Spark and the factors back. On one machine Spark is expected to be SLOWER: it pays for the JVM,
task scheduling, shuffles between ALS blocks and serialisation that implicit's in-memory solver
does not have. Spark pays off only when the log does not fit one machine, or a cluster
is already where the data lives; the ``--synthetic`` row shows how the gap changes with size.

Usage: ``python bench/bench_spark.py [--quick] [--master local[*]] [--synthetic 2000000]``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TIKTOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "tiktok"


def synthetic_log(nnz: int, seed: int = 0):
    """Interactions with ~nnz pairs, power-law item popularity, 40 pairs per user on average."""
    from recsys.data import Interactions

    rng = np.random.default_rng(seed)
    n_users, n_items = max(nnz // 40, 10), max(nnz // 200, 10)
    users = rng.integers(0, n_users, nnz)
    items = np.minimum((rng.pareto(1.2, nnz) * n_items / 20).astype(np.int64), n_items - 1)
    return Interactions.from_arrays(users, items, user_ids=np.arange(n_users), item_ids=np.arange(n_items))


def time_fits(train, params: dict, spark, repeats: int) -> dict:
    from recsys.models import ALS
    from recsys.spark.als import fit_als_spark

    local_t, spark_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ALS(**params, weighting="none", use_gpu=False).fit(train)
        local_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fit_als_spark(train, params, spark=spark)
        spark_t.append(time.perf_counter() - t0)
    return {"local_s": min(local_t), "spark_s": min(spark_t), "ratio": min(spark_t) / min(local_t)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(TIKTOK), help="folder with train.csv (user_id,item_id)")
    ap.add_argument("--master", default="local[*]")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--synthetic", type=int, default=500_000, help="pairs of the larger synthetic log (0: skip)")
    ap.add_argument("--quick", action="store_true", help="16 factors, 5 iterations, 1 repeat, no larger log")
    args = ap.parse_args(argv)
    if args.quick:
        args.factors, args.iterations, args.repeats, args.synthetic = 16, 5, 1, 0

    from recsys.data.loaders import read_log
    from recsys.spark.session import get_session

    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")

    logs = []
    train_csv = Path(args.dataset) / "train.csv"
    if train_csv.exists():
        logs.append((f"tiktok train ({train_csv.parent.name})", read_log(train_csv)))
    else:
        print(f"note: {train_csv} not found; using a synthetic log instead")
        logs.append(("synthetic 60k", synthetic_log(60_000)))
    if args.synthetic:
        logs.append((f"synthetic {args.synthetic:,}", synthetic_log(args.synthetic)))

    t0 = time.perf_counter()
    spark = get_session(args.master)
    start_s = time.perf_counter() - t0
    cores = spark.sparkContext.defaultParallelism
    # the same settings for both engines; regularization is not equivalent across them (ALS-WR)
    params = {"factors": args.factors, "iterations": args.iterations, "regularization": 0.05, "alpha": 3.0}
    print(f"Spark {spark.version} on {args.master} ({cores} cores): session start {start_s:.1f} s (not in the times below)")
    print(f"ALS factors={args.factors} iterations={args.iterations}, best of {args.repeats}")
    print(f"{'log':<28} {'users x items':>18} {'pairs':>10} {'local s':>9} {'spark s':>9} {'spark/local':>12}")
    for name, x in logs:
        r = time_fits(x, params, spark, args.repeats)
        shape = f"{x.n_users}x{x.n_items}"
        print(f"{name:<28} {shape:>18} {x.nnz:>10,} {r['local_s']:>9.2f} {r['spark_s']:>9.2f} {r['ratio']:>12.1f}")
    print("Spark is not faster on one machine; it is for logs and catalogs that outgrow one.")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
