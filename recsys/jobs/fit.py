"""The ``avrec fit`` job: check -> load -> fit -> save a bundle; and :func:`fit_model`, the fit every job uses.

:func:`fit_bundle` first runs :func:`check_fit` (model name, settings, the bundle path, the inputs,
the features the model needs: nothing is read or fitted before they pass), then reads its data
through :func:`recsys.jobs.load.load_data` (the load step ``avrec evaluate`` shares) and writes with
:func:`serving.bundle.save_bundle`, which only saves, loads and verifies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError
from recsys.jobs import checks
from recsys.jobs.load import LogSpec, check_inputs, load_data


def fit_model(model, train: Interactions, item_features=None, val: Interactions | None = None):
    """Fit ``model`` on ``train``; a model that learns from validation (the hybrid's cold-item
    exposure, ``learns_from_validation``) then chooses on ``val``. Validation interactions are never
    a label.

    Parameters
    ----------
    model : Recommender
        Unfitted.
    train : Interactions
    item_features : ItemFeatures, optional
        Aligned to ``train``'s item map.
    val : Interactions, optional
        Same id maps as ``train``.

    Returns
    -------
    The fitted ``model``.
    """
    model.fit(train, item_features)
    if val is not None and type(model).learns_from_validation:
        model.choose_on_validation(val)
    return model


def check_fit(model_name: str, out: str | Path, dataset: str | None = None, log: LogSpec | None = None,
              features: str | None = None, params: dict | None = None, overwrite: bool = False,
              engine: str = "local") -> str:
    """Every check of ``avrec fit``, before any data is loaded or the model fitted.

    Returns
    -------
    str
        ``model_name`` lower-cased.

    Raises
    ------
    ConfigError
        An unknown model or setting; ``out`` exists without ``overwrite`` (or is a file, or with
        ``overwrite`` a non-empty folder that is not a bundle); a missing input; a model that needs
        item features without ``--features`` (or feature files in the ``--dataset`` folder);
        ``--engine spark`` for a model other than ALS.
    DataError
        The log's header lacks a column.
    """
    from recsys.models.params import check_params
    from serving.bundle import MANIFEST

    (model_name,) = checks.model_names([model_name], "--model")
    check_params({model_name: dict(params or {})})
    checks.one_of(engine, "--engine", ("local", "spark"))
    if engine == "spark" and model_name != "als":
        raise ConfigError(f"--engine spark fits ALS only; fit {model_name} with --engine local")
    checks.output_dir(out, "--out", overwrite=overwrite, what="bundle", marker=MANIFEST)
    # a log on the cluster's storage (scheme://) is read by Spark: no local file or header to check
    check_inputs(dataset, log, features, header=log is None or "://" not in str(log.path))
    checks.features_available([model_name], features, dataset, "--model")
    return model_name


def fit_bundle(model_name: str, out: str | Path, dataset: str | None = None, log: LogSpec | None = None,
               features: str | None = None, params: dict | None = None, overwrite: bool = False,
               log_fn: Callable[[str], None] = print, engine: str = "local",
               spark_master: str = "local[*]", exact: bool = False) -> Path:
    """Fit ``model_name`` on a split folder's training part (its val part chooses the hybrid's cold share)
    or on a whole log, and save a bundle.

    Parameters
    ----------
    model_name : str
        A :data:`recsys.models.MODELS` name.
    out : path
        Bundle directory.
    dataset : str, optional
        Split folder (train.csv[, val.csv][, <modality>_feat.npy]); test.csv is not used.
    log : LogSpec, optional
        An interaction log; all of it is training data.
    features : str, optional
        ``avrec features`` output folder: item features, fusion statistics and extractor settings
        (needed to register new media items while serving). Catalog items without interactions join
        the item map as cold items.
    params : dict, optional
        Model settings.
    overwrite : bool
        Replace an existing bundle at ``out``.
    log_fn : callable
        Receives one progress line.
    engine : {"local", "spark"}
        ``spark`` fits ALS with Spark MLlib (``model_name`` must be ``als``); a plain log file is
        then read by Spark itself. The bundle format is the same.
    spark_master : str
    exact : bool
        Build no approximate item index (``--exact``): the bundle serves with exact search. By
        default one is built (and saved) for catalogs of :data:`recsys.retrieval.EXACT_MAX_ITEMS`
        items or more (:func:`recsys.retrieval.attach`); the log says which and why.

    Returns
    -------
    Path of the bundle.

    Raises
    ------
    ConfigError
        What :func:`check_fit` refuses, before anything is read or fitted.
    """
    from recsys.models import make_model
    from serving.bundle import save_bundle

    model_name = check_fit(model_name, out, dataset, log, features, params, overwrite, engine)
    t0 = time.perf_counter()

    def spark_bundle(data, source: dict, log_columns: dict | None = None) -> Path:
        from recsys.spark import fit_als_spark

        model = fit_als_spark(data, params, master=spark_master, log_columns=log_columns)
        log_fn(f"fitted als with Spark MLlib ({spark_master}) on {model.n_users_} users x {model.n_items_} items "
               f"in {time.perf_counter() - t0:.1f}s")
        index_items(model, exact, log_fn)
        return save_bundle(model, out, overwrite=overwrite, extra={"source": source, "engine": "spark"})

    if engine == "spark" and log is not None and features is None and not (log.event or log.movielens):
        # a plain log is read by Spark (its executors), not loaded by this process
        if "://" in str(log.path):  # on the cluster's storage: no header to read here, names as given
            from recsys.data.columns import LogColumns

            off = (None, "none")
            cols = LogColumns(log.user or "user_id", log.item or "item_id",
                              weight=None if log.weight in off else log.weight)
        else:
            cols = log.columns()
        if cols.event is None:
            return spark_bundle(log.path, {"log": str(log.path)},
                                {"user": cols.user, "item": cols.item, "weight": cols.weight})
    data = load_data(dataset, log, features)
    train, val = (data.log, None) if data.log is not None else (data.train, data.val)
    text = None
    if features is not None:
        if (Path(features) / "text").is_dir():  # the catalog's words: search and tags
            from serving.text_state import TextState

            text = TextState.load(Path(features) / "text")
        new = [i for i in data.item_features.item_ids.tolist() if i not in train.item_map]
        if new:  # catalog items nobody interacted with yet: cold items, rankable from their media
            train = train.with_new_items(new)
            val = None if val is None else val.with_new_items(new)
    if engine == "spark":
        return spark_bundle(train, data.source)
    model = make_model(model_name, **(params or {}))
    if model.uses_features and data.item_features is None:
        raise ConfigError(f"the {model_name} model needs item features: pass --features DIR (avrec features) "
                          "or a --dataset folder with <modality>_feat.npy files")
    aligned = data.features_for(train.item_map)
    fit_model(model, train, aligned, val)
    log_fn(f"fitted {model_name} on {train.n_users} users x {train.n_items} items ({train.nnz} interactions) "
           f"in {time.perf_counter() - t0:.1f}s")
    if val is not None and val.nnz:  # the same below-popularity check as avrec evaluate, on val
        from recsys.sanity import PopularityCheck

        check = PopularityCheck(train, val)
        check.add(model_name, model)
        for line in check.warnings():
            log_fn(f"warning: {line}")
    index_items(model, exact, log_fn)
    # search needs the media blocks of a text bundle (items without words are found by them)
    keep = model.uses_features or text is not None
    return save_bundle(model, out, item_features=aligned if keep else None, fusion=data.fusion,
                       extractor=data.extractor, overwrite=overwrite, extra={"source": data.source}, text=text)


def index_items(model, exact: bool = False, log_fn: Callable[[str], None] = print) -> dict:
    """Give a fitted model its item indexes (:func:`recsys.retrieval.attach`) and log the choice.

    ``exact``: exact search, no approximate index built (``avrec fit --exact``).
    """
    from recsys.retrieval import attach

    info = attach(model, exact=True if exact else None)
    if info["kind"] != "none":
        built = f", built in {info['seconds']:.1f}s" if info["kind"] == "ivf" else ""
        log_fn(f"retrieval: {info['kind']} ({info['reason']}){built}")
    return info
