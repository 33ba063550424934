"""The one load step of ``avrec evaluate``, ``avrec fit`` and ``avrec info``.

Exactly one of ``--dataset DIR`` (a split folder) or ``--log FILE`` (an interaction log) -> read it
-> item features from the folder or from ``--features DIR`` -> raw modality blocks fused -> a
:class:`LoadedData` whose features the job aligns to the item map it fits on
(:meth:`LoadedData.features_for`). What happens next differs per job (``evaluate`` splits a log,
``fit`` trains on all of it), so it stays in the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.data.columns import CANDIDATES, OFF
from recsys.data.interactions import IdMap, Interactions
from recsys.errors import ConfigError

_log = logging.getLogger(__name__)


@dataclass
class LogSpec:
    """Where and how to read an interaction log (CLI options of ``--log``).

    Column names left None are detected by the rule of :mod:`recsys.data.columns` (``user_id``,
    ``timestamp``, ``weight``, ``event`` ...); ``"none"`` turns an optional column off.

    Attributes
    ----------
    path : str
        ``--log``.
    user, item, timestamp, weight, event : str, optional
        ``--user-col`` ... ``--event-col``.
    movielens : bool
        ``--movielens``: a MovieLens ratings file (its own layout; no column options).
    min_rating : float, optional
        ``--min-rating``: keep rows whose weight (rating, or mapped event) is at least this.
    event_weights : dict of str to float, optional
        ``--event-weights``: event value -> weight; replaces
        :data:`~recsys.data.logs.DEFAULT_EVENT_WEIGHTS` as a whole (events it does not list are
        unknown). Giving it makes the event column the source of weights (a detected weight
        column is then not used).
    unknown_events : "drop", "raise" or float
        ``--unknown-events``: what happens to rows whose event value is not in the weights
        (default drop; a warning names every such value with its row count).
    """

    path: str
    user: str | None = None
    item: str | None = None
    timestamp: str | None = None
    weight: str | None = None
    event: str | None = None
    movielens: bool = False
    min_rating: float | None = None
    event_weights: dict[str, float] | None = None
    unknown_events: str | float = "drop"
    _columns: Any = field(default=None, init=False, repr=False, compare=False)

    def check(self, header: bool = True) -> None:
        """Raise :class:`ConfigError` for options that cannot work, before the log is read.

        Checks the file exists (a Spark URL ``scheme://...`` is not checked here), the options
        fit together (``--movielens`` takes no column options), the event weights and the
        unknown-event rule; with ``header`` also reads the header line and applies the column
        rule (:meth:`columns`).
        """
        from recsys.data.logs import check_event_weights, check_unknown_events
        from recsys.jobs import checks

        remote = "://" in str(self.path)
        if not remote:
            checks.input_file(self.path, "--log", "log file")
        if self.movielens:
            named = [o for o, v in (("--user-col", self.user), ("--item-col", self.item),
                                    ("--time-col", self.timestamp), ("--weight-col", self.weight),
                                    ("--event-col", self.event), ("--event-weights", self.event_weights)) if v]
            if named:
                raise ConfigError(f"--movielens reads the MovieLens layout (user, item, rating, timestamp); "
                                  f"{', '.join(named)} do not apply")
        if self.event_weights is not None:
            check_event_weights(self.event_weights, "--event-weights")
            if remote:  # Spark reads such a log with a weight column; nothing here maps its events
                raise ConfigError(f"--event-weights needs a log file read on this machine; {self.path} is read by "
                                  "Spark (name a numeric column with --weight-col instead)")
            if self.event is not None and self.event.strip().lower() == OFF:
                raise ConfigError("--event-weights maps an event column, but --event-col none turns it off")
            if self.weight is not None and self.weight.strip().lower() != OFF:
                raise ConfigError(f"--event-weights maps an event column; the log's weights come from "
                                  f"--weight-col {self.weight}: give one of them")
        check_unknown_events(self.unknown_events, "--unknown-events")
        if self.min_rating is not None:
            checks.at_least(self.min_rating, "--min-rating", 0.0)
        if header and not remote and not self.movielens:
            self.columns()

    def columns(self):
        """The :class:`~recsys.data.columns.LogColumns` this log is read with (reads its header only).

        Logs one line saying which columns are used (logger ``recsys.jobs.load``, INFO) and warns
        about the columns that are not; both once (the result is kept).

        Raises
        ------
        DataError
            The header lacks a user or item column, or a column named explicitly.
        ConfigError
            ``--event-weights`` without an event column; ``--min-rating`` without a weight or
            event column.
        """
        if self._columns is not None:
            return self._columns
        from recsys.data.columns import detect_columns
        from recsys.data.tables import columns_of

        header = columns_of(self.path, separator="\t" if str(self.path).lower().endswith((".tsv", ".tab")) else ",")
        # a mapping of events makes the event column the weight source: a weight column is not detected
        weight = OFF if self.event_weights is not None and self.weight is None else self.weight
        cols = detect_columns(header, str(self.path), user=self.user, item=self.item, timestamp=self.timestamp,
                              weight=weight, event=self.event)
        if self.event_weights is not None and cols.event is None:
            raise ConfigError(f"--event-weights needs an event column: {self.path} has none named "
                              f"{' or '.join(CANDIDATES['event'])} (name it with --event-col); "
                              f"its columns are {header}")
        if self.min_rating is not None and cols.weight is None and cols.event is None:
            raise ConfigError(f"--min-rating needs a weight or event column to compare against: {self.path} has "
                              f"neither (name one with --weight-col or --event-col); its columns are {header}")
        _log.info("%s: columns %s", self.path, cols.describe())
        if cols.event is not None:
            from recsys.data.logs import DEFAULT_EVENT_WEIGHTS

            mapping = DEFAULT_EVENT_WEIGHTS if self.event_weights is None else self.event_weights
            _log.info("%s: event weights %s%s", self.path, format_event_weights(mapping),
                      "" if self.event_weights is not None else " (the defaults; set them with --event-weights)")
        if cols.unused:
            _log.warning("%s: columns not used: %s (name them with --weight-col/--event-col/--time-col, "
                         "or ignore this)", self.path, ", ".join(cols.unused))
        self._columns = cols
        return cols


def parse_event_weights(text: str) -> dict[str, float]:
    """``"view=1,like=3,bookmark=2"`` -> ``{"view": 1.0, "like": 3.0, "bookmark": 2.0}``.

    Raises
    ------
    ConfigError
        One line naming ``--event-weights``: a pair without ``=``, an empty event name, a weight
        that is not a finite number >= 0, an event named twice.
    """
    from recsys.data.logs import check_event_weights

    example = "expected event=weight,... such as view=1,like=3,bookmark=2"
    out: dict[str, float] = {}
    pairs = [p for p in text.split(",") if p.strip()]
    if not pairs:
        raise ConfigError(f"--event-weights is empty; {example}")
    for pair in pairs:
        name, eq, value = pair.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ConfigError(f"--event-weights: {pair.strip()!r} is not event=weight; {example}")
        if name in out:
            raise ConfigError(f"--event-weights names {name!r} twice")
        try:
            out[name] = float(value)
        except ValueError:
            raise ConfigError(f"--event-weights: the weight of {name!r} must be a number, got {value.strip()!r}; "
                              f"{example}") from None
    return check_event_weights(out, "--event-weights")


def parse_unknown_events(text: str) -> str | float:
    """``"drop"``, ``"raise"`` or a number (the weight unknown events get) from ``--unknown-events``."""
    from recsys.data.logs import check_unknown_events

    word = text.strip().lower()
    if word in ("drop", "raise"):
        return word
    try:
        value: str | float = float(word)
    except ValueError:
        value = text
    check_unknown_events(value, "--unknown-events")
    return value


def format_event_weights(mapping) -> str:
    """``view=1,like=2,share=3``: a mapping as ``--event-weights`` spells it."""
    return ",".join(f"{k}={v:g}" for k, v in mapping.items())


def load_log(spec: LogSpec) -> Interactions:
    """Read a log per ``spec`` (MovieLens or generic CSV/Parquet, columns by :meth:`LogSpec.columns`)."""
    from recsys.data import loaders

    if spec.movielens:
        return loaders.read_movielens(spec.path, min_rating=spec.min_rating)
    cols = spec.columns()
    return loaders.read_log(
        spec.path, user=cols.user, item=cols.item, timestamp=cols.timestamp, weight=cols.weight, event=cols.event,
        event_weights=spec.event_weights if cols.event is not None else None, unknown_events=spec.unknown_events,
        min_weight=spec.min_rating,
    )


def check_source(dataset: str | None, log: LogSpec | None) -> None:
    """Raise :class:`ConfigError` unless exactly one of ``dataset`` and ``log`` is given."""
    if (dataset is None) == (log is None):
        raise ConfigError("give exactly one of --dataset DIR or --log FILE")


def check_inputs(dataset: str | None = None, log: LogSpec | None = None, features: str | None = None,
                 header: bool = True) -> None:
    """The load step's checks, before anything is read: one source, paths that exist and are of
    the right kind, log options that fit together (:meth:`LogSpec.check`, which reads the log's
    header line when ``header``).

    Raises
    ------
    ConfigError
        Neither or both of ``dataset`` and ``log``; a missing or wrong-kind path; a
        ``--features`` folder that ``avrec features`` did not write; log options that conflict.
    DataError
        The log's header lacks a user/item column or a column named explicitly.
    """
    from recsys.jobs import checks

    check_source(dataset, log)
    if dataset is not None:
        checks.split_folder(dataset)
    else:
        log.check(header=header)
    if features is not None:
        checks.features_dir(features)


@dataclass
class LoadedData:
    """Interactions and item features as ``--dataset``/``--log`` and ``--features`` give them.

    Attributes
    ----------
    name : str
        The split folder's name, or the log file's stem.
    source : dict
        ``{"dataset": path}`` or ``{"log": path}`` (absolute), plus ``"features": path`` when a
        features folder was given; kept in bundle manifests.
    log : Interactions or None
        The whole log (``--log``); None for a split folder.
    train, val, test : Interactions or None
        The split folder's parts (``--dataset``; ``val`` may be None); None for a log.
    item_features : ItemFeatures or None
        ``--features`` when given, else the split folder's feature files; always with a fused
        matrix (raw modality blocks are fused here: per-block z-score + L2, concat). Rows in their
        own item order: align them with :meth:`features_for`.
    fusion : features.fusion.Fusion or None
        The statistics behind ``item_features.fused`` (fitted here for raw blocks, else the features
        folder's ``fusion.json``): what fuses the blocks of a new item like the catalog's.
    extractor : dict or None
        The extractor settings of a features folder (``ExtractorConfig``), to extract a new item's
        media like the catalog's.
    """

    name: str
    source: dict
    log: Interactions | None = None
    train: Interactions | None = None
    val: Interactions | None = None
    test: Interactions | None = None
    item_features: Any = None
    fusion: Any = None
    extractor: dict | None = None

    def features_for(self, item_map: IdMap):
        """``item_features`` aligned to ``item_map`` (rows of unknown items are zero, masks False);
        None without features."""
        return None if self.item_features is None else self.item_features.align(item_map)


def load_data(dataset: str | None = None, log: LogSpec | None = None, features: str | None = None) -> LoadedData:
    """Read a split folder or a log, and item features, for a job to split or fit.

    Parameters
    ----------
    dataset : str, optional
        Split folder: train.csv, test.csv[, val.csv][, <modality>_feat.npy|parquet].
    log : LogSpec, optional
        An interaction log. Exactly one of ``dataset`` and ``log``.
    features : str, optional
        An ``avrec features`` folder; replaces the split folder's feature files.

    Returns
    -------
    LoadedData

    Raises
    ------
    ConfigError
        What :func:`check_inputs` refuses (checked before anything is read).
    """
    check_inputs(dataset, log, features)
    if dataset is not None:
        from recsys.data.loaders import load_split_folder

        ds = load_split_folder(dataset)
        data = LoadedData(Path(dataset).name, {"dataset": str(Path(dataset).resolve())}, train=ds.train,
                          val=ds.val, test=ds.test, item_features=ds.item_features)
    else:
        data = LoadedData(Path(log.path).stem, {"log": str(Path(log.path).resolve())}, log=load_log(log))
    if features is not None:
        from recsys.data import ItemFeatures

        data.item_features = ItemFeatures.load(features)
        data.fusion, data.extractor = registration_state(features, data.item_features)
        data.source["features"] = str(Path(features).resolve())
    if data.item_features is not None and data.item_features.fused is None:
        # split folders ship raw modality blocks; fuse them (per-block z-score + L2, concat) and
        # keep the statistics, so a server fuses a new item's blocks the same way
        from features.fusion import Fusion, FusionConfig

        data.fusion = Fusion(FusionConfig(method="concat")).fit(data.item_features)
        data.item_features = data.fusion.transform(data.item_features)
    return data


def registration_state(features_dir: str | Path, item_features) -> tuple[Any, dict | None]:
    """``(fusion, extractor settings)`` of an ``avrec features`` folder: what a server needs to
    turn a new media file into a row like the catalog's (None where the folder lacks it)."""
    d = Path(features_dir)
    fusion = None
    if (d / "fusion.json").exists():
        from features.fusion import Fusion

        fusion = Fusion.load(d)
    return fusion, item_features.provenance.get("extractor", {}).get("config")
