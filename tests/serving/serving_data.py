"""Serving test data: the planted world with content features and the model table, shared with the
model contract test (defined once in tests/model_cases.py)."""

from __future__ import annotations

from model_cases import COLD, N_CLUSTERS, N_ITEMS, N_USERS, SMALL, cluster, fit_small, planted_data

__all__ = ["COLD", "N_CLUSTERS", "N_ITEMS", "N_USERS", "SMALL", "cluster", "fit_small", "planted_data"]
