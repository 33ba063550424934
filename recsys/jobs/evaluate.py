"""The ``avrec evaluate`` job: load -> split -> (tune ->) fit -> evaluate -> report.

:func:`load_eval_data` turns ``--dataset``/``--log`` into a split with aligned item features (an
:class:`EvalData`); :func:`run_evaluation` fits every model under a named protocol, scores it on
test and writes the reports. Each takes plain arguments and returns what it produced, so the CLI
stays a thin parser.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError
from recsys.jobs.fit import fit_model
from recsys.jobs.load import LogSpec, load_data
from recsys.split import Split, make_split

Log = Callable[[str], None]


@dataclass
class EvalData:
    """A split ready for evaluation, with optional item features aligned to its item map."""

    name: str
    split: Split
    item_features: Any = None
    info: dict = field(default_factory=dict)


def load_eval_data(
    dataset: str | None = None,
    log: LogSpec | None = None,
    split: str = "temporal",
    test_size: float = 0.2,
    val_size: float = 0.1,
    seed: int = 0,
    features: str | None = None,
) -> EvalData:
    """A split folder as it is, or a log split by ``split``; features aligned to the train item map.

    Reads through :func:`recsys.jobs.load.load_data` (the load step ``avrec fit`` shares); the
    split summary is ``info``.
    """
    loaded = load_data(dataset, log, features)
    if loaded.log is None:
        sp_ = Split(loaded.train, loaded.test, loaded.val, name=f"folder:{loaded.name}")
        name = loaded.name
    else:
        sp_ = make_split(loaded.log, split, test_size=test_size, val_size=val_size, seed=seed)
        name = f"{loaded.name}:{split}"
    return EvalData(name, sp_, loaded.features_for(sp_.train.item_map), sp_.summary())


#: evaluation protocols: what every model learns from (named in every result)
PROTOCOLS = {
    "published": "every model learns from train only; val chooses settings (--tune, the hybrid's cold share)",
    "refit": "settings chosen on val as in published, then every model refitted on train+val; test scored once",
}


def run_evaluation(
    data: EvalData,
    models: Sequence[str],
    ks: Sequence[int] = (10, 20),
    params: dict[str, dict[str, Any]] | None = None,
    tune_models: Sequence[str] = (),
    n_trials: int = 20,
    tune_metric: str | None = None,
    report_dir: str | Path | None = None,
    json_out: str | Path | None = None,
    log: Log = print,
    seed: int = 0,
    engine: str = "local",
    spark_master: str = "local[*]",
    protocol: str = "published",
):
    """Fit every model under ``protocol``, evaluate on test, write reports.

    ``published``: models learn from train only; val chooses settings (``tune_models``, and the
    settings a model chooses itself after fitting, see ``Recommender.learns_from_validation``).
    ``refit``: settings are chosen the same way, then every model is refitted with them on
    train+val and test is scored once, excluding each user's train+val items. Every result
    records its protocol and the parts it learned from.

    With ``engine="spark"`` ALS is fitted by Spark MLlib and dot-product models (ALS, bridge,
    content) are evaluated in Spark tasks (same metrics as local to 1e-6); other models are
    fitted and evaluated locally.

    Returns
    -------
    results : list of EvalResult
    tuned : dict of model -> TuneResult
    """
    from recsys import report
    from recsys.evaluation import evaluate
    from recsys.models import make_model
    from recsys.tuning import tune

    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    params = params or {}
    split = data.split
    if protocol == "refit" and split.val is None:
        raise ConfigError("--protocol refit needs a validation part (val.csv, or --val-size > 0)")
    tuned = {}
    results = []
    kmax = max(ks)
    metric = tune_metric or f"ndcg@{kmax}"
    seen = split.train if protocol == "published" else split.train.union(split.val)
    for name in models:
        p = dict(params.get(name, {}))
        if name in tune_models:
            if split.val is None:
                raise ConfigError("--tune needs a validation part (val.csv, or --val-size > 0)")
            log(f"tuning {name} on validation ({n_trials} trials, {metric})")
            default = make_model(name).get_params()
            tr = tune(name, split.train, split.val, n_trials=n_trials, metric=metric, seed=seed,
                      base_params=p, include=[default], item_features=data.item_features, log=log)
            tuned[name] = tr
            p = tr.best["params"]
            log(f"best {name} on val: {metric}={tr.best['score']:.4f} with {p}")
            if report_dir:
                tr.save(Path(report_dir) / f"tuning_{name}.json")
        t0 = time.perf_counter()

        def fit(settings: dict, train: Interactions, val: Interactions | None):
            if engine == "spark" and name == "als":
                from recsys.spark import fit_als_spark

                return fit_als_spark(train, settings, master=spark_master)
            return fit_model(make_model(name, **settings), train, data.item_features, val)

        model = fit(p, split.train, split.val)
        chosen = model.validation_choice()
        if protocol == "refit":  # the settings val chose, learned again from train+val
            log(f"{name}: refitting on train+val with the settings chosen on val")
            model = fit(model.get_params(), seen, None)
        fit_s = time.perf_counter() - t0
        if engine == "spark" and name in ("als", "bridge", "content"):
            from recsys.spark import evaluate_spark

            r = evaluate_spark(model, seen, split.test, ks=ks, master=spark_master)
        else:
            r = evaluate(model, seen, split.test, ks=ks, item_vectors=_diversity_vectors(data))
        r.params = {**model.get_params(), "fit_seconds": round(fit_s, 3)}
        if chosen:
            r.params["chosen_on_val"] = chosen
        r.protocol = protocol
        r.learned_from = "train" if protocol == "published" else "train+val"
        r.seconds += fit_s
        results.append(r)
        a = r.segments["all"]
        log(f"{name}: recall@{kmax}={a[f'recall@{kmax}']:.4f} ndcg@{kmax}={a[f'ndcg@{kmax}']:.4f} "
            f"auc={a.get('auc', float('nan')):.4f} (fit {fit_s:.1f}s, total {r.seconds:.1f}s; "
            f"protocol {protocol}, learned from {r.learned_from})")
    meta = {"dataset": data.name, "split": data.info, "ks": list(ks), "protocol": protocol,
            "protocol_description": PROTOCOLS[protocol]}
    if json_out:
        report.write_json(json_out, results, meta)
    if report_dir:
        report.write_report(report_dir, results, kmax, meta)
    return results, tuned


def _diversity_vectors(data: EvalData):
    f = data.item_features
    if f is None:
        return None
    try:
        return f.matrix("fused")
    except DataError:
        first = next(iter(f.blocks), None)
        return None if first is None else f.blocks[first]
