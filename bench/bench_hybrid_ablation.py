"""Hybrid ablation: what each component and feature group adds, under one protocol.

Each variant drops one component (or changes one feature group / the ranker) and is fitted and
evaluated exactly like the full hybrid, its cold-item share chosen on val by the same rule;
ALS runs in the same process as the reference.

    python bench/bench_hybrid_ablation.py --dataset ../shared/data/tiktok --protocol published
    python bench/bench_hybrid_ablation.py --dataset ../shared/data/tiktok --protocol refit

Prints a markdown table (recall@20, ndcg@20 and the ratio to ALS under the same protocol) and
writes it with the raw results to ``--out`` (default ``out/ablation_<protocol>``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: the README's ALS settings, tuned on TikTok val (the hybrid's ALS uses the same)
ALS = {"factors": 128, "regularization": 247.67, "alpha": 17.85, "iterations": 15, "weighting": "bm25",
       "bm25_b": 0.25}

VARIANTS = {
    "full": {},
    "- media (bridge)": {"components": ["als", "itemknn", "content"]},
    "- item-kNN": {"components": ["als", "media", "content"]},
    "- content profiles": {"components": ["als", "media", "itemknn"]},
    "+ item popularity": {"popularity": True},
    "LambdaMART ranker": {"ranker": "lambdarank"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="../shared/data/tiktok")
    ap.add_argument("--protocol", choices=["published", "refit"], default="published")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variant names")
    ap.add_argument("--label", default="", help="suffix of the default output folder")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from recsys.jobs.evaluate import load_eval_data, run_evaluation

    data = load_eval_data(dataset=args.dataset)
    out = Path(args.out or f"out/ablation_{args.protocol}{args.label}")
    out.mkdir(parents=True, exist_ok=True)
    quiet = lambda m: None  # noqa: E731
    t0 = time.perf_counter()
    (als,), _ = run_evaluation(data, ["als"], ks=(20,), params={"als": ALS}, protocol=args.protocol, log=quiet)
    ref = als.segments["all"]
    rows = [("ALS", ref, als.seconds)]
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        params = {"als_params": ALS, **VARIANTS[name]}
        (r,), _ = run_evaluation(data, ["hybrid"], ks=(20,), params={"hybrid": params}, protocol=args.protocol,
                                 log=quiet)
        rows.append((f"hybrid {name}", r.segments["all"], r.seconds))
        print(f"{name}: recall@20 {r.segments['all']['recall@20']:.4f} ndcg@20 {r.segments['all']['ndcg@20']:.4f} "
              f"({r.seconds:.0f}s)", flush=True)
    lines = [f"Protocol **{args.protocol}** ({data.name}); each variant's cold share chosen on val; ratios to ALS "
             "under the same protocol.",
             "", "| variant | recall@20 | ndcg@20 | x ALS recall | x ALS ndcg | seconds |", "|---|---|---|---|---|---|"]
    for name, seg, secs in rows:
        lines.append(f"| {name} | {seg['recall@20']:.4f} | {seg['ndcg@20']:.4f} | "
                     f"{seg['recall@20'] / ref['recall@20']:.3f} | {seg['ndcg@20'] / ref['ndcg@20']:.3f} | {secs:.0f} |")
    table = "\n".join(lines)
    print(table)
    (out / "ablation.md").write_text(table + "\n")
    (out / "ablation.json").write_text(json.dumps({n: s for n, s, _ in rows}, indent=2))
    print(f"total {time.perf_counter() - t0:.0f}s; written {out.resolve()}")


if __name__ == "__main__":
    main()
