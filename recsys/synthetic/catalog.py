"""The demo catalog on disk: parameters and cache key, folder layout, generation and caching.

:func:`generate_demo_catalog` draws the hidden world (:mod:`recsys.synthetic.world`), renders and
encodes the media (:mod:`recsys.synthetic.media`) and writes the folder; :func:`ensure_demo_catalog`
keeps one generated folder per parameter set.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import ConfigError
from recsys.synthetic.media import media_seed, write_media
from recsys.synthetic.world import (
    EVENTS,
    item_specs,
    item_titles,
    item_words,
    prototypes,
    sample_users,
    simulate_log,
)

GENERATOR_VERSION = "demo-1.2"  # 1.2: tags and description columns (media and log unchanged)

CATALOG_FILE = "catalog.csv"
INTERACTIONS_FILE = "interactions.parquet"
TRUTH_FILE = "truth.json"
MEDIA_DIR = "media"
COMPLETE_MARKER = ".complete"

CATALOG_COLUMNS = ("item_id", "path", "title", "tags", "description", "duration_s", "width", "height", "fps",
                   "sample_rate")
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp", "event", "weight")

DEFAULT_PARAMS: dict[str, Any] = {
    "n_items": 300,
    "n_users": 1500,
    "seed": 0,
    "n_clusters": 8,
    "duration_s": 3.0,
    "width": 96,
    "height": 64,
    "fps": 12,
    "sample_rate": 22050,
    "cold_fraction": 0.1,
    "mismatch_fraction": 0.1,
    "days": 60,
    "train_fraction": 0.8,
    "min_user_items": 8,
    "max_user_items": 60,
    "temperature": 0.6,
    "popularity_exponent": 0.8,
}


@dataclass(frozen=True)
class DemoCatalog:
    """Paths of one generated demo catalog.

    Attributes
    ----------
    root : Path
        The catalog folder.
    catalog_csv : Path
        ``item_id, path, title, tags, description, duration_s, width, height, fps, sample_rate``;
        ``path`` is relative
        to ``root``.
    interactions : Path
        Parquet log ``user_id, item_id, timestamp, event, weight``.
    truth : Path
        JSON with the hidden attributes; for tests and judging only.
    media_dir : Path
        Folder of ``<item_id>.mp4`` files.
    """

    root: Path
    catalog_csv: Path
    interactions: Path
    truth: Path
    media_dir: Path

    @classmethod
    def at(cls, root: str | Path) -> "DemoCatalog":
        """The paths a catalog in ``root`` has (nothing is checked or read)."""
        root = Path(root)
        return cls(root, root / CATALOG_FILE, root / INTERACTIONS_FILE, root / TRUTH_FILE, root / MEDIA_DIR)

    @property
    def complete(self) -> bool:
        """Whether the folder was written to the end (the completion marker exists)."""
        return (self.root / COMPLETE_MARKER).is_file()

    def read_truth(self) -> dict:
        """The parsed ``truth.json``."""
        return json.loads(self.truth.read_text())


# ---------------------------------------------------------------------------------------------
# Parameters and cache key
# ---------------------------------------------------------------------------------------------
def _resolve_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ConfigError(
            f"unknown demo catalog parameter(s) {unknown}; known: {sorted(DEFAULT_PARAMS)}"
        )
    p = {**DEFAULT_PARAMS, **params}
    ints = ("n_items", "n_users", "seed", "n_clusters", "width", "height", "fps", "sample_rate",
            "days", "min_user_items", "max_user_items")
    for k in ints:
        if isinstance(p[k], bool) or int(p[k]) != p[k]:
            raise ConfigError(f"{k} must be an integer, got {p[k]!r}")
        p[k] = int(p[k])
    for k in set(DEFAULT_PARAMS) - set(ints):
        p[k] = float(p[k])
    if p["n_clusters"] < 2:
        raise ConfigError(f"n_clusters must be at least 2, got {p['n_clusters']}")
    if p["n_items"] < 2 * p["n_clusters"]:
        raise ConfigError(
            f"n_items ({p['n_items']}) must be at least 2 x n_clusters ({p['n_clusters']}) so every "
            "cluster has two items; lower n_clusters or raise n_items"
        )
    if p["n_users"] < 2:
        raise ConfigError(f"n_users must be at least 2, got {p['n_users']}")
    if not 0.0 <= p["cold_fraction"] < 0.5:
        raise ConfigError(f"cold_fraction must be in [0, 0.5), got {p['cold_fraction']}")
    if not 0.0 <= p["mismatch_fraction"] <= 0.5:
        raise ConfigError(f"mismatch_fraction must be in [0, 0.5], got {p['mismatch_fraction']}")
    if not 0.1 <= p["train_fraction"] <= 0.95:
        raise ConfigError(f"train_fraction must be in [0.1, 0.95], got {p['train_fraction']}")
    if p["duration_s"] <= 0 or p["duration_s"] > 60:
        raise ConfigError(f"duration_s must be in (0, 60], got {p['duration_s']}")
    if p["width"] < 16 or p["height"] < 16 or p["width"] % 2 or p["height"] % 2:
        raise ConfigError(
            f"width and height must be even and at least 16 (yuv420p), got {p['width']}x{p['height']}"
        )
    if not 1 <= p["fps"] <= 60:
        raise ConfigError(f"fps must be in [1, 60], got {p['fps']}")
    if p["sample_rate"] not in (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000):
        raise ConfigError(f"sample_rate {p['sample_rate']} is not an AAC rate; use 16000 or 22050")
    if p["days"] < 1:
        raise ConfigError(f"days must be at least 1, got {p['days']}")
    if not 1 <= p["min_user_items"] <= p["max_user_items"]:
        raise ConfigError(
            f"need 1 <= min_user_items <= max_user_items, got {p['min_user_items']}, {p['max_user_items']}"
        )
    if p["temperature"] <= 0:
        raise ConfigError(f"temperature must be positive, got {p['temperature']}")
    return p


def demo_cache_key(params: dict[str, Any] | None = None) -> str:
    """Stable hash of the demo parameters (defaults filled in) and :data:`GENERATOR_VERSION`.

    ``workers`` does not change the output and is ignored. Returns 16 hex characters.
    """
    params = dict(params or {})
    params.pop("workers", None)
    p = _resolve_params(params)
    blob = json.dumps({"version": GENERATOR_VERSION, "params": p}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------
def generate_demo_catalog(
    out_dir: str | Path,
    n_items: int = 300,
    n_users: int = 1500,
    seed: int = 0,
    *,
    workers: int | None = None,
    **params: Any,
) -> DemoCatalog:
    """Write the demo catalog (media, catalog.csv, interactions.parquet, truth.json) to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing. Existing catalog files in it are overwritten; the completion marker is
        removed first and written last.
    n_items, n_users, seed : int
        Catalog size and random seed.
    workers : int, optional
        Processes encoding media; default ``os.cpu_count()``. Does not change the output. The
        pool uses the ``spawn`` start method, so a script calling this at top level needs an
        ``if __name__ == "__main__":`` guard.
    **params
        Any other key of :data:`DEFAULT_PARAMS` (``n_clusters``, ``duration_s``, ``width``,
        ``height``, ``fps``, ``sample_rate``, ``cold_fraction``, ``mismatch_fraction``, ``days``,
        ``train_fraction``, ``min_user_items``, ``max_user_items``, ``temperature``,
        ``popularity_exponent``).

    Returns
    -------
    DemoCatalog

    Raises
    ------
    ConfigError
        On an unknown or out-of-range parameter.
    AvrecError
        If a media file cannot be encoded.
    """
    import polars as pl

    p = _resolve_params({**params, "n_items": n_items, "n_users": n_users, "seed": seed})
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    out = DemoCatalog.at(out_dir)
    out.root.mkdir(parents=True, exist_ok=True)
    (out.root / COMPLETE_MARKER).unlink(missing_ok=True)
    out.media_dir.mkdir(exist_ok=True)

    # Independent streams, so e.g. the item attributes do not change when n_users does.
    ss_proto, ss_items, ss_users, ss_log, ss_titles = np.random.SeedSequence(p["seed"]).spawn(5)
    protos = prototypes(p["n_clusters"], np.random.default_rng(ss_proto))
    specs = item_specs(p, protos, np.random.default_rng(ss_items))
    users = sample_users(p, np.random.default_rng(ss_users))
    cols, facts = simulate_log(p, specs, users, np.random.default_rng(ss_log))
    user_ids = np.array([f"u{u + 1:04d}" for u in range(p["n_users"])], dtype=object)
    item_ids = np.array([s["item_id"] for s in specs], dtype=object)

    tasks = [
        {
            "item_id": s["item_id"], "path": str(out.media_dir / f"{s['item_id']}.mp4"),
            "video": s["video"], "audio": s["audio"], "seed": media_seed(p["seed"], s["index"]),
            "duration_s": p["duration_s"], "fps": p["fps"], "width": p["width"], "height": p["height"],
            "sample_rate": p["sample_rate"],
        }
        for s in specs
    ]
    write_media(tasks, workers)

    # Titles come from their own stream and say nothing about the hidden attributes.
    titles = item_titles(p["n_items"], np.random.default_rng(ss_titles))
    # Words: a sixth stream (spawn keys are positional, so the five above are unchanged)
    words = item_words(specs, p["n_clusters"], np.random.default_rng(np.random.SeedSequence(p["seed"]).spawn(6)[5]))
    pl.DataFrame({
        "item_id": item_ids.tolist(),
        "path": [f"{MEDIA_DIR}/{i}.mp4" for i in item_ids],
        "title": [t if w["has_text"] else "" for t, w in zip(titles, words)],
        "tags": [w["tags"] for w in words],
        "description": [w["description"] for w in words],
        "duration_s": [p["duration_s"]] * p["n_items"],
        "width": [p["width"]] * p["n_items"],
        "height": [p["height"]] * p["n_items"],
        "fps": [p["fps"]] * p["n_items"],
        "sample_rate": [p["sample_rate"]] * p["n_items"],
    }).write_csv(out.catalog_csv)

    log = pl.DataFrame({
        "user_id": user_ids[cols["u"]].tolist(),
        "item_id": item_ids[cols["i"]].tolist(),
        "timestamp": cols["ts"].astype(np.int64),
        "event": [EVENTS[e] for e in cols["event"]],
        "weight": cols["weight"].astype(np.float64),
    }).sort(["timestamp", "user_id", "item_id"])
    log.write_parquet(out.interactions, compression="zstd", statistics=False)

    truth = {
        "generator_version": GENERATOR_VERSION,
        "cache_key": demo_cache_key(p),
        "params": p,
        "period_start": facts["period_start"],
        "period_end": facts["period_end"],
        "train_end": facts["train_end"],
        "cold_item_ids": item_ids[facts["cold"]].tolist(),
        "clusters": protos,
        "items": [
            {
                "item_id": s["item_id"], "cluster": s["cluster"], "audio_cluster": s["audio_cluster"],
                "mismatched": s["mismatched"], "energy": s["energy"], "tone": s["tone"],
                "popularity": float(facts["popularity"][s["index"]]),
                "cold": bool(facts["cold"][s["index"]]),
                "release_ts": int(facts["release"][s["index"]]),
                "video": s["video"], "audio": s["audio"],
            }
            for s in specs
        ],
        "users": [
            {
                "user_id": user_ids[u], "taste": users["taste"][u].tolist(),
                "energy_pref": float(users["energy_pref"][u]),
                "energy_weight": float(users["energy_weight"][u]),
                "n_sampled": int(users["count"][u]),
            }
            for u in range(p["n_users"])
        ],
    }
    out.truth.write_text(json.dumps(_rounded(truth), indent=1, sort_keys=True) + "\n")
    (out.root / COMPLETE_MARKER).write_text(demo_cache_key(p) + "\n")  # last: the folder is whole
    return out

def ensure_demo_catalog(cache_dir: str | Path, *, workers: int | None = None, **params: Any) -> DemoCatalog:
    """The demo catalog for ``params`` under ``cache_dir``, generated only when not already there.

    The catalog lives in ``cache_dir/demo-<demo_cache_key(params)>``. A folder without the
    completion marker (an interrupted run) is deleted and generated again. Generation happens in a
    temporary sibling folder that is renamed into place, so concurrent callers never see a partial
    catalog.

    Parameters
    ----------
    cache_dir : str or Path
    workers : int, optional
        Passed to :func:`generate_demo_catalog`.
    **params
        Keys of :data:`DEFAULT_PARAMS`.
    """
    key = demo_cache_key(params)
    cache_dir = Path(cache_dir)
    final = DemoCatalog.at(cache_dir / f"demo-{key}")
    marker = final.root / COMPLETE_MARKER
    if marker.is_file() and marker.read_text().strip() == key:
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".demo-{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        p = _resolve_params(params)
        generate_demo_catalog(tmp, workers=workers, **p)
        if final.root.exists():
            if final.complete:  # another process finished first
                shutil.rmtree(tmp)
                return final
            shutil.rmtree(final.root)
        try:
            os.replace(tmp, final.root)
        except OSError:  # another process put a catalog there between our check and the rename
            if not final.complete:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _rounded(obj: Any) -> Any:
    """Floats rounded to 6 decimals, numpy scalars made plain, so truth.json is short and stable."""
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return round(float(obj), 6) if math.isfinite(obj) else None
    return obj
