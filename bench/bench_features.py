"""Benchmark: feature extraction throughput against decode-only and CNN-only bounds.

For each catalog (the real clips of ../shared/data/media when present, and a generated demo-like
catalog) this measures, in one run:

- ``extract``   :func:`features.store.extract_catalog` on a fresh output folder, with 1 worker
                (in this process) and with N spawned workers (cold: each pays its torch import);
- ``cached``    the same call again: every file a cache hit;
- ``decode``    bound 1: sampling the same frames with :func:`features.media.decode_video`, no
                features, one process;
- ``cnn``       bound 2: :func:`features.video.frame_embeddings` on random frames of the same count
                and size per clip (model built before timing), one process.

Throughput is media-seconds (sum of durations of the items extracted OK) per wall-second. The
extractor does decode + CNN + audio + descriptors one after the other, so one worker stays below the
slower bound and gets close only when that stage dominates the rest; the target is ``extract >= 0.7 x slower bound`` and is
reported for 1 worker and for N workers (which can exceed the single-process bounds). The
``store only`` row replaces the extractor by a lookup of precomputed results: what remains is the
store's own cost (hashing, cache files, assembling, fusion, writing).

Usage: ``python bench/bench_features.py [--workers N] [--demo-items 96] [--skip-real]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED_MEDIA = ROOT.parent / "shared" / "data" / "media"


def demo_like_catalog(folder: Path, n_items: int):
    """Media of the demo generator (recsys.synthetic); a minimal stand-in when it is unavailable."""
    from recsys.data import Catalog

    try:
        from recsys.synthetic import generate_demo_catalog
    except ImportError:
        generate_demo_catalog = None
    if generate_demo_catalog is not None:
        demo = generate_demo_catalog(folder, n_items=n_items, n_users=20, seed=0, workers=1)
        return Catalog.from_csv(demo.catalog_csv), "recsys.synthetic demo"
    import av

    paths = []
    for k in range(n_items):  # 3 s, 96x64, 12 fps H.264 + AAC, like the demo defaults
        p = folder / f"item{k:03d}.mp4"
        rng = np.random.default_rng(k)
        with av.open(str(p), "w") as c:
            vs = c.add_stream("libx264", rate=12)
            vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv420p"
            aus = c.add_stream("aac", rate=22050)
            aus.layout = "mono"
            for i in range(36):
                img = np.full((64, 96, 3), (k * 17 + i * 5) % 255, np.uint8)
                img[rng.integers(0, 32):, rng.integers(0, 48):] = rng.integers(0, 255, 3)
                for pk in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(pk)
            for pk in vs.encode():
                c.mux(pk)
            wave = (0.2 * np.sin(2 * np.pi * (200 + 20 * k) * np.arange(3 * 22050) / 22050)).astype(np.float32)
            for s in range(0, wave.size, 1024):
                fr = av.AudioFrame.from_ndarray(wave[None, s:s + 1024], format="flt", layout="mono")
                fr.sample_rate, fr.pts = 22050, s
                for pk in aus.encode(fr):
                    c.mux(pk)
            for pk in aus.encode():
                c.mux(pk)
        paths.append(p)
    return Catalog(np.asarray([p.stem for p in paths], dtype=object), paths), "stand-in generator"


_PRECOMPUTED: dict[str, object] = {}


def lookup_extract(path, config, audio_path=None):
    """Stand-in extractor returning precomputed results: what is left is the store's own cost."""
    return _PRECOMPUTED[str(path)]


def time_store_overhead(catalog, out: Path, config) -> float:
    """Wall time of extract_catalog (1 worker) when extraction itself costs nothing."""
    from features.extract import extract_file
    from features.store import extract_catalog
    from recsys.errors import MediaDecodeError

    for p in catalog.paths:
        try:
            _PRECOMPUTED[str(p)] = extract_file(p, config)
        except MediaDecodeError:
            pass
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    extract_catalog(catalog, out, config, workers=1, progress=False, extract_fn=lookup_extract)
    return time.perf_counter() - t


def time_extract(catalog, out: Path, config, workers: int):
    from features.store import extract_catalog

    shutil.rmtree(out, ignore_errors=True)
    t, c = time.perf_counter(), time.process_time()
    rep = extract_catalog(catalog, out, config, workers=workers, progress=False)
    wall = time.perf_counter() - t
    rep.cpu = time.process_time() - c if workers == 1 else float("nan")  # children: not counted
    t = time.perf_counter()
    again = extract_catalog(catalog, out, config, workers=workers, progress=False)
    cached_wall = time.perf_counter() - t
    assert again.n_cached == again.n_items - sum(1 for f in again.failures if "not found" in f[2])
    return rep, wall, cached_wall


def time_decode(paths, config) -> tuple[float, list[tuple[int, int, int]]]:
    """Seconds to sample the frames of every file; the (n, h, w) of each clip's frames."""
    from features.media import decode_video, probe
    from recsys.errors import MediaDecodeError

    shapes = []
    t, c = time.perf_counter(), time.process_time()
    for p in paths:
        try:
            if not probe(p).has_video:
                continue
            clip = decode_video(
                p, fps=config.fps, max_frames=config.max_frames,
                max_short_side=config.frame_size, threads=config.torch_threads,
            )
        except MediaDecodeError:
            continue
        shapes.append(tuple(clip.frames.shape[:3]))
    return time.perf_counter() - t, time.process_time() - c, shapes


def time_cnn(shapes, config) -> float:
    from features.video import frame_embeddings, load_backbone, set_torch_threads

    set_torch_threads(config.torch_threads)
    load_backbone(config.backbone, config.weights, config.device)  # model build is not the bound
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8) for n, h, w in shapes]
    frame_embeddings(frames[0][:1], backbone=config.backbone, weights=config.weights,
                     frame_size=config.frame_size, device=config.device)  # warm-up
    t, c = time.perf_counter(), time.process_time()
    for f in frames:
        frame_embeddings(f, backbone=config.backbone, weights=config.weights,
                         frame_size=config.frame_size, device=config.device)
    return time.perf_counter() - t, time.process_time() - c


def bench_catalog(name: str, catalog, config, workers: int, scratch: Path) -> list[dict]:
    ok_paths = [p for p in catalog.paths if p.exists()]
    # Bounds first: they also import torch and build the model in this process, so the 1-worker
    # extraction below measures the pipeline, not the interpreter start-up.
    from threadpoolctl import threadpool_limits

    nan = float("nan")
    with threadpool_limits(limits=config.torch_threads):  # the same thread budget as a worker
        t_dec, c_dec, shapes = time_decode(ok_paths, config)
        t_cnn, c_cnn = time_cnn(shapes, config) if config.cnn and shapes else (nan, nan)
    rows = []
    rep1, wall1, cached1 = time_extract(catalog, scratch / f"{name}-w1", config, 1)
    media_s = rep1.video_seconds
    rows.append(dict(what="extract, 1 worker (in-process)", seconds=wall1, cpu=rep1.cpu, media_s=media_s,
                     note=f"{rep1.n_ok} ok, {rep1.n_failed} failed"))
    stages = stage_seconds(scratch / f"{name}-w1" / "cache" / rep1.config_key)
    if workers > 1:
        repn, walln, cachedn = time_extract(catalog, scratch / f"{name}-w{workers}", config, workers)
        rows.append(dict(what=f"extract, {workers} workers (spawned, cold)", seconds=walln, cpu=nan,
                         media_s=repn.video_seconds, note=f"{repn.n_ok} ok; includes worker start-up"))
    rows.append(dict(what="re-run, all cached (1 worker)", seconds=cached1, cpu=nan, media_s=media_s, note="cache hits"))
    t_store = time_store_overhead(catalog, scratch / f"{name}-store", config)
    rows.append(dict(what="store only (extractor = lookup)", seconds=t_store, cpu=nan, media_s=media_s,
                     note="hash, cache, assemble, fuse, save"))
    n_frames = sum(s[0] for s in shapes)
    rows.append(dict(what="bound: decode-only (sampled frames)", seconds=t_dec, cpu=c_dec, media_s=media_s,
                     note=f"{n_frames} frames"))
    rows.append(dict(what="bound: CNN-only (same frames)", seconds=t_cnn, cpu=c_cnn, media_s=media_s,
                     note=f"{config.backbone} @ {config.frame_size}px"))
    return rows, stages


def stage_seconds(cache_dir: Path) -> dict[str, float]:
    """Per-stage seconds summed over the files of a run (from the extractor's info in the cache)."""
    import json

    total: dict[str, float] = {}
    for f in cache_dir.glob("*.npz"):
        with np.load(f, allow_pickle=False) as z:
            info = json.loads(str(z["meta"])).get("info", {})
        for k, v in (info.get("seconds") or {}).items():
            total[k] = total.get(k, 0.0) + float(v)
    return total


def print_table(name: str, n_items: int, result) -> None:
    rows, stages = result

    def rate(x: float, media_s: float) -> float:
        return media_s / x if x and np.isfinite(x) else float("nan")

    for r in rows:
        r["tput"] = rate(r["seconds"], r["media_s"])
        r["cpu_tput"] = rate(r["cpu"], r["media_s"])
    bounds = [r for r in rows if r["what"].startswith("bound") and np.isfinite(r["tput"])]
    slower = min(r["tput"] for r in bounds) if bounds else float("nan")
    slower_cpu = min(r["cpu_tput"] for r in bounds) if bounds else float("nan")
    print(f"\n== {name}: {n_items} items, {rows[0]['media_s']:.1f} media-seconds ==")
    print(f"{'measurement':38s} {'wall s':>7s} {'media-s/s':>9s} {'/slower':>8s} {'cpu s':>7s} {'/slower(cpu)':>12s}  note")
    for r in rows:
        ratio = r["tput"] / slower
        cratio = r["cpu_tput"] / slower_cpu
        cpu = f"{r['cpu']:7.2f}" if np.isfinite(r["cpu"]) else f"{'-':>7s}"
        cr = f"{cratio:11.2f}x" if np.isfinite(cratio) else f"{'-':>12s}"
        print(f"{r['what']:38s} {r['seconds']:7.2f} {r['tput']:9.2f} {ratio:7.2f}x {cpu} {cr}  {r['note']}")
    if stages:
        tot = sum(v for k, v in stages.items() if k != "total")
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(stages.items(), key=lambda kv: -kv[1]) if k != "total")
        print(f"extract_file stages, 1-worker run (s, summed over files; {tot:.2f} in all): {parts}")
    one = next(r for r in rows if r["what"].startswith("extract, 1"))
    for r in rows:
        if r["what"].startswith("extract"):
            verdict = "OK" if r["tput"] >= 0.7 * slower else "below target"
            print(f"target >= 0.7 x slower bound ({slower:.2f} media-s/s): {r['what']}: "
                  f"{r['tput'] / slower:.2f}x  {verdict}")
    print(f"load average now: {os.getloadavg()[0]:.1f} (machine shared with other jobs)")


def main(argv: list[str] | None = None) -> int:
    from features.extract import ExtractorConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--demo-items", type=int, default=96)
    ap.add_argument("--media-dir", type=Path, default=SHARED_MEDIA)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-demo", action="store_true")
    args = ap.parse_args(argv)

    from recsys.data import Catalog

    config = ExtractorConfig()
    print(f"extractor config: {config.to_dict()}  (key {config.key()})")
    print(f"cpu cores usable: {len(os.sched_getaffinity(0))}; load average: {os.getloadavg()[0]:.1f}")
    scratch = Path(tempfile.mkdtemp(prefix="bench_features_"))
    try:
        if not args.skip_real:
            if args.media_dir.is_dir():
                cat = Catalog.scan(args.media_dir)
                print_table(f"real clips ({args.media_dir})", len(cat),
                            bench_catalog("real", cat, config, args.workers, scratch))
            else:
                print(f"\n(real clips skipped: {args.media_dir} not found)")
        if not args.skip_demo:
            cat, how = demo_like_catalog(scratch / "demo", args.demo_items)
            print_table(f"demo-like catalog ({how})", len(cat),
                        bench_catalog("demo", cat, config, args.workers, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
