"""The one load step of ``avrec evaluate``, ``avrec fit`` and ``avrec info``.

Exactly one of ``--dataset DIR`` (a split folder) or ``--log FILE`` (an interaction log) -> read it
-> item features from the folder or from ``--features DIR`` -> raw modality blocks fused -> a
:class:`LoadedData` whose features the job aligns to the item map it fits on
(:meth:`LoadedData.features_for`). What happens next differs per job (``evaluate`` splits a log,
``fit`` trains on all of it), so it stays in the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys.data.interactions import IdMap, Interactions
from recsys.errors import ConfigError

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

        Logs one line saying which columns are used (logger ``recsys.jobs.load``, INFO) and warns
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


def check_source(dataset: str | None, log: LogSpec | None) -> None:
    """Raise :class:`ConfigError` unless exactly one of ``dataset`` and ``log`` is given."""
    if (dataset is None) == (log is None):
        raise ConfigError("give exactly one of --dataset DIR or --log FILE")


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
        Neither or both of ``dataset`` and ``log``.
    """
    check_source(dataset, log)
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
