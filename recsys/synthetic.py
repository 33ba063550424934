"""The embedded demo catalog: real audio-video files and an interaction log from hidden tastes.

:func:`generate_demo_catalog` writes a folder that looks like a small real service::

    <out_dir>/
        catalog.csv            item_id, path, title, tags, description, duration_s, width, height, fps,
                               sample_rate
        interactions.parquet   user_id, item_id, timestamp, event, weight
        truth.json             the hidden answer (item attributes, user tastes, train_end, cold items)
        media/i0001.mp4 ...    H.264 video + AAC audio, muxed with PyAV
        .complete              written last; its presence means the folder is whole

Every item has hidden attributes: a cluster (its "genre") and two continuous attributes in [0, 1],
``energy`` and ``tone``. They drive both what is seen (hue, saturation, stripe frequency and angle,
number and kind of moving shapes, motion speed) and what is heard (pitch, harmonic timbre, note
tempo, note decay, tremolo, noise colour). Content predicts taste, but not trivially: per-item noise
makes neighbouring clusters overlap, and for a share of items (``mismatch_fraction``) the sound is
drawn from another cluster than the picture (``audio_cluster``; the taste follows the picture).

Users have a hidden taste over clusters (concentrated on 1-3 of them), a preferred ``energy``, and
share a Zipf-like popularity bias. Each user draws a lognormal number of distinct items from
``softmax(affinity / temperature)``. Interactions carry unix timestamps over ``days`` days, an
``event`` (view < like < share) and a ``weight`` (watch fraction x event factor). A held-back share
of items (``cold_fraction``) is released after ``train_end``: all of their interactions are later
than ``train_end`` while every other item has interactions on both sides of it, so a temporal split
at ``train_end`` makes exactly those items cold. No interaction has a timestamp equal to
``train_end``, so ``<=`` and ``<`` cuts agree.

**Words.** About 60% of the items (:data:`TEXT_FRACTION`) have text, as in a real catalog where many
uploads are never described; the others have empty ``title``, ``tags`` and ``description``. Tags
and descriptions are derived from the hidden attributes with noise (:data:`GENRE_WORDS` of the
picture cluster, :data:`ENERGY_WORDS` of the energy, :data:`TONE_WORDS` of the tone; 15% of genre
words come from another cluster, words are dropped at random); titles are random names that say
nothing. The words come from their own random stream, so the media, the log and every other draw
are exactly what they were before the catalog had text.

``truth.json`` is for tests and for judging models; ``catalog.csv`` reveals the hidden attributes
only through those noisy words. The output is a pure function of the parameters (``workers`` excluded): the same seed
gives byte-identical interactions and truth, and identical media with the same PyAV/FFmpeg build.
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

from recsys.errors import AvrecError, ConfigError

GENERATOR_VERSION = "demo-1.2"  # 1.2: tags and description columns (media and log unchanged)

CATALOG_FILE = "catalog.csv"
INTERACTIONS_FILE = "interactions.parquet"
TRUTH_FILE = "truth.json"
MEDIA_DIR = "media"
COMPLETE_MARKER = ".complete"
_SENSOR_NOISE = 1.0  # per-frame pixel noise (8-bit levels) on top of each item's fixed grain

CATALOG_COLUMNS = ("item_id", "path", "title", "tags", "description", "duration_s", "width", "height", "fps",
                   "sample_rate")
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp", "event", "weight")
EVENTS = ("view", "like", "share")
EVENT_FACTOR = {"view": 1.0, "like": 2.0, "share": 3.0}

#: 2024-01-01T00:00:00Z; a fixed start keeps the log identical whenever it is generated.
PERIOD_START = 1_704_067_200

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

_TITLE_WORDS_A = (
    "Quiet", "Bright", "Late", "Hidden", "Open", "Silver", "Paper", "Northern", "Slow", "Little",
    "Electric", "Golden", "Distant", "Second", "Wild", "Glass", "Velvet", "Lost", "Hollow", "Early",
)
_TITLE_WORDS_B = (
    "Harbor", "Signal", "Garden", "River", "Engine", "Window", "Parade", "Orbit", "Lantern", "Field",
    "Station", "Mirror", "Canyon", "Letter", "Circuit", "Meadow", "Tide", "Corridor", "Echo", "Summit",
)
#: words of each (picture) cluster, cluster c uses GENRE_WORDS[c % 8]; none shares a title word
GENRE_WORDS = (
    ("rain", "storm", "thunder"), ("piano", "keys", "lullaby"), ("drums", "beat", "percussion"),
    ("ocean", "waves", "surf"), ("birds", "forest", "chirping"), ("city", "traffic", "street"),
    ("synth", "techno", "neon"), ("guitar", "acoustic", "strum"),
)
#: (low, high) words of the energy and tone attributes (said of items below 0.35 / above 0.65)
ENERGY_WORDS = (("mellow", "relaxed", "gentle"), ("energetic", "upbeat", "lively"))
TONE_WORDS = (("dark", "moody"), ("warm", "sunny"))
TEXT_FRACTION = 0.6


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
# The hidden world: cluster prototypes, items, users, interactions
# ---------------------------------------------------------------------------------------------
def _prototypes(k: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Per-cluster visual and audio prototypes; each property is spread evenly, then shuffled."""

    def spread(lo: float, hi: float) -> np.ndarray:
        return rng.permutation(np.linspace(lo, hi, k))

    hue = (np.arange(k) * 180.0 / k + rng.uniform(0, 180.0 / k)) % 180.0
    hue = rng.permutation(hue)
    sat = spread(110, 235)
    val = spread(120, 220)
    stripe_freq = spread(1.0, 7.0)
    stripe_angle = spread(0, np.pi)
    n_shapes = rng.permutation(np.resize(np.arange(1, 5), k))
    shape_kind = rng.permutation(np.resize(np.array([0, 1]), k))  # 0 circle, 1 square
    motion = spread(0.6, 2.4)
    pitch = 2.0 ** spread(np.log2(130.0), np.log2(1040.0))  # three octaves
    harm_decay = spread(0.6, 2.6)
    odd_only = rng.permutation(np.resize(np.array([False, True]), k))
    tempo = spread(70, 170)
    note_decay = spread(2.0, 12.0)
    noise_beta = rng.permutation(np.resize(np.array([0.0, 1.0, 2.0]), k))
    noise_level = spread(0.03, 0.25)
    scale = rng.permutation(np.resize(np.array([0, 1]), k))  # major / minor pentatonic
    return [
        {
            "hue": float(hue[c]), "sat": float(sat[c]), "val": float(val[c]),
            "stripe_freq": float(stripe_freq[c]), "stripe_angle": float(stripe_angle[c]),
            "n_shapes": int(n_shapes[c]), "shape_kind": int(shape_kind[c]), "motion": float(motion[c]),
            "pitch_hz": float(pitch[c]), "harm_decay": float(harm_decay[c]), "odd_only": bool(odd_only[c]),
            "tempo_bpm": float(tempo[c]), "note_decay": float(note_decay[c]),
            "noise_beta": float(noise_beta[c]), "noise_level": float(noise_level[c]), "scale": int(scale[c]),
        }
        for c in range(k)
    ]


def _item_specs(p: dict[str, Any], protos: list[dict], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Hidden attributes plus the concrete rendering parameters of every item."""
    n, k = p["n_items"], p["n_clusters"]
    # Every cluster gets at least two items; the rest are drawn with mildly unequal cluster sizes.
    sizes = rng.dirichlet(np.full(k, 4.0))
    cluster = np.concatenate([np.repeat(np.arange(k), 2), rng.choice(k, n - 2 * k, p=sizes)])
    cluster = rng.permutation(cluster)
    energy = rng.beta(2.0, 2.0, n)
    tone = rng.beta(2.0, 2.0, n)
    mismatched = np.zeros(n, dtype=bool)
    n_mis = int(round(p["mismatch_fraction"] * n))
    mismatched[rng.choice(n, n_mis, replace=False)] = True
    audio_cluster = cluster.copy()
    shift = rng.integers(1, k, n)  # another cluster, uniformly
    audio_cluster[mismatched] = (cluster[mismatched] + shift[mismatched]) % k
    hue_step = 180.0 / k
    specs = []
    for i in range(n):
        v, a = protos[cluster[i]], protos[audio_cluster[i]]
        e, t = float(energy[i]), float(tone[i])
        # Continuous attributes move an item towards its neighbours; noise makes clusters overlap.
        hue = (v["hue"] + (t - 0.5) * 0.8 * hue_step + rng.normal(0, 0.25 * hue_step)) % 180.0
        semis = (t - 0.5) * 4.0 + rng.normal(0, 0.8)
        specs.append({
            "index": i,
            "item_id": f"i{i + 1:04d}",
            "cluster": int(cluster[i]),
            "audio_cluster": int(audio_cluster[i]),
            "mismatched": bool(mismatched[i]),
            "energy": e,
            "tone": t,
            "video": {
                "hue": float(hue),
                "sat": float(np.clip(v["sat"] + rng.normal(0, 12), 60, 255)),
                "val": float(np.clip(v["val"] + rng.normal(0, 12), 80, 240)),
                "stripe_freq": float(max(0.5, v["stripe_freq"] * 2 ** rng.normal(0, 0.25))),
                "stripe_angle": float(v["stripe_angle"] + rng.normal(0, 0.2)),
                "n_shapes": int(v["n_shapes"]),
                "shape_kind": int(v["shape_kind"]),
                "speed": float(v["motion"] * (0.5 + e) * 2 ** rng.normal(0, 0.2)),
                "noise": float(rng.uniform(3, 9)),
            },
            "audio": {
                "f0_hz": float(a["pitch_hz"] * 2 ** (semis / 12.0)),
                "harm_decay": float(max(0.3, a["harm_decay"] + rng.normal(0, 0.2))),
                "odd_only": bool(a["odd_only"]),
                "tempo_bpm": float(a["tempo_bpm"] * (0.7 + 0.6 * e) * 2 ** rng.normal(0, 0.1)),
                "note_decay": float(a["note_decay"] * 2 ** rng.normal(0, 0.2)),
                "tremolo_hz": float(1.0 + 6.0 * e),
                "noise_beta": float(a["noise_beta"]),
                "noise_level": float(a["noise_level"] * 2 ** rng.normal(0, 0.3)),
                "scale": int(a["scale"]),
            },
        })
    return specs


def _item_words(specs: list[dict], k: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Tags and a description per item from its hidden attributes, with noise; ~40% get none."""
    out = []
    for s in specs:
        has_text = bool(rng.uniform() < TEXT_FRACTION)
        genre = s["cluster"] if rng.uniform() > 0.15 else int(rng.integers(k))  # 15%: another cluster's words
        g = GENRE_WORDS[genre % len(GENRE_WORDS)]
        tags = [w for w in g if rng.uniform() < 0.6] or [g[int(rng.integers(len(g)))]]
        e, t = s["energy"], s["tone"]
        ew = ENERGY_WORDS[int(e > 0.5)] if (e < 0.35 or e > 0.65) else None
        tw = TONE_WORDS[int(t > 0.5)] if (t < 0.35 or t > 0.65) else None
        for group in (ew, tw):
            if group is not None and rng.uniform() < 0.7:
                tags.append(group[int(rng.integers(len(group)))])
        description = ""
        if rng.uniform() < 0.5:
            adj = ew[int(rng.integers(len(ew)))] if ew is not None else "steady"
            description = f"A {adj} {g[int(rng.integers(len(g)))]} clip."
        out.append({"has_text": has_text, "tags": ", ".join(tags) if has_text else "",
                    "description": description if has_text else ""})
    return out


def _users(p: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    m, k = p["n_users"], p["n_clusters"]
    taste = np.full((m, k), 0.03)
    n_fav = rng.choice([1, 2, 3], m, p=[0.35, 0.45, 0.2])
    for u in range(m):
        fav = rng.choice(k, n_fav[u], replace=False)
        taste[u, fav] += rng.dirichlet(np.full(n_fav[u], 2.0))
    taste /= taste.sum(1, keepdims=True)
    cap = max(1, min(p["max_user_items"], p["n_items"] // 2))
    lo = min(p["min_user_items"], cap)
    count = np.clip(np.round(rng.lognormal(np.log(18.0), 0.6, m)), lo, cap).astype(np.int64)
    return {
        "taste": taste,
        "energy_pref": rng.uniform(0, 1, m),
        "energy_weight": rng.uniform(0.5, 2.0, m),
        "count": count,
    }


def _simulate(p: dict[str, Any], specs: list[dict], users: dict[str, np.ndarray],
              rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Sample the interaction log. Returns column arrays (index-based) and timing facts.

    Dense users x items arrays are used throughout: fine for demo sizes (1e7 cells is ~100 MB).
    """
    n, m = p["n_items"], p["n_users"]
    cluster = np.array([s["cluster"] for s in specs])
    energy = np.array([s["energy"] for s in specs])
    # Zipf-like base popularity over a random ranking of the items.
    popularity = 1.0 / np.arange(1, n + 1) ** p["popularity_exponent"]
    popularity = popularity[rng.permutation(n)]
    popularity /= popularity.max()

    taste = users["taste"]
    taste_term = 2.0 * np.log(taste[:, cluster] / taste.max(1, keepdims=True))  # (m, n), <= 0
    energy_term = -users["energy_weight"][:, None] * (energy[None, :] - users["energy_pref"][:, None]) ** 2 / 0.08
    affinity = taste_term + energy_term + np.log(popularity)[None, :]
    logits = affinity / p["temperature"]
    # Gumbel top-k: count[u] distinct items drawn from softmax(logits[u]) without replacement.
    keyed = logits + rng.gumbel(size=logits.shape)
    order = np.argsort(-keyed, axis=1, kind="stable")
    counts = users["count"]
    u_idx = np.repeat(np.arange(m), counts)
    i_idx = np.concatenate([order[u, : counts[u]] for u in range(m)])

    n_cold = int(round(p["cold_fraction"] * n))
    cold = np.zeros(n, dtype=bool)
    cold[rng.choice(n, n_cold, replace=False)] = True

    # Every warm item gets at least two interactions (one each side of train_end, fixed below),
    # every cold item at least one, taken from the users who like it most and lack it.
    have = np.zeros((m, n), dtype=bool)
    have[u_idx, i_idx] = True
    extra_u, extra_i = [], []
    for i in range(n):
        need = (1 if cold[i] else 2) - int(have[:, i].sum())
        if need > 0:
            cand = np.argsort(-keyed[:, i], kind="stable")
            cand = cand[~have[cand, i]][:need]
            extra_u.extend(cand.tolist())
            extra_i.extend([i] * len(cand))
    u_idx = np.concatenate([u_idx, np.asarray(extra_u, dtype=np.int64)])
    i_idx = np.concatenate([i_idx, np.asarray(extra_i, dtype=np.int64)])

    period = p["days"] * 86_400
    start, end = PERIOD_START, PERIOD_START + period
    train_end = start + int(round(p["train_fraction"] * period))
    # Cold items are released at a random moment after train_end and watched from then on.
    release = np.where(cold, train_end + 1 + (rng.uniform(0, 0.5, n) * (end - train_end)).astype(np.int64), start)
    r = len(u_idx)
    lo = release[i_idx]
    ts = lo + np.floor(rng.uniform(0, 1, r) * (end - lo)).astype(np.int64)
    # Warm items must have interactions on both sides of train_end; move the earliest/latest.
    for i in np.flatnonzero(~cold):
        rows = np.flatnonzero(i_idx == i)
        if not (ts[rows] < train_end).any():
            ts[rows[np.argmin(ts[rows])]] = start + int(rng.integers(0, train_end - start))
        if not (ts[rows] > train_end).any():
            ts[rows[np.argmax(ts[rows])]] = train_end + 1 + int(rng.integers(0, end - train_end - 1))
    ts[ts == train_end] += 1  # nothing sits on the cut itself

    # Enjoyment: how well the item fits the user's taste (popularity excluded), plus noise.
    fit = (taste_term + energy_term)[u_idx, i_idx]
    q = 1.0 / (1.0 + np.exp(-(fit + 1.5 + rng.normal(0, 0.7, r)) / 0.8))
    watch = np.clip(0.15 + 0.8 * q + rng.normal(0, 0.1, r), 0.05, 1.0)
    roll = rng.uniform(0, 1, r)
    event = np.where(roll < 0.02 + 0.12 * q, 2, np.where(roll < 0.05 + 0.45 * q, 1, 0))
    factor = np.array([EVENT_FACTOR[e] for e in EVENTS])[event]
    weight = np.round(watch * factor, 4)

    cols = {"u": u_idx, "i": i_idx, "ts": ts, "event": event, "weight": weight}
    facts = {
        "period_start": start, "period_end": end, "train_end": train_end,
        "cold": cold, "release": release, "popularity": popularity,
    }
    return cols, facts


def _media_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, 7919, index]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------
# Media rendering and encoding (runs in worker processes; must stay importable and picklable)
# ---------------------------------------------------------------------------------------------
def render_frames(video: dict[str, Any], n_frames: int, width: int, height: int, seed: int) -> np.ndarray:
    """Frames of one item's picture.

    Returns
    -------
    frames : (n_frames, height, width, 3) uint8, RGB
    """
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ang = video["stripe_angle"]
    proj = (xx * np.cos(ang) + yy * np.sin(ang)) / width
    hue2 = (video["hue"] + 90.0) % 180.0  # shapes in the complementary hue
    n_shapes, speed = video["n_shapes"], video["speed"]
    pos = rng.uniform([0, 0], [width, height], (n_shapes, 2))
    direction = rng.uniform(0, 2 * np.pi, n_shapes)
    vel = np.stack([np.cos(direction), np.sin(direction)], 1) * speed
    radius = rng.uniform(0.1, 0.2, n_shapes) * height
    hsv = np.empty((height, width, 3), dtype=np.uint8)
    hsv[..., 0] = np.uint8(round(video["hue"]) % 180)
    # A fixed grain per item plus a little sensor noise: texture without making every frame a new
    # picture for the encoder (fresh full-strength noise per frame tripled file size and time).
    grain = rng.normal(0, video["noise"], (height, width))
    out = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for f in range(n_frames):
        phase = 2 * np.pi * f * speed * 0.05
        stripes = np.sin(2 * np.pi * video["stripe_freq"] * proj + phase)
        v = video["val"] * (0.78 + 0.22 * stripes) + grain + rng.normal(0, _SENSOR_NOISE, (height, width))
        hsv[..., 1] = np.uint8(min(255, video["sat"]))
        hsv[..., 2] = np.clip(v, 0, 255).astype(np.uint8)
        for s in range(n_shapes):
            x, y = pos[s]
            colour = (int(round(hue2)) % 180, int(min(255, video["sat"])), 235)
            rr = int(radius[s])
            if video["shape_kind"] == 0:
                cv2.circle(hsv, (int(x), int(y)), rr, colour, -1, lineType=cv2.LINE_AA)
            else:
                cv2.rectangle(hsv, (int(x) - rr, int(y) - rr), (int(x) + rr, int(y) + rr), colour, -1)
        out[f] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        hsv[..., 0] = np.uint8(round(video["hue"]) % 180)  # shapes overwrote the hue plane
        pos += vel
        for d, lim in ((0, width), (1, height)):  # bounce off the borders
            hit = (pos[:, d] < 0) | (pos[:, d] > lim)
            vel[hit, d] *= -1
            pos[:, d] = np.clip(pos[:, d], 0, lim)
    return out


def render_audio(audio: dict[str, Any], duration_s: float, sample_rate: int, seed: int) -> np.ndarray:
    """One item's sound: harmonic notes at a tempo, tremolo, coloured noise.

    Returns
    -------
    samples : (n,) float32 in [-1, 1], RMS about 0.15
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    scale = (0, 2, 4, 7, 9, 12) if audio["scale"] == 0 else (0, 3, 5, 7, 10, 12)
    note_len = 60.0 / audio["tempo_bpm"]
    signal = np.zeros(n)
    nyquist = sample_rate / 2
    k = np.arange(1, 11)
    if audio["odd_only"]:
        k = k[k % 2 == 1]
    amps = 1.0 / k ** audio["harm_decay"]
    onset = 0.0
    while onset < duration_s:
        a, b = int(onset * sample_rate), min(n, int((onset + note_len) * sample_rate))
        f0 = audio["f0_hz"] * 2 ** (scale[rng.integers(len(scale))] / 12.0)
        tt = t[a:b] - onset
        keep = k * f0 < nyquist * 0.9
        tone = (amps[keep, None] * np.sin(2 * np.pi * f0 * k[keep, None] * tt[None, :])).sum(0)
        env = np.minimum(1.0, tt / 0.008) * np.exp(-audio["note_decay"] * tt)
        signal[a:b] += tone * env * rng.uniform(0.7, 1.0)
        onset += note_len
    signal *= 0.75 + 0.25 * np.sin(2 * np.pi * audio["tremolo_hz"] * t)
    signal /= np.sqrt(np.mean(signal**2)) + 1e-9
    # Coloured noise: shape white noise's spectrum by 1/f^(beta/2) in amplitude.
    spec = np.fft.rfft(rng.normal(0, 1, n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spec *= 1.0 / np.maximum(freqs, 20.0) ** (audio["noise_beta"] / 2)
    noise = np.fft.irfft(spec, n)
    noise /= np.sqrt(np.mean(noise**2)) + 1e-9
    out = signal + audio["noise_level"] * noise
    out *= 0.15 / (np.sqrt(np.mean(out**2)) + 1e-9)
    fade = min(n // 2, int(0.01 * sample_rate))  # no click at either end
    ramp = np.linspace(0.0, 1.0, fade)
    out[:fade] *= ramp
    out[n - fade:] *= ramp[::-1]
    return np.clip(out, -0.95, 0.95).astype(np.float32)


def encode_mp4(path: str | Path, frames: np.ndarray, fps: int, samples: np.ndarray, sample_rate: int) -> None:
    """Mux RGB frames (H.264, yuv420p) and mono float samples (AAC) into an MP4 with PyAV.

    Parameters
    ----------
    frames : (n_frames, height, width, 3) uint8, RGB
    samples : (n,) float32
    """
    import av
    import cv2

    path = Path(path)
    with av.open(str(path), "w", format="mp4") as container:
        v = container.add_stream("libx264", rate=fps)
        v.width, v.height = frames.shape[2], frames.shape[1]
        v.pix_fmt = "yuv420p"
        # Bit-reproducible output: one thread per encoder (files are encoded in parallel anyway), and
        # x264's C code paths: its AVX-512 kernels read uninitialised bytes past the end of small
        # frames, so the bitstream changed with the heap's contents; x264's output also differs
        # between SIMD levels, so only asm=0 gives the same bytes on every machine. It costs ~3x
        # x264 time (~30 ms CPU per 3 s item with "veryfast"; "superfast" saves 13 ms but doubles size).
        v.options = {"crf": "20", "preset": "veryfast", "threads": "1", "x264-params": "asm=0"}
        a = container.add_stream("aac", rate=sample_rate)
        a.layout = "mono"
        a.bit_rate = 64_000
        a.options = {"aac_coder": "fast"}  # 4x faster than the default search, plenty for test tones
        for i, img in enumerate(frames):
            # Converted here (BT.601, limited range: what decoders assume for untagged video) so the
            # encoder takes the planes as they are.
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            frame.pts = i
            for packet in v.encode(frame):
                container.mux(packet)
        for packet in v.encode():
            container.mux(packet)
        chunk = 1024  # the AAC frame size
        for start in range(0, len(samples), chunk):
            block = samples[start:start + chunk]
            frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in a.encode(frame):
                container.mux(packet)
        for packet in a.encode():
            container.mux(packet)


def write_clip(path: str | Path, seed: int = 0, seconds: float = 1.0, w: int = 64, h: int = 48, fps: int = 12,
               sr: int = 16000) -> Path:
    """A tiny H.264 + AAC MP4 whose colours and tone depend on ``seed`` (for tests and examples).

    Frames: a seeded base colour drifting over time with a seeded top-left quadrant; sound: a sine at
    ``220 + 110 * seed`` Hz.
    """
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=3)
    frames = np.empty((int(seconds * fps), h, w, 3), np.uint8)
    for i in range(len(frames)):
        frames[i] = (base + 9 * i) % 255
        frames[i, : h // 2, : w // 2] = rng.integers(0, 255, size=3)
    t = np.arange(int(seconds * sr)) / sr
    encode_mp4(path, frames, fps, (0.3 * np.sin(2 * np.pi * (220 + 110 * seed) * t)).astype(np.float32), sr)
    return Path(path)


def _write_item_media(task: dict[str, Any]) -> tuple[str, str | None]:
    """Render and encode one item (the pool's unit of work). Returns ``(path, error or None)``."""
    try:
        n_frames = max(1, int(round(task["duration_s"] * task["fps"])))
        frames = render_frames(task["video"], n_frames, task["width"], task["height"], task["seed"])
        samples = render_audio(task["audio"], task["duration_s"], task["sample_rate"], task["seed"] + 1)
        tmp = Path(task["path"]).with_suffix(".part.mp4")
        encode_mp4(tmp, frames, task["fps"], samples, task["sample_rate"])
        os.replace(tmp, task["path"])
    except Exception as exc:  # reported by the parent; a plain string crosses process borders safely
        return task["path"], f"{type(exc).__name__}: {exc}"
    return task["path"], None


def _write_media(tasks: list[dict[str, Any]], workers: int) -> None:
    if workers <= 1 or len(tasks) <= 1:
        results = map(_write_item_media, tasks)
        _raise_first_failure(results)
        return
    import multiprocessing as mp

    # spawn, not fork: the parent may hold threads (polars, BLAS), and spawn works everywhere.
    ctx = mp.get_context("spawn")
    chunk = max(1, len(tasks) // (workers * 4))
    with ctx.Pool(min(workers, len(tasks))) as pool:
        _raise_first_failure(pool.imap_unordered(_write_item_media, tasks, chunksize=chunk))


def _raise_first_failure(results) -> None:
    for path, error in results:
        if error is not None:
            raise AvrecError(
                f"{path}: could not write demo media ({error}); the demo needs PyAV built with the "
                "libx264 and aac encoders (the PyPI wheels of `av` have both)"
            )


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
    protos = _prototypes(p["n_clusters"], np.random.default_rng(ss_proto))
    specs = _item_specs(p, protos, np.random.default_rng(ss_items))
    users = _users(p, np.random.default_rng(ss_users))
    cols, facts = _simulate(p, specs, users, np.random.default_rng(ss_log))
    user_ids = np.array([f"u{u + 1:04d}" for u in range(p["n_users"])], dtype=object)
    item_ids = np.array([s["item_id"] for s in specs], dtype=object)

    tasks = [
        {
            "item_id": s["item_id"], "path": str(out.media_dir / f"{s['item_id']}.mp4"),
            "video": s["video"], "audio": s["audio"], "seed": _media_seed(p["seed"], s["index"]),
            "duration_s": p["duration_s"], "fps": p["fps"], "width": p["width"], "height": p["height"],
            "sample_rate": p["sample_rate"],
        }
        for s in specs
    ]
    _write_media(tasks, workers)

    # Titles come from their own stream and say nothing about the hidden attributes.
    trng = np.random.default_rng(ss_titles)
    titles = [
        f"{_TITLE_WORDS_A[a]} {_TITLE_WORDS_B[b]} {i + 1}"
        for i, (a, b) in enumerate(zip(trng.integers(len(_TITLE_WORDS_A), size=p["n_items"]),
                                       trng.integers(len(_TITLE_WORDS_B), size=p["n_items"])))
    ]
    # Words: a sixth stream (spawn keys are positional, so the five above are unchanged)
    words = _item_words(specs, p["n_clusters"], np.random.default_rng(np.random.SeedSequence(p["seed"]).spawn(6)[5]))
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
