"""An ALS bundle of a large synthetic catalog served over HTTP with approximate (faiss IVF) vs exact
retrieval (``avrec serve`` vs ``avrec serve --exact``, the same bundle): per-request latency.

The bundle: ALS factors of the ALS-like synthetic catalog of ``bench/bench_ann.py`` (clustered,
low-rank, lognormal norms; ``ALS.from_factors``, no ALS fit: a random log does not give
factors with the structure of real ones), every user with ``--seen`` interactions (they are
excluded from the lists), indexed by the fit job's rule (:func:`recsys.jobs.fit.index_items`: the
catalog is above :data:`recsys.retrieval.EXACT_MAX_ITEMS`, so IVF) and saved with
``save_bundle``. Build time, index size on disk and the servers' resident memory are reported.

Then one server after the other, the approximate one first: ``GET /users/{id}/recommendations?n=10``
(random users) and ``GET /items/{id}/similar?by=cf&n=10`` (random items), one request in flight
(the latency of one request, not throughput under load), client ``bench/http_load.py``. The
lists of the two servers are compared: overlap@10 of the approximate answers with the exact ones
(the same requests, in the same order).

Usage::

    python bench/bench_ann_serving.py                      # 200,000 items x 64 factors (a few minutes)
    python bench/bench_ann_serving.py --items 1000000      # the issue's size (build ~10+ min on 2 busy cores)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_ann import rss_mib, synthetic_factors  # noqa: E402
from bench_serving import start_server, stop_server  # noqa: E402
from http_load import load  # noqa: E402


def make_bundle(out: Path, n_items: int, n_users: int, factors: int, seen: int, seed: int = 0) -> tuple[Path, dict]:
    """The synthetic ALS bundle with the fit job's item indexes; returns it and what it cost."""
    import scipy.sparse as sp

    from recsys.data.interactions import IdMap, Interactions
    from recsys.jobs.fit import index_items
    from recsys.models import ALS
    from serving.bundle import save_bundle

    t0 = time.perf_counter()
    items, users = synthetic_factors(n_items, n_users, factors, seed=seed)
    rng = np.random.default_rng(seed + 1)
    cols = rng.integers(0, n_items, (n_users, seen))
    rows = np.repeat(np.arange(n_users), seen)
    m = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols.ravel())), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    x = Interactions(m, IdMap(np.arange(n_users), "user"), IdMap(np.arange(n_items), "item"))
    model = ALS.from_factors(users, items, x, factors=factors)
    data_s = time.perf_counter() - t0
    rss0 = rss_mib()
    info = index_items(model, log_fn=lambda line: print(f"    {line}", flush=True))
    rss_index = rss_mib() - rss0
    t0 = time.perf_counter()
    path = save_bundle(model, out)
    save_s = time.perf_counter() - t0
    disk = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20
            for p in path.iterdir() if p.is_dir()}
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    return path, {"data_s": data_s, "index_s": info["seconds"], "kind": info["kind"], "reason": info["reason"],
                  "indexes": info["indexes"], "rss_index_mib": rss_index, "save_s": save_s,
                  "retrieval_mib": disk.get("retrieval", 0.0), "bundle_mib": total}


def _server_rss_mib(url: str) -> float:
    import httpx

    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1]) / 2**20
    return float("nan")


def serve_and_time(bundle: Path, exact: bool, paths: dict[str, list[str]], max_seconds: float) -> dict:
    """Start a server, warm it, time each route's paths one request at a time; keep the answers."""
    import httpx

    t0 = time.perf_counter()
    proc, url = start_server(bundle, ("--exact",) if exact else (), deadline_s=900)
    start_s = time.perf_counter() - t0
    try:
        health = httpx.get(f"{url}/health", timeout=30).json()
        out = {"start_s": start_s, "retrieval": health["retrieval"]["kind"]}
        for route, ps in paths.items():
            asyncio.run(load(url, ps[:50], 1, max_seconds))  # warm-up: first-call caches, page-ins
            r = asyncio.run(load(url, ps, 1, max_seconds, keep=True))
            lat = r["latencies"] * 1e3
            out[route] = {"n": r["n"], "errors": r["errors"], "p50": float(np.percentile(lat, 50)),
                          "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean()),
                          "lists": [[it["item_id"] for it in json.loads(b)["items"]] if s == 200 else []
                                    for s, b in zip(r["statuses"], r["bodies"])]}
        out["rss_mib"] = _server_rss_mib(url)
    finally:
        stop_server(proc)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=200_000, help="catalog size (the issue's: 1,000,000)")
    ap.add_argument("--factors", type=int, default=64, help="64..256")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--seen", type=int, default=20, help="interactions per user (excluded from lists)")
    ap.add_argument("--requests", type=int, default=500, help="requests per route and server")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="time cap per route and server")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    users = rng.integers(0, args.users, args.requests)
    items = rng.integers(0, args.items, args.requests)
    paths = {"recommendations": [f"/users/{u}/recommendations?n=10" for u in users],
             "similar": [f"/items/{i}/similar?by=cf&n=10" for i in items]}
    print(f"ALS bundle: {args.items:,} items x {args.factors} factors, {args.users:,} users x {args.seen} seen items; "
          f"{args.requests} requests per route, 1 in flight, loopback", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_ann_serving_") as tmp:
        bundle, cost = make_bundle(Path(tmp) / "als", args.items, args.users, args.factors, args.seen, args.seed)
        ix = cost["indexes"]
        print(f"    data {cost['data_s']:.1f}s; indexes ({cost['kind']}: {cost['reason']}) built in "
              f"{cost['index_s']:.1f}s "
              f"(ip nlist {ix['model.ip'].get('nlist')}, nprobe {ix['model.ip'].get('nprobe')}; + cosine), "
              f"RSS +{cost['rss_index_mib']:.0f} MiB; saved in {cost['save_s']:.1f}s: retrieval/ "
              f"{cost['retrieval_mib']:.0f} MiB of a {cost['bundle_mib']:.0f} MiB bundle", flush=True)
        runs = {}
        for exact in (False, True):
            runs[exact] = serve_and_time(bundle, exact, paths, args.max_seconds)
            print(f"    served {'--exact' if exact else 'default'}: {runs[exact]['retrieval']}, started in "
                  f"{runs[exact]['start_s']:.1f}s, RSS {runs[exact]['rss_mib']:.0f} MiB", flush=True)
    print(f"{'route':<36}{'retrieval':>10}{'requests':>9}{'errors':>7}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for route in paths:
        for exact in (False, True):
            r = runs[exact][route]
            print(f"{route:<36}{runs[exact]['retrieval']:>10}{r['n']:>9}{r['errors']:>7}{r['p50']:>9.2f}"
                  f"{r['p99']:>9.2f}{r['mean']:>9.2f}")
    for route in paths:
        a, e = runs[False][route], runs[True][route]
        pairs = [(x, y) for x, y in zip(a["lists"], e["lists"]) if y]
        overlap = float(np.mean([len(set(x) & set(y)) / len(y) for x, y in pairs])) if pairs else float("nan")
        print(f"{route}: exact/IVF p50 {e['p50'] / a['p50']:.1f}x, mean {e['mean'] / a['mean']:.1f}x; "
              f"overlap@10 of the IVF lists with the exact ones {overlap:.3f} over {len(pairs)} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
