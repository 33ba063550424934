"""The ``avrec evaluate`` job: check -> load -> split -> (tune ->) fit -> evaluate -> report.

:func:`check_evaluate` refuses unusable arguments before anything is read (model names, features a
model needs, a validation part for ``--tune``, paths, numbers); :func:`load_eval_data` turns
``--dataset``/``--log`` into a split with aligned item features (an :class:`EvalData`);
:func:`run_evaluation` checks its own arguments and the loaded data before the first fit, then
fits every model under a named protocol, scores it on test and writes the reports. Each takes
plain arguments and returns what it produced, so the CLI stays a thin parser.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError
from recsys.jobs import checks
from recsys.jobs.fit import fit_model
from recsys.jobs.load import LogSpec, check_inputs, load_data
from recsys.split import SPLITS, Split, make_split

Log = Callable[[str], None]


@dataclass
class EvalData:
    """A split ready for evaluation, with optional item features aligned to its item map."""

    name: str
    split: Split
    item_features: Any = None
    info: dict = field(default_factory=dict)


#: the splits that order each user's interactions by time
TIMED_SPLITS = ("temporal", "loo")


def check_evaluate(
    dataset: str | None = None,
    log: LogSpec | None = None,
    models: Sequence[str] = ("popularity", "itemknn", "als"),
    *,
    split: str = "temporal",
    test_size: float = 0.2,
    val_size: float = 0.1,
    features: str | None = None,
    ks: Sequence[int] = (10, 20),
    params: dict[str, dict[str, Any]] | None = None,
    tune_models: Sequence[str] = (),
    n_trials: int = 20,
    tune_metric: str | None = None,
    report_dir: str | Path | None = None,
    json_out: str | Path | None = None,
    engine: str = "local",
    protocol: str = "published",
) -> list[str]:
    """Every check of ``avrec evaluate``, before any data is loaded or any model fitted.

    Reads nothing but the file system and the log's header line. Arguments as in
    :func:`load_eval_data` and :func:`run_evaluation`.

    Returns
    -------
    list of str
        ``models``, lower-cased.

    Raises
    ------
    ConfigError
        An unknown model or setting, a model that needs item features without ``--features`` (or
        feature files in the ``--dataset`` folder), ``--tune``/``--protocol refit`` without a
        validation part, ``--split temporal``/``loo`` on a log without timestamps, a missing
        input, an output path that cannot be written, a number out of range.
    DataError
        The log's header lacks a column (:meth:`LogSpec.columns`).
    """
    models = check_run_arguments(models, ks, params, tune_models, n_trials, tune_metric, report_dir, json_out,
                                 engine, protocol)
    check_eval_data(dataset, log, split, test_size, val_size, features)
    checks.features_available(models, features, dataset, "--models")
    has_val = val_size > 0 if log is not None else checks.split_part(Path(dataset), "val")
    if not has_val:
        need = "--val-size > 0" if log is not None else "a val.csv in the --dataset folder"
        if tune_models:
            raise ConfigError(f"--tune chooses settings on a validation part: it needs {need}")
        if protocol == "refit":
            raise ConfigError(f"--protocol refit chooses settings on a validation part: it needs {need}")
    return models


def check_eval_data(dataset: str | None = None, log: LogSpec | None = None, split: str = "temporal",
                    test_size: float = 0.2, val_size: float = 0.1, features: str | None = None) -> None:
    """The checks of :func:`load_eval_data` (``avrec evaluate`` and ``avrec info``), before anything is read
    but the log's header: the inputs (:func:`~recsys.jobs.load.check_inputs`), the split's name and
    shares, timestamps for a split by time.

    Raises
    ------
    ConfigError
    DataError
        The log's header lacks a column.
    """
    check_inputs(dataset, log, features)
    if log is None:
        return
    checks.one_of(split, "--split", SPLITS)
    checks.within(test_size, "--test-size", 0.0, 1.0, high_open=True)
    checks.positive(test_size, "--test-size")
    checks.within(val_size, "--val-size", 0.0, 1.0, high_open=True)
    if test_size + val_size >= 1:
        raise ConfigError(f"--test-size + --val-size must be < 1, got {test_size} + {val_size}")
    if split in TIMED_SPLITS and not log.movielens and log.columns().timestamp is None:
        raise ConfigError(f"--split {split} orders interactions by time, and {log.path} has no timestamp "
                          "column: name it with --time-col, or use --split random")


def tuned_models(tune: Sequence[str] | None, models: Sequence[str]) -> list[str]:
    """The models ``--tune`` names: ``["all"]`` -> every model of ``models`` that has a search space."""
    from recsys.tuning import SEARCH_SPACES

    if not tune:
        return []
    if [t.lower() for t in tune] == ["all"]:
        return [m.lower() for m in models if m.lower() in SEARCH_SPACES]
    return [t.lower() for t in tune]


def check_run_arguments(
    models: Sequence[str],
    ks: Sequence[int] = (10, 20),
    params: dict[str, dict[str, Any]] | None = None,
    tune_models: Sequence[str] = (),
    n_trials: int = 20,
    tune_metric: str | None = None,
    report_dir: str | Path | None = None,
    json_out: str | Path | None = None,
    engine: str = "local",
    protocol: str = "published",
) -> list[str]:
    """The checks of :func:`run_evaluation`'s own arguments (no data needed); ``models`` lower-cased.

    Raises
    ------
    ConfigError
        An unknown model (the message lists the registered ones), a setting a model lacks or of the
        wrong type, a setting of a model that is not evaluated, a tuned model that is not evaluated or has no search space, an unknown metric,
        protocol or engine, a cut-off or trial count below 1, an output path that cannot be written.
    """
    from recsys.evaluation import RANKING_METRICS
    from recsys.models.params import check_params
    from recsys.tuning import SEARCH_SPACES

    models = checks.model_names(models, "--models")
    if len(set(models)) != len(models):
        raise ConfigError(f"--models names a model twice: {','.join(models)}")
    if not ks or min(ks) < 1:
        raise ConfigError(f"--k needs cut-offs >= 1, got {list(ks)}")
    check_params(params or {})
    for name in params or {}:  # settings of a model that is not evaluated would be ignored without a word
        if name not in models:
            raise ConfigError(f"--param {name}.*: {name} is not evaluated (--models {','.join(models)}); "
                              "add it to --models or drop the setting")
    for name in tune_models:
        if name not in models:
            raise ConfigError(f"--tune {name}: {name} is not evaluated (--models {','.join(models)}); "
                              "add it to --models")
        if name not in SEARCH_SPACES:
            raise ConfigError(f"--tune {name}: no search space for {name}; tunable models: {', '.join(SEARCH_SPACES)}")
    checks.at_least(n_trials, "--trials", 1)
    if tune_metric is not None:
        name, at, k = tune_metric.partition("@")
        if not at or name not in RANKING_METRICS or not k.isdigit() or int(k) < 1:
            raise ConfigError(f"--tune-metric must be <metric>@<k> with a metric from {', '.join(RANKING_METRICS)} "
                              f"(e.g. ndcg@20), got {tune_metric!r}")
    checks.one_of(protocol, "--protocol", PROTOCOLS)
    checks.one_of(engine, "--engine", ("local", "spark"))
    if json_out is not None:
        checks.output_file(json_out, "--json")
    if report_dir is not None:
        checks.output_dir(report_dir, "--report")
    return models


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

    Reads through :func:`recsys.jobs.load.load_data` (the load step ``avrec fit`` shares, which
    checks its inputs first); the split summary is ``info``.
    """
    check_eval_data(dataset, log, split, test_size, val_size, features)
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

    Before the first fit the arguments are checked (:func:`check_run_arguments`) and so is the
    data: item features for every model that needs them, a validation part for ``tune_models``
    and ``refit``. ``tune_models`` must be among ``models`` and have a search space.

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
    from recsys.sanity import PopularityCheck
    from recsys.tuning import tune

    models = check_run_arguments(models, ks, params, tune_models, n_trials, tune_metric, report_dir, json_out,
                                 engine, protocol)
    tune_models = [t.lower() for t in tune_models]
    params = params or {}
    split = data.split
    need = checks.needing_features(models)
    if need and data.item_features is None:
        raise ConfigError(f"--models {','.join(need)}: {' and '.join(need)} need item features, and the data has "
                          "none: pass --features DIR (a folder written by `avrec features`)")
    if protocol == "refit" and split.val is None:
        raise ConfigError("--protocol refit needs a validation part (val.csv, or --val-size > 0)")
    if tune_models and split.val is None:
        raise ConfigError("--tune needs a validation part (val.csv, or --val-size > 0)")
    tuned = {}
    results = []
    kmax = max(ks)
    metric = tune_metric or f"ndcg@{kmax}"
    seen = split.train if protocol == "published" else split.train.union(split.val)
    check = PopularityCheck(split.train, split.val, kmax) if split.val is not None and split.val.nnz else None
    for name in models:
        p = dict(params.get(name, {}))
        if name in tune_models:
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
        if check is not None:  # val metrics of the train-fitted model, for the below-popularity warning
            t_check = time.perf_counter()
            check.add(name, model)
            t0 += time.perf_counter() - t_check  # not part of the fit time
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
        r.params = {**model.get_params(), **getattr(model, "resolved_params_", {}), "fit_seconds": round(fit_s, 3)}
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
    for line in check.warnings() if check is not None else []:
        log(f"warning: {line}")
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
