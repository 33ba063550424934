"""Similar items by one modality (issue 16): only items that have it are candidates, and the
vectors are standardised per dimension as in the fused vector (raw blocks mix scales).

The mixed catalog below is planted: items of a cluster share a direction in a few SMALL-scale
dimensions, while a few LARGE-scale dimensions hold noise (as the audio statistics vector mixes
MFCCs, kHz and dB). The ESC-50 test runs the service on real clips.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from features.fusion import Fusion, modality_vectors
from recsys.data import Interactions, ItemFeatures
from recsys.errors import DataError
from recsys.models.content import Content, media_mean, unit_rows
from serving.bundle import Bundle
from serving.service import RecommendationService

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
N, CLUSTERS = 36, 3
AUDIO_ONLY, VIDEO_ONLY = range(0, 12), range(12, 24)  # items 24-35 have both


def cluster(i: int) -> int:
    return i % CLUSTERS


def planted_block(rng: np.random.Generator, d: int = 12) -> np.ndarray:
    """(N, d): the cluster signal in dims 0-5 (scale ~1), noise x1000 in dims 6-11."""
    centres = rng.normal(size=(CLUSTERS, 6)) * 2
    x = np.empty((N, d))
    x[:, :6] = centres[[cluster(i) for i in range(N)]] + 0.3 * rng.normal(size=(N, 6))
    x[:, 6:] = 1000 * rng.normal(size=(N, d - 6))
    return x.astype(np.float32)


def service_on(feats: ItemFeatures) -> RecommendationService:
    fusion = Fusion().fit(feats)
    feats = fusion.transform(feats)
    ids = feats.item_ids
    log = Interactions.from_arrays([f"u{k}" for k in range(len(ids))], ids, item_ids=ids)
    return RecommendationService(Bundle(Content().fit(log, feats), feats, fusion))


@pytest.fixture(scope="module")
def mixed() -> RecommendationService:
    rng = np.random.default_rng(0)
    items = np.arange(N)
    has_audio = np.isin(items, VIDEO_ONLY, invert=True)
    has_video = np.isin(items, AUDIO_ONLY, invert=True)
    audio, video = planted_block(rng), planted_block(rng)
    audio[~has_audio] = 0.0
    video[~has_video] = 0.0
    feats = ItemFeatures(items, {"audio": audio, "video_desc": video}, {"audio": has_audio, "video": has_video},
                         block_masks={"audio": "audio", "video_desc": "video"})
    return service_on(feats)


def ids(body: dict) -> list[int]:
    return [int(x["item_id"]) for x in body["items"]]


def test_by_video_returns_only_items_with_video(mixed) -> None:
    body = mixed.similar_items(30, n=50, by="video")
    got = ids(body)
    assert body["n_candidates"] == 23 and len(got) == 23  # 24 items have video, the item itself excluded
    assert not set(got) & set(AUDIO_ONLY) and 30 not in got
    assert all(x["score"] != 0.0 for x in body["items"])  # no padding with zero vectors
    # the planted cluster comes first although large-scale noise dimensions dominate the raw block
    assert {cluster(i) for i in got[:7]} == {cluster(30)}


def test_by_audio_returns_only_items_with_audio(mixed) -> None:
    body = mixed.similar_items(3, n=10, by="audio")
    assert body["n_candidates"] == 23 and not set(ids(body)) & set(VIDEO_ONLY)
    assert all(cluster(i) == cluster(3) for i in ids(body)[:7])
    with pytest.raises(DataError, match="has no audio vector"):
        mixed.similar_items(13, by="audio")  # a video-only item


def test_fused_takes_every_item_with_media(mixed) -> None:
    body = mixed.similar_items(3, n=100, by="fused")
    assert body["n_candidates"] == N - 1 and len(body["items"]) == N - 1


def test_raw_centred_vectors_miss_what_standardised_ones_find(mixed) -> None:
    """Why the fix: cosine of the raw block is decided by the large dimensions."""
    feats = mixed.bundle.item_features
    a, has = feats.blocks["audio"], feats.mask_of("audio")
    raw = unit_rows(a, has, media_mean(a, has))
    std, has2 = modality_vectors(feats, ["audio"], mixed.bundle.fusion)
    assert np.array_equal(has, has2)

    def purity(x: np.ndarray) -> float:
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        sims[:, ~has] = -np.inf
        near = np.argsort(-sims, axis=1)[:, :5]
        rows = np.flatnonzero(has)
        return float(np.mean([[cluster(j) == cluster(i) for j in near[i]] for i in rows]))

    assert purity(std) >= 0.9 and purity(raw) <= 0.6


def test_modality_vectors_of_a_query_use_the_catalog_statistics(mixed) -> None:
    feats = mixed.bundle.item_features
    one = ItemFeatures([99], {b: v[[27]] for b, v in feats.blocks.items()}, {m: v[[27]] for m, v in feats.masks.items()},
                       block_masks=feats.block_masks)
    for fusion in (mixed.bundle.fusion, None):  # fitted statistics, or the reference's own
        full, _ = modality_vectors(feats, ["video_desc"], fusion)
        q, has = modality_vectors(one, ["video_desc"], fusion, reference=feats)
        assert has.tolist() == [True] and np.allclose(q[0], full[27], atol=1e-6)
    with pytest.raises(DataError, match="no feature block 'sound'"):
        modality_vectors(feats, ["sound"])


# ------------------------------------------------------------------------ real audio
@pytest.mark.shared
def test_esc50_twins_by_audio_rank_like_fused(tmp_path: Path) -> None:
    """20 ESC-50 classes (40 real clips) + 2 real videos: by=audio finds a clip's twin about as well
    as by=fused, and far better than the raw centred vectors used before issue 16; by=video only
    answers with the videos."""
    from features.extract import ExtractorConfig
    from features.store import extract_catalog
    from recsys.data import Catalog

    esc, media = SHARED / "esc50", SHARED / "media" / "mdn-learning-area"
    if not (esc / "meta.csv").is_file() or not media.is_dir():
        pytest.skip(f"shared ESC-50 or media not found under {SHARED}")
    with (esc / "meta.csv").open(newline="") as fh:
        meta = [r for r in csv.DictReader(fh) if int(r["target"]) < 20]
    root = tmp_path / "catalog"
    root.mkdir()
    for r in meta:
        (root / r["filename"]).symlink_to(esc / "audio" / r["filename"])
    for name in ("frog.mp4", "crystal.mp4"):
        (root / name).symlink_to(media / name)
    report = extract_catalog(Catalog.scan(root), tmp_path / "features", config=ExtractorConfig(cnn=False),
                             workers=2, progress=False)
    assert report.n_failed == 0
    service = service_on(ItemFeatures.load(tmp_path / "features"))
    feats = service.bundle.item_features

    category = {Path(r["filename"]).stem: r["category"] for r in meta}
    clips = sorted(category)
    pos = {str(i): k for k, i in enumerate(feats.item_ids.tolist())}
    a, has = feats.blocks["audio"], feats.mask_of("audio")
    raw = unit_rows(a, has, media_mean(a, has))
    ranks: dict[str, list[int]] = {"audio": [], "fused": [], "before": []}
    for c in clips:
        twin = next(o for o in clips if o != c and category[o] == category[c])
        for by in ("audio", "fused"):
            body = service.similar_items(c, n=100, by=by)
            assert body["n_candidates"] == 41 and len(body["items"]) == 41
            ranks[by].append(1 + [str(x["item_id"]) for x in body["items"]].index(twin))
        sims = raw @ raw[pos[c]]
        sims[pos[c]] = -np.inf
        ranks["before"].append(1 + int((sims > sims[pos[twin]]).sum()))
    mean = {k: float(np.mean(v)) for k, v in ranks.items()}
    print(f"\nESC-50 twin rank among 41 items, mean: {mean}")
    # measured: audio 7.4, fused 7.2, before 9.3 (the dog clip's twin: #1 by audio and fused)
    assert mean["audio"] <= mean["fused"] + 1.0 and mean["audio"] <= mean["before"] - 1.0
    dog = clips.index(next(c for c in clips if category[c] == "dog"))
    assert ranks["audio"][dog] == 1
    video = service.similar_items("frog", n=10, by="video")
    assert video["n_candidates"] == 1 and [x["item_id"] for x in video["items"]] == ["crystal"]
