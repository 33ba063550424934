"""The distributed engine: Apache Spark for ALS, top-n lists, evaluation and feature extraction.

Selected with ``--engine spark``. Everything here imports pyspark lazily (inside functions), so
``import recsys.spark`` is cheap and ``avrec --help`` never loads it; a missing pyspark or Java
raises :class:`~recsys.errors.ConfigError` on first use.

- :func:`get_session` (``recsys.spark.session``): a SparkSession for a master URL with local defaults.
- :func:`fit_als_spark` (``recsys.spark.als``): Spark MLlib ALS -> a local fitted ``recsys.models.ALS``.
- :func:`recommend_all_spark` (``recsys.spark.topn``): top-n lists of every user -> Parquet/CSV.
- :func:`evaluate_spark` (``recsys.spark.evaluation``): the local evaluation protocol in Spark tasks.
- :func:`extract_catalog_spark` (``recsys.spark.features``): feature extraction, one task per file group.
"""

from __future__ import annotations

from typing import Any

__all__ = ["extract_catalog_spark", "evaluate_spark", "fit_als_spark", "get_session", "recommend_all_spark"]

_WHERE = {
    "get_session": "recsys.spark.session",
    "fit_als_spark": "recsys.spark.als",
    "recommend_all_spark": "recsys.spark.topn",
    "evaluate_spark": "recsys.spark.evaluation",
    "extract_catalog_spark": "recsys.spark.features",
}


def __getattr__(name: str) -> Any:
    # Lazy: `from recsys.spark import fit_als_spark` loads only that module.
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'recsys.spark' has no attribute {name!r}")
