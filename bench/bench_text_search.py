"""Search by words for items WITHOUT words: the media -> text projection against chance and against
the audio/media nearest neighbour of a tagged item.

(a) ESC-50 (``../shared/data/esc50``: 100 clips, 50 classes, two per class). The category name is
    the text of one clip per class (the first by file name); the other clip has no text. Each
    category name is a query; the 50 untagged clips are ranked; the one relevant clip is the
    untagged clip of that class. Rows:
    - media projection: relevance of the query to each clip's audio projected into the text space
      (:class:`serving.search.TextSearch`, the same code as ``avrec search``);
    - audio nearest neighbour: the tagged clip whose words match the query best, then the untagged
      clips by cosine of their (standardised) audio vectors to it;
    - chance: a random order (exact expectations).
(b) The demo catalog (``avrec demo``'s 300 items): ~40% of items have no text; queries are the
    words of the hidden attributes (a cluster's genre word, e.g. "rain"; "energetic"/"mellow" for
    the energy; "warm"/"dark" for the tone); relevant = the untagged items with that attribute.

Metrics over queries: P@1, P@5, R@10, mAP (average precision over the full ranking).
With ``--text-model DIR`` (a local sentence-transformers folder) the semantic encoder adds rows.

Usage: ``python bench/bench_text_search.py [--esc50 DIR] [--cache DIR] [--text-model DIR] [--no-demo] [--no-cnn]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


# ---------------------------------------------------------------------------- metrics
def retrieval(scores: np.ndarray, relevant: list[np.ndarray]) -> dict[str, float]:
    """Mean P@1, P@5, R@10 and mAP of rankings by ``scores`` (m queries, U candidates)."""
    from recsys.metrics import map_at_k, precision_at_k, recall_at_k

    m, u = scores.shape
    ranked = np.argsort(-scores, axis=1, kind="stable")
    rel = sp.csr_matrix((np.ones(sum(len(r) for r in relevant)),
                         (np.repeat(np.arange(m), [len(r) for r in relevant]), np.concatenate(relevant))), shape=(m, u))
    return {"P@1": float(np.mean(precision_at_k(ranked, rel, 1))), "P@5": float(np.mean(precision_at_k(ranked, rel, 5))),
            "R@10": float(np.mean(recall_at_k(ranked, rel, 10))), "mAP": float(np.mean(map_at_k(ranked, rel, u)))}


def chance(relevant: list[np.ndarray], u: int) -> dict[str, float]:
    """Exact expected metrics of a uniformly random order."""
    share = np.array([len(r) / u for r in relevant])
    ap = []
    for r in relevant:
        big_r = len(r)
        # E[AP] = (1/R) * sum_k P(item k relevant) * E[precision@k | relevant at k]
        #       = (1/U) * sum_{k=1..U} (1 + (R - 1) * (k - 1) / (U - 1)) / k
        k = np.arange(1, u + 1)
        ap.append(np.mean((1 + (big_r - 1) * (k - 1) / max(u - 1, 1)) / k))
    return {"P@1": float(share.mean()), "P@5": float(share.mean()),
            "R@10": float(np.mean([min(10, u) / u for _ in relevant])), "mAP": float(np.mean(ap))}


def nearest_tagged(search, queries: list[str], tagged: np.ndarray, untagged: np.ndarray) -> np.ndarray:
    """(m, U) cosine of each untagged item's media to the tagged item whose words match the query best."""
    from recsys.models.content import l2_rows

    enc = search.encoder
    words = enc.rows(queries) @ enc.rows([search.state.texts[i] for i in tagged]).T
    words = words.toarray() if sp.issparse(words) else np.asarray(words)
    best = tagged[np.argmax(words, axis=1)]
    x, _ = search.state.projection.media_vectors(search.features)
    x = l2_rows(x - x.mean(axis=0))
    return x[best] @ x[untagged].T


def run_rows(name: str, feats, text, model_dir, queries: list[str], relevant: list[np.ndarray],
             subsets: dict[str, np.ndarray] | None = None) -> list[tuple]:
    """Fit the text side on ``feats`` + ``text`` and score the untagged items for every query
    (and for the query subsets named in ``subsets``)."""
    from recsys.jobs.text import build_text
    from serving.search import TextSearch

    t0 = time.perf_counter()
    out, state, _ = build_text(feats, text, model_dir=model_dir)
    search = TextSearch(state, out)
    search.features = out
    tagged, untagged = np.flatnonzero(text.has_text), np.flatnonzero(~text.has_text)
    proj = search.relevance(queries)[:, untagged]
    nn = nearest_tagged(search, queries, tagged, untagged)
    enc = "semantic" if model_dir else "lexical"
    secs = time.perf_counter() - t0
    print(f"    {name}: {len(tagged)} items with text, {len(untagged)} without; {enc} encoder; ridge alpha "
          f"{state.projection.alpha_:g} on {state.projection.n_train_} items ({secs:.1f}s)", flush=True)
    rows = []
    for label, keep in {"": np.arange(len(queries)), **(subsets or {})}.items():
        rel = [relevant[q] for q in keep]
        rows += [(f"{name}{label}, media projection ({enc})", retrieval(proj[keep], rel)),
                 (f"{name}{label}, nearest tagged item by media ({enc} match)",
                  retrieval(nn[keep], rel))]
    return rows


def print_table(rows: list[tuple]) -> None:
    print(f"    {'method':<78}{'P@1':>7}{'P@5':>7}{'R@10':>7}{'mAP':>7}")
    for name, m in rows:
        print(f"    {name:<78}{m['P@1']:>7.3f}{m['P@5']:>7.3f}{m['R@10']:>7.3f}{m['mAP']:>7.3f}")


# ---------------------------------------------------------------------------- datasets
def esc50(esc_dir: Path, cache: Path, model_dirs: list, workers: int) -> list[tuple]:
    import polars as pl

    from features.catalog_text import text_from_columns
    from features.extract import ExtractorConfig
    from features.store import extract_catalog
    from recsys.data import Catalog, ItemFeatures

    meta = pl.read_csv(esc_dir / "meta.csv").sort(["target", "filename"])
    files = meta.get_column("filename").to_list()
    cats = [c.replace("_", " ") for c in meta.get_column("category").to_list()]
    seen: set[str] = set()
    first = []
    for c in cats:  # the first clip of each class (by file name) gets the category as text
        first.append(c not in seen)
        seen.add(c)
    ids = [Path(f).stem for f in files]
    catalog = Catalog(np.asarray(ids, dtype=object), [esc_dir / "audio" / f for f in files])
    rep = extract_catalog(catalog, cache / "esc50_features", config=ExtractorConfig(cnn=False), workers=workers,
                          progress=False)
    print(f"    ESC-50 audio features: {rep.n_ok}/{rep.n_items} clips ({rep.n_cached} cached)", flush=True)
    feats = ItemFeatures.load(cache / "esc50_features")
    text = text_from_columns(ids, {"title": [c if f else None for c, f in zip(cats, first)]}, ("title",))
    untagged = np.flatnonzero(~text.has_text)
    queries = [c for c, f in zip(cats, first) if f]
    relevant = [np.flatnonzero(np.asarray(cats)[untagged] == q) for q in queries]
    # 16 of the 50 classes hold two takes of ONE source recording (src_file): report the others apart
    src = meta.get_column("src_file").to_list()
    one_source = {c for c in queries if len({s for s, k in zip(src, cats) if k == c}) == 1}
    distinct = np.array([q for q, c in enumerate(queries) if c not in one_source])
    sub = {f" [{len(distinct)} two-source classes]": distinct}
    rows = []
    for model_dir in model_dirs:
        rows += run_rows("ESC-50", feats, text, model_dir, queries, relevant, sub)
    rows.append(("ESC-50, chance", chance(relevant, len(untagged))))
    return rows


def demo(cache: Path, model_dirs: list, workers: int, cnn: bool) -> list[tuple]:
    from features.catalog_text import catalog_text
    from features.extract import ExtractorConfig
    from features.store import extract_catalog
    from recsys.data import Catalog, ItemFeatures
    from recsys.synthetic import ENERGY_WORDS, GENRE_WORDS, TONE_WORDS, ensure_demo_catalog

    cat = ensure_demo_catalog(cache, workers=workers)
    catalog = Catalog.from_csv(cat.catalog_csv)
    out = cache / ("demo_features" if cnn else "demo_features_nocnn")
    rep = extract_catalog(catalog, out, config=ExtractorConfig(cnn=cnn), workers=workers, progress=False)
    print(f"    demo features: {rep.n_ok}/{rep.n_items} items ({rep.n_cached} cached), CNN block {'on' if cnn else 'off'}",
          flush=True)
    feats = ItemFeatures.load(out)
    text = catalog_text(catalog)
    truth = {it["item_id"]: it for it in cat.read_truth()["items"]}
    items = [truth[i] for i in catalog.item_ids.tolist()]
    untagged = np.flatnonzero(~text.has_text)
    groups = {
        "genre": [(GENRE_WORDS[k][0], lambda it, k=k: it["cluster"] == k) for k in range(8)],
        "energy": [(ENERGY_WORDS[1][0], lambda it: it["energy"] > 0.65), (ENERGY_WORDS[0][0], lambda it: it["energy"] < 0.35)],
        "tone": [(TONE_WORDS[1][0], lambda it: it["tone"] > 0.65), (TONE_WORDS[0][0], lambda it: it["tone"] < 0.35)],
    }
    rows = []
    for group, qs in groups.items():
        queries = [q for q, _ in qs]
        relevant = [np.flatnonzero([f(items[i]) for i in untagged]) for _, f in qs]
        for model_dir in model_dirs:
            rows += run_rows(f"demo {group} ({len(queries)} queries)", feats, text, model_dir, queries, relevant)
        rows.append((f"demo {group}, chance", chance(relevant, len(untagged))))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--esc50", default=str(SHARED / "esc50"))
    ap.add_argument("--cache", default=str(ROOT / "data" / "cache"), help="features and demo catalog cache")
    ap.add_argument("--text-model", default=None, metavar="DIR", help="local sentence-transformers folder")
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--no-cnn", action="store_true", help="demo features without the CNN block (faster)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    model_dirs = [None] + ([args.text_model] if args.text_model else [])
    if not args.text_model:
        print("no --text-model: lexical encoder only (no sentence-transformers model is available offline)")
    rows = []
    if Path(args.esc50).is_dir():
        print("(a) ESC-50: one clip per class tagged with its category, the other untagged", flush=True)
        rows += esc50(Path(args.esc50), cache, model_dirs, args.workers)
    else:
        print(f"(a) {args.esc50} not found: ESC-50 skipped")
    if not args.no_demo:
        print("(b) demo catalog: untagged items, queries = hidden attributes' words", flush=True)
        rows += demo(cache, model_dirs, args.workers, cnn=not args.no_cnn)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
