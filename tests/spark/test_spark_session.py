"""Session creation: clear errors without Java or pyspark; pyspark never loaded by `import recsys`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from recsys.errors import ConfigError
from recsys.spark import session


def test_missing_java_is_a_config_error(monkeypatch):
    monkeypatch.setattr(session.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ConfigError, match="needs Java 17"):
        session.check_spark_available()


def test_missing_pyspark_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'avrec\[spark\]'"):
        session.check_spark_available()


def test_cli_and_engine_modules_do_not_import_pyspark():
    code = ("import sys, recsys.cli, recsys.spark, recsys.spark.als, recsys.spark.topn, recsys.spark.evaluation;"
            "print('pyspark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_one_master_per_process(spark):
    assert session.get_session("local[2]") is spark
    with pytest.raises(ConfigError, match=r"master 'local\[2\]' is already running"):
        session.get_session("local[3]")
