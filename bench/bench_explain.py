"""Faithfulness of CF explanations: removing the top-attributed history item vs a random one.

For each tested user: fold the user in with ALS and take the top recommended item; remove the
history item ``ALS.contributions`` credits most for it (what ``explain=true`` shows first), or a
random other history item; fold in again and measure the item's new rank (it was 0). The paired
difference (top - random) is averaged over users with a 95% t-interval (recsys.faithfulness).

- demo: ALS (default settings) on the demo's training period (before ``train_end``), every user
  with >= 3 training items;
- TikTok (``../shared/data/tiktok``): ALS with the README's tuned settings on ``train``,
  ``--users`` random users with >= 3 training items.

Usage: ``python bench/bench_explain.py [--cache DIR] [--dataset DIR] [--users 1000] [--no-demo]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TIKTOK = ROOT.parent / "shared" / "data" / "tiktok"
TIKTOK_ALS = {"factors": 128, "regularization": 247.67, "alpha": 17.85, "iterations": 15, "weighting": "bm25",
              "bm25_b": 0.25}


def report(name: str, als, train, users: np.ndarray) -> dict:
    from recsys.faithfulness import removal_test

    t0 = time.perf_counter()
    s = removal_test(als, train.matrix, users, seed=0).summary()
    print(f"    {name}: {s['users']} users, mean rank drop top-attributed {s['mean_drop_top']:.2f} vs random "
          f"{s['mean_drop_random']:.2f}; paired difference {s['mean_difference']:.2f} "
          f"[95% CI {s['ci95_low']:.2f}, {s['ci95_high']:.2f}]; top hurts more for "
          f"{100 * s['share_top_hurts_more']:.0f}% of users ({time.perf_counter() - t0:.1f}s) -> "
          f"{'PASS' if s['ci95_low'] > 0 else 'MISS'}", flush=True)
    return s


def demo(cache: Path) -> dict:
    import json

    from recsys.data.loaders import read_log
    from recsys.models import make_model
    from recsys.split import temporal_split
    from recsys.synthetic import ensure_demo_catalog

    cat = ensure_demo_catalog(cache)
    x = read_log(cat.interactions, user="user_id", item="item_id", timestamp="timestamp", weight="weight")
    train = temporal_split(x, cut=float(json.loads(Path(cat.truth).read_text())["train_end"])).train
    als = make_model("als").fit(train)
    users = np.flatnonzero(np.diff(train.matrix.indptr) >= 3)
    return report("demo (ALS defaults, training period)", als, train, users)


def tiktok(dataset: Path, n_users: int) -> dict:
    from recsys.data.loaders import load_split_folder
    from recsys.models import make_model

    train = load_split_folder(dataset).train
    als = make_model("als", **TIKTOK_ALS).fit(train)
    eligible = np.flatnonzero(np.diff(train.matrix.indptr) >= 3)
    users = np.sort(np.random.default_rng(0).choice(eligible, size=min(n_users, len(eligible)), replace=False))
    return report(f"TikTok (tuned ALS, {len(users)} random users of {len(eligible)})", als, train, users)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=str(ROOT / "data" / "cache"), help="demo catalog cache")
    ap.add_argument("--dataset", default=str(TIKTOK))
    ap.add_argument("--users", type=int, default=1000, help="TikTok users tested (default 1000)")
    ap.add_argument("--no-demo", action="store_true")
    args = ap.parse_args(argv)
    print("explanation faithfulness: rank drop of the top item after removing the top-attributed vs a random "
          "history item (paired, 95% t-interval)")
    results = []
    if not args.no_demo:
        results.append(demo(Path(args.cache)))
    if Path(args.dataset).is_dir():
        results.append(tiktok(Path(args.dataset), args.users))
    else:
        print(f"    {args.dataset} not found: TikTok skipped")
    print("PASS" if all(r["ci95_low"] > 0 for r in results) else "MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
