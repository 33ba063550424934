"""Every command refuses unusable arguments before it loads or fits anything (issue 16, item 3).

The evidence does not depend on timing: every loader, fit, bundle load, catalog read, extraction,
demo generation and encoder training is replaced by a tripwire that raises :class:`Ran`. A
refusal that came after the work would surface as ``Ran`` instead of exit code 2. The same checks
guard the Python API (the jobs), tested at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsys.cli import main
from recsys.errors import ConfigError


class Ran(Exception):
    """A tripwire fired: work started before the refusal."""


TRIPWIRES = [
    "recsys.data.loaders.read_log",
    "recsys.data.loaders.read_movielens",
    "recsys.data.loaders.load_split_folder",
    "recsys.data.item_features.ItemFeatures.load",
    "recsys.models.base.Recommender.fit",
    "recsys.tuning.tune",
    "serving.bundle.load_bundle",
    "serving.bundle.save_bundle",
    "recsys.data.catalog.Catalog.from_csv",
    "recsys.data.catalog.Catalog.scan",
    "features.store.extract_catalog",
    "recsys.synthetic.ensure_demo_catalog",
    "recsys.synthetic.generate_demo_catalog",
    "training.encoders.train_encoders",
]


@pytest.fixture()
def tripwires(monkeypatch):
    for target in TRIPWIRES:
        def fire(*args, _target=target, **kwargs):
            raise Ran(_target)

        monkeypatch.setattr(target, fire)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("validate-first")
    (d / "log.csv").write_text("user_id,item_id,timestamp\n" + "".join(
        f"u{u},i{(u * 3 + k) % 7},{u * 10 + k}\n" for u in range(12) for k in range(3)))
    (d / "events.csv").write_text("user_id,item_id,event\nu1,i1,view\nu1,i2,bookmark\nu2,i1,like\n")
    (d / "untimed.csv").write_text("user_id,item_id\nu1,i1\nu2,i2\n")
    split = d / "split"
    split.mkdir()
    (split / "train.csv").write_text("user_id,item_id\n0,1\n1,2\n")
    (split / "test.csv").write_text("user_id,item_id\n0,2\n1,1\n")
    bundle = d / "bundle"  # looks like a bundle to the checks, which never read it
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    feats = d / "features"
    feats.mkdir()
    (feats / "features.json").write_text("{}")
    (feats / "items.parquet").write_bytes(b"")
    (d / "notes").mkdir()
    (d / "notes" / "keep.txt").write_text("not a bundle")
    (d / "plain.txt").write_text("text\n")
    return {k: str(v) for k, v in {"LOG": d / "log.csv", "EVENTS": d / "events.csv", "UNTIMED": d / "untimed.csv",
                                   "SPLIT": split, "BUNDLE": bundle, "FEATS": feats, "NOTES": d / "notes",
                                   "FILE": d / "plain.txt", "MISSING": d / "missing.csv", "OUT": d / "out"}.items()}


# (command line, words the one-line error must contain)
REFUSALS = [
    # issue 16's three cases
    ("fit --log LOG --model popularity --out BUNDLE", ["--out", "exists", "--overwrite"]),
    ("evaluate --log LOG --models als,hybridd", ["unknown model 'hybridd'", "did you mean 'hybrid'",
                                                 "popularity, itemknn, userknn, als, content, bridge, hybrid"]),
    ("evaluate --log LOG --models popularity,hybrid", ["hybrid", "needs item features", "--features DIR"]),
    ("fit --log LOG --model hybrid --out OUT", ["hybrid", "needs item features", "--features DIR"]),
    ("evaluate --dataset SPLIT --models content", ["content", "--features DIR", "--dataset folder"]),
    # inputs: missing is "not found", a file for a folder says so
    ("evaluate --log MISSING", ["--log", "missing.csv: not found"]),
    ("info --dataset MISSING", ["--dataset", "not found"]),
    ("fit --dataset FILE --model als --out OUT", ["--dataset", "is a file; expected a split folder"]),
    ("evaluate --log LOG --features NOTES", ["--features", "is not a features folder", "avrec features"]),
    ("train-encoders --features FEATS --catalog MISSING", ["--catalog", "not found"]),
    ("train-encoders --features MISSING --catalog FILE", ["--features", "not found", "avrec features"]),
    ("train-encoders --features FEATS --catalog FILE --device gpu", ["--device"]),
    ("recommend --bundle MISSING --out OUT/r.csv", ["--bundle", "not found", "avrec fit"]),
    ("recommend --bundle BUNDLE --out OUT/r.csv --users MISSING", ["--users", "not found"]),
    ("serve --bundle MISSING", ["--bundle", "not found"]),
    ("features --catalog MISSING --out OUT/f", ["--catalog", "not found"]),
    # outputs
    ("fit --log LOG --model popularity --out NOTES --overwrite", ["not a bundle", "--overwrite only replaces"]),
    ("fit --log LOG --model popularity --out FILE", ["--out", "is a file"]),
    ("recommend --bundle BUNDLE --out OUT/r.txt", ["--out must end in .parquet or .csv"]),
    ("tags --bundle BUNDLE --out OUT/t.json", ["--out must end in .parquet or .csv"]),
    ("evaluate --log LOG --json NOTES", ["--json", "is a folder"]),
    ("evaluate --log LOG --report FILE", ["--report", "is a file"]),
    ("features --catalog FILE --out FILE", ["--out", "is a file"]),
    ("demo-data --out FILE", ["--out", "is a file"]),
    # parameters and numbers
    ("fit --log LOG --model als --param itemknn.k=5 --out OUT", ["--param itemknn", "--model als only"]),
    ("evaluate --log LOG --models als --param als.nosuch=1", ["als has no setting 'nosuch'"]),
    ("evaluate --log LOG --models als --param als.factors=0", ["--param als.factors=0", "must be >= 1"]),
    ("fit --log LOG --model itemknn --param itemknn.k=0 --out OUT", ["--param itemknn.k=0"]),
    ("evaluate --log LOG --models hybrid --features FEATS --param hybrid.cold_share=1.5", ["cold_share must be in"]),
    ("evaluate --log LOG --models hybrid --features FEATS --param 'hybrid.als_params={\"iterations\":0}'",
     ["als_params: factors and iterations must be >= 1"]),
    ("evaluate --log LOG --models als --param itemknn.k=5", ["--param itemknn", "not evaluated"]),
    ("evaluate --log LOG --models popularity --tune", ["--tune als", "not evaluated"]),
    ("evaluate --log LOG --models popularity --tune popularity", ["no search space", "als, itemknn, userknn"]),
    ("evaluate --log LOG --tune --val-size 0", ["--tune", "--val-size > 0"]),
    ("evaluate --dataset SPLIT --protocol refit", ["--protocol refit", "val.csv"]),
    ("evaluate --log LOG --tune-metric auc", ["--tune-metric", "ndcg@20"]),
    ("evaluate --log LOG --trials 0", ["--trials must be >= 1"]),
    ("evaluate --log LOG --test-size 1.5", ["--test-size must be in [0, 1)"]),
    ("info --log LOG --test-size 0.6 --val-size 0.5", ["--test-size + --val-size must be < 1"]),
    ("evaluate --log UNTIMED", ["--split temporal", "no timestamp column", "--time-col", "--split random"]),
    ("recommend --bundle BUNDLE --out OUT/r.csv --n 0", ["--n must be >= 1"]),
    ("search --bundle BUNDLE --query ' '", ["--query is empty"]),
    ("search --bundle BUNDLE --query cat --user-weight 2", ["--user-weight must be in [0, 1]"]),
    ("features --catalog FILE --out OUT/f --fusion weighted", ["--fusion weighted needs --fusion-weights"]),
    ("features --catalog FILE --out OUT/f --fusion-dim 8", ["--fusion-dim applies to --fusion pca"]),
    ("features --catalog FILE --out OUT/f --fps 0", ["--fps must be > 0"]),
    ("features --catalog FILE --out OUT/f --text-model MISSING", ["--text-model", "not found"]),
    ("demo --items 3 --out OUT/demo", ["--items must be >= 16"]),
    ("demo-data --out OUT/d --users 1", ["--users must be >= 2"]),
    ("fit --log LOG --model als --engine spark --out OUT --overwrite --param als.factors=x",
     ["--param als.factors", "expected an integer"]),
    ("fit --log LOG --model itemknn --engine spark --out OUT", ["--engine spark fits ALS only"]),
    # event mapping (item 5)
    ("evaluate --log EVENTS --split random --event-weights view:1",
     ["--event-weights", "'view:1' is not event=weight"]),
    ("evaluate --log EVENTS --split random --event-weights view=x", ["--event-weights", "must be a number"]),
    ("evaluate --log EVENTS --split random --event-weights view=-1", ["--event-weights", ">= 0"]),
    ("info --log EVENTS --split random --event-weights view=1,view=2", ["--event-weights names 'view' twice"]),
    ("info --log LOG --split random --event-weights view=1", ["--event-weights needs an event column", "--event-col"]),
    ("info --log EVENTS --split random --unknown-events keep", ["--unknown-events must be drop, raise or a weight"]),
    ("info --log EVENTS --split random --event-weights view=1 --weight-col w", ["--event-weights", "--weight-col"]),
    ("info --log LOG --movielens --event-weights view=1", ["--movielens", "--event-weights do not apply"]),
]


def _argv(line: str, files: dict[str, str]) -> list[str]:
    import shlex

    out = []
    for word in shlex.split(line):
        for key, value in files.items():
            if word == key or word.startswith(key + "/"):
                word = value + word[len(key):]
        out.append(word)
    return out


@pytest.mark.parametrize(("line", "words"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_before_any_work(files, tripwires, capsys, line, words):
    try:
        rc = main(_argv(line, files))
    except Ran as ran:
        pytest.fail(f"{ran} ran before `avrec {line}` was refused")
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "error:" in err, err
    for w in words:
        assert w in err, (w, err)


def test_valid_arguments_reach_the_work(files, tripwires):
    """The tripwires do fire when the arguments are fine: the refusals above are not vacuous."""
    with pytest.raises(Ran, match="read_log"):
        main(_argv("evaluate --log LOG --split random --models popularity", files))
    with pytest.raises(Ran, match="load_bundle"):
        main(_argv("recommend --bundle BUNDLE --out OUT/r.csv", files))
    with pytest.raises(Ran, match="read_log"):
        main(_argv("fit --log LOG --model popularity --out OUT/b", files))


# ------------------------------------------------------------------------------- the Python API
def test_jobs_refuse_before_fitting(files, tripwires):
    from recsys.jobs.evaluate import check_evaluate
    from recsys.jobs.fit import fit_bundle
    from recsys.jobs.load import LogSpec
    from recsys.jobs.recommend import recommend_bundle

    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        fit_bundle("popularity", files["BUNDLE"], log=LogSpec(files["LOG"]))
    with pytest.raises(ConfigError, match="unknown model 'hybridd'"):
        check_evaluate(log=LogSpec(files["LOG"]), models=["als", "hybridd"])
    with pytest.raises(ConfigError, match="n must be >= 1"):
        recommend_bundle(files["BUNDLE"], Path(files["OUT"]) / "r.csv", n=0)


def test_run_evaluation_checks_every_model_before_the_first_fit(files, monkeypatch):
    """Loaded data without features and models [popularity, hybrid]: the refusal comes before
    popularity is fitted (run_evaluation checks the whole list first)."""
    from recsys.jobs.evaluate import load_eval_data, run_evaluation
    from recsys.jobs.load import LogSpec

    data = load_eval_data(log=LogSpec(files["LOG"]), split="random", val_size=0.0)
    monkeypatch.setattr("recsys.models.base.Recommender.fit", lambda *a, **k: (_ for _ in ()).throw(Ran("fit")))
    with pytest.raises(ConfigError, match="hybrid need"):
        run_evaluation(data, ["popularity", "hybrid"], log=lambda m: None)
    with pytest.raises(ConfigError, match="--tune needs a validation part"):
        run_evaluation(data, ["popularity", "als"], tune_models=["als"], log=lambda m: None)


# ---------------------------------------------------------------------------- event mapping, end to end
def test_event_weights_reach_the_loader(tmp_path, capsys):
    """``--event-weights`` travels CLI -> LogSpec -> read_log; unknown events are named with counts
    on stderr and dropped, or kept with ``--unknown-events W``."""
    from serving.bundle import load_bundle

    log = tmp_path / "events.csv"
    rows = [("u1", "a", "view"), ("u1", "b", "like"), ("u1", "c", "bookmark"), ("u2", "a", "bookmark"),
            ("u2", "b", "skip"), ("u2", "c", "skip"), ("u2", "d", "skip"), ("u3", "a", "view")]
    log.write_text("user_id,item_id,event\n" + "".join(f"{u},{i},{e}\n" for u, i, e in rows))

    assert main(["fit", "--log", str(log), "--model", "popularity", "--out", str(tmp_path / "b1"),
                 "--event-weights", "view=1,like=3,bookmark=2"]) == 0
    cap = capsys.readouterr()
    assert "event weights view=1,like=3,bookmark=2" in cap.out
    (warning,) = [line for line in cap.err.splitlines() if line.startswith("warning:")]
    assert "'skip' (3)" in warning and "dropped" in warning and "--unknown-events" in warning
    x = load_bundle(tmp_path / "b1").interactions
    w = {(x.user_ids[r], x.item_ids[c]): float(v) for r, c, v in zip(*x.to_coo()[:3])}
    assert w == {("u1", "a"): 1.0, ("u1", "b"): 3.0, ("u1", "c"): 2.0, ("u2", "a"): 2.0, ("u3", "a"): 1.0}

    assert main(["fit", "--log", str(log), "--model", "popularity", "--out", str(tmp_path / "b2"),
                 "--event-weights", "view=1,like=3,bookmark=2", "--unknown-events", "0.5"]) == 0
    assert "those rows get weight 0.5" in capsys.readouterr().err
    x = load_bundle(tmp_path / "b2").interactions
    assert x.nnz == len(rows) and np.isclose(x.matrix.sum(), 1 + 3 + 2 + 2 + 3 * 0.5 + 1)

    # the defaults name bookmark too: it is unknown to them (like=2 there)
    assert main(["info", "--log", str(log), "--split", "random", "--val-size", "0"]) == 0
    cap = capsys.readouterr()
    assert "(the defaults; set them with --event-weights)" in cap.out
    assert "'skip' (3), 'bookmark' (2)" in cap.err
    assert json.loads(cap.out[cap.out.index("{"):])["users"] == 2  # u2 had only bookmark and skip rows
    assert main(["info", "--log", str(log), "--split", "random", "--unknown-events", "raise"]) == 2
    assert "unknown event 'bookmark'" in capsys.readouterr().err
