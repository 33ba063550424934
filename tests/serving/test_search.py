"""Words end to end: demo catalog text -> avrec features -> bundle -> search, tags, query by clip,
explanations, over the service, the CLI and real HTTP.

The catalog is a tiny generated demo catalog (4 clusters, real MP4 files) whose tags are noisy
words of each item's hidden cluster; about 40% of its items have no text at all, so they can
only be found through the media -> text projection. ``truth.json`` says which answers are right.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from recsys.errors import ConfigError, QueryError
from recsys.synthetic import GENRE_WORDS
from serving.bundle import load_bundle
from serving.search_service import SearchService
from serving.service import RecommendationService

from test_app import live_server


@pytest.fixture(scope="module")
def words(tmp_path_factory):
    """(bundle path, media root, truth) of a bridge fitted with the catalog's media and words."""
    from recsys.cli import main
    from recsys.jobs.fit import fit_bundle
    from recsys.jobs.load import LogSpec
    from recsys.synthetic import generate_demo_catalog

    root = tmp_path_factory.mktemp("words")
    cat = generate_demo_catalog(root / "catalog", n_items=48, n_users=80, seed=3, n_clusters=4, duration_s=1.0,
                                workers=1)
    # the features command itself: media blocks, then the text block, fusion and projection
    assert main(["features", "--catalog", str(cat.catalog_csv), "--out", str(root / "features"), "--no-cnn",
                 "--max-frames", "2", "--frame-size", "32", "--workers", "1", "--quiet"]) == 0
    params = {"epochs": 30, "hidden": 32, "cold_share": None,
              "als_params": {"factors": 8, "regularization": 0.05, "alpha": 5.0, "weighting": "none"}}
    bundle = fit_bundle("bridge", root / "bundle", log=LogSpec(str(cat.interactions), weight="weight"),
                        features=str(root / "features"), params=params, log_fn=lambda m: None)
    return bundle, cat.root, cat.read_truth()


@pytest.fixture(scope="module")
def search(words):
    return SearchService(RecommendationService(load_bundle(words[0]), media_root=words[1]))


@pytest.fixture(scope="module")
def api(words):
    with live_server(words[0], media_root=words[1]) as client:
        yield client


def clusters(truth) -> dict[str, int]:
    return {it["item_id"]: it["cluster"] for it in truth["items"]}


def test_features_folder_and_bundle_hold_the_text(words, search):
    bundle, _, truth = words
    feats = search.bundle.item_features
    assert "text" in feats.blocks and feats.block_masks["text"] == "text"
    has = feats.mask_of("text")
    assert 0.45 < has.mean() < 0.75  # ~60% of the demo items have words
    assert not feats.blocks["text"][~has].any()  # no text: zero row AND flagged
    assert search.bundle.text.projection is not None
    assert json.loads((bundle / "manifest.json").read_text())["text"] == "text"


def test_untagged_items_are_found_by_their_media(search, words):
    """Queries of a cluster's genre word rank that cluster's untagged items above the others."""
    from sklearn.metrics import roc_auc_score

    c = clusters(words[2])
    state = search.bundle.text
    ts = search._text_search()
    ids = search.service.interactions.item_ids
    untagged = np.flatnonzero(~ts.has_text_ & ts.has_media_)
    aucs = []
    for k in range(4):
        rel = ts.relevance([GENRE_WORDS[k][0]])[0, untagged]
        truth = np.array([c[ids[i]] == k for i in untagged])
        aucs.append(roc_auc_score(truth, rel))
    assert np.mean(aucs) > 0.8, aucs
    assert not state.has_text[untagged].any()


def test_text_matches_plurals_and_typos(search):
    for query, word in (("storms", "storm"), ("pianno", "piano"), ("drum", "drums")):
        top = search.search(query, n=3)["items"]
        texts = {i: t for i, t in zip(search.bundle.text.item_ids.tolist(), search.bundle.text.texts)}
        assert top and word in texts[top[0]["item_id"]].lower(), (query, top)
        assert top[0]["matched_by"].startswith("text")


def test_one_query_relevance_equals_the_matrix_path(search):
    """A single query is scored without sparse products (serving's path); it equals the general one."""
    ts = search._text_search()
    queries = ["storms", "pianno", "drum kit rain", "zzzz storm"]
    one = np.stack([ts.relevance([q])[0] for q in queries])
    both = ts.relevance(queries + ["drums"])[: len(queries)]  # several queries: the matrix path
    np.testing.assert_allclose(one, both, atol=1e-5)
    assert np.isneginf(one).sum() == np.isneginf(both).sum()


def test_a_user_changes_the_order_and_user_weight_zero_is_relevance(search):
    users = search.service.interactions.user_ids[:6].tolist()
    orders = {tuple(it["item_id"] for it in search.search("rain", user_id=u, n=10)["items"]) for u in users}
    assert len(orders) > 1  # the same words, different users, different orders
    plain = [it["item_id"] for it in search.search("rain", n=10)["items"]]
    zero = search.search("rain", user_id=users[0], n=10, user_weight=0.0)
    assert zero["known_user"] and [it["item_id"] for it in zero["items"]] == plain
    unknown = search.search("rain", user_id="nobody", n=10)
    assert not unknown["known_user"] and [it["item_id"] for it in unknown["items"]] == plain


@pytest.mark.parametrize("query", ["", "   ", "?!...", "x" * 501, "qqqzzzxxj"])
def test_bad_queries_are_refused_with_a_reason(search, api, query):
    with pytest.raises(QueryError):
        search.search(query)
    r = api.get("/search", params={"q": query})
    assert r.status_code == 422 and r.json()["detail"]


def test_predicted_tags_of_untagged_items_name_their_cluster(search, words):
    c = clusters(words[2])
    tags = pl.DataFrame(search.tags(n=3))
    own = tags.filter(pl.col("source").str.starts_with("text"))
    assert own.filter(pl.col("rank") == 1).get_column("own").mean() > 0.8  # items with words keep theirs
    media = tags.filter(pl.col("source") == "media")
    hits = [any(t in GENRE_WORDS[c[i]] for t in g.get_column("tag")) for (i,), g in media.group_by("item_id")]
    assert len(hits) >= 10 and np.mean(hits) > 0.6


def test_search_over_http_equals_the_service(api, search):
    r = api.get("/search", params={"q": "ocean waves", "user": "u0001", "n": 5})
    assert r.status_code == 200
    assert r.json() == json.loads(json.dumps(search.search("ocean waves", user_id="u0001", n=5)))
    assert api.get("/search", params={"q": "rain", "user_weight": 2}).status_code == 422


def test_query_by_clip_finds_the_clip_and_registers_nothing(api, search):
    before = api.get("/health").json()["n_items"]
    for by in ("fused", "audio", "video"):
        r = api.post("/search/by-media", json={"path": "media/i0005.mp4", "by": by, "n": 3})
        assert r.status_code == 200, r.text
        top = r.json()["items"][0]
        assert top["item_id"] == "i0005" and top["score"] > 0.99
    assert api.get("/health").json()["n_items"] == before
    assert api.post("/search/by-media", json={"path": "../outside.mp4"}).status_code == 400
    assert api.post("/search/by-media", json={"path": "media/i0005.mp4", "by": "cf"}).status_code == 422


def test_query_by_clip_needs_a_media_root(words):
    s = SearchService(RecommendationService(load_bundle(words[0])))
    with pytest.raises(ConfigError, match="media-root"):
        s.search_by_media("media/i0005.mp4")


def test_explanations_name_history_items_and_neighbours(api, search):
    plain = api.get("/users/u0001/recommendations", params={"n": 3}).json()
    assert all("explanation" not in it for it in plain["items"])
    body = api.get("/users/u0001/recommendations", params={"n": 3, "explain": "true"}).json()
    x = search.service.interactions
    history = set(x.item_ids[x.user_items(x.user_map.index("u0001"))].tolist())
    for it in body["items"]:
        e = it["explanation"]
        assert e["cf"]["method"] == "als" and e["cf"]["because"]
        assert {b["item_id"] for b in e["cf"]["because"]} <= history
        assert set(e["similar"]) >= {"audio", "video"} and e["similar"]["audio"]["item_id"] in history
        assert e["ranker"] is None  # an ALS bundle has no ranker (the hybrid fills it: test_hybrid)
    adhoc = api.post("/recommendations", json={"items": ["i0001", "i0002"], "n": 2, "explain": True}).json()
    assert all({b["item_id"] for b in it["explanation"]["cf"]["because"]} <= {"i0001", "i0002"}
               for it in adhoc["items"])


def test_cli_search_tags_and_explained_lists(words, tmp_path, capsys):
    from recsys.cli import main

    bundle = str(words[0])
    assert main(["search", "--bundle", bundle, "--query", "piano", "--user", "u0002", "--n", "4",
                 "--json", str(tmp_path / "s.json")]) == 0
    assert len(json.loads((tmp_path / "s.json").read_text())["items"]) == 4
    assert main(["tags", "--bundle", bundle, "--out", str(tmp_path / "tags.parquet"), "--n", "2"]) == 0
    tags = pl.read_parquet(tmp_path / "tags.parquet")
    assert set(tags.columns) >= {"item_id", "rank", "tag", "score"} and tags.height > 40
    assert main(["recommend", "--bundle", bundle, "--out", str(tmp_path / "r.parquet"), "--n", "2",
                 "--explain"]) == 0
    expl = pl.read_parquet(tmp_path / "r.parquet").get_column("explanation")
    assert json.loads(expl[0])["cf"]["because"]
    assert main(["search", "--bundle", bundle, "--query", "!!!"]) == 2
    assert "no letter or digit" in capsys.readouterr().err


def test_search_demo_lines_for_the_lead(words):
    from recsys.jobs.demo_words import run_search_demo

    lines = run_search_demo(words[0], queries=("rain",), n=3, explain_n=2)
    assert len(lines) == 3 + 2  # no user + two users, then two explained items
    assert lines[0].startswith("search 'rain': ") and "as user" in lines[1]
    assert "sounds like" in lines[-1] and "because you watched" in lines[-1]


def test_a_registered_item_is_searchable_by_its_media_at_once(words):
    s = SearchService(RecommendationService(load_bundle(words[0]), media_root=words[1]))
    n = s.service.model.n_items_
    s.service.register_item("new1", "media/i0007.mp4")
    rel = s._text_search().relevance(["rain"])[0]
    assert len(rel) == n + 1 and np.isfinite(rel[n])
    assert s._text_search().matched_by(np.array([n])) == ["media"]


def test_a_bundle_without_text_says_so(words):
    b = load_bundle(words[0])
    b.text = None
    with pytest.raises(ConfigError, match="no text"):
        SearchService(RecommendationService(b)).search("rain")


def test_features_again_without_text_leaves_no_words(words, tmp_path):
    import shutil

    from recsys.cli import main
    from recsys.data import ItemFeatures

    src = words[0].parent / "features"
    out = tmp_path / "features"
    shutil.copytree(src, out)
    args = ["features", "--catalog", str(words[1] / "catalog.csv"), "--out", str(out), "--no-cnn",
            "--max-frames", "2", "--frame-size", "32", "--workers", "1", "--quiet"]
    assert main(args + ["--no-text"]) == 0
    assert not (out / "text").exists() and "text" not in ItemFeatures.load(out).blocks
    assert main(args + ["--text-cols", "nope"]) == 2  # explicit columns that do not exist: an error


# ---------------------------------------------------------------------------- query cache
def test_average_ranks_equal_scipy():
    from scipy.stats import rankdata

    from serving.search import average_ranks

    rng = np.random.default_rng(0)
    for x in (rng.normal(size=100), rng.integers(0, 5, 60).astype(float), np.array([-np.inf, 1.0, -np.inf, 2.0]),
              np.array([3.0]), np.zeros(7)):
        np.testing.assert_array_equal(average_ranks(x), rankdata(x, method="average"))


def test_repeated_queries_come_from_the_cache_and_equal_a_fresh_search(words):
    s = SearchService(RecommendationService(load_bundle(words[0])))
    first = s.search("rain piano", user_id="u0001", n=5)
    misses, hits = s.cache.misses, s.cache.hits
    again = s.search("  rain piano ", user_id="u0001", n=5)  # the same stripped query: one entry
    plain = s.search("rain piano", n=5)  # no user: the first n of the same cached pool
    assert (s.cache.hits, s.cache.misses) == (hits + 2, misses)
    assert again["items"] == first["items"]
    fresh = SearchService(RecommendationService(load_bundle(words[0])))
    assert fresh.search("rain piano", user_id="u0001", n=5) == first  # cached answers are the uncached ones
    assert fresh.search("rain piano", n=5) == plain
    idx, rel = s._text_search().pool("rain piano", 100, s.cache)
    with pytest.raises(ValueError):  # a cached pool cannot be changed by a caller
        idx[0] = 0
    with pytest.raises(QueryError):  # refusals are not cached: they are refused again
        s.search("qqqzzzxxj")
    assert s.search("rain", n=3, user_weight=0.0)["items"]


def test_a_registration_invalidates_cached_queries(words):
    s = SearchService(RecommendationService(load_bundle(words[0]), media_root=words[1]))
    before = s.search("rain", n=50)
    version = s._text_search().version
    s.service.register_item("new2", "media/i0007.mp4")  # the media of a rain item, without words
    after = s.search("rain", n=50)
    assert s._text_search().version != version  # a new index, so no old entry is read
    assert "new2" in [it["item_id"] for it in after["items"]]
    assert "new2" not in [it["item_id"] for it in before["items"]]


def test_search_cache_lookups_are_counted_in_the_metrics(api):
    from serving.metrics import parse_exposition

    def lookups():
        samples = parse_exposition(api.get("/metrics").text)["avrec_search_cache_lookups"]
        return {lab["outcome"]: v for n, lab, v in samples if n.endswith("_total")}

    before = lookups()
    for _ in range(2):
        assert api.get("/search", params={"q": "thunder storms at night", "n": 3}).status_code == 200
    after = lookups()
    assert after["miss"] - before.get("miss", 0) == 1 and after["hit"] - before.get("hit", 0) == 1
