"""Approximate (faiss IVF) vs exact user -> item retrieval on a synthetic ALS-like catalog.

Targets (issue 14): recall@100 >= 0.95 of the exact top-100, per-query latency >= 10x lower than
exact; index build time and memory (RSS delta, size on disk) reported.

The catalog imitates ALS factors rather than iid noise (on which every ANN index looks bad, and on
which no user has real neighbours):

- items belong to ``n_items / 1000`` clusters ("niches") of Zipf-like sizes;
- cluster centres live in a low-rank subspace (rank ``factors / 4``), as ALS factors do;
- within a cluster an item adds noise of decaying spectrum (half the centre's norm);
- norms are multiplied by a lognormal (sigma 0.25), as ALS norms grow with popularity (an ALS
  fit with 128 factors on the TikTok train split has item norms max/median 2.6 over 6.7k items;
  here it is ~4 over 1M, the tail of a larger catalog);
- users come from the same distribution: a mix of two cluster centres (0.7 / 0.3) plus noise.

Latency is per query (one user a call, as in serving), one thread on both sides; exact is timed
before and after the ANN lines (the machine's load drifts) and the speedup uses both passes.
Caches are warm on both sides (timed back to back); interleaving exact and ANN query by query
(cold caches for ANN) made ANN ~2x slower at 100k items. Recall uses batch search.

Usage::

    python bench/bench_ann.py                      # 1,000,000 items x 256 factors (minutes, ~3 GiB)
    python bench/bench_ann.py --items 100000 --factors 128
    python bench/bench_ann.py --items 100000 --factors 128 --compare   # hnswlib/faiss/usearch
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECALL_TARGET = 0.95
SPEEDUP_TARGET = 10.0


# ---------------------------------------------------------------------------- data
def synthetic_factors(
    n_items: int, n_users: int, factors: int, seed: int = 0, chunk: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """ALS-like item and user factors (see the module docstring).

    Returns
    -------
    items : (n_items, factors) float32
    users : (n_users, factors) float32
    """
    rng = np.random.default_rng(seed)
    n_clusters = max(16, n_items // 1000)
    rank = max(8, factors // 4)
    basis = rng.standard_normal((rank, factors)).astype(np.float32) / np.float32(math.sqrt(rank * factors))
    centres = rng.standard_normal((n_clusters, rank)).astype(np.float32) @ basis  # E||c|| ~ 1
    p = 1.0 / (np.arange(n_clusters) + 10.0) ** 0.8
    p /= p.sum()
    spectrum = (np.arange(factors) + 1.0) ** -0.5
    spectrum = (spectrum / np.sqrt((spectrum**2).sum())).astype(np.float32)  # E||noise|| ~ 1
    rotation = np.linalg.qr(rng.standard_normal((factors, factors)))[0].astype(np.float32)

    def draw(n: int, users: bool) -> np.ndarray:
        out = np.empty((n, factors), dtype=np.float32)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            x = centres[rng.choice(n_clusters, m, p=p)]
            if users:
                x = 0.7 * x + 0.3 * centres[rng.choice(n_clusters, m, p=p)]
            noise = (rng.standard_normal((m, factors)).astype(np.float32) * spectrum) @ rotation
            x = x + np.float32(0.5) * noise
            x *= rng.lognormal(0.0, 0.25, m).astype(np.float32)[:, None]
            out[s : s + m] = x
        return out

    return draw(n_items, False), draw(n_users, True)


# ---------------------------------------------------------------------------- measures
def rss_mib(field: str = "VmRSS") -> float:
    """Resident (VmRSS) or peak resident (VmHWM) memory of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each exact top-k found by the approximate top-k."""
    return float(np.mean([len(np.intersect1d(f[f >= 0], t)) / len(t) for f, t in zip(found, truth)]))


def per_query_ms(index, queries: np.ndarray, k: int) -> np.ndarray:
    """Milliseconds of each single-query search, one thread."""
    from threadpoolctl import threadpool_limits

    out = np.empty(len(queries))
    with threadpool_limits(1):
        for i in range(len(queries)):
            t0 = time.perf_counter()
            index.search(queries[i : i + 1], k)
            out[i] = time.perf_counter() - t0
    return out * 1e3


def size_on_disk_mib(index) -> float:
    d = Path(tempfile.mkdtemp(prefix="avrec-ann-"))
    try:
        return sum(p.stat().st_size for p in index.save(d)) / 2**20
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- runs
def run(args) -> int:
    from threadpoolctl import threadpool_limits

    from recsys.retrieval import ExactIndex, IVFIndex

    print(f"catalog {args.items:,} items x {args.factors} factors, {args.queries:,} queries, k={args.k}; "
          f"threads: build and batch search {args.threads}, per-query latency 1 (both sides)", flush=True)
    t0 = time.perf_counter()
    items, users = synthetic_factors(args.items, args.queries, args.factors, seed=args.seed)
    norms = np.linalg.norm(items, axis=1)
    print(f"data {time.perf_counter() - t0:.1f}s; item norms p50 {np.median(norms):.2f} max "
          f"{norms.max():.2f} (max/median {norms.max() / np.median(norms):.1f})", flush=True)

    exact = ExactIndex("ip").build(items)
    t0 = time.perf_counter()
    with threadpool_limits(args.threads):
        truth, _ = exact.search(users, args.k)
    exact_batch_s = time.perf_counter() - t0
    print(f"exact top-{args.k} of all queries (batched matmul, {args.threads} threads): {exact_batch_s:.1f}s; "
          f"{len(np.unique(truth)):,} distinct items in the exact lists", flush=True)

    rss0 = rss_mib()
    t0 = time.perf_counter()
    with threadpool_limits(args.threads):
        ann = IVFIndex("ip", nlist=args.nlist, nprobe=args.nprobe, seed=args.seed).build(items)
    build_s = time.perf_counter() - t0
    rss_delta = rss_mib() - rss0
    disk = size_on_disk_mib(ann)
    print(f"IVF build ({args.threads} threads): {build_s:.1f}s, nlist {ann.nlist_}, default nprobe {ann.nprobe_}; "
          f"RSS +{rss_delta:.0f} MiB, on disk {disk:.0f} MiB (raw vectors {items.nbytes / 2**20:.0f} MiB)",
          flush=True)
    if args.compare:
        compare_libraries(items, users, truth, args)

    default = ann.nprobe_
    # exact is timed before and after the ANN lines: the machine's load drifts, both passes show it
    exact_q = users[: args.exact_latency_queries]
    exact_ms = [per_query_ms(exact, exact_q, args.k)]
    print(f"exact per query (1 thread, {len(exact_q)} queries): median {np.median(exact_ms[0]):.2f} ms, "
          f"p99 {np.percentile(exact_ms[0], 99):.2f} ms", flush=True)
    lat_q = users[: args.latency_queries]
    lines = []
    for nprobe in sorted(set(args.sweep) | {default}):
        ann.nprobe_ = nprobe
        with threadpool_limits(args.threads):
            found, _ = ann.search(users, args.k)
        lines.append((nprobe, recall(found, truth), per_query_ms(ann, lat_q, args.k)))
    exact_ms.append(per_query_ms(exact, exact_q, args.k))
    exact_med = float(np.median(np.concatenate(exact_ms)))
    print(f"exact per query again: median {np.median(exact_ms[1]):.2f} ms; both passes {exact_med:.2f} ms")
    print(f"{'nprobe':>7} {'recall@' + str(args.k):>10} {'ms/query':>9} {'p99 ms':>7} {'speedup':>8}  "
          f"{'recall/target':>13} {'speedup/target':>14}   ({len(lat_q)} queries timed, 1 thread)")
    rows = {}
    for nprobe, r, ms in lines:
        speed = exact_med / float(np.median(ms))
        rows[nprobe] = (r, speed)
        mark = " <- default" if nprobe == default else ""
        print(f"{nprobe:>7} {r:>10.4f} {np.median(ms):>9.3f} {np.percentile(ms, 99):>7.3f} {speed:>7.1f}x  "
              f"{r / RECALL_TARGET:>13.3f} {speed / SPEEDUP_TARGET:>14.2f}{mark}", flush=True)
    ann.nprobe_ = default

    # batch throughput (batch recommendation lists), one thread both sides, a tenth of the queries
    sub = users[: max(1, len(users) // 10)]
    with threadpool_limits(1):
        t0 = time.perf_counter()
        exact.search(sub, args.k)
        ex_b = (time.perf_counter() - t0) / len(sub) * 1e3
        t0 = time.perf_counter()
        ann.search(sub, args.k)
        an_b = (time.perf_counter() - t0) / len(sub) * 1e3
    print(f"batched, 1 thread, {len(sub)} queries: exact {ex_b:.2f} ms/query, IVF {an_b:.3f} ms/query "
          f"({ex_b / an_b:.1f}x)")
    print(f"peak RSS of the run {rss_mib('VmHWM'):.0f} MiB")

    r, speed = rows[default]
    ok = r >= RECALL_TARGET and speed >= SPEEDUP_TARGET
    print(f"RESULT nprobe={default}: recall@{args.k} {r:.4f} (target {RECALL_TARGET}, ratio {r / RECALL_TARGET:.3f}), "
          f"speedup {speed:.1f}x (target {SPEEDUP_TARGET:.0f}x, ratio {speed / SPEEDUP_TARGET:.2f}), "
          f"build {build_s:.1f}s, RSS +{rss_delta:.0f} MiB, disk {disk:.0f} MiB: {'PASS' if ok else 'MISS'}")
    return 0


def compare_libraries(items: np.ndarray, users: np.ndarray, truth: np.ndarray, args) -> None:
    """HNSW in hnswlib, faiss and usearch vs faiss IVF on the same MIPS-transformed data."""
    from importlib.metadata import version

    from threadpoolctl import threadpool_limits

    from recsys.retrieval.transform import mips_items, mips_queries, row_norms

    k, n, d = args.k, len(items), items.shape[1]
    xt = mips_items(items, float(row_norms(items).max()))
    qt, _ = mips_queries(users)
    n_lat = min(len(qt), args.latency_queries)

    def report(name: str, build_s: float, knobs, search) -> None:
        """``search(i, knob)`` answers query ``i`` alone: (k,) ids."""
        for knob in knobs:
            with threadpool_limits(args.threads):
                found = np.stack([search(i, knob) for i in range(len(qt))])
            with threadpool_limits(1):
                t0 = time.perf_counter()
                for i in range(n_lat):
                    search(i, knob)
                ms = (time.perf_counter() - t0) / n_lat * 1e3
            print(f"  {name:<34} build {build_s:6.1f}s  knob {knob:>4}  recall@{k} {recall(found, truth):.4f}  "
                  f"{ms:.3f} ms/query", flush=True)

    print("library comparison (HNSW M=16, efConstruction=200; knob = ef, or nprobe for IVF)")
    try:
        import hnswlib

        idx = hnswlib.Index(space="ip", dim=d + 1)
        idx.init_index(max_elements=n, M=16, ef_construction=200, random_seed=0)
        t0 = time.perf_counter()
        idx.add_items(xt, np.arange(n), num_threads=args.threads)
        bt = time.perf_counter() - t0
        idx.set_num_threads(1)

        def hnsw_search(i, ef):
            idx.set_ef(max(ef, k))
            return idx.knn_query(qt[i : i + 1], k=k)[0][0].astype(np.int64)

        report(f"hnswlib {version('hnswlib')} HNSW", bt,
               (100, 200, 400), hnsw_search)
    except ImportError:
        print("  hnswlib not installed (pip install hnswlib)")
    import faiss

    with threadpool_limits(args.threads):
        fidx = faiss.IndexHNSWFlat(d + 1, 16, faiss.METRIC_INNER_PRODUCT)
        fidx.hnsw.efConstruction = 200
        t0 = time.perf_counter()
        fidx.add(xt)
        bt = time.perf_counter() - t0
    report(f"faiss {faiss.__version__} HNSWFlat", bt, (100, 200, 400),
           lambda i, ef: fidx.search(qt[i : i + 1], k, params=faiss.SearchParametersHNSW(efSearch=max(ef, k)))[1][0])
    try:
        from usearch.index import Index

        uidx = Index(ndim=d + 1, metric="ip", dtype="f32", connectivity=16, expansion_add=200)
        t0 = time.perf_counter()
        uidx.add(np.arange(n), xt, threads=args.threads)
        bt = time.perf_counter() - t0

        def usearch_search(i, ef):
            uidx.expansion_search = max(ef, k)
            keys = np.full(k, -1, dtype=np.int64)
            got = uidx.search(qt[i], k, threads=1).keys
            keys[: len(got)] = got
            return keys

        report(f"usearch {version('usearch')} HNSW", bt, (100, 200, 400), usearch_search)
    except ImportError:
        print("  usearch not installed (pip install usearch)")
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
    with threadpool_limits(args.threads):
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d + 1), d + 1, nlist, faiss.METRIC_INNER_PRODUCT)
        t0 = time.perf_counter()
        ivf.train(xt[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)])
        ivf.add(xt)
        bt = time.perf_counter() - t0
    report(f"faiss IVFFlat nlist={nlist}", bt, (8, 16, 32),
           lambda i, p: ivf.search(qt[i : i + 1], k, params=faiss.SearchParametersIVF(nprobe=p))[1][0])
    with threadpool_limits(args.threads):
        raw = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        t0 = time.perf_counter()
        raw.train(items[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)])
        raw.add(items)
        bt = time.perf_counter() - t0
    print("  (the next line: IVF on the raw vectors, no MIPS transform)")
    report(f"faiss IVFFlat raw nlist={nlist}", bt, (8, 16, 32),
           lambda i, p: raw.search(users[i : i + 1], k, params=faiss.SearchParametersIVF(nprobe=p))[1][0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--factors", type=int, default=256, help="64..256; avrec's ALS default is 256")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--latency-queries", type=int, default=1000, help="queries timed one by one (ANN)")
    ap.add_argument("--exact-latency-queries", type=int, default=200,
                    help="queries timed one by one (exact, twice; ~0.1 s each at 1M x 256)")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--nlist", type=int, default=None, help="default 4 sqrt(items)")
    ap.add_argument("--nprobe", type=int, default=None, help="the index's default nprobe")
    ap.add_argument("--sweep", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32, 64],
                    help="other nprobe values to report")
    ap.add_argument("--threads", type=int, default=2, help="threads for build and batch search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true", help="also compare hnswlib, faiss HNSW, usearch")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
