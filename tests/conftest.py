"""Fixtures shared by the test packages (the planted world and fitted models: tests/model_cases.py).

This directory is on ``sys.path`` while the tests run (pytest adds a conftest's directory), so
test modules import the shared table with ``from model_cases import ...``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from model_cases import fit_small, planted_data


@pytest.fixture(scope="session")
def planted():
    """(train, val, test, features) of the planted world."""
    return planted_data()


@pytest.fixture(scope="session")
def fitted_small(planted) -> Callable:
    """``fitted_small(name)``: the registry model ``name`` fitted on the planted world, once per session.

    The models are shared between test modules: never change one (``add_items``,
    ``choose_on_validation``); clone it or rebuild it from its state first.
    """
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = fit_small(name, planted)
        return cache[name]

    return get
