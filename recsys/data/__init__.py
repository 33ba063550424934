"""Data model and loaders: :class:`Interactions`, :class:`IdMap`, :class:`ItemFeatures`, :class:`Catalog`."""

from recsys.data.catalog import Catalog
from recsys.data.interactions import IdMap, Interactions, check_disjoint
from recsys.data.item_features import ItemFeatures
from recsys.data.logs import DEFAULT_EVENT_WEIGHTS, read_log
from recsys.data.movielens import read_movielens
from recsys.data.split_folder import SplitDataset, load_split_folder

__all__ = ["Catalog", "IdMap", "Interactions", "ItemFeatures", "check_disjoint"]
__all__ += ["DEFAULT_EVENT_WEIGHTS", "SplitDataset", "load_split_folder", "read_log", "read_movielens"]
