"""Session fixtures of the serving tests (the planted world and fitted models: tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def hybrid_bundle(tmp_path_factory, planted, fitted_small):
    """Path of a saved hybrid bundle on the planted data (with features, no media extractor)."""
    from serving.bundle import save_bundle

    model = fitted_small("hybrid")
    return save_bundle(model, tmp_path_factory.mktemp("bundles") / "hybrid", item_features=planted[3])


@pytest.fixture(scope="session")
def media_bundle(tmp_path_factory):
    """(bundle path, media root) of a bridge fitted on a 12-item catalog of real MP4 files."""
    from features.extract import ExtractorConfig
    from features.store import extract_catalog
    from recsys.data import Catalog
    from recsys.jobs.fit import fit_bundle
    from recsys.jobs.load import LogSpec
    from recsys.synthetic import generate_demo_catalog

    root = tmp_path_factory.mktemp("media")
    cat = generate_demo_catalog(root / "catalog", n_items=12, n_users=60, seed=1, n_clusters=4, duration_s=1.0,
                                workers=1)
    # hand-crafted descriptors only (no CNN), two tiny frames: extraction is ~30 ms a file
    config = ExtractorConfig(max_frames=2, frame_size=32, cnn=False)
    report = extract_catalog(Catalog.from_csv(cat.catalog_csv), root / "features", config=config, workers=1,
                             progress=False)
    assert report.n_failed == 0
    # cold_share=None: the list-share calibration needs cold catalog items, which a log covering
    # every item does not have (see the report to the lead)
    params = {"epochs": 30, "hidden": 32, "cold_share": None,
              "als_params": {"factors": 8, "regularization": 0.05, "alpha": 5.0, "weighting": "none"}}
    bundle = fit_bundle("bridge", root / "bundle", log=LogSpec(str(cat.interactions), weight="weight"),
                        features=str(root / "features"), params=params, log_fn=lambda m: None)
    return bundle, cat.root
