"""ALS's "auto" latent size and penalty (recsys.models.als.auto_settings): the documented rule,
resolved at fit into attributes ending in _, recorded, kept through fold-in and bundles."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.data import Interactions
from recsys.errors import ConfigError
from recsys.models import ALS
from recsys.models.als import AUTO_PENALTY_SHARE, auto_settings
from recsys.models.params import parse_params
from recsys.synthetic.planted import planted_catalog


def test_rule_by_hand():
    m = sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 1, 0, 0], [1, 1, 0, 0]], dtype=np.float32))
    got = auto_settings(m, alpha=2.0)
    # 3 users, 3 items with interactions; mass = 2 * 6 = 12
    per_user, per_item = 3 + 12 / 3, 3 + 12 / 3
    assert got["n_users"] == 3 and got["n_items"] == 3 and got["nnz"] == 5
    assert got["regularization"] == pytest.approx(AUTO_PENALTY_SHARE * np.sqrt(per_user * per_item), abs=1e-4)
    assert got["factors"] == 16  # sqrt(3) rounds up to 2, raised to the lower bound


def test_penalty_and_size_grow_with_the_log():
    small = planted_catalog(n_items=100, n_users=200, seed=0).interactions
    large = planted_catalog(n_items=1000, n_users=3000, n_groups=20, seed=0).interactions
    a, b = (auto_settings(x.matrix, 17.85) for x in (small, large))
    assert a["factors"] == 16 and b["factors"] == 32
    assert b["regularization"] > 3 * a["regularization"]


def test_resolved_at_fit_and_recorded():
    x = planted_catalog(seed=1).interactions
    m = ALS(num_threads=1).fit(x)
    assert (m.factors, m.regularization) == ("auto", "auto")  # settings stay as given
    assert m.user_factors_.shape == (x.n_users, m.factors_)
    rule = auto_settings(x.matrix, m.alpha, m.weighting_.transform(x.matrix))
    assert m.regularization_ == rule["regularization"] and m.factors_ == rule["factors"]
    assert m.resolved_params_["auto_rule"]["n_items"] == rule["n_items"]
    fixed = ALS(factors=8, regularization=3.0, num_threads=1).fit(x)
    assert fixed.resolved_params_ == {"factors_": 8, "regularization_": 3.0}
    row = x.matrix[:1]
    assert m.fold_in(row).shape == (1, m.factors_)


def test_bundle_round_trip_keeps_auto(tmp_path):
    from serving.bundle import load_bundle, save_bundle

    x = planted_catalog(seed=2).interactions
    m = ALS(num_threads=1).fit(x)
    save_bundle(m, tmp_path / "b")
    back = load_bundle(tmp_path / "b").model
    assert back.factors == "auto" and back.factors_ == m.factors_ and back.regularization_ == m.regularization_
    np.testing.assert_allclose(back.fold_in(x.matrix[:3]), m.fold_in(x.matrix[:3]), rtol=1e-5)


def test_auto_is_a_valid_cli_value_and_others_are_not():
    assert parse_params(["als.factors=auto", "als.regularization=auto"]) == {
        "als": {"factors": "auto", "regularization": "auto"}}
    with pytest.raises(ConfigError, match="als.factors"):
        parse_params(["als.factors=big"])
    x = Interactions.from_arrays([0, 1], [0, 1])
    with pytest.raises(ConfigError, match="'auto'"):
        ALS(regularization="strong").fit(x)
