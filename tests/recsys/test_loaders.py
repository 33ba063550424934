"""Loaders: read_log, read_movielens, load_split_folder (hand-made files, plus the shared TikTok split)."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys.data import (
    DEFAULT_EVENT_WEIGHTS,
    IdMap,
    Interactions,
    ItemFeatures,
    SplitDataset,
    load_split_folder,
    read_log,
    read_movielens,
)
from recsys.errors import ConfigError, DataError, SplitError, UnknownIdError

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def dense(x: Interactions) -> dict[tuple[object, object], float]:
    rows, cols, w, _ = x.to_coo()
    return {(x.user_ids[r], x.item_ids[c]): float(v) for r, c, v in zip(rows, cols, w)}


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


# ------------------------------------------------------------------------------- read_log: good
def test_read_log_csv_int_ids_weights_timestamps_and_duplicates(tmp_path):
    p = write(
        tmp_path / "log.csv",
        "user_id,item_id,w,ts\n"
        "1,10,1.0,300\n"
        "2,10,2.5,100\n"
        "1,10,2.0,200\n"  # duplicate of line 2: weights add, earliest timestamp (200) wins
        "1,30,1,50\n",
    )
    x = read_log(p, weight="w", timestamp="ts")
    assert x.user_ids.tolist() == [1, 2] and x.item_ids.tolist() == [10, 30]
    assert x.user_ids.dtype == np.int64
    assert dense(x) == {(1, 10): 3.0, (1, 30): 1.0, (2, 10): 2.5}
    assert x.matrix.dtype == np.float32
    rows, cols, _, ts = x.to_coo()
    got = {(int(x.user_ids[r]), int(x.item_ids[c])): t for r, c, t in zip(rows, cols, ts)}
    assert got == {(1, 10): 200.0, (1, 30): 50.0, (2, 10): 100.0}


@pytest.mark.parametrize("aggregate, expected", [("sum", 6.0), ("max", 3.0), ("last", 1.0), ("count", 3.0)])
def test_read_log_aggregate_rules(tmp_path, aggregate, expected):
    # one pair with weights 3 @ t=30, 1 @ t=40, 2 @ t=20 (file order is not time order)
    p = write(tmp_path / "log.csv", "user_id,item_id,weight,t\nu,i,3,30\nu,i,1,40\nu,i,2,20\n")
    x = read_log(p, weight="weight", timestamp="t", aggregate=aggregate)
    assert x.nnz == 1 and x.matrix.data[0] == pytest.approx(expected)
    assert x.timestamps.tolist() == [20.0]


def test_read_log_without_weight_counts_one_per_row(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id\na,x\na,x\nb,y\n")
    x = read_log(p)
    assert dense(x) == {("a", "x"): 2.0, ("b", "y"): 1.0}
    assert x.timestamps is None


def test_read_log_string_ids_and_column_mapping(tmp_path):
    p = write(tmp_path / "log.csv", "who,what\nalice,song-2\nbob,song-1\nalice,song-1\n")
    x = read_log(p, user="who", item="what")
    assert x.user_ids.tolist() == ["alice", "bob"] and x.item_ids.tolist() == ["song-1", "song-2"]
    assert x.user_map.index("bob") == 1


def test_read_log_ids_with_leading_zeros_stay_distinct_text(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id\n007,1\n7,1\n")
    x = read_log(p)
    assert x.n_users == 2 and sorted(x.user_ids.tolist()) == ["007", "7"]
    assert x.item_ids.tolist() == [1]


def test_read_log_iso_timestamps(tmp_path):
    p = write(
        tmp_path / "log.csv",
        "user_id,item_id,when\n"
        "1,1,2024-05-01T12:30:00Z\n"
        "1,2,2024-05-01 14:30:00+02:00\n"  # same instant as line 2
        "2,1,2024-05-02\n"
        "2,2,2024-05-01T00:00:00.5\n",  # no zone: UTC
    )
    x = read_log(p, timestamp="when")
    rows, cols, _, ts = x.to_coo()
    got = {(int(r), int(c)): t for r, c, t in zip(rows, cols, ts)}
    assert got == {
        (0, 0): utc(2024, 5, 1, 12, 30),
        (0, 1): utc(2024, 5, 1, 12, 30),
        (1, 0): utc(2024, 5, 2),
        (1, 1): utc(2024, 5, 1) + 0.5,
    }


def test_read_log_parquet_string_ids_datetime_column(tmp_path):
    df = pl.DataFrame(
        {
            "user_id": ["u1", "u2", "u1"],
            "item_id": ["a", "b", "a"],
            "weight": [1.0, 2.0, 4.0],
            "ts": [datetime(2024, 1, 2), datetime(2024, 1, 1), datetime(2024, 1, 1, 6)],
        }
    )
    p = tmp_path / "log.parquet"
    df.write_parquet(p)
    x = read_log(p, weight="weight", timestamp="ts", aggregate="max")
    assert dense(x) == {("u1", "a"): 4.0, ("u2", "b"): 2.0}
    assert x.timestamps.tolist() == [utc(2024, 1, 1, 6), utc(2024, 1, 1)]


def test_read_log_parquet_int_ids_numeric_and_iso_text_timestamps(tmp_path):
    p = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": [3, 1], "item_id": [5, 5], "t": [100, 50]}).write_parquet(p)
    x = read_log(p, timestamp="t")
    assert x.user_ids.tolist() == [1, 3] and x.user_ids.dtype == np.int64
    assert x.timestamps.tolist() == [50.0, 100.0]
    p2 = tmp_path / "log2.parquet"
    pl.DataFrame({"user_id": [1], "item_id": [5], "t": ["1970-01-01T00:01:40Z"]}).write_parquet(p2)
    assert read_log(p2, timestamp="t").timestamps.tolist() == [100.0]


def test_read_log_tsv(tmp_path):
    p = write(tmp_path / "log.tsv", "user_id\titem_id\n1\t2\n")
    assert dense(read_log(p)) == {(1, 2): 1.0}


def test_read_log_trailing_blank_lines_are_ignored(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id\n1,2\n2,3\n\n\n")
    assert read_log(p).nnz == 2


def test_read_log_default_events(tmp_path):
    p = write(
        tmp_path / "log.csv",
        "user_id,item_id,event\n1,1,view\n1,1,like\n1,2,share\n2,1, click \n2,2,comment\n",
    )
    x = read_log(p, event="event")
    assert dense(x) == {(1, 1): 3.0, (1, 2): 3.0, (2, 1): 1.0, (2, 2): 2.0}
    assert dict(DEFAULT_EVENT_WEIGHTS) == {
        "view": 1.0, "click": 1.0, "play": 1.0, "like": 2.0, "comment": 2.0, "share": 3.0
    }


def test_read_log_custom_events_and_min_weight(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id,kind\n1,1,skip\n1,2,finish\n2,1,finish\n2,2,skip\n")
    x = read_log(p, event="kind", event_weights={"skip": 0.0, "finish": 5.0}, min_weight=1)
    assert dense(x) == {(1, 2): 5.0, (2, 1): 5.0}
    assert x.n_users == 2 and x.n_items == 2  # rows left after filtering decide the maps


def test_read_log_min_weight_keeps_weights(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id,weight\n1,1,0.2\n1,2,0.9\n")
    x = read_log(p, weight="weight", min_weight=0.5)
    assert dense(x) == {(1, 2): pytest.approx(0.9)}
    with pytest.raises(DataError, match="no rows have weight >= min_weight"):
        read_log(p, weight="weight", min_weight=5)


def test_read_log_with_given_maps(tmp_path):
    train = read_log(write(tmp_path / "train.csv", "user_id,item_id\nu1,a\nu2,b\n"))
    p = write(tmp_path / "test.csv", "user_id,item_id\nu1,b\nu3,a\n")
    with pytest.raises(UnknownIdError) as info:
        read_log(p, user_ids=train.user_map, item_ids=train.item_map)
    assert "line 3" in str(info.value) and "'user_id'" in str(info.value) and "u3" in str(info.value)
    x = read_log(p, user_ids=train.user_map, item_ids=train.item_map, unknown="drop")
    assert x.same_maps(train) and dense(x) == {("u1", "b"): 1.0}


def test_read_log_given_text_map_matches_integer_looking_ids(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id\n1,5\n")
    x = read_log(p, user_ids=["1", "2"], item_ids=IdMap(["5"]))
    assert dense(x) == {("1", "5"): 1.0}


def test_read_log_given_unsorted_int_map_keeps_its_order(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id\n1,5\n3,6\n")
    x = read_log(p, user_ids=[3, 2, 1], item_ids=[6, 5], unknown="drop")
    assert x.user_ids.tolist() == [3, 2, 1]
    assert x.matrix.toarray().tolist() == [[1, 0], [0, 0], [0, 1]]


@pytest.mark.parametrize("kind", ["int", "str"])
@pytest.mark.parametrize("aggregate", ["sum", "last"])
def test_read_log_matches_from_arrays(tmp_path, kind, aggregate):
    rng = np.random.default_rng(1)
    n = 500
    users = rng.integers(0, 40, n)
    items = rng.integers(0, 60, n)
    if kind == "str":
        users = np.array([f"u{u}" for u in users], dtype=object)
        items = np.array([f"i{i}" for i in items], dtype=object)
    w = rng.integers(0, 5, n).astype(float)
    ts = rng.permutation(n).astype(float)
    p = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": users.tolist(), "item_id": items.tolist(), "w": w, "t": ts}).write_parquet(p)
    got = read_log(p, weight="w", timestamp="t", aggregate=aggregate)
    want = Interactions.from_arrays(users, items, w, ts, aggregate=aggregate)
    assert got.user_map == want.user_map and got.item_map == want.item_map
    assert (got.matrix != want.matrix).nnz == 0
    assert np.array_equal(got.timestamps, want.timestamps)


# -------------------------------------------------------------------------- read_log: malformed
def test_missing_column_lists_columns(tmp_path):
    p = write(tmp_path / "log.csv", "user,item_id\n1,2\n")
    with pytest.raises(DataError) as info:
        read_log(p)
    msg = str(info.value)
    assert "user_id" in msg and "['user', 'item_id']" in msg and str(p) in msg


def test_missing_weight_column(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match="missing required column.*'rating'"):
        read_log(p, weight="rating")


def test_unparsable_number_names_line_and_column(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id,weight\n1,2,1.0\n1,3,abc\n")
    with pytest.raises(DataError) as info:
        read_log(p, weight="weight")
    assert "line 3" in str(info.value) and "'weight'" in str(info.value) and "'abc'" in str(info.value)
    assert info.value.line == 3 and info.value.column == "weight" and info.value.path == str(p)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf"])
def test_nan_weight(tmp_path, value):
    p = write(tmp_path / "log.csv", f"user_id,item_id,weight\n1,2,1\n1,3,1\n1,4,{value}\n")
    with pytest.raises(DataError, match="line 4.*'weight'.*NaN or infinite"):
        read_log(p, weight="weight")


def test_negative_weight(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id,weight\n1,2,-0.5\n")
    with pytest.raises(DataError, match="line 2.*'weight'.*negative weight -0.5"):
        read_log(p, weight="weight")


def test_parquet_nan_weight_reports_row(tmp_path):
    p = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "weight": [1.0, float("nan")]}).write_parquet(p)
    with pytest.raises(DataError) as info:
        read_log(p, weight="weight")
    assert info.value.line == 2 and info.value.column == "weight"


def test_empty_file(tmp_path):
    p = write(tmp_path / "log.csv", "")
    with pytest.raises(DataError, match="empty"):
        read_log(p)


def test_header_only(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id\n")
    with pytest.raises(DataError, match="no data rows"):
        read_log(p)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_log(tmp_path / "nope.csv")


@pytest.mark.parametrize("row", ["1,\n", ",5\n", "  ,5\n"])
def test_empty_id_cell(tmp_path, row):
    p = write(tmp_path / "log.csv", "user_id,item_id\n1,2\n" + row)
    with pytest.raises(DataError) as info:
        read_log(p)
    assert info.value.line == 3 and "empty value" in str(info.value)


def test_parquet_null_id(tmp_path):
    p = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": ["a", None], "item_id": ["x", "y"]}).write_parquet(p)
    with pytest.raises(DataError) as info:
        read_log(p)
    assert info.value.line == 2 and info.value.column == "user_id"


def test_unknown_event(tmp_path, caplog):
    """Issue 16: unlisted events are dropped by default, and one warning names each with its count;
    ``unknown_events`` raises instead, or gives them a weight."""
    p = write(tmp_path / "log.csv",
              "user_id,item_id,event\n1,1,view\n1,2,purchase\n2,2,bookmark\n2,3,purchase\n2,1,like\n")
    with caplog.at_level(logging.WARNING, logger="recsys.data.logs"):
        x = read_log(p, event="event")
    assert dense(x) == {(1, 1): 1.0, (2, 1): 2.0}  # purchase and bookmark rows dropped
    (record,) = [r for r in caplog.records if r.name == "recsys.data.logs"]
    msg = record.getMessage()
    assert "3 row(s)" in msg and "'purchase' (2), 'bookmark' (1)" in msg and "dropped" in msg
    assert "--event-weights view=1,click=1,play=1,like=2,comment=2,share=3,purchase=W" in msg
    assert "--unknown-events" in msg

    with pytest.raises(DataError) as info:
        read_log(p, event="event", unknown_events="raise")
    msg = str(info.value)
    assert info.value.line == 3 and info.value.column == "event"
    assert "'purchase'" in msg and "event_weights" in msg and "view=1" in msg and "--event-weights" in msg

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recsys.data.logs"):
        kept = read_log(p, event="event", unknown_events=0.5)
    assert dense(kept) == {(1, 1): 1.0, (1, 2): 0.5, (2, 2): 0.5, (2, 3): 0.5, (2, 1): 2.0}
    assert "those rows get weight 0.5" in caplog.text
    x = read_log(p, event="event", event_weights={**DEFAULT_EVENT_WEIGHTS, "purchase": 5, "bookmark": 2})
    assert dense(x) == {(1, 1): 1.0, (1, 2): 5.0, (2, 2): 2.0, (2, 3): 5.0, (2, 1): 2.0}
    with pytest.raises(DataError, match="no rows left"):
        read_log(write(tmp_path / "none.csv", "user_id,item_id,event\n1,1,skip\n"), event="event")
    with pytest.raises(ConfigError, match="unknown_events must be drop, raise or a weight"):
        read_log(p, event="event", unknown_events="keep")


def test_unparsable_timestamps(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id,t\n1,1,100\n1,2,yesterday\n")
    with pytest.raises(DataError, match="line 3.*'t'.*'yesterday'"):
        read_log(p, timestamp="t")
    p = write(tmp_path / "log2.csv", "user_id,item_id,t\n1,1,2024-01-01\n1,2,2024-13-45\n")
    with pytest.raises(DataError, match="line 3.*'t'.*ISO-8601"):
        read_log(p, timestamp="t")
    p = write(tmp_path / "log3.csv", "user_id,item_id,t\n1,1,2024-01-01\n1,2,\n")
    with pytest.raises(DataError, match="line 3.*'t'.*empty"):
        read_log(p, timestamp="t")


def test_config_errors(tmp_path):
    p = write(tmp_path / "log.csv", "user_id,item_id,weight,event\n1,1,1,view\n")
    with pytest.raises(ConfigError, match="either"):
        read_log(p, weight="weight", event="event")
    with pytest.raises(ConfigError, match="event_weights needs event"):
        read_log(p, event_weights={"view": 1})
    with pytest.raises(ConfigError, match="aggregate"):
        read_log(p, aggregate="mean")
    with pytest.raises(ConfigError, match=">= 0"):
        read_log(p, event="event", event_weights={"view": -1})
    with pytest.raises(ConfigError, match="min_weight"):
        read_log(p, min_weight=1)


# ------------------------------------------------------------------------------------- MovieLens
def test_movielens_100k(tmp_path):
    p = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250950\n")
    x = read_movielens(p)
    assert dense(x) == {(196, 242): 3.0, (196, 302): 5.0, (186, 302): 3.0}
    assert sorted(x.timestamps.tolist()) == [881250949.0, 881250950.0, 891717742.0]
    pos = read_movielens(tmp_path, min_rating=4)  # the directory works too
    assert dense(pos) == {(196, 302): 1.0}


def test_movielens_100k_ready_made_split_names(tmp_path):
    p = write(tmp_path / "u1.base", "1\t2\t3\t100\n")
    assert dense(read_movielens(p)) == {(1, 2): 3.0}


def test_movielens_1m(tmp_path):
    p = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    x = read_movielens(p, min_rating=4)
    assert dense(x) == {(1, 1193): 1.0, (2, 1193): 1.0}
    assert x.timestamps.tolist() == [978300760.0, 978298413.0]


def test_movielens_latest(tmp_path):
    p = write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,0.5,964982224\n",
    )
    x = read_movielens(tmp_path)
    assert dense(x) == {(1, 1): 4.0, (1, 3): 4.5, (2, 1): 0.5}
    assert dense(read_movielens(p, min_rating=4.5)) == {(1, 3): 1.0}


def test_movielens_dat_wrong_field_count(tmp_path):
    p = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3\n")
    with pytest.raises(DataError) as info:
        read_movielens(p)
    assert info.value.line == 2 and "expected 4 fields" in str(info.value) and "found 3" in str(info.value)


def test_movielens_headerless_line_numbers(tmp_path):
    # no header: the first data row is line 1
    p = write(tmp_path / "u.data", "1\t2\t3\t100\n1\t3\tx\t100\n")
    with pytest.raises(DataError) as info:
        read_movielens(p)
    assert info.value.line == 2 and info.value.column == "rating"
    p = write(tmp_path / "ratings.dat", "1::2::3::100\n\n1::3::-1::100\n")
    with pytest.raises(DataError) as info:
        read_movielens(p)
    assert info.value.line == 2  # the interior blank line is reported where it is
    p.write_text("1::2::3::100\n1::3::-1::100\n\n")
    with pytest.raises(DataError, match="negative rating") as info:
        read_movielens(p)
    assert info.value.line == 2


def test_movielens_tab_wrong_field_count(tmp_path):
    p = write(tmp_path / "u.data", "1\t2\t3\t100\n1\t3\t4\t100\t9\n")
    with pytest.raises(DataError) as info:
        read_movielens(p)
    assert info.value.line == 2 and "found 5" in str(info.value)
    p.write_text("1\t2\t3\t100\n1\t3\t4\n")
    with pytest.raises(DataError) as info:
        read_movielens(p)
    assert info.value.line == 2


def test_movielens_bad_names(tmp_path):
    with pytest.raises(DataError, match="not a recognised MovieLens"):
        read_movielens(write(tmp_path / "data.csv", "a,b\n1,2\n"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="none of the MovieLens"):
        read_movielens(empty)
    with pytest.raises(DataError, match="missing required column"):
        read_movielens(write(tmp_path / "ratings.csv", "user,movie,rating,timestamp\n1,2,3,4\n"))
    with pytest.raises(DataError, match="no rating is >= min_rating"):
        read_movielens(write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n"), min_rating=5)


# ---------------------------------------------------------------------------------- split folders
def make_split(d: Path, *, val: bool = True, features: bool = True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    write(d / "train.csv", "user_id,item_id\n0,0\n0,1\n1,1\n2,2\n")
    write(d / "test.csv", "user_id,item_id\n0,2\n1,3\n1,4\n3,3\n")  # items 3, 4 cold; user 3 new
    if val:
        write(d / "val.csv", "user_id,item_id\n2,0\n2,4\n")  # item 4 cold in val too
    if features:
        rng = np.random.default_rng(0)
        np.save(d / "audio_feat.npy", rng.normal(size=(7, 4)).astype(np.float16))  # items 5, 6: no interactions
        np.save(d / "image_feat.npy", rng.normal(size=(7, 3)).astype(np.float32))
    return d


def test_split_folder_shared_maps_and_features(tmp_path):
    ds = load_split_folder(make_split(tmp_path / "toy"))
    assert isinstance(ds, SplitDataset) and ds.name == "toy"
    assert ds.user_map.ids.tolist() == [0, 1, 2, 3]
    assert ds.item_map.ids.tolist() == list(range(7))  # feature-only items 5, 6 included
    for part in (ds.test, ds.val):
        assert part.user_map is ds.train.user_map and part.item_map is ds.train.item_map
    feats = ds.item_features
    assert isinstance(feats, ItemFeatures) and feats.item_map == ds.item_map
    assert feats.blocks["audio"].dtype == np.float32 and feats.blocks["audio"].shape == (7, 4)
    assert feats.blocks["image"].shape == (7, 3)
    raw = np.load(tmp_path / "toy" / "audio_feat.npy").astype(np.float32)
    assert np.array_equal(feats.blocks["audio"], raw)
    assert all(m.all() for m in feats.masks.values())
    assert ds.summary() == {
        "name": "toy", "users": 4, "items": 7,
        "train_interactions": 4, "val_interactions": 2, "test_interactions": 4,
        "cold_test_items": 2, "cold_test_interactions": 3,
        "cold_val_items": 1, "cold_val_interactions": 1,
        "feature_blocks": {"audio": 4, "image": 3},
    }


def test_split_folder_without_val_or_features(tmp_path):
    ds = load_split_folder(make_split(tmp_path / "s", val=False, features=False), aggregate="max")
    assert ds.val is None and ds.item_features is None
    assert ds.item_map.ids.tolist() == [0, 1, 2, 3, 4]
    s = ds.summary()
    assert s["val_interactions"] is None and s["cold_val_items"] is None and s["feature_blocks"] == {}
    assert list(ds.parts()) == ["train", "test"]


def test_split_folder_parquet_string_ids_and_parquet_features(tmp_path):
    d = tmp_path / "pq"
    d.mkdir()
    pl.DataFrame(
        {"user_id": ["ann", "bob", "ann"], "item_id": ["x", "y", "x"], "weight": [1.0, 2.0, 3.0],
         "timestamp": [5, 6, 4]}
    ).write_parquet(d / "train.parquet")
    pl.DataFrame({"user_id": ["bob"], "item_id": ["z"]}).write_parquet(d / "test.parquet")
    # list column: covers x, z and a feature-only item w; y has no vector
    pl.DataFrame({"item_id": ["z", "x", "w"], "emb": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]}).write_parquet(
        d / "text_feat.parquet"
    )
    # numeric columns: covers y only
    pl.DataFrame({"item_id": ["y"], "f0": [7.0], "f1": [8.0], "f2": [9.0]}).write_parquet(d / "tag_feat.parquet")
    ds = load_split_folder(d)
    assert ds.item_map.ids.tolist() == ["w", "x", "y", "z"]
    assert dense(ds.train) == {("ann", "x"): 4.0, ("bob", "y"): 2.0}
    assert ds.train.timestamps.tolist() == [4.0, 6.0]
    f = ds.item_features
    assert f.blocks["text"].tolist() == [[5, 6], [3, 4], [0, 0], [1, 2]]
    assert f.masks["text"].tolist() == [True, True, False, True]
    assert f.blocks["tag"].tolist() == [[0, 0, 0], [0, 0, 0], [7, 8, 9], [0, 0, 0]]
    assert f.masks["tag"].tolist() == [False, False, True, False]
    assert ds.summary()["cold_test_items"] == 1


def test_split_folder_mixed_id_types_read_as_text(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    write(d / "train.csv", "user_id,item_id\n1,5\n2,6\n")
    write(d / "test.csv", "user_id,item_id\n1,x9\n")
    with pytest.warns(UserWarning, match="item ids are integers in train.csv but text in test.csv"):
        ds = load_split_folder(d)
    assert ds.item_map.ids.tolist() == ["5", "6", "x9"] and ds.user_map.ids.tolist() == [1, 2]


def test_split_folder_overlap_is_rejected(tmp_path):
    d = make_split(tmp_path / "leak", features=False)
    write(d / "test.csv", "user_id,item_id\n0,2\n1,1\n")  # (1, 1) is in train
    with pytest.raises(SplitError, match=r"train and test overlap in 1 .*user\W+(np.int64\()?1\W+item"):
        load_split_folder(d)
    d = make_split(tmp_path / "leak2", features=False)
    write(d / "val.csv", "user_id,item_id\n0,2\n")  # (0, 2) is in test
    with pytest.raises(SplitError, match="val and test overlap"):
        load_split_folder(d)


def test_split_folder_npy_too_few_rows(tmp_path):
    d = make_split(tmp_path / "s")
    np.save(d / "audio_feat.npy", np.zeros((4, 2), dtype=np.float16))  # test has item 4
    with pytest.raises(DataError, match=r"4 rows.*item id 4 occurs at line 3 of val.csv"):
        load_split_folder(d)


def test_split_folder_npy_needs_integer_ids(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    write(d / "train.csv", "user_id,item_id\n1,a\n")
    write(d / "test.csv", "user_id,item_id\n1,b\n")
    np.save(d / "audio_feat.npy", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(DataError, match="item ids must be integers"):
        load_split_folder(d)


def test_split_folder_bad_feature_files(tmp_path):
    d = make_split(tmp_path / "nan")
    arr = np.zeros((7, 2), dtype=np.float16)
    arr[3, 1] = np.nan
    np.save(d / "audio_feat.npy", arr)
    with pytest.raises(DataError, match="NaN.*row 3"):
        load_split_folder(d)
    d = make_split(tmp_path / "dup", features=False)
    pl.DataFrame({"item_id": [1, 1], "emb": [[1.0], [2.0]]}).write_parquet(d / "t_feat.parquet")
    with pytest.raises(DataError, match="duplicate item id") as info:
        load_split_folder(d)
    assert info.value.line == 1
    d = make_split(tmp_path / "ragged", features=False)
    pl.DataFrame({"item_id": [1, 2], "emb": [[1.0], [2.0, 3.0]]}).write_parquet(d / "t_feat.parquet")
    with pytest.raises(DataError, match="2 values") as info:
        load_split_folder(d)
    assert info.value.line == 2
    d = make_split(tmp_path / "both")
    pl.DataFrame({"item_id": [1], "emb": [[1.0]]}).write_parquet(d / "audio_feat.parquet")
    with pytest.raises(DataError, match="two feature files for modality 'audio'"):
        load_split_folder(d)


def test_split_folder_missing_and_malformed_parts(tmp_path):
    d = make_split(tmp_path / "s", features=False)
    (d / "test.csv").unlink()
    with pytest.raises(DataError, match="no test file"):
        load_split_folder(d)
    with pytest.raises(DataError, match="not a directory"):
        load_split_folder(tmp_path / "absent")
    d = make_split(tmp_path / "bad", features=False)
    write(d / "train.csv", "user_id,item_id,weight\n0,0,1\n0,1,-2\n")
    with pytest.raises(DataError, match="train.csv.*line 3.*'weight'.*negative"):
        load_split_folder(d)
    d = make_split(tmp_path / "noid", features=False)
    write(d / "train.csv", "user_id,item\n0,0\n")
    with pytest.raises(DataError, match="missing required column.*'item_id'"):
        load_split_folder(d)
    d = make_split(tmp_path / "two", features=False)
    pl.DataFrame({"user_id": [0], "item_id": [0]}).write_parquet(d / "train.parquet")
    with pytest.raises(DataError, match="several files for the train part"):
        load_split_folder(d)


def test_split_dataset_rejects_unshared_maps():
    a = Interactions.from_arrays([0, 1], [0, 1])
    b = Interactions.from_arrays([0], [1])
    with pytest.raises(SplitError, match="share one id map"):
        SplitDataset(train=a, test=b)


# ---------------------------------------------------------------------------------------- TikTok
@pytest.mark.shared
@pytest.mark.skipif(not (SHARED_DATA / "tiktok").is_dir(), reason="../shared/data/tiktok is absent")
def test_tiktok_split_folder():
    start = time.perf_counter()
    ds = load_split_folder(SHARED_DATA / "tiktok")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"loading TikTok took {elapsed:.2f} s"
    assert (ds.n_users, ds.n_items) == (9308, 6710)
    assert (ds.train.nnz, ds.val.nnz, ds.test.nnz) == (59541, 3051, 6130)
    for part in (ds.val, ds.test):
        assert part.user_map is ds.train.user_map and part.item_map is ds.train.item_map
    assert np.array_equal(ds.item_map.ids, np.arange(6710)) and np.array_equal(ds.user_map.ids, np.arange(9308))
    f = ds.item_features
    assert sorted(f.blocks) == ["audio", "image"]
    for block in f.blocks.values():
        assert block.shape == (6710, 128) and block.dtype == np.float32
    assert all(m.all() for m in f.masks.values())
    s = ds.summary()
    assert (s["cold_test_items"], s["cold_test_interactions"]) == (340, 449)
    assert (s["cold_val_items"], s["cold_val_interactions"]) == (193, 223)
    # val and test hold one item per user
    assert ds.test.user_counts().max() == 1 and ds.val.user_counts().max() == 1
