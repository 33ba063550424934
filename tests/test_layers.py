"""The layers of DESIGN.md, checked from the source: who may import ``features``, ``training``,
``serving`` and the jobs.

Imports are read with :mod:`ast` (nothing is imported), so a lazy import inside a function counts
as much as one at the top of a file, and so does ``importlib.import_module("...")`` with a literal.

Rules
-----
1. The core (``recsys/data``, ``recsys/models``, ``recsys/metrics*``, ``recsys/split.py``,
   ``recsys/evaluation.py``) imports nothing from ``features``, ``serving``, the jobs or the CLI.
2. In ``recsys``, only the CLI, the jobs and the Spark engine import ``features``, ``training`` or
   ``serving``. Documented exception: the models may import ``training`` (``recsys.models.bridge``
   trains its network with ``training.bridge``; DESIGN draws training below the models).
3. Outside the jobs, only the CLI imports the jobs; nothing in ``recsys`` imports the CLI.
4. ``serving/bundle.py`` saves, loads and verifies: it imports no job and no Spark module.
5. ``features``, ``training`` and ``serving`` import neither the jobs nor the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("recsys", "features", "training", "serving")

CORE = ("recsys/data/", "recsys/models/", "recsys/metrics", "recsys/split.py", "recsys/evaluation.py")
ORCHESTRATION = ("recsys/cli.py", "recsys/jobs/", "recsys/spark/")
UPPER = ("features", "training", "serving")  # the packages the core must not reach
JOBS = ("recsys.jobs", "recsys.cli")
SPARK = ("recsys.spark", "pyspark")


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports, as absolute dotted names.

    ``from a.b import c`` yields ``a.b`` and ``a.b.c`` (``c`` may be a submodule); relative imports
    are resolved against ``module`` (the dotted name of the file; ``is_package`` for an
    ``__init__.py``); ``importlib.import_module`` and ``__import__`` calls with a literal name
    count too.
    """
    tree = ast.parse(source)
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = node.module.split(".") if node.module else []
            if node.level:  # relative: one dot is the file's own package, each further dot one up
                parts = package[: len(package) - (node.level - 1)] + parts
            base = ".".join(parts)
            found.add(base)
            found.update(".".join([*parts, alias.name]) for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _library_files() -> dict[str, set[str]]:
    """``{relative path: imported modules}`` of every .py file of the four packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            out[rel] = imported_modules(path.read_text(), module, is_package=path.name == "__init__.py")
    return out


FILES = _library_files()


def _violations(files: dict[str, set[str]], applies, forbidden) -> list[str]:
    return sorted(f"{rel} imports {m}" for rel, mods in files.items() if applies(rel)
                  for m in mods if forbidden(rel, m))


def layer_violations(files: dict[str, set[str]]) -> dict[str, list[str]]:
    """Every broken rule (the module docstring's numbering) with the offending imports."""
    return {
        "1 core imports no features/serving/jobs/cli": _violations(
            files, lambda rel: rel.startswith(CORE),
            lambda rel, m: _under(m, ("features", "serving", *JOBS))),
        "2 only cli, jobs and spark import features/training/serving": _violations(
            files, lambda rel: rel.startswith("recsys/") and not rel.startswith(ORCHESTRATION),
            lambda rel, m: _under(m, UPPER) and not (rel.startswith("recsys/models/") and _under(m, ("training",)))),
        "3 only the cli imports the jobs; nothing imports the cli": _violations(
            files, lambda rel: rel.startswith("recsys/") and not rel.startswith(("recsys/jobs/", "recsys/cli.py")),
            lambda rel, m: _under(m, JOBS)),
        "4 serving/bundle.py imports no job and no Spark module": _violations(
            files, lambda rel: rel == "serving/bundle.py", lambda rel, m: _under(m, (*JOBS, *SPARK))),
        "5 features/training/serving import no job and not the cli": _violations(
            files, lambda rel: rel.startswith(tuple(f"{p}/" for p in UPPER)), lambda rel, m: _under(m, JOBS)),
    }


def test_the_scan_sees_the_tree():
    # a scan that found no file (or no import) would pass every rule below
    for rel in ("recsys/cli.py", "recsys/jobs/evaluate.py", "recsys/jobs/fit.py", "recsys/jobs/load.py",
                "recsys/models/bridge.py", "recsys/evaluation.py", "serving/bundle.py", "features/fusion.py"):
        assert rel in FILES, rel
    assert "training.bridge" in FILES["recsys/models/bridge.py"]  # a lazy import inside a method
    assert "serving.bundle" in FILES["recsys/jobs/fit.py"]
    assert "recsys.jobs.fit" in FILES["recsys/cli.py"]


@pytest.mark.parametrize("rule", sorted(layer_violations({})))
def test_layer_rule(rule):
    assert layer_violations(FILES)[rule] == []


def test_the_rules_catch_each_kind_of_breach():
    """Each rule fires on a file that breaks it, and the allowed imports stay allowed."""
    bad = {
        "recsys/evaluation.py": imported_modules("def f():\n    from features.fusion import fuse\n",
                                                 "recsys.evaluation"),
        "recsys/data/x.py": imported_modules("from .. import jobs\n", "recsys.data.x"),  # relative: recsys.jobs
        "recsys/report.py": imported_modules("import importlib\nimportlib.import_module('serving.batch')\n",
                                             "recsys.report"),
        "recsys/split.py": imported_modules("from training import bridge\n", "recsys.split"),
        "recsys/spark/als.py": imported_modules("from recsys.jobs.fit import fit_model\n", "recsys.spark.als"),
        "serving/bundle.py": imported_modules("from recsys.spark import fit_als_spark\n", "serving.bundle"),
        "training/x.py": imported_modules("import recsys.cli\n", "training.x"),
    }
    found = layer_violations(bad)
    assert found["1 core imports no features/serving/jobs/cli"] == [
        "recsys/data/x.py imports recsys.jobs", "recsys/evaluation.py imports features.fusion",
        "recsys/evaluation.py imports features.fusion.fuse"]
    assert "recsys/report.py imports serving.batch" in found["2 only cli, jobs and spark import features/training/serving"]
    assert "recsys/split.py imports training.bridge" in found["2 only cli, jobs and spark import features/training/serving"]
    assert "recsys/spark/als.py imports recsys.jobs.fit" in found["3 only the cli imports the jobs; nothing imports the cli"]
    assert "serving/bundle.py imports recsys.spark" in found["4 serving/bundle.py imports no job and no Spark module"]
    assert found["5 features/training/serving import no job and not the cli"] == ["training/x.py imports recsys.cli"]

    allowed = {
        "recsys/models/bridge.py": imported_modules("from training.bridge import predict\n", "recsys.models.bridge"),
        "recsys/jobs/fit.py": imported_modules("from serving.bundle import save_bundle\n", "recsys.jobs.fit"),
        "recsys/cli.py": imported_modules("from recsys.jobs.fit import fit_bundle\n", "recsys.cli"),
        "recsys/spark/features.py": imported_modules("from features import store\n", "recsys.spark.features"),
        "serving/app.py": imported_modules("from serving.bundle import load_bundle\n", "serving.app"),
    }
    assert all(v == [] for v in layer_violations(allowed).values())
