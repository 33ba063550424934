"""Recommenders sharing one contract (:class:`~recsys.models.base.Recommender`).

``make_model(name, **params)`` builds one by its CLI name; :func:`clone` copies one unfitted;
:func:`capabilities` says what a model (or class) declares it can do.
"""

from __future__ import annotations

from recsys.models.als import ALS
from recsys.models.base import CAPABILITIES, Recommender, capabilities, clone, top_n
from recsys.models.bridge import Bridge
from recsys.models.content import Content
from recsys.models.hybrid import Hybrid
from recsys.models.knn import ItemKNN, UserKNN
from recsys.models.popularity import Popularity

MODELS: dict[str, type[Recommender]] = {
    "popularity": Popularity,
    "itemknn": ItemKNN,
    "userknn": UserKNN,
    "als": ALS,
    "content": Content,
    "bridge": Bridge,
    "hybrid": Hybrid,
}


def make_model(name: str, **params) -> Recommender:
    """A recommender by name (``popularity``, ``itemknn``, ``userknn``, ``als``, ...)."""
    from recsys.errors import ConfigError

    key = name.strip().lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    try:
        return MODELS[key](**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for {name}: {exc}") from None


__all__ = ["ALS", "Bridge", "CAPABILITIES", "Content", "Hybrid", "ItemKNN", "MODELS", "Popularity", "Recommender",
           "UserKNN", "capabilities", "clone", "make_model", "top_n"]
