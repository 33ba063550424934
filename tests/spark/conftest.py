"""Spark test fixtures: one local[2] session for the whole run, and small data with planted tastes.

Spark tests skip (never fail) when Java or pyspark is absent; everything else runs real Spark.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import numpy as np
import pytest


def spark_missing() -> str | None:
    """Why Spark cannot run here (no pyspark, no Java), or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'avrec[spark]')"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))):
        return "Java is not installed (no java on PATH, no JAVA_HOME)"
    return None


def pytest_collection_modifyitems(config, items):
    # pyspark 4.3 warns about pandas 3 on every Arrow conversion; the conversions used are tested here
    for item in items:
        if "tests/spark" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"))
            item.add_marker(pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"))


@pytest.fixture(scope="session")
def spark():
    reason = spark_missing()
    if reason:
        pytest.skip(reason)
    from recsys.spark.session import get_session

    session = get_session("local[2]", {
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.driver.memory": "1g",
    })
    yield session
    session.stop()


N_USERS, N_ITEMS, N_CLUSTERS = 60, 30, 3
COLD = np.arange(26, 30)  # no training interactions: the cold segment


def planted_split(seed: int = 0):
    """(train, test): string user ids, integer item ids; user u likes cluster u % 3; items 26..29 cold."""
    from recsys.data import Interactions

    rng = np.random.default_rng(seed)
    items = np.arange(N_ITEMS)
    users, its, ts = [], [], []
    for u in range(N_USERS):
        pool = items[items % N_CLUSTERS == u % N_CLUSTERS]
        for t, i in enumerate(rng.choice(pool, size=7, replace=False)):
            users.append(f"u{u:02d}"), its.append(int(i)), ts.append(float(t))
        users.append(f"u{u:02d}"), its.append(int(rng.integers(N_ITEMS))), ts.append(7.0)  # noise
    x = Interactions.from_arrays(users, its, timestamps=ts, user_ids=[f"u{u:02d}" for u in range(N_USERS)],
                                 item_ids=items)
    rows = np.repeat(np.arange(N_USERS), np.diff(x.matrix.indptr))
    held = np.isin(x.matrix.indices, COLD) | ((x.timestamps >= 5) & (rows % 4 != 0))  # every 4th user: no test
    return x.subset(~held), x.subset(held)


@pytest.fixture(scope="session")
def split():
    return planted_split()


@pytest.fixture(scope="session")
def spark_als(spark, split):
    """ALS fitted by Spark MLlib on the planted train part."""
    from recsys.spark.als import fit_als_spark

    return fit_als_spark(split[0], {"factors": 6, "iterations": 6, "regularization": 0.05, "alpha": 5.0}, spark=spark)
