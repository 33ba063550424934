"""The ``avrec train-encoders`` job: check -> read the catalog -> :func:`training.encoders.train_encoders`.

:func:`check_train_encoders` runs before torch is imported or a file decoded: the features folder,
the catalog, the checkpoints folder, ``--epochs`` and ``--device``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from recsys.errors import ConfigError
from recsys.jobs import checks

#: ``--device`` spellings: auto, cpu, cuda, cuda:N
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_train_encoders(features: str | Path, catalog, out: str | Path | None = None,
                         epochs: int | None = None, device: str = "auto") -> None:
    """Every check of ``avrec train-encoders``, before anything is read.

    Raises
    ------
    ConfigError
        ``features`` is not an ``avrec features`` folder; the catalog is missing; ``out`` is a
        file; ``epochs < 1``; ``device`` is not auto, cpu, cuda or cuda:N.
    """
    from recsys.data import Catalog

    checks.features_dir(features)
    if not isinstance(catalog, Catalog):
        checks.catalog_path(catalog)
    if out is not None:
        checks.output_dir(out, "--out")
    checks.at_least(epochs, "--epochs", 1)
    if not _DEVICE.match(device):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")


def run_train_encoders(features: str | Path, catalog, out: str | Path | None = None, epochs: int | None = None,
                       seed: int = 0, device: str = "auto", log: Callable[[str], None] | None = print):
    """Train the self-supervised encoders on a catalog's media and add their blocks to ``features``.

    Parameters
    ----------
    features : path
        An ``avrec features`` folder; the new blocks are added to it.
    catalog : Catalog or path
        The catalog the features came from (CSV/Parquet, or a media folder).
    out : path, optional
        Checkpoints folder (default: ``features`` itself, under ``ssl/``).
    epochs, seed, device, log
        As :func:`training.encoders.train_encoders`.

    Returns
    -------
    training.encoders.EncoderReport

    Raises
    ------
    ConfigError
        What :func:`check_train_encoders` refuses, before torch is imported.
    """
    from recsys.data import Catalog
    from recsys.jobs.extract import read_catalog

    check_train_encoders(features, catalog, out, epochs, device)
    cat = catalog if isinstance(catalog, Catalog) else read_catalog(catalog)
    from training.encoders import train_encoders  # torch: only once the arguments are known to be usable

    return train_encoders(features, cat, out or features, epochs=epochs, seed=seed, device=device, log=log)
