"""Hyperparameter search on the validation part (never on test).

A seeded random search over a per-model space; each trial fits on train and ranks all items for
the validation users (train items excluded), scored by one metric (default ``ndcg@20``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError

# Each entry: ("choice", values) | ("loguniform", low, high) | ("int", low, high)
SEARCH_SPACES: dict[str, dict[str, tuple]] = {
    "als": {
        "factors": ("choice", [64, 128, 256]),
        "regularization": ("loguniform", 1e-2, 500.0),
        "alpha": ("loguniform", 0.5, 40.0),
        "iterations": ("choice", [10, 15, 20]),
        "weighting": ("choice", ["none", "bm25"]),
        "bm25_b": ("choice", [0.25, 0.5, 0.75, 1.0]),
    },
    "itemknn": {"k": ("choice", [20, 50, 100, 200, 400]), "shrink": ("choice", [0.0, 5.0, 20.0, 100.0])},
    "userknn": {"k": ("choice", [20, 50, 100, 200, 400]), "shrink": ("choice", [0.0, 5.0, 20.0, 100.0])},
}


def sample_params(space: dict[str, tuple], rng: np.random.Generator) -> dict[str, Any]:
    """One random point of ``space``."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "choice":
            v = spec[1][int(rng.integers(len(spec[1])))]
            out[name] = v.item() if isinstance(v, np.generic) else v
        elif kind == "loguniform":
            out[name] = float(np.exp(rng.uniform(np.log(spec[1]), np.log(spec[2]))))
        elif kind == "int":
            out[name] = int(rng.integers(spec[1], spec[2] + 1))
        else:
            raise ConfigError(f"unknown search-space kind {kind!r} for {name}")
    return out


@dataclass
class TuneResult:
    """Every trial (params, score, seconds) and the best one."""

    model: str
    metric: str
    trials: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        ok = [t for t in self.trials if np.isfinite(t["score"])]
        if not ok:
            raise ConfigError(f"no successful trial for {self.model}")
        return max(ok, key=lambda t: t["score"])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"model": self.model, "metric": self.metric, "best": self.best,
                                    "trials": self.trials}, indent=2))
        return path


def tune(
    model_name: str,
    train: Interactions,
    val: Interactions,
    *,
    n_trials: int = 20,
    metric: str = "ndcg@20",
    seed: int = 0,
    base_params: dict[str, Any] | None = None,
    space: dict[str, tuple] | None = None,
    include: list[dict[str, Any]] | None = None,
    item_features=None,
    log=None,
) -> TuneResult:
    """Random search of ``model_name`` hyperparameters on ``val``.

    Parameters
    ----------
    model_name : str
    train, val : Interactions
        Disjoint parts of one split (checked by the evaluation).
    n_trials : int
    metric : str
        ``<name>@<k>`` of the ``all`` segment to maximise.
    seed : int
    base_params : dict, optional
        Fixed parameters merged under every trial.
    space : dict, optional
        Override of :data:`SEARCH_SPACES` for this model.
    include : list of dict, optional
        Points evaluated first (e.g. the current defaults), so the search never does worse.
    log : callable, optional
        Called with a one-line message per trial.
    """
    from recsys.evaluation import evaluate
    from recsys.models import make_model

    space = space or SEARCH_SPACES.get(model_name)
    if not space:
        raise ConfigError(f"no search space for {model_name!r}; known: {sorted(SEARCH_SPACES)}")
    try:
        k = int(metric.split("@")[1])
    except (IndexError, ValueError):
        raise ConfigError(f"metric must look like 'ndcg@20', got {metric!r}") from None
    rng = np.random.default_rng(seed)
    points = list(include or []) + [sample_params(space, rng) for _ in range(n_trials)]
    result = TuneResult(model_name, metric)
    for i, params in enumerate(points):
        full = {**(base_params or {}), **params}
        t0 = time.perf_counter()
        model = make_model(model_name, **full).fit(train, item_features)
        r = evaluate(model, train, val, ks=(k,), auc=False, segments=False, roc_negatives=0)
        score = float(r.segments["all"][metric])
        result.trials.append({"params": full, "score": score, "seconds": round(time.perf_counter() - t0, 2),
                              "recall": float(r.segments["all"][f"recall@{k}"])})
        if log:
            log(f"[{i + 1}/{len(points)}] {model_name} {metric}={score:.4f} {full}")
    return result
