"""Similar items by sound on real clips: where does each ESC-50 clip's twin rank?

The shared ESC-50 subset holds two clips per class (100 clips, 50 classes). For every clip, the
"twin" is the other clip of its class; a good ``GET /items/{id}/similar`` space ranks it near 1.
Issue 16 reported the dog clip's twin at #1 by ``by=fused`` but #31 by ``by=audio`` on a catalog
of the 100 clips plus the 11 shared videos. This prints, for every space the service answers with,
the twin's mean and median rank over all 100 clips, the share at #1 and in the top 5, and the dog
clip's twin rank:

- ``audio, raw centred (before)``: the pre-fix ``by=audio`` vectors (the raw statistics vector
  minus its mean, L2-normalised), reproduced here;
- ``audio (service)`` and ``fused (service)``: ``RecommendationService.similar_items`` itself, on
  a bundle built from the features (a content model on a one-interaction-per-item log: the model
  does not enter content similarity).

Usage: ``python bench/bench_twin_rank.py [--features DIR] [--esc-only] [--cnn]``. Without
``--features`` the clips (and, unless ``--esc-only``, the 11 videos of ``../shared/data/media``)
are scanned from a temporary folder of links and extracted first (about 30 s on 2 cores).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def build_features(out: Path, esc: Path, media: Path | None, cnn: bool) -> Path:
    """Link the clips (and videos) into one folder, scan it and extract its features into ``out``."""
    from features.extract import ExtractorConfig
    from features.store import extract_catalog
    from recsys.data import Catalog

    root = out / "catalog"
    (root / "esc").mkdir(parents=True)
    for f in sorted((esc / "audio").glob("*.wav")):
        (root / "esc" / f.name).symlink_to(f)
    if media is not None:
        for f in sorted(p for p in media.rglob("*") if p.is_file() and p.suffix != ".csv"):
            dst = root / "media" / f.relative_to(media)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(f)
    report = extract_catalog(Catalog.scan(root), out / "features", config=ExtractorConfig(cnn=cnn), progress=False)
    print(f"extracted {report.n_ok} items ({report.n_failed} failed) in {report.seconds:.1f} s", file=sys.stderr)
    return out / "features"


def service_of(features_dir: Path):
    """A RecommendationService on the features (content model; the log has one view per item)."""
    from features.fusion import Fusion
    from recsys.data import Interactions, ItemFeatures
    from recsys.models.content import Content
    from serving.bundle import Bundle
    from serving.service import RecommendationService

    feats = ItemFeatures.load(features_dir)
    ids = feats.item_ids
    log = Interactions.from_arrays([f"u{k}" for k in range(len(ids))], ids, item_ids=ids)
    model = Content().fit(log, feats)
    return RecommendationService(Bundle(model, feats, Fusion.load(features_dir))), feats


def twin_ranks(esc: Path, features_dir: Path) -> dict[str, np.ndarray]:
    """Space name -> (100,) int twin rank of every ESC clip (1 = the twin is the nearest item)."""
    from recsys.models.content import media_mean, unit_rows

    with (esc / "meta.csv").open(newline="") as fh:
        category = {Path(r["filename"]).stem: r["category"] for r in csv.DictReader(fh)}
    service, feats = service_of(features_dir)
    ids = [str(i) for i in feats.item_ids]
    clips = [i for i in ids if Path(i).name in category]
    twin = {c: next(o for o in clips if o != c and category[Path(o).name] == category[Path(c).name]) for c in clips}

    a, has = feats.blocks["audio"], feats.mask_of("audio")
    before = unit_rows(a, has, media_mean(a, has))  # serving.service before issue 16
    pos = {i: k for k, i in enumerate(ids)}
    out: dict[str, list[int]] = {"audio, raw centred (before)": [], "audio (service)": [], "fused (service)": []}
    for c in clips:
        sims = before @ before[pos[c]]
        sims[pos[c]] = -np.inf
        out["audio, raw centred (before)"].append(1 + int((sims > sims[pos[twin[c]]]).sum()))
        for by in ("audio", "fused"):
            got = [str(x["item_id"]) for x in service.similar_items(c, n=len(ids), by=by)["items"]]
            out[f"{by} (service)"].append(1 + got.index(twin[c]))
    return {k: np.asarray(v) for k, v in out.items()} | {"_clips": np.asarray(clips), "_category": np.asarray(
        [category[Path(c).name] for c in clips])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=Path, help="features folder of a scan holding the ESC-50 clips")
    ap.add_argument("--esc", type=Path, default=SHARED / "esc50")
    ap.add_argument("--esc-only", action="store_true", help="extract the 100 clips without the 11 videos")
    ap.add_argument("--cnn", action="store_true", help="extract the CNN video block too (default: descriptors)")
    args = ap.parse_args()
    if not (args.esc / "meta.csv").is_file():
        sys.exit(f"ESC-50 subset not found at {args.esc}")
    with tempfile.TemporaryDirectory() as tmp:
        features = args.features or build_features(Path(tmp), args.esc, None if args.esc_only else SHARED / "media",
                                                    args.cnn)
        ranks = twin_ranks(args.esc, features)
    clips, cats = ranks.pop("_clips"), ranks.pop("_category")
    dog = int(np.flatnonzero(cats == "dog")[0])
    print(f"twin rank of {len(clips)} ESC-50 clips among the other items of {features}")
    print(f"{'space':32s} {'mean':>6s} {'median':>6s} {'#1':>5s} {'top5':>5s}  dog {Path(clips[dog]).name}")
    for name, r in ranks.items():
        print(f"{name:32s} {r.mean():6.2f} {np.median(r):6.1f} {np.mean(r == 1):5.2f} {np.mean(r <= 5):5.2f}  {r[dog]}")


if __name__ == "__main__":
    main()
