"""Data model and loaders: :class:`Interactions`, :class:`IdMap`, :class:`ItemFeatures`, :class:`Catalog`."""

from recsys.data.catalog import Catalog
from recsys.data.interactions import IdMap, Interactions, check_disjoint
from recsys.data.item_features import ItemFeatures

__all__ = ["Catalog", "IdMap", "Interactions", "ItemFeatures", "check_disjoint"]
