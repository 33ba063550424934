"""Search latency through HTTP on a TikTok-sized catalog: ``GET /search`` next to ``GET /health``.

The bundle: ALS (the README's tuned settings) on TikTok's ``train`` part with its audio and image
item vectors, plus synthetic text for 60% of the 6,710 items (TikTok ships no text): items are
grouped into 40 topics by k-means on their image vectors, and each text draws words from its
topic's 25 pseudo-words and from 500 common ones (title 3 words, tags 3, description 10). The
media -> text projection is trained on the items with text, so the other 40% are searchable too.

Load: ``avrec serve`` as a subprocess, a bounded asyncio client (``--concurrency`` requests in
flight, ``--requests`` per route, time-capped), alternating rounds of ``/health``,
``/users/{id}/recommendations?n=10`` (the route ``bench_serving.py`` holds to the same target, as
a reference measured under the same machine load) and ``/search?q=<1-3 topic words>&n=10`` (half
of them with ``&user=<random known user>``, which adds that user's ALS scores to the order).
Target: search p99 <= 25 ms, 0 errors.

Usage: ``python bench/bench_search.py [--dataset ../shared/data/tiktok] [--requests 4000] [--concurrency 4]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
TIKTOK = ROOT.parent / "shared" / "data" / "tiktok"
N_TOPICS, TOPIC_WORDS, COMMON_WORDS = 40, 25, 500
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "do", "ri", "za", "mo", "fa", "lu", "ke", "ba",
             "ti", "so", "gu")


def pseudo_words(n: int, rng: np.random.Generator, taken: set[str]) -> list[str]:
    """``n`` distinct made-up words of 2-4 syllables."""
    out = []
    while len(out) < n:
        w = "".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 5))))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def synthetic_text(feats, seed: int = 0):
    """CatalogText of TikTok's items: topic words by k-means on the image vectors (module docstring)."""
    from sklearn.cluster import MiniBatchKMeans

    from features.catalog_text import text_from_columns

    rng = np.random.default_rng(seed)
    block = "image" if "image" in feats.blocks else next(iter(feats.blocks))
    topic = MiniBatchKMeans(N_TOPICS, random_state=seed, n_init=3).fit_predict(feats.blocks[block])
    taken: set[str] = set()
    topics = [pseudo_words(TOPIC_WORDS, rng, taken) for _ in range(N_TOPICS)]
    common = pseudo_words(COMMON_WORDS, rng, taken)
    cols = {"title": [], "tags": [], "description": []}
    def words(t: int, k: int, share: float) -> list[str]:  # k words, each of topic t with probability share
        return [str(rng.choice(topics[t])) if rng.uniform() < share else str(rng.choice(common)) for _ in range(k)]

    for t in topic:
        has = rng.uniform() < 0.6
        cols["title"].append(" ".join(words(t, 3, 0.67)) if has else None)
        cols["tags"].append(", ".join(words(t, 3, 1.0)) if has else None)
        cols["description"].append(" ".join(words(t, 10, 0.4)) if has else None)
    return text_from_columns(feats.item_ids, cols, ("title", "tags", "description")), topic, topics


def make_bundle(dataset: Path, out: Path) -> tuple[Path, list[list[str]]]:
    from bench_explain import TIKTOK_ALS

    from features.fusion import FusionConfig
    from recsys.data.loaders import load_split_folder
    from recsys.jobs.text import build_text
    from recsys.models import make_model
    from serving.bundle import save_bundle

    t0 = time.perf_counter()
    ds = load_split_folder(dataset)
    text, _, topics = synthetic_text(ds.item_features)
    feats, state, fusion = build_text(ds.item_features, text, fusion_config=FusionConfig())
    als = make_model("als", **TIKTOK_ALS).fit(ds.train)
    path = save_bundle(als, out, item_features=feats, fusion=fusion, text=state)
    print(f"    bundle: ALS on {ds.train.n_users} users x {ds.train.n_items} items, {int(text.has_text.sum())} items "
          f"with synthetic text, text block {feats.blocks['text'].shape[1]}-d, projection on "
          f"{state.projection.n_train_} items ({time.perf_counter() - t0:.1f}s)", flush=True)
    return path, topics


def main(argv: list[str] | None = None) -> int:
    import httpx
    from bench_serving import _load, start_server, stop_server

    from serving.bundle import load_bundle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(TIKTOK))
    ap.add_argument("--requests", type=int, default=4000, help="requests per route (default 4000)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=90.0)
    args = ap.parse_args(argv)
    if not Path(args.dataset).is_dir():
        print(f"{args.dataset} not found: the search latency bench needs TikTok's item vectors; skipped")
        return 0
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        bundle, topics = make_bundle(Path(args.dataset), Path(tmp) / "bundle")
        x = load_bundle(bundle, verify=False).interactions
        users = x.user_ids[x.active_users()]

        def searches(k: int) -> list[str]:
            out = []
            for s in range(k):
                q = "%20".join(rng.choice(topics[int(rng.integers(N_TOPICS))], size=int(rng.integers(1, 4))))
                out.append(f"/search?q={q}&n=10" + (f"&user={rng.choice(users)}" if s % 2 else ""))
            return out

        routes = {"health": lambda k: ["/health"] * k,
                  "recommendations": lambda k: [f"/users/{u}/recommendations?n=10" for u in rng.choice(users, k)],
                  "search": searches}
        proc, url = start_server(bundle)
        try:
            for make in routes.values():  # warm-up
                asyncio.run(_load(url, make(200), args.concurrency, args.max_seconds))
            acc = {name: [] for name in routes}
            per_round = max(1, args.requests // args.rounds)
            for _ in range(args.rounds):
                for name, make in routes.items():
                    acc[name].append(asyncio.run(_load(url, make(per_round), args.concurrency,
                                                       args.max_seconds / args.rounds / 2)))
            server = httpx.get(f"{url}/metrics").json()["routes"]
        finally:
            stop_server(proc)
    print(f"    {'route':<44}{'requests':>9}{'errors':>7}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'server p99':>11}")
    res = {}
    for name, route in (("health", "GET /health"), ("recommendations", "GET /users/{user_id}/recommendations"),
                        ("search", "GET /search")):
        parts = acc[name]
        lat = np.concatenate([p["latencies"] for p in parts]) * 1e3
        n, secs = sum(p["n"] for p in parts), sum(p["seconds"] for p in parts)
        res[name] = {"n": n, "errors": sum(p["errors"] for p in parts), "rps": n / secs,
                     "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}
        label = {"search": "GET /search?q=..&n=10[&user=..]",
                 "recommendations": "GET /users/{id}/recommendations?n=10"}.get(name, route)
        print(f"    {label:<44}{n:>9}{res[name]['errors']:>7}{res[name]['rps']:>8.0f}{res[name]['p50']:>8.2f}"
              f"{res[name]['p99']:>8.2f}{server[route]['latency_ms']['p99']:>11.2f}")
    ok = res["search"]["p99"] <= 25 and all(r["errors"] == 0 for r in res.values())
    print(f"    search p99 {res['search']['p99']:.1f} ms (target <= 25; recommendations {res['recommendations']['p99']:.1f} "
          f"in the same run), throughput {res['search']['rps'] / res['health']['rps']:.2f} of /health, errors "
          f"{res['search']['errors']} -> {'PASS' if ok else 'MISS'}")
    print("PASS" if ok else "MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
