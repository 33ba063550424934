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

Around ``evaluate`` and ``lists`` the same run measures their **matmul bound**: the bare batched
``user_factors @ item_factors.T`` plus ``argpartition`` top-k over the same users and items (top-20
for evaluation, seen items masked and top-100 for lists), once before and once after the step,
and prints the step's time as a ratio of the smaller (other load only slows a run down).

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

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            PeakRSS.method = "VmRSS sampled every 20 ms"
            return False

    def __enter__(self) -> "PeakRSS":
        gc.collect()
        self.start = _status_kib("VmRSS") * 1024
        self._sampler = None
        if not self._reset():
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
def generate_log(scale: float = 1.0, seed: int = 0, n_clusters: int = 20, zipf: float = 1.4,
                 taste_share: float = 0.6) -> dict[str, np.ndarray]:
    """A MovieLens-20M-shaped implicit log as column arrays (no (user, item) pair twice).

    Items: Zipf popularity (exponent ``zipf`` over a random ranking; the most popular items
    saturate, reaching most users, and the tail has items with a handful of users, as in
    MovieLens), one genre cluster each, a release time over 20 years. Users: log-normal activity
    (median about 70 items, at least 20, at most a third of the catalog) rescaled so the total is
    exactly the target; a taste on three clusters. Each user's items are drawn **without
    replacement** from their own mixture ``(1 - taste_share) * popularity + taste_share *
    popularity within the favourite clusters``, exactly (Gumbel top-k over every item, users in
    blocks), so the heaviest users reach their count without a uniform fallback flattening the
    tail. Times: each user is active in a window (log-normal length, median a month, stretched
    until enough items are out) and draws only items released before it ends, each at a uniform
    time in the window after the item's release; a temporal split therefore has new items.

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
    pop = pop[rng.permutation(n_items)] / pop.sum()
    cluster = rng.integers(0, n_clusters, n_items)
    in_cluster = pop / np.bincount(cluster, weights=pop, minlength=n_clusters)[cluster]
    release = START + (rng.random(n_items) ** 0.7 * 19 * YEAR).astype(np.int64)  # more items in later years
    # users: activity (exactly `target` in all), taste over three clusters, active window
    cap = max(20, n_items // 3)
    low = min(20, n_items // 4)
    raw = rng.lognormal(np.log(70.0), 1.05, n_users)
    factor = target / raw.sum()
    for _ in range(5):  # rescale until the clipped counts add up to about the target
        count = np.clip(np.round(raw * factor), low, cap).astype(np.int64)
        factor *= target / count.sum()
    diff = int(target - count.sum())  # then one more or one less for a few users with room
    room = np.flatnonzero(count < cap) if diff > 0 else np.flatnonzero(count > low)
    count[rng.choice(room, min(abs(diff), len(room)), replace=False)] += np.sign(diff)
    fav = np.argsort(rng.random((n_users, n_clusters)), axis=1)[:, :3]  # three distinct clusters
    taste = np.zeros((n_users, n_clusters), dtype=np.float32)
    np.put_along_axis(taste, fav, rng.dirichlet([2.0, 1.0, 0.5], n_users).astype(np.float32), axis=1)
    # active windows: a start over 20 years and a log-normal length (median a month), stretched
    # where needed so that twice the user's count of items is released before the window ends
    end = START + 20 * YEAR
    u_start = START + (rng.random(n_users) * 20 * YEAR).astype(np.int64)
    u_end = u_start + np.minimum(rng.lognormal(np.log(30 * 86_400), 2.0, n_users), 5 * YEAR).astype(np.int64)
    u_end = np.minimum(np.maximum(u_end, np.sort(release)[np.minimum(2 * count, n_items - 1)]), end)

    # Gumbel top-k: the count[u] largest log p_u(i) + Gumbel noise are a draw without replacement
    # from p_u. Users go in blocks of similar counts (sorted), about 32M cells a block.
    base = ((1 - taste_share) * pop).astype(np.float32)
    within = (taste_share * in_cluster).astype(np.float32)
    by_count = np.argsort(count, kind="stable")
    block = max(1, (1 << 25) // n_items)
    parts_u, parts_i = [], []
    for s in range(0, n_users, block):
        users = by_count[s : s + block]
        k = count[users]
        keys = np.log(base + taste[users][:, cluster] * within)
        keys[release[None, :] > u_end[users][:, None]] = -np.inf  # not yet released in the window
        u01 = rng.random(keys.shape, dtype=np.float32)
        keys -= np.log(-np.log(np.maximum(u01, np.float32(1e-30))))  # + Gumbel(0, 1)
        kmax = int(k.max())
        top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax] if kmax < n_items else \
            np.broadcast_to(np.arange(n_items), keys.shape)
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
        take = np.arange(kmax)[None, :] < k[:, None]
        parts_u.append(np.repeat(users, k))
        parts_i.append(top[take])
        del keys, u01, top, take
    have_u = np.concatenate(parts_u).astype(np.int64)
    have_i = np.concatenate(parts_i).astype(np.int64)
    del parts_u, parts_i
    nnz = len(have_u)
    lo = np.maximum(u_start[have_u], release[have_i])  # within the window, after the release
    ts = lo + (rng.random(nnz) * (u_end[have_u] - lo)).astype(np.int64)
    liked = taste[have_u, cluster[have_i]] > 0.2
    stars = 3.3 + 0.6 * liked + 0.3 * np.log10(pop[have_i] / pop.max() * n_items) / np.log10(n_items) \
        + rng.normal(0, 0.9, nnz)
    rating = (np.clip(np.round(stars * 2), 1, 10) / 2).astype(np.float32)
    by_time = np.lexsort((ts, have_u))
    return {"user_id": have_u[by_time] + 1, "item_id": have_i[by_time] + 1,
            "rating": rating[by_time], "timestamp": ts[by_time]}


def write_log(cols: dict[str, np.ndarray], path: Path) -> Path:
    """The log as one Parquet file (row groups of 1M rows), or as MovieLens' ``ratings.csv``
    (header ``userId,movieId,rating,timestamp``) when ``path`` ends in ``.csv``."""
    import pyarrow as pa

    if path.suffix == ".csv":
        import pyarrow.csv as pc

        names = {"user_id": "userId", "item_id": "movieId", "rating": "rating", "timestamp": "timestamp"}
        pc.write_csv(pa.table({names[k]: v for k, v in cols.items()}), path,
                     pc.WriteOptions(quoting_style="none"))
        return path
    import pyarrow.parquet as pq

    pq.write_table(pa.table(cols), path, row_group_size=1 << 20)
    return path


def generate(scale: float, seed: int, path: Path) -> dict:
    cols = generate_log(scale, seed)
    write_log(cols, path)
    per_user = np.bincount(cols["user_id"])[1:]
    per_item = np.sort(np.bincount(cols["item_id"])[1:])[::-1]
    top = max(1, len(per_item) // 100)
    return {"rows": len(cols["user_id"]), "users": int((per_user > 0).sum()), "items": int((per_item > 0).sum()),
            "bytes": path.stat().st_size,
            "user_items_min_median_p99_max": [int(v) for v in np.percentile(per_user, [0, 50, 99, 100])],
            "item_users_max_median_min": [int(per_item[0]), int(np.median(per_item)), int(per_item[-1])],
            "share_on_top_1pct_items": round(float(per_item[:top].sum() / per_item.sum()), 3)}


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
STEPS = ("load", "split", "fit", "evaluate", "lists")


def run(args: argparse.Namespace, work: Path, steps: Steps) -> dict:
    """The steps up to ``args.until``; returns the facts printed and saved beside the step table."""
    from recsys.data.logs import read_log
    from recsys.data.movielens import read_movielens
    from recsys.evaluation import evaluate
    from recsys.models import ALS
    from recsys.split import make_split
    from serving.batch import write_recommendations

    last = STEPS.index(args.until)
    facts: dict = {}
    log_path = work / ("ratings.csv" if args.format == "csv" else "log.parquet")
    facts["log"] = steps.run("generate", generate, args.scale, args.seed, log_path)
    print(f"    {facts['log']}", flush=True)
    if args.format == "csv":
        x = steps.run("load", read_movielens, log_path)
    else:
        x = steps.run("load", read_log, log_path, weight="rating", timestamp="timestamp")
    print(f"    {x!r}", flush=True)
    if last < 1:
        return facts
    split = steps.run("split", make_split, x, args.split, test_size=0.2, val_size=0.0, seed=args.seed)
    del x
    train, test = split.train, split.test
    facts["split"] = split.summary()
    del split
    print(f"    {facts['split']}", flush=True)
    if last < 2:
        return facts
    params = {k: v for k, v in (("factors", args.factors), ("iterations", args.iterations)) if v is not None}
    model = steps.run("fit", ALS(**params, use_gpu=False).fit, train)
    facts["als"] = {k: v for k, v in model.get_params().items() if k in ("factors", "iterations", "regularization",
                                                                          "alpha", "weighting")}
    if last < 3:
        return facts
    # Each bound is measured just before and just after its step and the smaller kept: other
    # load on the machine only ever slows a run down, so the minimum is the better estimate.
    uf, itf = model.user_factors_, model.item_factors_
    eval_users = np.flatnonzero(test.user_counts() > 0)
    bounds = [steps.run("evaluate bound", matmul_bound, uf, itf, eval_users, 20)]
    res = steps.run("evaluate", evaluate, model, train, test, ks=(10, 20))
    bounds.append(steps.run("evaluate bound", matmul_bound, uf, itf, eval_users, 20))
    facts["evaluate"] = {"users": len(eval_users), "items": train.n_items, "bound_s": min(bounds),
                         "metrics": {s: {k: round(v, 4) for k, v in row.items()
                                         if k in ("users", "recall@20", "ndcg@20", "auc")}
                                     for s, row in res.segments.items()}}
    print(f"    {facts['evaluate']['metrics']['all']}", flush=True)
    if last < 4:
        return facts
    import pyarrow.parquet as pq

    out = work / "lists.parquet"
    list_users = train.active_users()
    bounds = [steps.run("lists bound", matmul_bound, uf, itf, list_users, args.n, train.matrix)]
    steps.run("lists", write_recommendations, model, train, out, n=args.n)
    bounds.append(steps.run("lists bound", matmul_bound, uf, itf, list_users, args.n, train.matrix))
    meta = pq.ParquetFile(out).metadata
    facts["lists"] = {"users": len(list_users), "rows": meta.num_rows, "row_groups": meta.num_row_groups,
                      "bytes": out.stat().st_size, "bound_s": min(bounds)}
    return facts


def report(args: argparse.Namespace, steps: Steps, facts: dict) -> bool:
    """Print the step table and the ratios to the bounds; whether peak RSS met the target."""
    seconds = {r["step"]: r["seconds"] for r in steps.rows if "bound" not in r["step"]}
    print("\n| step | seconds | peak RSS (GiB) |\n|---|---|---|")
    for r in steps.rows:
        if "bound" not in r["step"]:
            print(f"| {r['step']} | {r['seconds']:.1f} | {r['peak_rss_gib']:.2f} |")
    for step in ("evaluate", "lists"):
        if step in facts:
            f = facts[step]
            f["over_bound"] = seconds[step] / f["bound_s"]
            what = f"{f['users']:,} users" + (f" x {f['items']:,} items" if step == "evaluate" else
                                               f", {f['rows']:,} rows in {f['row_groups']} row groups")
            print(f"{step} / matmul bound: {f['over_bound']:.2f} ({what}; bound {f['bound_s']:.2f} s)")
    print()
    avrec = [r for r in steps.rows if r["step"] != "generate"]
    peak = max(r["peak_rss_gib"] for r in avrec)
    ok = peak <= args.max_rss_gib
    print(f"peak RSS of the avrec steps {peak:.2f} GiB (generation: {steps.rows[0]['peak_rss_gib']:.2f}), "
          f"target <= {args.max_rss_gib:g} GiB -> {'PASS' if ok else 'MISS'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="share of MovieLens-20M's size (default 1)")
    ap.add_argument("--split", choices=("random", "temporal"), default="random")
    ap.add_argument("--factors", type=int, default=None, help="ALS factors (default: ALS's default)")
    ap.add_argument("--iterations", type=int, default=None, help="ALS iterations (default: ALS's default)")
    ap.add_argument("--n", type=int, default=100, help="list length of the lists step")
    ap.add_argument("--format", choices=("parquet", "csv"), default="parquet",
                    help="log file: Parquet (read_log), or MovieLens' ratings.csv layout (read_movielens)")
    ap.add_argument("--until", choices=STEPS, default="lists", help="stop after this step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where the log and lists go (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="write the step table and facts here")
    ap.add_argument("--max-rss-gib", type=float, default=8.0)
    args = ap.parse_args(argv)

    PeakRSS._reset()  # decides the method printed below
    tmp = tempfile.TemporaryDirectory(prefix="bench_scale_") if args.workdir is None else None
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    print(f"scale {args.scale} of MovieLens-20M ({', '.join(f'{round(v * args.scale):,}' for v in ML20M)} "
          f"users/items/interactions), {os.cpu_count()} cores, split {args.split}, log {args.format}, "
          f"peak RSS by {PeakRSS.method}", flush=True)
    steps = Steps()
    try:
        facts = run(args, work, steps)
    finally:
        if tmp is not None:
            tmp.cleanup()
    ok = report(args, steps, facts)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "steps": steps.rows, "facts": facts,
                                               "rss_method": PeakRSS.method}, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
