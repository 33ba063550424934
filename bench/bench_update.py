"""Incremental update against a full refit: quality and wall time.

On a split folder (TikTok): fit on ``train`` (the hybrid then chooses its cold share on ``val``,
as ``avrec fit`` does), **update** with ``val`` (:func:`recsys.models.incremental.update_model`,
what ``avrec update`` runs), and score ``test``; against a **refit** on ``train + val`` with the
same settings (the ``refit`` protocol of ``avrec evaluate``). Both are scored like ``avrec
evaluate``: every item ranked, each user's train+val items excluded, recall@20 and ndcg@20.

    python bench/bench_update.py --dataset ../shared/data/tiktok              # ALS
    python bench/bench_update.py --models als,hybrid                           # + the hybrid (~15 min, 2 cores)
    python bench/bench_update.py --sweep                                       # update size vs quality

Printed: per model the stale model (fit on train, not updated), the update and the refit, the
ratios update/refit (target >= 0.98 on both metrics) and the wall time of the update over the
refit's (target <= 0.10; the median of ``--repeats`` runs each; the model step alone, and for ALS
also the whole ``avrec update`` job against the whole ``avrec fit`` job on the same data). For ALS
also the orders of the half-steps (what re-solving the touched items buys when test users are
untouched, as on TikTok where val and test users are disjoint). ``--sweep`` holds out a random
share of ``train`` as the new log and scores ``val`` (the data behind the refit thresholds of
``recsys.jobs.update``). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: the README's ALS settings, tuned on TikTok val (the hybrid's ALS uses the same)
ALS = {"factors": 128, "regularization": 247.67, "alpha": 17.85, "iterations": 15, "weighting": "bm25",
       "bm25_b": 0.25}
PARAMS = {"als": ALS, "hybrid": {"als_params": ALS}}
K = 20


def _score(model, seen, test) -> dict:
    from recsys.evaluation import evaluate

    a = evaluate(model, seen, test, ks=(K,), auc=False, segments=False).segments["all"]
    return {"recall": a[f"recall@{K}"], "ndcg": a[f"ndcg@{K}"]}


def _timed(fn, repeats: int) -> tuple[object, float]:
    """The last result of ``fn()`` and the median wall time of ``repeats`` calls."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def _copy(model, feats):
    """An independent fitted copy, through the model's state (what a bundle holds)."""
    import copy

    return type(model).from_state(copy.deepcopy(model.get_params()), copy.deepcopy(model.get_state()), model.train_,
                                  feats if model.uses_features else None)


def bench_model(name: str, data, repeats: int, log) -> dict:
    from recsys.jobs.fit import fit_model
    from recsys.models import make_model
    from recsys.models.incremental import update_model

    split, feats = data.split, data.item_features
    train, val, test = split.train, split.val, split.test
    seen = train.union(val)
    t = time.perf_counter()
    fitted = fit_model(make_model(name, **PARAMS[name]), train, feats, val)
    fit_s = time.perf_counter() - t
    log(f"{name}: fitted on train in {fit_s:.1f}s")
    rows = {"stale (fit on train, no update)": _score(fitted, seen, test)}

    def refit():
        return fit_model(make_model(name, **fitted.get_params()), seen, feats, None)

    refitted, refit_s = _timed(refit, repeats if name == "als" else 1)
    log(f"{name}: refitted on train+val in {refit_s:.1f}s")

    def update():
        m = _copy(fitted, feats)
        t0 = time.perf_counter()
        update_model(m, val, feats)
        return m, time.perf_counter() - t0

    runs = [update() for _ in range(repeats)]
    updated, update_s = runs[-1][0], statistics.median(s for _, s in runs)
    rows["update (items, then users)"] = _score(updated, seen, test)
    rows["refit on train+val"] = _score(refitted, seen, test)
    if name == "als":  # what each half-step buys (ALS.partial_fit re-solves the items it is given first)
        touched_users, touched_items = val.active_users(), np.unique(val.matrix.indices)
        empty = np.zeros(0, np.int64)
        m = _copy(fitted, None)
        m.partial_fit(seen, touched_users, empty)
        rows["touched users only"] = _score(m, seen, test)
        m.partial_fit(seen, empty, touched_items)
        rows["touched users, then items"] = _score(m, seen, test)
    ref = rows["refit on train+val"]
    out = {"rows": rows, "fit_s": fit_s, "refit_s": refit_s, "update_s": update_s,
           "recall_ratio": rows["update (items, then users)"]["recall"] / ref["recall"],
           "ndcg_ratio": rows["update (items, then users)"]["ndcg"] / ref["ndcg"],
           "time_ratio": update_s / refit_s}
    if name == "als":
        out.update(_jobs(data, repeats, log))
    return out


def _jobs(data, repeats: int, log) -> dict:
    """Wall time of the whole ``avrec update`` job (load bundle, read log, update, drift, save)
    against the whole ``avrec fit`` job on train+val (read log, fit, save)."""
    import polars as pl

    from recsys.jobs.fit import fit_bundle
    from recsys.jobs.load import LogSpec
    from recsys.jobs.update import update_bundle

    split = data.split
    quiet = lambda m: None  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for part, x in (("train", split.train), ("val", split.val), ("train_val", split.train.union(split.val))):
            r, c, _, _ = x.to_coo()
            pl.DataFrame({"user_id": x.user_ids[r].tolist(), "item_id": x.item_ids[c].tolist()}).write_csv(
                tmp / f"{part}.csv")
        fit_bundle("als", tmp / "fitted", log=LogSpec(str(tmp / "train.csv")), params=ALS, log_fn=quiet)

        def job_update():
            return update_bundle(tmp / "fitted", LogSpec(str(tmp / "val.csv")), out=tmp / "updated", overwrite=True,
                                 log_fn=quiet)

        def job_fit():
            return fit_bundle("als", tmp / "refit", log=LogSpec(str(tmp / "train_val.csv")), params=ALS,
                              overwrite=True, log_fn=quiet)

        report, update_job_s = _timed(job_update, repeats)
        _, fit_job_s = _timed(job_fit, repeats)
    log(f"als jobs: avrec update {update_job_s:.2f}s ({report.seconds}), avrec fit {fit_job_s:.2f}s")
    return {"update_job_s": update_job_s, "fit_job_s": fit_job_s, "job_time_ratio": update_job_s / fit_job_s,
            "job_update_seconds": report.seconds, "drift": report.drift, "refit_due": report.refit_due}


def sweep(data, shares: list[float], log) -> list[dict]:
    """ALS fitted on train without a random share of its interactions, updated with that share, scored
    on val against ALS fitted on all of train; the list change of untouched users alongside."""
    from recsys.jobs.update import list_change
    from recsys.models import make_model
    from recsys.models.incremental import update_model

    train, val = data.split.train, data.split.val
    ref = _score(make_model("als", **ALS).fit(train), train, val)
    rng = np.random.default_rng(0)
    out = []
    for share in shares:
        hold = rng.random(train.nnz) < share
        base, new = train.subset(~hold), train.subset(hold)
        m = make_model("als", **ALS).fit(base)
        stale = _score(m, train, val)
        untouched = np.setdiff1d(base.active_users(), new.active_users())
        sample = np.sort(rng.choice(untouched, size=min(1000, len(untouched)), replace=False))
        before = m.recommend(sample, n=K)[0]
        update_model(m, new)
        upd = _score(m, train, val)
        row = {"share": share, "stale_recall": stale["recall"] / ref["recall"],
               "recall": upd["recall"] / ref["recall"], "ndcg": upd["ndcg"] / ref["ndcg"],
               "untouched_list_change": list_change(before, m.recommend(sample, n=K)[0])}
        log(f"sweep {share:.0%}: update/refit recall {row['recall']:.3f} ndcg {row['ndcg']:.3f} "
            f"(stale {row['stale_recall']:.3f}); untouched list change {row['untouched_list_change']:.3f}")
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="../shared/data/tiktok")
    ap.add_argument("--models", default="als", help="comma-separated: als, hybrid")
    ap.add_argument("--repeats", type=int, default=3, help="timing runs of ALS fits and of every update (median)")
    ap.add_argument("--sweep", action="store_true", help="also: update size vs quality (ALS, scored on val)")
    ap.add_argument("--shares", default="0.05,0.1,0.2,0.3,0.5")
    ap.add_argument("--out", default="out/bench_update")
    args = ap.parse_args()

    from recsys.jobs.evaluate import load_eval_data

    log = lambda m: print(m, flush=True)  # noqa: E731
    data = load_eval_data(dataset=args.dataset)
    s = data.info
    log(f"{data.name}: train {s['train']['interactions']}, val {s['val']['interactions']} (the update: "
        f"{s['val']['interactions'] / (s['train']['interactions'] + s['val']['interactions']):.1%} of train+val), "
        f"test {s['test']['interactions']}")
    results = {}
    lines = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        r = results[name] = bench_model(name, data, args.repeats, log)
        lines += ["", f"**{name}** (recall@{K} / ndcg@{K} on test, train+val items excluded)", "",
                  "| model state | recall | ndcg |", "|---|---|---|"]
        lines += [f"| {k} | {v['recall']:.4f} | {v['ndcg']:.4f} |" for k, v in r["rows"].items()]
        lines += ["", f"- update / refit: recall {r['recall_ratio']:.3f}, ndcg {r['ndcg_ratio']:.3f} (target >= 0.98)",
                  f"- wall time: update {r['update_s']:.3f}s, refit {r['refit_s']:.2f}s: "
                  f"ratio **{r['time_ratio']:.3f}** (target <= 0.10)"]
        if "job_time_ratio" in r:
            lines.append(f"- whole jobs: avrec update {r['update_job_s']:.2f}s, avrec fit (train+val) "
                         f"{r['fit_job_s']:.2f}s: ratio {r['job_time_ratio']:.3f}")
    if args.sweep:
        rows = results["sweep"] = sweep(data, [float(x) for x in args.shares.split(",")], log)
        lines += ["", "**Update size** (ALS; a random share of train held out as the new log; scored on val; ratios "
                  "to ALS fitted on all of train)", "",
                  "| new share | stale recall | update recall | update ndcg | untouched list change |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['share']:.0%} | {r['stale_recall']:.3f} | {r['recall']:.3f} | {r['ndcg']:.3f} | "
                  f"{r['untouched_list_change']:.3f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_update.md").write_text(table + "\n")
    (out / "bench_update.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"written {out.resolve()}")


if __name__ == "__main__":
    main()
