"""Data model and loaders: :class:`Interactions`, :class:`IdMap`, :class:`ItemFeatures`, :class:`Catalog`."""

from recsys.data.interactions import IdMap, Interactions, check_disjoint

__all__ = ["IdMap", "Interactions", "check_disjoint"]
