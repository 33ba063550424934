"""One SparkSession for avrec's distributed engine: :func:`get_session`.

pyspark is imported here, inside functions, so importing :mod:`recsys` (and ``avrec --help``)
never starts a JVM or even loads pyspark.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from recsys.errors import ConfigError

DEFAULT_MASTER = "local[*]"

#: Settings every avrec session gets unless the caller overrides them.
#: Arrow moves pandas batches between the JVM and the Python workers (mapInPandas needs it).
BASE_CONF: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
}

#: Extra settings for ``local[...]`` masters: a handful of shuffle partitions instead of 200 (one
#: machine gains nothing from more, and each costs a task), no web UI, no event log.
LOCAL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.eventLog.enabled": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}


def check_spark_available() -> None:
    """Raise :class:`ConfigError` naming what is missing when pyspark or Java cannot be used."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the Spark engine needs pyspark: pip install 'avrec[spark]' (and Java 17)"
        ) from None
    java_home = os.environ.get("JAVA_HOME")
    java_ok = shutil.which("java") is not None or (
        java_home is not None and os.path.exists(os.path.join(java_home, "bin", "java"))
    )
    if not java_ok:
        raise ConfigError(
            "the Spark engine needs Java 17: no `java` on PATH and JAVA_HOME is not set "
            "(install openjdk-17-jre-headless or set JAVA_HOME)"
        )


def get_session(master: str = DEFAULT_MASTER, conf: Mapping[str, Any] | None = None, app_name: str = "avrec"):
    """The running SparkSession for ``master``, or a new one with avrec's defaults.

    Parameters
    ----------
    master : str
        ``local[*]``, ``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://...``.
    conf : mapping, optional
        Extra Spark settings (``{"spark.executor.memory": "8g"}``); they override the defaults.
    app_name : str

    Returns
    -------
    pyspark.sql.SparkSession

    Raises
    ------
    ConfigError
        pyspark or Java is missing, or a session for another master is already running in this
        process (Spark allows one per process: stop it first or pass ``spark=`` to the function).
    """
    check_spark_available()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        running = active.sparkContext.master
        if running != master:
            raise ConfigError(
                f"a SparkSession for master {running!r} is already running in this process; "
                f"cannot start one for {master!r} (call spark.stop() first, or pass spark=)"
            )
        return active
    settings = dict(BASE_CONF)
    if master.startswith("local"):
        settings.update(LOCAL_CONF)
        # Local Python workers must run this interpreter (the one that has avrec, numpy and
        # pyarrow); pyspark starts `$PYSPARK_PYTHON`, else whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings.update({k: str(v) for k, v in (conf or {}).items()})
    builder = SparkSession.builder.master(master).appName(app_name)
    for k, v in settings.items():
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
    except Exception as e:  # the JVM did not start: wrong Java, blocked ports, bad master URL
        raise ConfigError(f"could not start Spark with master {master!r}: {type(e).__name__}: {e}") from e
    spark.sparkContext.setLogLevel("WARN")
    return spark


def resolve_session(spark=None, master: str = DEFAULT_MASTER):
    """``spark`` when given, else :func:`get_session` for ``master``."""
    return spark if spark is not None else get_session(master)
