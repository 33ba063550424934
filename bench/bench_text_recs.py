"""Recommendation metrics on the demo catalog with and without the text block.

Same data and split as ``avrec demo`` (test = after ``train_end``; 30 items are cold there); the
media features are the demo's (audio, random-weight CNN, descriptors), read from the features
cache ``bench_text_search.py`` fills (extracted here when missing). "with text" adds the catalog's
``text`` block (lexical, 60% of items) and re-fits the fusion over every block; models fit on the
training period, the hybrid's ranker on its last tenth, as in the demo.

Usage: ``python bench/bench_text_recs.py [--cache DIR] [--hybrid]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from features.catalog_text import catalog_text
    from features.extract import ExtractorConfig
    from features.fusion import FusionConfig
    from features.store import extract_catalog
    from recsys.data import Catalog, ItemFeatures
    from recsys.data.loaders import read_log
    from recsys.evaluation import evaluate
    from recsys.jobs.fit import fit_model
    from recsys.jobs.text import build_text
    from recsys.models import make_model
    from recsys.split import temporal_split
    from recsys.synthetic import ensure_demo_catalog

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=str(ROOT / "data" / "cache"))
    ap.add_argument("--hybrid", action="store_true", help="also the hybrid (+2-4 min)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    cat = ensure_demo_catalog(cache, workers=args.workers)
    catalog = Catalog.from_csv(cat.catalog_csv)
    extract_catalog(catalog, cache / "demo_features", config=ExtractorConfig(), workers=args.workers, progress=False)
    x = read_log(cat.interactions, user="user_id", item="item_id", timestamp="timestamp", weight="weight")
    train_end = float(json.loads(Path(cat.truth).read_text())["train_end"])
    t = x.timestamps
    split = temporal_split(x, cut=train_end, val_cut=float(np.quantile(t[t < train_end], 0.9)))
    media = ItemFeatures.load(cache / "demo_features")
    with_text, _, _ = build_text(media, catalog_text(catalog), fusion_config=FusionConfig())
    variants = {"without text": media.align(x.item_map), "with text": with_text.align(x.item_map)}
    models = [("content", {"block": "fused"}), ("content", {"block": "text"}), ("bridge", {})]
    if args.hybrid:
        models.append(("hybrid", {}))
    print(f"demo catalog: {x}; {int(with_text.mask_of('text').sum())}/{with_text.n_items} items with text")
    print(f"    {'model':<22}{'features':<14}{'recall@20':>10}{'ndcg@20':>9}{'cold':>8}{'cold-only':>10}")
    for name, params in models:
        for label, feats in variants.items():
            if params.get("block") == "text" and "text" not in feats.blocks:
                continue
            t0 = time.perf_counter()
            model = make_model(name, **params)
            fit_model(model, split.train, feats, split.val)
            seg = evaluate(model, split.train, split.test, ks=(20,), auc=False).segments
            tag = name + (f":{params['block']}" if "block" in params else "")
            print(f"    {tag:<22}{label:<14}{seg['all']['recall@20']:>10.4f}{seg['all']['ndcg@20']:>9.4f}"
                  f"{seg['cold']['recall@20']:>8.4f}{seg['cold_only']['recall@20']:>10.4f}"
                  f"  ({time.perf_counter() - t0:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
