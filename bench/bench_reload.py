"""Hot reload under load: failed requests across 10 bundle swaps (target: 0).

Two ALS bundles of TikTok's ``train`` part (the README's tuned settings, two seeds, so their
lists differ) are saved; ``avrec serve`` starts on the first; a light client
(``bench/http_load.py``) keeps ``--concurrency`` requests for ``/users/{id}/recommendations?n=10``
in flight (500 known users in turn) while ``POST /admin/reload`` swaps the bundles 10 times,
alternating, ``--interval`` seconds apart. Every answer is checked against both bundles' own
lists for that user (computed in this process on independently loaded copies): it must equal
one of them. Printed: requests, failed (non-200 or no answer), inconsistent answers, answers per
bundle, the load and swap time of each reload, and latency with and without a reload running.

Without the TikTok folder a synthetic log of the same size stands in (``bench_serving``).

Usage: ``python bench/bench_reload.py [--dataset ../shared/data/tiktok] [--concurrency 4] [--swaps 10]``
"""

from __future__ import annotations

import argparse
import asyncio
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
sys.path.insert(0, str(ROOT / "bench"))
TIKTOK = ROOT.parent / "shared" / "data" / "tiktok"
TOKEN = "bench-reload-token-0123456789"
N_USERS = 500


def make_bundles(dataset: Path | None, out: Path) -> tuple[Path, Path]:
    """Two ALS bundles of one training log, seeds 0 and 1."""
    from bench_explain import TIKTOK_ALS

    from recsys.models import make_model
    from serving.bundle import save_bundle

    t0 = time.perf_counter()
    if dataset is not None:
        from recsys.data.loaders import load_split_folder

        train = load_split_folder(dataset).train
    else:
        import polars as pl
        from bench_serving import synthetic_log

        from recsys.data import Interactions

        log = pl.read_csv(synthetic_log(out))
        train = Interactions.from_arrays(log["user_id"].to_numpy(), log["item_id"].to_numpy())
    paths = []
    for seed in (0, 1):
        model = make_model("als", **{**TIKTOK_ALS, "random_state": seed}).fit(train)
        paths.append(save_bundle(model, out / f"als_seed{seed}"))
    print(f"    two ALS bundles ({train.n_users} users x {train.n_items} items, seeds 0 and 1) in "
          f"{time.perf_counter() - t0:.1f}s", flush=True)
    return paths[0], paths[1]


def reference_lists(bundle: Path, users: list) -> dict:
    """{user id: top-10 item ids} from the bundle's own service."""
    from serving.bundle import load_bundle
    from serving.service import RecommendationService

    svc = RecommendationService(load_bundle(bundle))
    return {u: tuple(it["item_id"] for it in svc.recommend_user(u, n=10)["items"]) for u in users}


def main(argv: list[str] | None = None) -> int:
    import httpx
    from bench_serving import start_server, stop_server
    from http_load import load

    from serving.bundle import load_bundle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(TIKTOK))
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--swaps", type=int, default=10)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds of load between swaps (default 1)")
    args = ap.parse_args(argv)
    dataset = Path(args.dataset) if Path(args.dataset).is_dir() else None
    if dataset is None:
        print(f"{args.dataset} not found: synthetic log of TikTok's size instead")
    with tempfile.TemporaryDirectory(prefix="bench_reload_") as tmp:
        a, b = make_bundles(dataset, Path(tmp))
        x = load_bundle(a, verify=False).interactions
        rng = np.random.default_rng(0)
        users = [u.item() if hasattr(u, "item") else u for u in rng.choice(x.user_ids[x.active_users()], N_USERS,
                                                                          replace=False)]
        refs = {a: reference_lists(a, users), b: reference_lists(b, users)}
        differ = sum(refs[a][u] != refs[b][u] for u in users)
        os.environ["AVREC_TOKEN"] = TOKEN  # start_server passes the environment on
        proc, url = start_server(a)
        try:
            paths = [f"/users/{users[i % N_USERS]}/recommendations?n=10" for i in range(400_000)]
            asyncio.run(load(url, paths[:200], args.concurrency, 30))  # warm-up
            stop = threading.Event()
            result: dict = {}
            thread = threading.Thread(target=lambda: result.update(asyncio.run(
                load(url, paths, args.concurrency, 3600, stop=stop, keep=True))), daemon=True)
            thread.start()
            swaps = []
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as admin:
                for k in range(args.swaps):
                    time.sleep(args.interval)
                    target = b if k % 2 == 0 else a
                    t0 = time.perf_counter()
                    r = admin.post("/admin/reload", json={"path": str(target)})
                    swaps.append({"start": t0, "end": time.perf_counter(), "status": r.status_code,
                                  "seconds": r.json().get("seconds") if r.status_code == 200 else None,
                                  "detail": None if r.status_code == 200 else r.text})
                time.sleep(args.interval)
            stop.set()
            thread.join(60)
        finally:
            stop_server(proc)
    n = result["n"]
    answered_by = {a: 0, b: 0}
    inconsistent = 0
    for i, (status, body) in enumerate(zip(result["statuses"], result["bodies"])):
        if status != 200:
            continue
        user = users[i % N_USERS]  # paths[i] asks for this user
        got = tuple(it["item_id"] for it in json.loads(body)["items"])
        ra, rb = refs[a][user], refs[b][user]
        if got not in (ra, rb):
            inconsistent += 1
        elif ra != rb:  # the answer tells which bundle gave it
            answered_by[a if got == ra else b] += 1
    lat = result["latencies"] * 1e3
    during = np.zeros(n, bool)
    for s in swaps:
        during |= (result["starts"] < s["end"]) & (result["starts"] + result["latencies"] > s["start"])
    failed = int(result["errors"])
    refused = [s for s in swaps if s["status"] != 200]
    secs = [s["seconds"] for s in swaps if s["seconds"] is not None]
    print(f"    {args.swaps} swaps between 2 ALS bundles ({differ} of {N_USERS} users have different top-10 lists), "
          f"{args.concurrency} requests in flight, {result['seconds']:.1f}s of load")
    print(f"    requests {n}, failed {failed}, inconsistent (neither bundle's list) {inconsistent}; answers told apart "
          f"by their list: {answered_by[a]} from bundle A, {answered_by[b]} from bundle B")
    print(f"    reloads answered 200: {len(swaps) - len(refused)} of {len(swaps)}; load+verify+swap "
          f"{np.mean(secs):.2f}s mean, {np.max(secs):.2f}s max" if secs else "    no reload succeeded")
    for s in refused:
        print(f"    refused reload: {s['status']} {s['detail']}")
    if during.any() and (~during).any():
        print(f"    latency p50/p99 ms: {np.percentile(lat[~during], 50):.1f}/{np.percentile(lat[~during], 99):.1f} "
              f"without a reload running ({(~during).sum()} requests), {np.percentile(lat[during], 50):.1f}/"
              f"{np.percentile(lat[during], 99):.1f} while one loads ({during.sum()} requests; the load shares the "
              f"process and its cores)")
    ok = failed == 0 and inconsistent == 0 and not refused
    print(f"    failed requests across {args.swaps} swaps: {failed} (target 0), inconsistent {inconsistent} -> "
          f"{'PASS' if ok else 'MISS'}")
    print("PASS" if ok else "MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
