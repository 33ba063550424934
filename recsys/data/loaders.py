"""Every interaction-log loader in one import: generic logs, MovieLens, split folders.

Each lives in its own module -- :mod:`recsys.data.logs` (:func:`read_log`, CSV/TSV/Parquet with named
columns), :mod:`recsys.data.movielens` (:func:`read_movielens`), :mod:`recsys.data.split_folder`
(:func:`load_split_folder`, :class:`SplitDataset`) -- and all follow the rules of
:mod:`recsys.data.log_rows` (ids, weights, timestamps, duplicates, errors naming file, line and
column). This module is the stable import path for them; ``recsys.data`` exports them too.
"""

from recsys.data.logs import DEFAULT_EVENT_WEIGHTS, read_log
from recsys.data.movielens import MOVIELENS_FORMATS, read_movielens
from recsys.data.split_folder import SPLIT_PARTS, SplitDataset, load_split_folder

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "MOVIELENS_FORMATS",
    "SPLIT_PARTS",
    "SplitDataset",
    "load_split_folder",
    "read_log",
    "read_movielens",
]
