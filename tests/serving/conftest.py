"""Session fixtures of the serving tests (data in serving_data.py)."""

from __future__ import annotations

import pytest
from serving_data import fit_small, planted_data


@pytest.fixture(scope="session")
def planted():
    return planted_data()


@pytest.fixture(scope="session")
def hybrid_bundle(tmp_path_factory, planted):
    """Path of a saved hybrid bundle on the planted data (with features, no media extractor)."""
    from serving.bundle import save_bundle

    model = fit_small("hybrid", planted)
    return save_bundle(model, tmp_path_factory.mktemp("bundles") / "hybrid", item_features=planted[3])
