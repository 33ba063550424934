"""The ``avrec`` command: a thin parser over the jobs (:mod:`recsys.jobs`).

Each command parses its arguments, calls one job (or one library entry point: the demo data
generator, the HTTP server) and formats the result. Every job checks its arguments before it reads
or fits anything (``check_*`` in :mod:`recsys.jobs`), so a typo costs nothing. Heavy imports happen
inside the command functions so ``avrec --help`` starts fast. Every option has help text with its
default; ``tests/recsys/test_cli_help.py`` checks that, and that README.md's summary names every
option of the parser.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from recsys import __version__
from recsys.errors import AvrecError, ConfigError


def _ints(text: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def _names(text: str) -> list[str]:
    return [t.strip().lower() for t in text.split(",") if t.strip()]


def default_cache_dir() -> Path:
    """``$AVREC_CACHE``, else ``./data/cache`` inside a checkout, else ``~/.cache/avrec``."""
    env = os.environ.get("AVREC_CACHE")
    if env:
        return Path(env)
    here = Path.cwd() / "data"
    if here.is_dir() and (Path.cwd() / "pyproject.toml").exists():
        return here / "cache"
    return Path.home() / ".cache" / "avrec"


# ---------------------------------------------------------------------------- commands
# Each command parses its options into plain values, calls one job (recsys.jobs) or one library
# entry point, and prints the result.
def cmd_demo_data(args: argparse.Namespace) -> int:
    from recsys.jobs.demo import check_demo_catalog
    from recsys.synthetic import generate_demo_catalog

    check_demo_catalog(args.out, args.items, args.users, args.workers)
    cat = generate_demo_catalog(args.out, n_items=args.items, n_users=args.users, seed=args.seed,
                                workers=args.workers)
    print(f"demo catalog written to {Path(args.out).resolve()}")
    print(f"  catalog:      {cat.catalog_csv}")
    print(f"  interactions: {cat.interactions}")
    print(f"  truth:        {cat.truth}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from recsys.jobs.demo import run_demo

    run_demo(
        cache_dir=Path(args.cache) if args.cache else default_cache_dir(),
        out_dir=Path(args.out),
        n_items=args.items,
        n_users=args.users,
        seed=args.seed,
        workers=args.workers,
        ssl=args.ssl,
        ssl_epochs=args.ssl_epochs,
    )
    return 0


def _log_spec(args: argparse.Namespace):
    from recsys.jobs.load import LogSpec, parse_event_weights, parse_unknown_events

    if args.log is None:
        return None
    return LogSpec(path=args.log, user=args.user_col, item=args.item_col, timestamp=args.time_col,
                   weight=args.weight_col, event=args.event_col, movielens=args.movielens,
                   min_rating=args.min_rating,
                   event_weights=None if args.event_weights is None else parse_event_weights(args.event_weights),
                   unknown_events=parse_unknown_events(args.unknown_events))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recsys import report
    from recsys.jobs.evaluate import check_evaluate, load_eval_data, run_evaluation, tuned_models
    from recsys.models.params import parse_params

    params = parse_params(args.param)  # before the data: a typo should not cost a load
    log = _log_spec(args)
    tune_models = tuned_models(args.tune, args.models)
    models = check_evaluate(args.dataset, log, args.models, split=args.split, test_size=args.test_size,
                            val_size=args.val_size, features=args.features, ks=args.k, params=params,
                            tune_models=tune_models, n_trials=args.trials, tune_metric=args.tune_metric,
                            report_dir=args.report, json_out=args.json, engine=args.engine, protocol=args.protocol)
    console = report.make_console()
    data = load_eval_data(args.dataset, log, args.split, args.test_size, args.val_size,
                          args.seed, args.features)
    s = data.info
    console.print(f"[bold]{data.name}[/]: {s['users']} users x {s['items']} items; "
                  + ", ".join(f"{p} {s[p]['interactions']}" for p in ("train", "val", "test") if p in s)
                  + f"; cold test items {s['test']['cold_items']} ({s['test']['cold_interactions']} interactions)")
    results, _ = run_evaluation(
        data, models, args.k, params, tune_models, args.trials, args.tune_metric,
        args.report, args.json, log=lambda m: console.print(m, markup=False), seed=args.seed,
        engine=args.engine, spark_master=args.spark_master, protocol=args.protocol,
    )
    for k in args.k:
        seen = "train items" if args.protocol == "published" else "train+val items"
        report.print_table(results, k, title=f"{data.name} (k={k}; protocol {args.protocol}; exact full ranking, "
                                             f"{seen} excluded)",
                           console=console)
    for p in (args.json, args.report):
        if p:
            console.print(f"written: {Path(p).resolve()}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from features.extract import ExtractorConfig
    from features.fusion import FusionConfig
    from recsys.jobs.extract import check_extract, extract_features, parse_fusion_weights, read_catalog

    weights = parse_fusion_weights(args.fusion_weights) if args.fusion_weights else None
    check_extract(args.catalog, args.out, workers=args.workers, fps=args.fps, max_frames=args.max_frames,
                  frame_size=args.frame_size, fusion=args.fusion, fusion_weights=weights, fusion_dim=args.fusion_dim,
                  text_dim=args.text_dim, text_model=args.text_model, engine=args.engine)
    config = ExtractorConfig(fps=args.fps, max_frames=args.max_frames, frame_size=args.frame_size,
                             cnn=not args.no_cnn, weights=args.weights, backbone=args.backbone)
    fusion = FusionConfig(method=args.fusion, weights=weights, dim=args.fusion_dim)
    catalog = read_catalog(args.catalog)
    cols = [c.strip() for c in args.text_cols.split(",") if c.strip()] if args.text_cols else None
    report = extract_features(catalog, args.out, config, fusion, workers=args.workers, progress=not args.quiet,
                              retry_failed=args.retry_failed, engine=args.engine, spark_master=args.spark_master,
                              text=not args.no_text, text_columns=cols, text_model=args.text_model,
                              text_dim=args.text_dim)
    return report.exit_code()


def cmd_train_encoders(args: argparse.Namespace) -> int:
    from recsys.jobs.encoders import run_train_encoders

    report = run_train_encoders(args.features, args.catalog, args.out, epochs=args.epochs, seed=args.seed,
                                device=args.device)
    print(report.summary())
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from recsys.jobs.fit import fit_bundle
    from recsys.models.params import parse_params

    all_params = parse_params(args.param)
    others = sorted(set(all_params) - {args.model})
    if others:  # a setting of a model this fit does not train would be ignored without a word
        raise ConfigError(f"--param {others[0]}.*: avrec fit trains --model {args.model} only")
    params = all_params.get(args.model, {})
    out = fit_bundle(args.model, args.out, dataset=args.dataset, log=_log_spec(args), features=args.features,
                     params=params, overwrite=args.overwrite, engine=args.engine, spark_master=args.spark_master,
                     exact=args.exact)
    print(f"bundle written to {Path(out).resolve()}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    import json

    from recsys.jobs.update import REFIT_THRESHOLDS, update_bundle

    rep = update_bundle(args.bundle, _log_spec(args), out=args.out, features=args.features, overwrite=args.overwrite,
                        drift_users=args.drift_users)
    d = rep.drift
    print(f"bundle written to {rep.path.resolve()}")
    print("drift since the fit (" + f"{d['updates_since_fit']} update(s)): " + ", ".join(
        f"{k} {d[k]:.1%}" for k in REFIT_THRESHOLDS if d.get(k) is not None))
    if rep.refit_due:
        print("refit recommended (avrec fit): " + "; ".join(rep.reasons))
    else:
        print("no refit due (thresholds: " + ", ".join(f"{k} {v:.0%}" for k, v in REFIT_THRESHOLDS.items()) + ")")
    if args.json:
        Path(args.json).write_text(json.dumps(rep.to_json(), indent=1))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from recsys.jobs.recommend import recommend_bundle

    out, seconds = recommend_bundle(args.bundle, args.out, n=args.n, users=args.users, include_seen=args.include_seen,
                                    explain=args.explain, engine=args.engine, spark_master=args.spark_master,
                                    exact=args.exact)
    print(f"top-{args.n} lists written to {out.resolve()} in {seconds:.2f}s")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from recsys.jobs.search import search_bundle

    res = search_bundle(args.bundle, args.query, user=args.user, n=args.n, user_weight=args.user_weight,
                        json_out=args.json)
    who = f" for user {args.user} ({'known' if res['known_user'] else 'unknown: relevance only'})" if args.user else ""
    print(f"search {res['query']!r}{who}: {len(res['items'])} items")
    for r, it in enumerate(res["items"], 1):
        user = "" if it["user_score"] is None else f"  user {it['user_score']:.2f}"
        print(f"{r:3d}. {it['item_id']}  score {it['score']:.4f}  relevance {it['relevance']:.4f}{user}  ({it['matched_by']})")
    return 0


def cmd_tags(args: argparse.Namespace) -> int:
    from recsys.jobs.search import write_tags

    out, n_items = write_tags(args.bundle, args.out, n=args.n)
    print(f"top-{args.n} tags of {n_items} items written to {out.resolve()}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from recsys.jobs import checks

    checks.bundle_dir(args.bundle)  # before the HTTP stack is imported
    if args.media_root is not None:
        checks.input_dir(args.media_root, "--media-root", "media folder")
    try:
        from serving.app import serve
    except ImportError as exc:  # the HTTP stack is the optional extra avrec[serve]
        raise ConfigError(f"avrec serve needs the serve extra: pip install 'avrec[serve]' ({exc})") from None

    serve(args.bundle, host=args.host, port=args.port, media_root=args.media_root, workers=args.workers,
          log_level=args.log_level, token=args.token, quiet=args.quiet,
          exact=args.exact)
    # The server has shut down cleanly (connections closed, the app's shutdown run; registrations
    # are fsynced as they are made). Tearing down the interpreter's ~1,500 modules (numpy, scipy,
    # polars, ...) would take another 0.4-0.6 s on a busy machine, which whoever stops the server
    # (a deploy, a restart, Ctrl-C) waits for: end the process now, after the exit handlers.
    from serving.supervisor import SHUTDOWN_GRACE_S

    _exit_now(0, wait_threads_s=SHUTDOWN_GRACE_S)
    return 0


def _exit_now(status: int, wait_threads_s: float = 0.0) -> None:
    """End the process without tearing down the interpreter's modules (``os._exit``), after what a
    normal exit does first: wait for the threads still working (at most ``wait_threads_s``; a
    request handler that outlived the server's grace time, e.g. a registration's extraction), run
    the exit handlers, flush the logs and the standard streams."""
    import atexit
    import logging
    import threading
    import time

    deadline = time.monotonic() + wait_threads_s
    for thread in threading.enumerate():  # idle pool threads ended with the event loop: no wait
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    atexit._run_exitfuncs()  # what a normal exit runs first (logging's flush, multiprocessing's clean-up)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to deliver
            pass
    os._exit(status)


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from recsys.jobs.evaluate import check_eval_data, load_eval_data

    log = _log_spec(args)
    check_eval_data(args.dataset, log, args.split, args.test_size, args.val_size)
    data = load_eval_data(args.dataset, log, args.split, args.test_size, args.val_size, args.seed)
    print(json.dumps(data.info, indent=2))
    return 0


# ---------------------------------------------------------------------------- parser
def _data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (one of --dataset or --log)")
    g.add_argument("--dataset", metavar="DIR",
                   help="split folder: train.csv, test.csv[, val.csv][, <modality>_feat.npy] (required: this or --log)")
    g.add_argument("--log", metavar="FILE",
                   help="interaction log (CSV/Parquet, or MovieLens with --movielens) (required: this or --dataset)")
    g.add_argument("--split", default="temporal", choices=["temporal", "random", "loo", "cold-item"],
                   help="how to split --log (default temporal)")
    g.add_argument("--test-size", type=float, default=0.2, help="test share of --log (default 0.2)")
    g.add_argument("--val-size", type=float, default=0.1,
                   help="validation share of --log; 0: no val part (default 0.1)")
    g.add_argument("--seed", type=int, default=0, help="seed of the random and cold-item splits")
    _log_options(g)


def _log_options(g) -> None:
    """How a log is read: columns, event weights, MovieLens (every command that reads a --log)."""
    g.add_argument("--user-col", default=None, help="user id column (default: detected: user_id, user, userid, uid)")
    g.add_argument("--item-col", default=None, help="item id column (default: detected: item_id, item, itemid, iid)")
    g.add_argument("--time-col", default=None,
                   help="timestamp column (default: detected: timestamp, time, ts, datetime; 'none': off)")
    g.add_argument("--weight-col", default=None,
                   help="confidence column (default: detected: weight, confidence; 'none': every row 1)")
    g.add_argument("--event-col", default=None,
                   help="event-type column mapped to weights (default: detected: event, event_type; 'none': off)")
    g.add_argument("--event-weights", default=None, metavar="EVENT=W,...",
                   help="weight of each event value, replacing the defaults as a whole, e.g. view=1,like=3,bookmark=2 "
                        "(default: {event_weights})")
    g.add_argument("--unknown-events", default="drop", metavar="drop|raise|W",
                   help="rows whose event is not in the event weights: drop them, raise an error, or give them "
                        "weight W; a warning names such events with their counts (default drop)")
    g.add_argument("--movielens", action="store_true", help="--log is a MovieLens u.data / ratings.dat / ratings.csv")
    g.add_argument("--min-rating", type=float, default=None,
                   help="keep rows whose rating (or weight) is >= this as implicit positives (default: every row)")


def _engine_options(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--engine", default="local", choices=["local", "spark"],
                   help=f"local (default) or spark: {what} (needs avrec[spark] and Java 17)")
    g.add_argument("--spark-master", default="local[*]", metavar="URL",
                   help="Spark master: local[*], spark://host:7077, yarn, k8s://... (default local[*])")


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows every option's default, and lists registries when help is asked for.

    An option whose help does not state its default gets ``(default: X)`` appended (flags and
    required options excepted); ``{models}``, ``{tunable}`` and ``{event_weights}`` in a help
    text become the registered model names (:data:`recsys.models.MODELS`), the tunable ones
    (:data:`recsys.tuning.SEARCH_SPACES`) and the default event weights
    (:data:`recsys.data.logs.DEFAULT_EVENT_WEIGHTS`), read only when help is printed (they import
    numpy/scipy).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        for key, names in _REGISTRIES.items():
            if key in text:
                text = text.replace(key, names())
        if action.option_strings and _shows_default(action) and not re.search(r"\bdefault\b", text):
            text += " (default: %(default)s)"
        return text


def _model_names() -> str:
    from recsys.models import MODELS

    return ",".join(MODELS)


def _tunable_names() -> str:
    from recsys.tuning import SEARCH_SPACES

    return ",".join(SEARCH_SPACES)


def _default_event_weights() -> str:
    from recsys.data.logs import DEFAULT_EVENT_WEIGHTS
    from recsys.jobs.load import format_event_weights

    return format_event_weights(DEFAULT_EVENT_WEIGHTS)


#: placeholders of help texts, filled from the registries when help is printed
_REGISTRIES = {"{models}": _model_names, "{tunable}": _tunable_names, "{event_weights}": _default_event_weights}


def _shows_default(action: argparse.Action) -> bool:
    """Whether help should name the default: an optional value option with a default worth stating."""
    flag = action.nargs == 0  # store_true, help, version: the default is "off"
    return not (flag or action.required or action.default in (None, argparse.SUPPRESS))


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is one ``--help`` away), and help
    shows every option's default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="avrec",
        description="Multimodal audio-video recommendation: media features, ALS, hybrid ranking, "
        "exact offline evaluation, serving.",
    )
    parser.add_argument("--version", action="version", version=f"avrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="run the whole pipeline on the embedded demo catalog")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--cache", default=None, help="demo catalog cache (default $AVREC_CACHE or data/cache)")
    p.add_argument("--items", type=int, default=300, help="media items of the demo catalog (at least 16)")
    p.add_argument("--users", type=int, default=1500, help="users of the demo log (at least 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the catalog's hidden tastes and media")
    p.add_argument("--workers", type=int, default=None,
                   help="processes writing media and extracting features (default: all cores)")
    p.add_argument("--ssl", action="store_true",
                   help="also train the self-supervised encoders and report the with/without-SSL ablation (+2 min)")
    p.add_argument("--ssl-epochs", type=int, default=None, help="epochs of both SSL trainings (default 15/12)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("demo-data", help="generate a demo catalog of real media files and logs")
    p.add_argument("--out", required=True, help="folder to write the catalog, media and logs into")
    p.add_argument("--items", type=int, default=300, help="media items (at least 16)")
    p.add_argument("--users", type=int, default=1500, help="users of the log (at least 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the hidden tastes and media")
    p.add_argument("--workers", type=int, default=None, help="processes writing media (default: all cores)")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("evaluate", help="fit models and evaluate them with exact full ranking")
    _data_options(p)
    p.add_argument("--models", type=_names, default=["popularity", "itemknn", "als"], metavar="MODEL,...",
                   help="comma-separated, any of {models} (content, bridge and hybrid need --features) "
                        "(default popularity,itemknn,als)")
    p.add_argument("--protocol", choices=["published", "refit"], default="published",
                   help="published (default): every model learns from train only, val chooses settings; "
                        "refit: settings chosen on val, then every model refitted on train+val, test scored once")
    p.add_argument("--k", type=_ints, default=[10, 20], metavar="K,...", help="cut-offs (default 10,20)")
    p.add_argument("--param", action="append", default=[], metavar="MODEL.NAME=VALUE",
                   help="model parameter, repeatable (e.g. als.factors=256; default: each model's own)")
    p.add_argument("--tune", type=_names, nargs="?", const=["als"], default=None, metavar="MODEL,...|all",
                   help="random search on validation for these models, any of {tunable} (alone: als; 'all': every "
                        "tunable model of --models; default: no search)")
    p.add_argument("--trials", type=int, default=20, help="random points per tuned model, besides its defaults")
    p.add_argument("--tune-metric", default=None, help="metric to maximise on val (default ndcg@<max k>)")
    p.add_argument("--features", default=None, metavar="DIR",
                   help="item features folder (avrec features) (default: the --dataset folder's <modality>_feat "
                        "files, if any)")
    p.add_argument("--json", default=None, metavar="OUT", help="write results JSON here (default: not written)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write results.json, results.md and plots here (default: not written)")
    _engine_options(p, "ALS fitted by Spark MLlib, ALS/bridge/content evaluated in Spark tasks")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("features", help="extract fused audio+video item features from a media catalog")
    p.add_argument("--catalog", required=True, help="catalog CSV (item_id,path,...) or a folder to scan")
    p.add_argument("--out", required=True, help="features folder to write (a re-run resumes it)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
    p.add_argument("--fps", type=float, default=1.0, help="video frames sampled per second")
    p.add_argument("--max-frames", type=int, default=16, help="most frames sampled per video")
    p.add_argument("--frame-size", type=int, default=112, help="side of the square frames the CNN sees, pixels")
    p.add_argument("--backbone", default="resnet18", help="torchvision image model run on each frame")
    p.add_argument("--weights", default="none", help="none | path to a state_dict | torchvision weights name")
    p.add_argument("--no-cnn", action="store_true", help="hand-crafted video descriptors only")
    p.add_argument("--fusion", default="concat", choices=["concat", "weighted", "pca"],
                   help="how blocks are fused into one vector per item (default concat)")
    p.add_argument("--fusion-weights", default=None, metavar="NAME=W,...",
                   help="per-block or per-modality weights for --fusion weighted (e.g. audio=1,video=0.5; "
                        "default: none)")
    p.add_argument("--fusion-dim", type=int, default=None,
                   help="output size for --fusion pca (default 128, capped by the items and the input size)")
    p.add_argument("--retry-failed", action="store_true", help="retry files that failed in an earlier run")
    p.add_argument("--text-cols", default=None, metavar="COL,...",
                   help="catalog text columns joined into the text block (default title,tags,description when present)")
    p.add_argument("--text-model", default=None, metavar="DIR",
                   help="local sentence-transformers model folder: semantic text encoder (default lexical TF-IDF)")
    p.add_argument("--text-dim", type=int, default=128, help="size of the lexical text block (default 128)")
    p.add_argument("--no-text", action="store_true", help="leave the catalog text out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _engine_options(p, "files extracted by Spark tasks (mapInPandas), same outputs and cache")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("train-encoders",
                       help="train self-supervised audio and audio-visual encoders on a catalog's media")
    p.add_argument("--features", required=True, metavar="DIR", help="features folder (avrec features); new blocks are added to it")
    p.add_argument("--catalog", required=True, help="catalog CSV or media folder the features came from")
    p.add_argument("--out", default=None, help="checkpoints folder (default: DIR/ssl inside --features)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of both trainings (default 15/12)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and data order")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=cmd_train_encoders)

    p = sub.add_parser("fit", help="fit a model and save it as a bundle for serving")
    _data_options(p)
    p.add_argument("--model", required=True, type=str.lower, help="one of {models}")
    p.add_argument("--features", default=None, metavar="DIR",
                   help="item features folder (avrec features) (default: the --dataset folder's <modality>_feat "
                        "files, if any)")
    p.add_argument("--param", action="append", default=[], metavar="MODEL.NAME=VALUE",
                   help="model parameter, repeatable (e.g. als.factors=256; default: the model's own)")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="bundle directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--exact", action="store_true",
                   help="build no approximate item index (by default one is built from 100,000 items)")
    _engine_options(p, "ALS fitted by Spark MLlib (implicitPrefs), saved in the same bundle format")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("update", help="fold a log of new interactions into a bundle without a full refit")
    p.add_argument("--bundle", required=True, help="bundle to update (avrec fit)")
    p.add_argument("--log", required=True, metavar="FILE", help="the new interactions (CSV/Parquet)")
    p.add_argument("--out", default=None, metavar="BUNDLE", help="write the updated bundle here (default: in place)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    p.add_argument("--features", default=None, metavar="DIR",
                   help="avrec features folder with the media of new items (fused like the bundle's; default: none)")
    p.add_argument("--drift-users", type=int, default=300,
                   help="untouched users sampled for the list-change drift (default 300; 0: off)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the update report (counts, drift) here (default: none)")
    _log_options(p.add_argument_group("how --log is read"))
    p.set_defaults(func=cmd_update)

    p = sub.add_parser("recommend", help="write top-n lists of every (or the listed) user from a bundle")
    p.add_argument("--bundle", required=True, help="bundle folder (avrec fit)")
    p.add_argument("--out", required=True, help="recs.parquet or recs.csv")
    p.add_argument("--n", type=int, default=100, help="items per user")
    p.add_argument("--users", default=None, metavar="FILE",
                   help="user ids: CSV/Parquet with user_id, or one per line (default: every user with history)")
    p.add_argument("--include-seen", action="store_true", help="do not filter the users' training items")
    p.add_argument("--explain", action="store_true",
                   help="add an explanation column (JSON: CF history items, nearest history item per modality)")
    p.add_argument("--exact", action="store_true",
                   help="exact retrieval even when the bundle holds approximate item indexes")
    _engine_options(p, "lists computed in Spark tasks and written as a folder of part files")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("search", help="items of a bundle for a text query, optionally mixed with a user's taste")
    p.add_argument("--bundle", required=True, help="bundle folder (avrec fit --features DIR with text)")
    p.add_argument("--query", required=True, help="words to search for")
    p.add_argument("--user", default=None, help="user id: blend relevance with this user's recommendation scores "
                                                "(default: relevance only)")
    p.add_argument("--n", type=int, default=10, help="items to list")
    p.add_argument("--user-weight", type=float, default=0.3,
                   help="share of the user's score in the order (0 = relevance only; default 0.3)")
    p.add_argument("--json", default=None, metavar="OUT",
                   help="also write the answer as JSON here (default: not written)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("tags", help="top tags of every item of a bundle (own words, or predicted from media)")
    p.add_argument("--bundle", required=True, help="bundle folder (avrec fit --features DIR with text)")
    p.add_argument("--out", required=True, help="tags.parquet or tags.csv: item_id, rank, tag, score, own, source")
    p.add_argument("--n", type=int, default=5, help="tags per item (default 5)")
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("serve", help="serve a bundle over HTTP (FastAPI)")
    p.add_argument("--bundle", required=True, help="bundle folder (avrec fit)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000,
                   help="TCP port to listen on (0: a free one, named in the start-up line)")
    p.add_argument("--media-root", default=None, metavar="DIR",
                   help="allow POST /items for media files under DIR (default: registration off)")
    p.add_argument("--token", default=None,
                   help="bearer token of the write routes (POST /items); default $AVREC_TOKEN (preferred: a "
                        "command line is visible to other users); without one, write routes are off")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (not with --media-root); SIGHUP to the parent reloads the bundle")
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("--log-level", default="warning", type=str.lower, metavar="LEVEL",
                      choices=("critical", "error", "warning", "info", "debug", "trace"),
                      help="level of the server's own messages: critical, error, warning, info, debug, trace "
                           "(default: %(default)s); the access log is on at any level")
    talk.add_argument("--quiet", action="store_true",
                      help="errors only: no start-up line, no access log (a line per request on stdout)")
    p.add_argument("--exact", action="store_true",
                   help="exact retrieval even when the bundle holds approximate item indexes")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("info", help="summarise a dataset and its split")
    _data_options(p)
    p.set_defaults(func=cmd_info)
    return parser


def _show_progress_lines() -> None:
    """Print avrec's INFO log lines (which columns a log is read with ...) to stdout and its
    warnings (columns not used, unknown events dropped ...) to stderr as ``warning: ...``.

    Both handlers sit on the ``recsys`` logger: once it has a handler, Python's last-resort
    handler no longer prints warnings, so they need their own.
    """
    import logging

    class StdoutHandler(logging.StreamHandler):
        # whatever sys.stdout is when a line is written (tests and notebooks replace it)
        stream = property(lambda self: sys.stdout, lambda self, value: None)

    class StderrHandler(logging.StreamHandler):
        stream = property(lambda self: sys.stderr, lambda self, value: None)

    logger = logging.getLogger("recsys")
    if not any(type(h).__name__ == "StdoutHandler" for h in logger.handlers):
        handler = StdoutHandler()
        handler.addFilter(lambda record: record.levelno < logging.WARNING)
        logger.addHandler(handler)
    if not any(type(h).__name__ == "StderrHandler" for h in logger.handlers):
        warn = StderrHandler()
        warn.setLevel(logging.WARNING)
        warn.setFormatter(logging.Formatter("warning: %(message)s"))
        logger.addHandler(warn)
    logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    _show_progress_lines()
    try:
        return int(args.func(args) or 0)
    except AvrecError as exc:
        print(f"avrec {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that is missing, a folder for a file, no permission: the user's to fix
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"avrec {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    """A message on one line: errors quoting a library's multi-line text keep only its lines joined."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
