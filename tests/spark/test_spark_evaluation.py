"""evaluate_spark agrees with the local evaluation on the same factors, metric by metric (1e-6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.errors import ConfigError, SplitError
from recsys.evaluation import evaluate
from recsys.models import ALS, Popularity
from recsys.spark.evaluation import evaluate_spark

KS = (3, 5)


def assert_same(local, dist):
    assert set(dist.segments) == set(local.segments) == {"all", "warm", "cold", "warm_only", "cold_only"}
    n = 0
    for seg, row in local.segments.items():
        assert set(dist.segments[seg]) == set(row), seg
        for key, want in row.items():
            got = dist.segments[seg][key]
            assert (math.isnan(want) and math.isnan(got)) or abs(got - want) <= 1e-6, (seg, key, want, got)
            n += 1
    assert n == 81  # 5 segments x 7 metrics x 2 cut-offs, users, and auc + global_auc on all/warm/cold
    assert set(dist.beyond_accuracy) == set(local.beyond_accuracy)
    for key, want in local.beyond_accuracy.items():
        assert abs(dist.beyond_accuracy[key] - want) <= 1e-6, key
    for seg, curve in local.recall_curve.items():
        np.testing.assert_allclose(dist.recall_curve[seg], curve, atol=1e-6, equal_nan=True)


def test_spark_fitted_als_parity(spark, spark_als, split):
    train, test = split
    local = evaluate(spark_als, train, test, ks=KS, roc_negatives=0)
    dist = evaluate_spark(spark_als, train, test, KS, spark=spark)
    assert_same(local, dist)
    a = dist.segments["all"]
    assert a["users"] == int((test.user_counts() > 0).sum()) and dist.segments["cold"]["users"] > 0
    assert a["recall@5"] > 0.3 and a["auc"] > 0.6  # planted tastes are found


def test_implicit_fitted_als_and_from_factors_parity(spark, split):
    train, test = split
    fitted = ALS(factors=6, iterations=5, regularization=0.05, alpha=5.0, weighting="none", use_gpu=False).fit(train)
    rebuilt = ALS.from_factors(fitted.user_factors_, fitted.item_factors_, train, weighting="none")
    local = evaluate(fitted, train, test, ks=KS, roc_negatives=0)
    assert_same(local, evaluate_spark(rebuilt, train, test, KS, spark=spark, partitions=3, batch_size=7))


def test_tied_scores_parity(spark, split):
    """Integer factors in {-1, 0, 1}: many exact ties, in ranking (index order) and in AUC (half)."""
    train, test = split
    rng = np.random.default_rng(3)
    m = ALS.from_factors(rng.integers(-1, 2, (train.n_users, 2)), rng.integers(-1, 2, (train.n_items, 2)),
                         train, weighting="none")
    scores = m.scores(np.arange(train.n_users))
    assert len(np.unique(scores)) <= 5  # the ties are real
    assert_same(evaluate(m, train, test, ks=KS, roc_negatives=0), evaluate_spark(m, train, test, KS, spark=spark))


def test_bad_inputs(spark, spark_als, split):
    train, test = split
    with pytest.raises(SplitError):
        evaluate_spark(spark_als, train, train, KS, spark=spark)
    with pytest.raises(ConfigError, match="not one: use --engine local"):
        evaluate_spark(Popularity().fit(train), train, test, KS, spark=spark)
