"""Search latency through HTTP on a TikTok-sized catalog: ``GET /search`` next to ``GET /health``.

The bundle: ALS (the README's tuned settings) on TikTok's ``train`` part with its audio and image
item vectors, plus synthetic text for 60% of the 6,710 items (TikTok ships no text): items are
grouped into 40 topics by k-means on their image vectors, and each text draws words from its
topic's 25 pseudo-words and from 500 common ones (title 3 words, tags 3, description 10). The
media -> text projection is trained on the items with text, so the other 40% are searchable too.

Load: ``avrec serve [--workers N]`` as a subprocess, a bounded asyncio client (``--concurrency``
requests in flight, a closed loop: each finished request starts the next; ``--requests`` per
route, time-capped), alternating rounds of ``/health``,
``/users/{id}/recommendations?n=10`` (the route ``bench_serving.py`` holds to the same target, as
a reference measured under the same machine load) and ``/search?q=<1-3 topic words>&n=10`` (half
of them with ``&user=<random known user>``, which adds that user's ALS scores to the order).
Queries are drawn uniformly (about 9 in 10 distinct), the worst case for the server's query cache,
whose hit rate is printed.

The client runs on the same machine as the server. By default it is the light client of
``bench/http_load.py`` (hand-written HTTP/1.1 GETs on keep-alive connections, ~0.1 ms of CPU a
request); ``--client httpx`` uses httpx as the earlier runs did, which costs ~1.5-2 ms of CPU a
request, as much as a search on the server: with 4 in flight its own event loop queues the
responses, and that, not the server, was the search tail (see the README). The CPU each side used
per request, the cores and the load average are printed, and so is Little's law for a closed loop
(mean latency = in flight / throughput). Target: search p99 <= 25 ms, 0 errors.

Usage: ``python bench/bench_search.py [--dataset ../shared/data/tiktok] [--requests 4000]
[--concurrency 4] [--workers 1] [--client light|httpx] [--workdir DIR]`` (``--workdir`` keeps the
bundle for the next run)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def _workdir_bundle(dataset: Path, workdir: Path) -> tuple[Path, list[list[str]]]:
    """The bench bundle and its topic words, built once in ``workdir`` and reused after."""
    bundle, topics = workdir / "bundle", workdir / "topics.json"
    if bundle.is_dir() and topics.is_file():
        print(f"    bundle: reused {bundle}", flush=True)
        return bundle, json.loads(topics.read_text())
    path, words = make_bundle(dataset, bundle)
    topics.write_text(json.dumps(words))
    return path, words


def main(argv: list[str] | None = None) -> int:
    import httpx
    from bench_serving import _load as httpx_load
    from bench_serving import start_server, stop_server
    from http_load import load as light_load
    from http_load import tree_cpu_seconds as _tree_cpu_seconds
    from hostspeed import describe, probe

    from serving.bundle import load_bundle
    from serving.metrics import parse_exposition, route_summary

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(TIKTOK))
    ap.add_argument("--requests", type=int, default=4000, help="requests per route (default 4000)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="server processes (avrec serve --workers)")
    ap.add_argument("--client", choices=("light", "httpx"), default="light",
                    help="load client: bench/http_load.py (default) or httpx (heavier: see the docstring)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=90.0)
    ap.add_argument("--workdir", default=None, help="build the bundle here once and reuse it (default: a temp folder)")
    args = ap.parse_args(argv)
    if not Path(args.dataset).is_dir():
        print(f"{args.dataset} not found: the search latency bench needs TikTok's item vectors; skipped")
        return 0
    rng = np.random.default_rng(1)
    fetch = light_load if args.client == "light" else httpx_load
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        bundle, topics = _workdir_bundle(Path(args.dataset), workdir)
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
        load_before = os.getloadavg()
        host_before = probe()
        proc, url = start_server(bundle, ("--workers", str(args.workers)))
        try:
            for make in routes.values():  # warm-up
                asyncio.run(fetch(url, make(200), args.concurrency, args.max_seconds))
            lookups0 = _cache_lookups(parse_exposition(httpx.get(f"{url}/metrics").text))
            acc = {name: [] for name in routes}
            cpu = {name: {"server": 0.0, "client": 0.0} for name in routes}
            per_round = max(1, args.requests // args.rounds)
            for _ in range(args.rounds):
                for name, make in routes.items():
                    paths = make(per_round)
                    s0, c0 = _tree_cpu_seconds(proc.pid), time.process_time()
                    acc[name].append(asyncio.run(fetch(url, paths, args.concurrency,
                                                       args.max_seconds / args.rounds / 2)))
                    s1, c1 = _tree_cpu_seconds(proc.pid), time.process_time()
                    cpu[name]["server"] += (s1 - s0) if s0 is not None and s1 is not None else float("nan")
                    cpu[name]["client"] += c1 - c0
            text = httpx.get(f"{url}/metrics").text
            server, lookups1 = route_summary(text), _cache_lookups(parse_exposition(text))
        finally:
            stop_server(proc)
    load_after = os.getloadavg()
    host_after = probe()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"    machine: {cores} cores, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after (other "
          f"processes included); the client ({args.client}, asyncio, 1 process) shares the cores with the server")
    print(f"    {describe(host_before)} before; numpy {host_after['numpy_ms']:.1f} ms, python "
          f"{host_after['python_ms']:.1f} ms after")
    print(f"    load: {args.concurrency} requests in flight (closed loop), server {args.workers} worker "
          f"process{'es' if args.workers > 1 else ''}")
    print(f"    {'route':<38}{'requests':>9}{'errors':>7}{'req/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'server p99':>11}"
          f"{'server CPU':>11}{'client CPU':>11}")
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
        print(f"    {label:<38}{n:>9}{res[name]['errors']:>7}{res[name]['rps']:>7.0f}{res[name]['p50']:>8.2f}"
              f"{res[name]['p99']:>8.2f}{server[route]['p99_ms']:>11.2f}{cpu[name]['server'] / n * 1e3:>8.2f} ms"
              f"{cpu[name]['client'] / n * 1e3:>8.2f} ms")
    hits = lookups1.get("hit", 0) - lookups0.get("hit", 0)
    total = hits + lookups1.get("miss", 0) - lookups0.get("miss", 0)
    s = res["search"]
    print("    server p99: estimated from the /metrics histogram (whole run, warm-up included), time inside the app; "
          "CPU: per request, server processes and client process")
    print(f"    search cache: {hits:.0f} hits of {total:.0f} lookups ({hits / max(total, 1):.0%}; uniform queries)"
          f"{', summed over workers, each with its own cache' if args.workers > 1 else ''}")
    print(f"    Little's law (closed loop): {args.concurrency} in flight / {s['rps']:.0f} req/s = "
          f"{args.concurrency / s['rps'] * 1e3:.1f} ms mean search latency; p99 <= 25 ms needs a mean well under 25 ms, "
          f"i.e. well over {args.concurrency / 0.025:.0f} searches/s")
    ok = s["p99"] <= 25 and all(r["errors"] == 0 for r in res.values())
    print(f"    search p99 {s['p99']:.1f} ms (target <= 25; recommendations {res['recommendations']['p99']:.1f} "
          f"in the same run), throughput {s['rps'] / res['health']['rps']:.2f} of /health, errors "
          f"{s['errors']} -> {'PASS' if ok else 'MISS'}")
    print("PASS" if ok else "MISS")
    return 0


def _cache_lookups(samples: dict) -> dict[str, float]:
    return {lab["outcome"]: v for n, lab, v in samples.get("avrec_search_cache_lookups", []) if n.endswith("_total")}


if __name__ == "__main__":
    sys.exit(main())
