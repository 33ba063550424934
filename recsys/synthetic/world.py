"""The hidden world behind the demo catalog: clusters, items, users, the interaction log, the words.

Every item has a cluster (its "genre") and two continuous attributes in [0, 1], ``energy`` and
``tone``, turned here into the concrete parameters its picture and sound are rendered from
(:mod:`recsys.synthetic.media`). Users get a taste over clusters, a preferred energy and a shared
popularity bias; :func:`simulate_log` samples who watched what, when, and how much. The catalog's
words (titles, tags, descriptions) are drawn from the same hidden attributes with noise.

Plain numpy: each function draws only from the generator it is given, so
:func:`~recsys.synthetic.catalog.generate_demo_catalog` can give every part its own stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EVENTS = ("view", "like", "share")
EVENT_FACTOR = {"view": 1.0, "like": 2.0, "share": 3.0}

#: 2024-01-01T00:00:00Z; a fixed start keeps the log identical whenever it is generated.
PERIOD_START = 1_704_067_200

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


def prototypes(k: int, rng: np.random.Generator) -> list[dict[str, Any]]:
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


def item_specs(p: dict[str, Any], protos: list[dict], rng: np.random.Generator) -> list[dict[str, Any]]:
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


def item_titles(n_items: int, rng: np.random.Generator) -> list[str]:
    """Random names ``"<word> <word> <i + 1>"`` that say nothing about the hidden attributes."""
    first = rng.integers(len(_TITLE_WORDS_A), size=n_items)
    second = rng.integers(len(_TITLE_WORDS_B), size=n_items)
    return [f"{_TITLE_WORDS_A[a]} {_TITLE_WORDS_B[b]} {i + 1}" for i, (a, b) in enumerate(zip(first, second))]


def item_words(specs: list[dict], k: int, rng: np.random.Generator) -> list[dict[str, Any]]:
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


def sample_users(p: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hidden tastes of ``p["n_users"]`` users.

    Returns
    -------
    dict
        ``taste`` (n_users, n_clusters) float64 rows summing to 1, concentrated on 1-3 clusters;
        ``energy_pref`` and ``energy_weight`` (n_users,) float64; ``count`` (n_users,) int64,
        the number of distinct items each user draws.
    """
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


def affinity_terms(taste: np.ndarray, energy_pref: np.ndarray, energy_weight: np.ndarray,
                   cluster: np.ndarray, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two user-item terms of the hidden affinity (a user draws items from
    ``softmax((taste + energy + log popularity) / temperature)``).

    Parameters
    ----------
    taste : (m, k) float, rows summing to 1
    energy_pref, energy_weight : (m,) float
    cluster : (n,) int, each item's cluster
    energy : (n,) float in [0, 1]

    Returns
    -------
    taste_term, energy_term : (m, n) float64, both <= 0
    """
    taste_term = 2.0 * np.log(taste[:, cluster] / taste.max(1, keepdims=True))
    energy_term = -energy_weight[:, None] * (energy[None, :] - energy_pref[:, None]) ** 2 / 0.08
    return taste_term, energy_term


def simulate_log(p: dict[str, Any], specs: list[dict], users: dict[str, np.ndarray],
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

    taste_term, energy_term = affinity_terms(users["taste"], users["energy_pref"], users["energy_weight"],
                                             cluster, energy)
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
