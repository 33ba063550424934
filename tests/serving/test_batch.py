from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.data import Interactions
from recsys.errors import ConfigError, UnknownIdError
from recsys.models import ALS
from serving.batch import recommend_all, write_recommendations


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    u = rng.integers(0, 30, 400)
    i = (u % 3) * 7 + rng.integers(0, 7, 400)
    x = Interactions.from_arrays([f"u{k}" for k in u], [f"i{k}" for k in i])
    return x, ALS(factors=4, regularization=0.05, alpha=5.0, weighting="none", iterations=5).fit(x)


def test_lists_match_the_model_and_skip_seen(fitted):
    x, m = fitted
    df = recommend_all(m, x, n=5)
    assert df.columns == ["user_id", "rank", "item_id", "score"]
    for uid in ("u0", "u7"):
        mine = df.filter(pl.col("user_id") == uid).sort("rank")
        idx, _ = m.recommend(x.user_map.index(uid), n=5)
        assert mine["item_id"].to_list() == x.item_ids[idx[idx >= 0]].tolist()
        assert mine["rank"].to_list() == list(range(1, len(mine) + 1))
        seen = set(x.item_ids[x.user_items(x.user_map.index(uid))].tolist())
        assert not seen & set(mine["item_id"].to_list())


def test_write_parquet_and_csv_for_listed_users(fitted, tmp_path):
    x, m = fitted
    p, secs = write_recommendations(m, x, tmp_path / "r.parquet", n=3, users=["u1", "u2"])
    df = pl.read_parquet(p)
    assert set(df["user_id"]) == {"u1", "u2"} and df.height == 6 and secs >= 0
    c, _ = write_recommendations(m, x, tmp_path / "r.csv", n=3, users=["u1"])
    assert pl.read_csv(c).height == 3
    with pytest.raises(ConfigError):
        write_recommendations(m, x, tmp_path / "r.txt")
    with pytest.raises(UnknownIdError):
        recommend_all(m, x, users=["nobody"])


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_streamed_blocks_hold_exactly_the_lists_of_recommend_all(fitted, tmp_path, monkeypatch, suffix):
    """Written in blocks of a few users (one Parquet row group each), the file holds the rows of
    ``recommend_all`` in the same order, with the same schema."""
    import pyarrow.parquet as pq

    import serving.batch as batch

    x, m = fitted
    whole = recommend_all(m, x, n=4)
    monkeypatch.setattr(batch, "ROWS_PER_BLOCK", 4 * 7)  # 7 users a block
    p, _ = write_recommendations(m, x, tmp_path / f"r{suffix}", n=4)
    if suffix == ".parquet":
        got = pl.read_parquet(p)
        assert pq.ParquetFile(p).metadata.num_row_groups == -(-x.active_users().size // 7)
        assert got.schema == whole.schema
    else:
        got = pl.read_csv(p, schema=whole.schema)
    assert got.equals(whole)
    assert not list(tmp_path.glob(".r.tmp-*"))  # the temporary file was renamed


def test_no_users_writes_an_empty_file_with_the_schema(fitted, tmp_path):
    x, m = fitted
    p, _ = write_recommendations(m, x, tmp_path / "none.parquet", n=3, users=[])
    df = pl.read_parquet(p)
    assert df.height == 0 and df.columns == ["user_id", "rank", "item_id", "score"]
