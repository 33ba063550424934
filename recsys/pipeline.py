"""End-to-end jobs behind the CLI: load data, split, (tune,) fit, evaluate, report.

Each function takes plain arguments and returns what it produced, so the CLI stays a thin parser.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError
from recsys.split import Split, make_split

Log = Callable[[str], None]
_log = logging.getLogger(__name__)


@dataclass
class LogSpec:
    """Where and how to read an interaction log (CLI options of ``--log``).

    Column names left None are detected by the rule of :mod:`recsys.data.columns` (``user_id``,
    ``timestamp``, ``weight``, ``event`` ...); ``"none"`` turns an optional column off.
    """

    path: str
    user: str | None = None
    item: str | None = None
    timestamp: str | None = None
    weight: str | None = None
    event: str | None = None
    movielens: bool = False
    min_rating: float | None = None

    def columns(self):
        """The :class:`~recsys.data.columns.LogColumns` this log is read with (reads its header only).

        Logs one line saying which columns are used (logger ``recsys.pipeline``, INFO) and warns
        about the columns that are not.
        """
        from recsys.data.columns import detect_columns
        from recsys.data.tables import columns_of

        header = columns_of(self.path, separator="\t" if str(self.path).lower().endswith((".tsv", ".tab")) else ",")
        cols = detect_columns(header, str(self.path), user=self.user, item=self.item, timestamp=self.timestamp,
                              weight=self.weight, event=self.event)
        _log.info("%s: columns %s", self.path, cols.describe())
        if cols.unused:
            _log.warning("%s: columns not used: %s (name them with --weight-col/--event-col/--time-col, "
                         "or ignore this)", self.path, ", ".join(cols.unused))
        return cols


@dataclass
class EvalData:
    """A split ready for evaluation, with optional item features aligned to its item map."""

    name: str
    split: Split
    item_features: Any = None
    info: dict = field(default_factory=dict)


def load_log(spec: LogSpec) -> Interactions:
    """Read a log per ``spec`` (MovieLens or generic CSV/Parquet, columns by :meth:`LogSpec.columns`)."""
    from recsys.data import loaders

    if spec.movielens:
        return loaders.read_movielens(spec.path, min_rating=spec.min_rating)
    cols = spec.columns()
    return loaders.read_log(
        spec.path, user=cols.user, item=cols.item, timestamp=cols.timestamp, weight=cols.weight, event=cols.event,
        min_weight=spec.min_rating,
    )


def load_eval_data(
    dataset: str | None = None,
    log: LogSpec | None = None,
    split: str = "temporal",
    test_size: float = 0.2,
    val_size: float = 0.1,
    seed: int = 0,
    features: str | None = None,
) -> EvalData:
    """A split folder as it is, or a log split by ``split``; features aligned to the item map."""
    from recsys.data import ItemFeatures

    if (dataset is None) == (log is None):
        raise ConfigError("give exactly one of --dataset DIR or --log FILE")
    item_features = None
    if dataset is not None:
        from recsys.data.loaders import load_split_folder

        ds = load_split_folder(dataset)
        sp_ = Split(ds.train, ds.test, ds.val, name=f"folder:{Path(dataset).name}")
        item_features = ds.item_features
        name = Path(dataset).name
    else:
        x = load_log(log)
        sp_ = make_split(x, split, test_size=test_size, val_size=val_size, seed=seed)
        name = f"{Path(log.path).stem}:{split}"
    if features is not None:
        item_features = ItemFeatures.load(features)
    if item_features is not None:
        if item_features.fused is None:
            # split folders ship raw modality blocks; fuse them (per-block z-score + L2, concat)
            from features.fusion import fuse

            item_features = fuse(item_features, method="concat")
        item_features = item_features.align(sp_.train.item_map)
    return EvalData(name, sp_, item_features, sp_.summary())


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
    settings a model chooses itself after fitting, see ``Recommender.chooses_on_validation``).
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
    from recsys.sanity import PopularityCheck
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
    check = PopularityCheck(split.train, split.val, kmax) if split.val is not None and split.val.nnz else None
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
        if check is not None:  # val metrics of the train-fitted model, for the below-popularity warning
            t_check = time.perf_counter()
            check.add(name, model)
            t0 += time.perf_counter() - t_check  # not part of the fit time
        chosen = getattr(model, "exposure_choice_", None)
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


def fit_model(model, train: Interactions, item_features=None, val: Interactions | None = None):
    """Fit ``model`` on ``train``; a model that chooses settings on validation (the hybrid's
    cold-item exposure) then does so on ``val``. Validation interactions are never a label."""
    model.fit(train, item_features)
    if val is not None and model.chooses_on_validation:
        model.choose_on_validation(val)
    return model


def _diversity_vectors(data: EvalData):
    f = data.item_features
    if f is None:
        return None
    try:
        return f.matrix("fused")
    except DataError:
        first = next(iter(f.blocks), None)
        return None if first is None else f.blocks[first]
