"""The one load step (recsys.jobs.load) behind ``avrec evaluate`` and ``avrec fit``: both jobs see
the same interactions and the same fused features of a split folder, and refuse the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.jobs.evaluate import load_eval_data
from recsys.jobs.fit import fit_bundle
from recsys.jobs.load import LogSpec, load_data


def _split_folder(d: Path) -> Path:
    """6 users, 8 items (item 7 only in the feature files), raw audio and image blocks."""
    d.mkdir(parents=True)
    rows = [(u, i) for u in range(6) for i in range(7) if (u + i) % 3 == 0]
    (d / "train.csv").write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in rows[:-4]))
    (d / "val.csv").write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in rows[-4:-2]))
    (d / "test.csv").write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in rows[-2:]))
    rng = np.random.default_rng(0)
    np.save(d / "audio_feat.npy", rng.normal(size=(8, 4)).astype(np.float32))
    np.save(d / "image_feat.npy", rng.normal(size=(8, 3)).astype(np.float32))
    return d


def test_evaluate_and_fit_read_a_split_folder_through_one_step(tmp_path):
    from features.fusion import Fusion
    from recsys.data.loaders import load_split_folder
    from serving.bundle import load_bundle

    d = _split_folder(tmp_path / "toy")
    loaded = load_data(dataset=str(d))
    assert loaded.name == "toy" and loaded.log is None and loaded.source == {"dataset": str(d.resolve())}
    # raw blocks are fused once, and the statistics kept: they fuse the raw rows the same way again
    raw = load_split_folder(d).item_features
    assert raw.fused is None and isinstance(loaded.fusion, Fusion)
    np.testing.assert_array_equal(loaded.fusion.transform(raw).fused, loaded.item_features.fused)
    expected = loaded.features_for(loaded.train.item_map).fused

    data = load_eval_data(dataset=str(d))
    assert data.name == "toy" and data.split.train.nnz == loaded.train.nnz
    np.testing.assert_array_equal(data.item_features.fused, expected)

    out = fit_bundle("content", tmp_path / "bundle", dataset=str(d), params={"half_life_days": None},
                     log_fn=lambda m: None)
    bundle = load_bundle(out)
    np.testing.assert_array_equal(bundle.item_features.fused, expected)
    assert bundle.fusion is not None and bundle.manifest["extra"]["source"] == loaded.source
    np.testing.assert_array_equal(bundle.fusion.transform(raw).fused, expected)


def test_a_log_is_loaded_whole_and_split_by_evaluate(tmp_path):
    log = tmp_path / "clicks.csv"
    log.write_text("user_id,item_id,timestamp\n" + "".join(f"u{u},i{(u * 3 + k) % 9},{u * 10 + k}\n"
                                                          for u in range(8) for k in range(5)))
    loaded = load_data(log=LogSpec(str(log)))
    assert loaded.name == "clicks" and loaded.train is None and loaded.log.nnz == 40
    assert loaded.item_features is None and loaded.features_for(loaded.log.item_map) is None
    data = load_eval_data(log=LogSpec(str(log)), split="random", test_size=0.2, val_size=0.0)
    assert data.name == "clicks:random"
    assert data.split.train.nnz + data.split.test.nnz == 40


@pytest.mark.parametrize("call", [
    lambda p: load_data(),
    lambda p: load_data(dataset=str(p), log=LogSpec(str(p))),
    lambda p: load_eval_data(),
    lambda p: fit_bundle("popularity", p / "b", dataset=str(p), log=LogSpec(str(p))),
])
def test_exactly_one_source(tmp_path, call):
    with pytest.raises(ConfigError, match="exactly one of --dataset DIR or --log FILE"):
        call(tmp_path)
