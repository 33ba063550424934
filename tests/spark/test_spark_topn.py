"""recommend_all_spark writes the lists serving.batch writes (same schema, ties, seen filtering)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.models import ALS
from recsys.spark.topn import recommend_all_spark
from serving.batch import recommend_all


def read_spark(out):
    return pl.read_parquet(f"{out}/*.parquet").sort(["user_id", "rank"])


def test_same_lists_as_local_batch(spark, spark_als, split, tmp_path):
    train, _ = split
    out, seconds = recommend_all_spark(spark_als, train, tmp_path / "recs.parquet", n=25, spark=spark)
    got, want = read_spark(out), recommend_all(spark_als, train, n=25).sort(["user_id", "rank"])
    assert seconds > 0 and got.schema == want.schema
    assert dict(got.schema) == {"user_id": pl.String, "rank": pl.Int32, "item_id": pl.Int64, "score": pl.Float32}
    assert got.equals(want)
    # seen items never listed; 30 items - 7..8 seen leaves fewer than 25 for some users: short lists
    seen = {(u, i) for u, i in zip(train.user_ids[train.to_coo()[0]], train.item_ids[train.to_coo()[1]])}
    assert not any((u, i) in seen for u, i in zip(got["user_id"], got["item_id"]))
    assert got.group_by("user_id").len()["len"].min() < 25


def test_ties_users_and_csv(spark, split, tmp_path):
    train, _ = split
    rng = np.random.default_rng(1)
    m = ALS.from_factors(rng.integers(-1, 2, (train.n_users, 2)), rng.integers(-1, 2, (train.n_items, 2)),
                         train, weighting="none")
    users = ["u07", "u00", "u31"]
    out, _ = recommend_all_spark(m, train, tmp_path / "recs.csv", n=10, users=users, filter_seen=False,
                                 spark=spark, partitions=3)
    got = pl.read_csv(f"{out}/*.csv").sort(["user_id", "rank"])
    want = recommend_all(m, train, n=10, users=users, filter_seen=False).sort(["user_id", "rank"])
    assert got["item_id"].to_list() == want["item_id"].to_list()  # ties: item index ascending
    assert got["user_id"].to_list() == want["user_id"].to_list()
    np.testing.assert_array_equal(got["score"].to_numpy(), want["score"].to_numpy())


def test_output_name_is_checked(spark_als, split, tmp_path):
    with pytest.raises(ConfigError, match="must end in .parquet or .csv"):
        recommend_all_spark(spark_als, split[0], tmp_path / "recs.json")
