"""extract_catalog_spark writes what features.store.extract_catalog writes, into the same cache."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys.data import Catalog, ItemFeatures
from recsys.synthetic import write_clip


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    media = tmp_path_factory.mktemp("media")
    good = [write_clip(media / f"clip{k}.mp4", seed=k) for k in range(3)]
    data = good[0].read_bytes()
    (media / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (media / "zero.mp4").write_bytes(b"")
    ids = ["c0", "trunc", "c1", "zero", "c2", "dup", "missing"]
    paths = [good[0], media / "truncated.mp4", good[1], media / "zero.mp4", good[2], good[1], media / "nope.mp4"]
    return Catalog(np.asarray(ids, dtype=object), paths)


def test_same_outputs_and_cache_as_local(spark, catalog, tmp_path):
    from features.extract import ExtractorConfig
    from features.store import extract_catalog
    from recsys.spark.features import extract_catalog_spark

    config = ExtractorConfig(cnn=False)  # no torch in the Python workers: seconds saved, same code path
    local = extract_catalog(catalog, tmp_path / "local", config, workers=1, progress=False)
    dist = extract_catalog_spark(catalog, tmp_path / "spark", config, spark=spark)
    assert (dist.executor, dist.n_ok, dist.n_failed, dist.n_cached) == ("spark", 4, 3, 0)
    assert dist.failures == local.failures  # same rows, paths and reasons
    assert {i for i, _, _ in dist.failures} == {"trunc", "zero", "missing"}
    assert dist.video_seconds == pytest.approx(3.0, abs=0.2)  # clip1 and its duplicate extracted once
    a, b = ItemFeatures.load(tmp_path / "local"), ItemFeatures.load(tmp_path / "spark")
    assert set(a.blocks) == set(b.blocks) == {"audio", "video_desc"}
    for name in a.blocks:
        np.testing.assert_allclose(b.blocks[name], a.blocks[name], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.fused, a.fused, rtol=1e-5, atol=1e-5)
    assert pl.read_parquet(tmp_path / "spark" / "items.parquet").equals(pl.read_parquet(tmp_path / "local" / "items.parquet"))
    # one cache: the local run on the Spark folder extracts nothing, and a Spark re-run neither
    cache = tmp_path / "spark" / "cache" / config.key()
    assert len(list(cache.glob("*.npz"))) == 3 and len(list(cache.glob("*.failed.json"))) == 2
    again = extract_catalog(catalog, tmp_path / "spark", config, workers=1, progress=False)
    assert again.executor == "none" and again.n_cached == 6
    rerun = extract_catalog_spark(catalog, tmp_path / "spark", config, spark=spark)
    assert (rerun.executor, rerun.n_cached, rerun.failures) == ("none", 6, local.failures)


def crashing_extract(path, config, audio_path=None):
    """Kills its Python worker on a file named crash*, else the real extractor."""
    from features.extract import extract_file

    if Path(path).name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    return extract_file(path, config, audio_path=audio_path)


def test_a_file_that_kills_its_worker_is_isolated(spark, catalog, tmp_path):
    from pyspark import cloudpickle  # pyspark ships its own copy

    from features.extract import ExtractorConfig
    from recsys.spark.features import extract_catalog_spark

    cloudpickle.register_pickle_by_value(__import__(__name__))  # tests are not importable on workers
    crash = tmp_path / "crash.mp4"
    crash.write_bytes(catalog.paths[0].read_bytes() + b"x")  # new content: not cached
    cat = Catalog(np.asarray(["c0", "crash", "c1"], dtype=object), [catalog.paths[0], crash, catalog.paths[2]])
    rep = extract_catalog_spark(cat, tmp_path / "out", ExtractorConfig(cnn=False), extract_fn=crashing_extract,
                                spark=spark)
    assert rep.n_ok == 2 and [(i, r) for i, _, r in rep.failures] == [
        ("crash", "the worker process died while extracting this file (a crash in a decoder?)")]
