"""Evaluation protocols: every result names what it learned from; refit learns from train+val and
excludes train+val items from test; a table never mixes protocols."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.data import Interactions
from recsys.errors import ConfigError
from recsys.evaluation import EvalResult
from recsys.jobs.evaluate import EvalData, run_evaluation
from recsys.jobs.fit import fit_model
from recsys.models import MODELS, Popularity
from recsys.report import check_one_protocol, write_report
from recsys.split import Split


def _data():
    """Planted tastes: user u likes items of group u % 3; each user holds one val and one test item."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(60):
        pool = np.arange(30)[np.arange(30) % 3 == u % 3]
        for i in rng.choice(pool, size=6, replace=False):
            users.append(u), items.append(int(i))
    x = Interactions.from_arrays(users, items, user_ids=np.arange(60), item_ids=np.arange(30))
    pos = np.arange(x.nnz) - x.matrix.indptr[np.repeat(np.arange(60), np.diff(x.matrix.indptr))]
    train, val, test = x.subset(pos < 4), x.subset(pos == 4), x.subset(pos == 5)
    return EvalData("planted", Split(train, test, val, name="planted"), None, {})


def test_refit_learns_from_train_plus_val(tmp_path):
    data = _data()
    quiet = lambda m: None  # noqa: E731
    (pub,), _ = run_evaluation(data, ["popularity"], ks=(5,), log=quiet)
    (ref,), _ = run_evaluation(data, ["popularity"], ks=(5,), protocol="refit", log=quiet,
                               json_out=tmp_path / "r.json", report_dir=tmp_path / "rep")
    assert (pub.protocol, pub.learned_from) == ("published", "train")
    assert (ref.protocol, ref.learned_from) == ("refit", "train+val")
    assert pub.segments["all"] != ref.segments["all"]  # val changed the popularity counts
    meta = json.loads((tmp_path / "r.json").read_text())
    assert meta["_meta"]["protocol"] == "refit" and meta["popularity"]["learned_from"] == "train+val"
    assert (tmp_path / "rep" / "results.md").read_text().startswith("Protocol: **refit**")


def test_protocol_errors():
    data = _data()
    with pytest.raises(ConfigError, match="protocol"):
        run_evaluation(data, ["popularity"], protocol="leaky", log=lambda m: None)
    no_val = EvalData("x", Split(data.split.train, data.split.test, None), None, {})
    with pytest.raises(ConfigError, match="validation part"):
        run_evaluation(no_val, ["popularity"], protocol="refit", log=lambda m: None)


class _ValPopularity(Popularity):
    """Popularity that declares ``learns_from_validation``: records what it was shown on val."""

    name = "valpop"
    learns_from_validation = True

    def choose_on_validation(self, val):
        self.choice_ = {"rule": "counted the validation part", "val_interactions": int(val.nnz)}
        return self.choice_

    def validation_choice(self) -> dict:
        return dict(getattr(self, "choice_", {}))


def test_the_jobs_read_the_declared_validation_capability(monkeypatch):
    """fit_model asks a model to choose on val only when its class declares learns_from_validation,
    and run_evaluation reports model.validation_choice() as chosen_on_val."""
    data = _data()
    train, val = data.split.train, data.split.val
    assert fit_model(_ValPopularity(), train, None, val).validation_choice() == {
        "rule": "counted the validation part", "val_interactions": val.nnz}
    assert fit_model(_ValPopularity(), train, None, None).validation_choice() == {}  # no val: nothing chosen
    assert fit_model(Popularity(), train, None, val).validation_choice() == {}  # does not learn from val

    monkeypatch.setitem(MODELS, "valpop", _ValPopularity)
    quiet = lambda m: None  # noqa: E731
    (chooser, plain), _ = run_evaluation(data, ["valpop", "popularity"], ks=(5,), log=quiet)
    assert chooser.params["chosen_on_val"] == {"rule": "counted the validation part", "val_interactions": val.nnz}
    assert "chosen_on_val" not in plain.params
    assert chooser.segments["all"] == plain.segments["all"]  # val chose; it never became training data


def test_a_table_never_mixes_protocols(tmp_path):
    seg = {"all": {"recall@5": 0.1, "ndcg@5": 0.1, "users": 1}}
    a = EvalResult("als", seg, (5,), protocol="published", learned_from="train")
    b = EvalResult("als", seg, (5,), protocol="refit", learned_from="train+val")
    assert check_one_protocol([a, a]) == "published"
    with pytest.raises(ConfigError, match="cannot share one table"):
        write_report(tmp_path, [a, b], 5)
