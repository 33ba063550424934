"""Default settings on a small catalog: issue 16's table.

A planted catalog (:mod:`recsys.synthetic.planted`: 100 items, 200 users with planted tastes, 3 items
released at the test cut), temporal split at the cut, every model with its defaults, plus ALS with
the previous fixed defaults (256 factors, penalty 100, alpha 3, BM25 b 0.5, 10 iterations) for
comparison. Prints recall@20 / ndcg@20 / cold recall@20 per model, then the ratios the issue asks
for: ALS / popularity (target >= 1.5), hybrid / best single model (>= 1), the share of users whose
top 20 holds at most ``cold_share`` cold items (>= 0.9), and what the exposure policy reports.

Usage: ``python bench/bench_small_catalog.py [--seeds 0,1,2] [--items 100] [--users 200] [--cold 3]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SINGLE = ("popularity", "itemknn", "userknn", "als", "content", "bridge")
PREVIOUS_ALS = {"factors": 256, "regularization": 100.0, "alpha": 3.0, "bm25_b": 0.5, "iterations": 10}


def run(seed: int, n_items: int, n_users: int, n_cold: int) -> dict:
    """One catalog: the table rows and the checks."""
    from recsys.evaluation import evaluate
    from recsys.models import make_model
    from recsys.jobs.fit import fit_model
    from recsys.synthetic.planted import planted_catalog

    cat = planted_catalog(n_items=n_items, n_users=n_users, n_cold=n_cold, seed=seed)
    split = cat.split()
    rows, models = {}, {}
    for label, name, params in [*((n, n, {}) for n in SINGLE), ("als (previous defaults)", "als", PREVIOUS_ALS),
                                ("hybrid", "hybrid", {})]:
        t0 = time.perf_counter()
        m = make_model(name, **params)
        fit_model(m, split.train, cat.item_features if m.uses_features else None, split.val)
        seg = evaluate(m, split.train, split.test, ks=(20,), auc=False).segments
        rows[label] = {"recall@20": seg["all"]["recall@20"], "ndcg@20": seg["all"]["ndcg@20"],
                       "cold recall@20": seg["cold"]["recall@20"], "seconds": time.perf_counter() - t0}
        models[label] = m
    hybrid = models["hybrid"]
    cold = np.flatnonzero(cat.cold)
    lists, _ = hybrid.recommend(np.arange(split.train.n_users), n=20)
    per_user = np.isin(lists, cold).sum(axis=1)
    best = max(SINGLE, key=lambda n: rows[n]["recall@20"])
    return {
        "rows": rows,
        "als": {k: v for k, v in models["als"].resolved_params_.items() if k != "auto_rule"},
        "als_x_popularity": rows["als"]["recall@20"] / rows["popularity"]["recall@20"],
        "hybrid_x_best": rows["hybrid"]["recall@20"] / rows[best]["recall@20"], "best": best,
        "within_share": float(np.mean(per_user <= int((hybrid.cold_share or 0) * 20))),
        "cold_first": float(np.isin(lists[:, 0], cold).mean()),
        "cold_top5": float(np.isin(lists[:, :5], cold).any(axis=1).mean()),
        "exposure": hybrid.exposure_,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0", help="comma-separated catalog seeds (default 0)")
    ap.add_argument("--items", type=int, default=100, help="catalog items (default 100)")
    ap.add_argument("--users", type=int, default=200, help="users (default 200)")
    ap.add_argument("--cold", type=int, default=3, help="items released at the test cut (default 3)")
    args = ap.parse_args(argv)
    for seed in (int(s) for s in args.seeds.split(",")):
        out = run(seed, args.items, args.users, args.cold)
        print(f"\nplanted catalog seed {seed}: {args.items} items x {args.users} users, {args.cold} cold; "
              f"every model with its defaults (ALS resolved to {out['als']})")
        print(f"| model | recall@20 | ndcg@20 | cold recall@20 | seconds |\n|---|---|---|---|---|")
        for label, r in out["rows"].items():
            print(f"| {label} | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} | {r['cold recall@20']:.4f} | "
                  f"{r['seconds']:.1f} |")
        e = out["exposure"]
        print(f"ALS / popularity recall@20: {out['als_x_popularity']:.2f} (target >= 1.5)")
        print(f"hybrid / best single model ({out['best']}) recall@20: {out['hybrid_x_best']:.3f} (target >= 1)")
        print(f"users whose top 20 holds at most cold_share={e['share']} cold items: {out['within_share']:.3f} "
              f"(target >= 0.9); a cold item first: {out['cold_first']:.3f} of users; in the top 5: "
              f"{out['cold_top5']:.3f}")
        print(f"exposure policy on training lists: reached {e['reached']:.3f} of the slots (ranker alone "
              f"{e['ranker_alone']:.3f}); {'reachable' if e['reachable'] else 'clipped: ' + e['reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
