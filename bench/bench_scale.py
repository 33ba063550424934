"""Scale: a MovieLens-20M-sized synthetic log through load, split, ALS fit, full evaluation and lists.

The log has MovieLens-20M's shape (138,493 users x 26,744 items x 20,000,263 interactions at
``--scale 1``): Zipf-like item popularity inside genre clusters, log-normal user activity (at
least 20 items per user, as in MovieLens), half-star ratings as weights, and timestamps (users
active in windows over 20 years, items released over the same years). ``--scale s`` multiplies
users, items and interactions by ``s``, so the evaluation work (users x items) scales as ``s**2``.

Steps, each timed and measured for peak resident memory on its own:

- ``generate``: the log as arrays, written to Parquet (bench code, not avrec);
- ``load``: ``recsys.data.logs.read_log`` of that file (weight = rating, timestamps);
- ``split``: ``recsys.split.make_split`` (``random`` per-user holdout by default: every user is
  evaluated, the most evaluation work; ``temporal`` as ``avrec evaluate`` defaults to);
- ``fit``: ``recsys.models.ALS`` on train (avrec's default settings unless given);
- ``evaluate``: ``recsys.evaluation.evaluate``, the evaluator ``avrec evaluate`` runs: every test
  user scored over every item, all 7 ranking metrics at 10 and 20, exact AUC, warm/cold segments;
- ``lists``: ``serving.batch.write_recommendations``, top-100 of every user to Parquet.

After ``evaluate`` and ``lists`` the same run measures their **matmul bound**: the bare batched
``user_factors @ item_factors.T`` plus ``argpartition`` top-k over the same users and items (top-20
for evaluation, seen items masked and top-100 for lists), and prints the step's time as a ratio
of it.

Peak RSS per step: before a step the process's high-water mark is reset (``5`` written to
``/proc/self/clear_refs`` sets ``VmHWM`` to the current RSS); after it ``VmHWM`` from
``/proc/self/status`` is the peak resident set reached during the step, counted by the kernel at
page granularity, so short spikes are not missed as a sampler would miss them. Where the reset is
not allowed, a thread sampling ``VmRSS`` every 20 ms stands in (and says so). The peak includes
what earlier steps still hold (the log, the split, the model): it is the process's footprint.

Usage: ``python bench/bench_scale.py [--scale 0.05] [--split random|temporal] [--factors 256]
[--iterations 10] [--json out.json]``; 2 cores, target peak RSS <= 8 GiB at ``--scale 1``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: MovieLens-20M (ratings.csv): users, rated movies, ratings
ML20M = (138_493, 26_744, 20_000_263)
GIB = 1024**3
YEAR = 365 * 86_400
START = 788_918_400  # 1995-01-01, MovieLens-20M's first year


# ------------------------------------------------------------------------------------ memory
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakRSS:
    """Peak resident memory of the process over a block (bytes).

    Resets the kernel's high-water mark (``/proc/self/clear_refs``, value 5) on entry and reads
    ``VmHWM`` on exit; falls back to sampling ``VmRSS`` from a thread when the reset is refused.
    """

    method = "VmHWM reset via /proc/self/clear_refs"

    def __enter__(self) -> "PeakRSS":
        gc.collect()
        self.start = _status_kib("VmRSS") * 1024
        self._sampler = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            PeakRSS.method = "VmRSS sampled every 20 ms"
            self._peak = self.start
            self._stop = threading.Event()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._peak = max(self._peak, _status_kib("VmRSS") * 1024)

    def __exit__(self, *exc) -> None:
        self.end = _status_kib("VmRSS") * 1024
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self.peak = max(self._peak, self.end)
        else:
            self.peak = _status_kib("VmHWM") * 1024


class Steps:
    """Times and peak RSS of named steps, printed as each one ends."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def run(self, name: str, fn, *args, **kwargs):
        print(f"  {name} ...", flush=True)
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            secs = time.perf_counter() - t0
        row = {"step": name, "seconds": secs, "peak_rss_gib": mem.peak / GIB, "rss_after_gib": mem.end / GIB,
               "rss_before_gib": mem.start / GIB}
        self.rows.append(row)
        print(f"  {name:<16} {secs:9.1f} s   peak RSS {mem.peak / GIB:6.2f} GiB   "
              f"(before {mem.start / GIB:.2f}, after {mem.end / GIB:.2f})", flush=True)
        return out


# ------------------------------------------------------------------------------------ the log
def generate_log(scale: float = 1.0, seed: int = 0, n_clusters: int = 20, zipf: float = 1.0) -> dict[str, np.ndarray]:
    """A MovieLens-20M-shaped implicit log as column arrays (no (user, item) pair twice).

    Items: Zipf-like popularity (exponent 0.9 over a random ranking) and one genre cluster each,
    a release time over 20 years. Users: log-normal activity (median about 70 items, at least 20,
    at most a third of the catalog) scaled so the total is the target, taste on 1-3 clusters.
    Each draw is a taste draw (60%: a favourite cluster, then an item by popularity within it) or
    a popularity draw (an item by global popularity). Repeated pairs are dropped and the missing
    draws redrawn (half of the popularity redraws uniform over the catalog, so the heaviest users
    reach their count) until every user has their count or eight rounds passed.

    Returns
    -------
    dict
        ``user_id`` (nnz,) int64, ``item_id`` (nnz,) int64, ``rating`` (nnz,) float32 in
        {0.5, 1, ..., 5}, ``timestamp`` (nnz,) int64 unix seconds; ordered by user, then time.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items, target = (max(2, int(round(v * scale))) for v in ML20M)
    n_items = max(n_items, 2 * n_clusters)
    # items: popularity, cluster, release
    pop = 1.0 / np.arange(1, n_items + 1) ** zipf
    pop = pop[rng.permutation(n_items)]
    cluster = rng.integers(0, n_clusters, n_items)
    order = np.argsort(cluster, kind="stable")  # items grouped by cluster for within-cluster draws
    cum = np.cumsum(pop[order])
    bounds = np.searchsorted(cluster[order], np.arange(n_clusters + 1))
    c_lo = np.concatenate([[0.0], cum])[bounds[:-1]]
    c_mass = np.concatenate([[0.0], cum])[bounds[1:]] - c_lo
    g_cum = np.cumsum(pop) / pop.sum()
    release = START + (rng.random(n_items) ** 0.7 * 19 * YEAR).astype(np.int64)  # more items in later years
    # users: activity, taste (up to three clusters), active window
    cap = max(20, n_items // 3)
    raw = rng.lognormal(np.log(70.0), 1.05, n_users)
    factor = target / raw.sum()
    for _ in range(5):  # rescale until the clipped counts add up to the target
        count = np.clip(np.round(raw * factor), min(20, n_items // 4), cap).astype(np.int64)
        factor *= target / count.sum()
    fav = np.argsort(rng.random((n_users, n_clusters)), axis=1)[:, :3]  # three distinct clusters
    fav_w = np.cumsum(rng.dirichlet([2.0, 1.0, 0.5], n_users), axis=1)
    u_start = START + (rng.random(n_users) * 20 * YEAR).astype(np.int64)
    u_span = np.minimum(rng.lognormal(np.log(30 * 86_400), 2.0, n_users), 5 * YEAR).astype(np.int64)

    have_u = np.empty(0, np.int64)
    have_i = np.empty(0, np.int64)
    need = count.copy()
    for round_ in range(8):
        if need.sum() == 0:
            break
        draws = np.ceil(need * 1.25 + 2).astype(np.int64) * (need > 0)
        u = np.repeat(np.arange(n_users, dtype=np.int64), draws)
        taste = rng.random(len(u)) < 0.6
        i = np.searchsorted(g_cum, rng.random(len(u)) * g_cum[-1]).astype(np.int64)
        if round_:  # users still short (the heaviest) also rate obscure items: half the redraws uniform
            obscure = ~taste & (rng.random(len(u)) < 0.5)
            i[obscure] = rng.integers(0, n_items, int(obscure.sum()))
        ut = u[taste]
        slot = (rng.random(len(ut))[:, None] > fav_w[ut, :2]).sum(axis=1)
        c = fav[ut, slot]
        i[taste] = order[np.minimum(np.searchsorted(cum, c_lo[c] + rng.random(len(ut)) * c_mass[c]), n_items - 1)]
        key = np.concatenate([have_u * n_items + have_i, u * n_items + i])
        # keep old pairs first, then new ones in random order; one pair once; cap each user at count
        prio = np.concatenate([np.zeros(len(have_u)), 1.0 + rng.random(len(u))])
        first = np.lexsort((prio, key))
        key, prio = key[first], prio[first]
        uniq = np.ones(len(key), dtype=bool)
        uniq[1:] = key[1:] != key[:-1]
        key, prio = key[uniq], prio[uniq]
        users = key // n_items
        by_user = np.lexsort((prio, users))
        users, key = users[by_user], key[by_user]
        starts = np.searchsorted(users, np.arange(n_users))
        rank = np.arange(len(users)) - starts[users]
        keep = rank < count[users]
        key = np.sort(key[keep])
        have_u, have_i = np.divmod(key, n_items)
        need = count - np.bincount(have_u, minlength=n_users)
        del u, i, taste, ut, slot, c, prio, first, uniq, users, by_user, starts, rank, keep, key
    nnz = len(have_u)
    t_user = u_start[have_u] + (rng.random(nnz) * u_span[have_u]).astype(np.int64)
    t_item = release[have_i] + rng.exponential(60 * 86_400, nnz).astype(np.int64)
    ts = np.minimum(np.maximum(t_user, t_item), START + 20 * YEAR)
    liked = fav[have_u] == cluster[have_i][:, None]
    stars = 3.3 + 0.6 * liked.any(axis=1) + 0.3 * np.log10(pop[have_i] * n_items) / np.log10(n_items) \
        + rng.normal(0, 0.9, nnz)
    rating = (np.clip(np.round(stars * 2), 1, 10) / 2).astype(np.float32)
    by_time = np.lexsort((ts, have_u))
    return {"user_id": have_u[by_time] + 1, "item_id": have_i[by_time] + 1,
            "rating": rating[by_time], "timestamp": ts[by_time]}


def write_log(cols: dict[str, np.ndarray], path: Path) -> Path:
    """The log as one Parquet file (row groups of 1M rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(cols), path, row_group_size=1 << 20)
    return path


def generate(scale: float, seed: int, path: Path) -> dict:
    cols = generate_log(scale, seed)
    write_log(cols, path)
    return {"rows": len(cols["user_id"]), "users": int(len(np.unique(cols["user_id"]))),
            "items": int(len(np.unique(cols["item_id"]))), "bytes": path.stat().st_size}


# ------------------------------------------------------------------------------------ bounds
def matmul_bound(user_factors: np.ndarray, item_factors: np.ndarray, users: np.ndarray, k: int,
                 seen=None) -> float:
    """Seconds of the bare batched ``U[users] @ V.T`` + argpartition top-``k`` (seen masked when given)."""
    from recsys.models.base import batch_size_for

    bs = batch_size_for(item_factors.shape[0])
    t0 = time.perf_counter()
    for s in range(0, len(users), bs):
        scores = user_factors[users[s : s + bs]] @ item_factors.T
        if seen is not None:
            rows = seen[users[s : s + bs]]
            scores[np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)), rows.indices] = -np.inf
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="share of MovieLens-20M's size (default 1)")
    ap.add_argument("--split", choices=("random", "temporal"), default="random")
    ap.add_argument("--factors", type=int, default=None, help="ALS factors (default: ALS's default)")
    ap.add_argument("--iterations", type=int, default=None, help="ALS iterations (default: ALS's default)")
    ap.add_argument("--n", type=int, default=100, help="list length of the lists step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where the log and lists go (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="write the step table and results here")
    ap.add_argument("--max-rss-gib", type=float, default=8.0)
    args = ap.parse_args(argv)

    from recsys.data.logs import read_log
    from recsys.evaluation import evaluate
    from recsys.models import ALS
    from recsys.split import make_split
    from serving.batch import write_recommendations

    tmp = tempfile.TemporaryDirectory(prefix="bench_scale_") if args.workdir is None else None
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    print(f"scale {args.scale} of MovieLens-20M ({', '.join(f'{round(v * args.scale):,}' for v in ML20M)} "
          f"users/items/interactions), {os.cpu_count()} cores, split {args.split}, peak RSS by {PeakRSS.method}",
          flush=True)
    steps = Steps()
    facts: dict = {}
    log_path = work / "log.parquet"
    facts["log"] = steps.run("generate", generate, args.scale, args.seed, log_path)
    print(f"    {facts['log']}", flush=True)
    x = steps.run("load", read_log, log_path, weight="rating", timestamp="timestamp")
    print(f"    {x!r}", flush=True)
    split = steps.run("split", make_split, x, args.split, test_size=0.2, val_size=0.0, seed=args.seed)
    del x
    train, test = split.train, split.test
    facts["split"] = split.summary()
    print(f"    train {train.nnz:,} pairs, test {test.nnz:,} pairs over {int((test.user_counts() > 0).sum()):,} users",
          flush=True)
    del split
    params = {k: v for k, v in (("factors", args.factors), ("iterations", args.iterations)) if v is not None}
    model = steps.run("fit", ALS(**params, use_gpu=False).fit, train)
    res = steps.run("evaluate", evaluate, model, train, test, ks=(10, 20))
    facts["metrics"] = {s: {k: v for k, v in row.items() if k in ("users", "recall@20", "ndcg@20", "auc")}
                        for s, row in res.segments.items()}
    print(f"    {facts['metrics']['all']}", flush=True)
    eval_users = np.flatnonzero(test.user_counts() > 0)
    bound_eval = steps.run("evaluate bound", matmul_bound, model.user_factors_, model.item_factors_, eval_users, 20)
    out = work / "lists.parquet"
    _, _ = steps.run("lists", write_recommendations, model, train, out, n=args.n)
    bound_lists = steps.run("lists bound", matmul_bound, model.user_factors_, model.item_factors_,
                            train.active_users(), args.n, train.matrix)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(out).metadata
    facts["lists"] = {"rows": meta.num_rows, "row_groups": meta.num_row_groups, "bytes": out.stat().st_size}
    t = {r["step"]: r for r in steps.rows}
    facts["eval_over_bound"] = t["evaluate"]["seconds"] / bound_eval
    facts["lists_over_bound"] = t["lists"]["seconds"] / bound_lists
    peak = max(r["peak_rss_gib"] for r in steps.rows)
    print(f"\n| step | seconds | peak RSS (GiB) |\n|---|---|---|")
    for r in steps.rows:
        print(f"| {r['step']} | {r['seconds']:.1f} | {r['peak_rss_gib']:.2f} |")
    print(f"\nevaluate / matmul bound: {facts['eval_over_bound']:.2f} ({len(eval_users):,} users x {train.n_items:,} items,"
          f" bound {bound_eval:.1f} s)")
    print(f"lists / matmul bound: {facts['lists_over_bound']:.2f} ({facts['lists']['rows']:,} rows in "
          f"{facts['lists']['row_groups']} row groups, bound {bound_lists:.1f} s)")
    ok = peak <= args.max_rss_gib
    print(f"peak RSS {peak:.2f} GiB, target <= {args.max_rss_gib:g} GiB -> {'PASS' if ok else 'MISS'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "steps": steps.rows, "facts": facts,
                                               "rss_method": PeakRSS.method}, indent=1, default=str))
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
