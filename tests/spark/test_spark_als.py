"""fit_als_spark: Spark MLlib ALS exported as a local ALS, ids mapped as Interactions maps them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.loaders import read_log
from recsys.errors import ConfigError, DataError
from recsys.models import ALS
from recsys.spark.als import _ratings_from_file, fit_als_spark


def test_factors_become_a_fitted_local_als(spark_als, split):
    train, _ = split
    m = spark_als
    assert isinstance(m, ALS) and m.train_ is train
    assert m.user_factors_.shape == (train.n_users, 6) and m.item_factors_.shape == (train.n_items, 6)
    assert m.user_factors_.dtype == np.float32 and np.isfinite(m.user_factors_).all()
    assert m.get_params()["weighting"] == "none" and m.regularization == 0.05 and m.alpha == 5.0
    assert not m.item_factors_[train.item_counts() == 0].any()  # cold items: zero rows
    # planted tastes are learned: user u's top-3 unseen warm items lie in cluster u % 3
    idx, _ = m.recommend(np.arange(train.n_users), n=3, items=np.flatnonzero(train.item_counts() > 0))
    assert np.mean(idx % 3 == (np.arange(train.n_users) % 3)[:, None]) >= 0.85  # chance: 1/3
    # local scoring reproduces the factors' dot products
    np.testing.assert_allclose(m.score(3, 5), m.user_factors_[3] @ m.item_factors_[5], rtol=1e-6)


def test_parquet_log_maps_ids_as_read_log(spark, tmp_path):
    log = pd.DataFrame({
        "user": ["b", "a", "c", "a", "b", "a", "é"],
        "video": [30, 10, 20, 10, 20, 30, 10],
        "w": [1.0, 2.0, 1.0, 0.5, 3.0, 1.0, 1.0],  # (a, 10) repeated: summed to 2.5
    })
    path = tmp_path / "log.parquet"
    log.to_parquet(path)
    cols = {"user": "user", "item": "video", "weight": "w"}
    m = fit_als_spark(path, {"factors": 3, "iterations": 2}, log_columns=cols, spark=spark)
    ref = read_log(path, user="user", item="video", weight="w")
    assert m.train_.user_ids.tolist() == ref.user_ids.tolist() == ["a", "b", "c", "é"]
    assert m.train_.item_ids.tolist() == ref.item_ids.tolist() == [10, 20, 30]
    assert (m.train_.matrix != ref.matrix).nnz == 0 and m.train_.matrix[0, 0] == 2.5
    assert m.user_factors_.shape == (4, 3) and np.isfinite(m.user_factors_).all()


def test_csv_log_and_its_errors(spark, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,clicks\n5,7,1\n3,7,2\n5,9,1\n5,7,4\n")
    _, x = _ratings_from_file(spark, str(path), {"user": "user_id", "item": "item_id", "weight": "clicks"})
    ref = read_log(path, weight="clicks")
    assert x.user_ids.tolist() == ref.user_ids.tolist() == [3, 5] and x.item_ids.tolist() == [7, 9]
    assert (x.matrix != ref.matrix).nnz == 0 and x.matrix[1, 0] == 5.0
    with pytest.raises(DataError, match=r"column 'plays' not found.*clicks"):
        _ratings_from_file(spark, str(path), {"user": "user_id", "item": "item_id", "weight": "plays"})
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,clicks\n5,7,1\n3,7,-2\n")
    with pytest.raises(DataError, match=r"1 rows .* negative weight.*user 3"):
        _ratings_from_file(spark, str(bad), {"user": "user_id", "item": "item_id", "weight": "clicks"})


def test_settings_are_checked_before_spark_starts(split):
    with pytest.raises(ConfigError, match="no 'bm25' weighting"):
        fit_als_spark(split[0], {"weighting": "bm25"})
    with pytest.raises(ConfigError, match=r"unknown Spark ALS settings \['factor'\]"):
        fit_als_spark(split[0], {"factor": 8})
    with pytest.raises(ConfigError, match="factors and iterations"):
        fit_als_spark(split[0], {"factors": 0})
