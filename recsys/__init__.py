"""avrec core: data model, splits, recommenders, metrics, evaluation and the CLI.

Heavy libraries (torch, cv2, av, implicit, pyspark) are imported inside the functions that need
them, so importing :mod:`recsys` and running ``avrec --help`` stay fast.
"""

__version__ = "0.1.0"
