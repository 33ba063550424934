"""The checks a job runs before it reads or fits anything: input paths, output paths, numbers, model names.

Every job (``evaluate``, ``fit``, ``recommend`` ...) calls its ``check_*`` function first, so a
typo costs nothing: no data is loaded and no model is fitted before the arguments are known to
be usable. The checks look at the file system only (``stat``, a folder listing, at most a CSV
header), never at file contents.

Messages name the command-line option (``--log clicks.csv: not found``) because the CLI is
the usual caller; the job functions take parameters of the same names (``log=``, ``out=``,
``features=`` ...), so the message serves a Python caller too. Every failure is a
:class:`~recsys.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from recsys.errors import ConfigError

#: suffixes of the files a split folder may hold per part (``train.csv``, ``val.parquet`` ...)
SPLIT_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
#: suffixes of a split folder's feature files (``<modality>_feat.npy``)
FEATURE_FILE_SUFFIXES = (".npy", ".parquet", ".pq")


# ------------------------------------------------------------------------------------------ inputs
def input_file(path: str | Path, option: str, what: str = "file") -> Path:
    """``path`` as a :class:`Path`; ConfigError unless it is an existing file.

    ``--log x.csv: not found``; ``--log x: is a folder; expected a log file``.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{option} {p}: not found")
    if not p.is_file():
        raise ConfigError(f"{option} {p}: is a folder; expected {_article(what)}")
    return p


def input_dir(path: str | Path, option: str, what: str = "folder", make_hint: str = "") -> Path:
    """``path`` as a :class:`Path`; ConfigError unless it is an existing folder.

    ``make_hint`` says how such a folder is made (``"create one with `avrec fit`"``).
    """
    p = Path(path)
    hint = f"; {make_hint}" if make_hint else ""
    if not p.exists():
        raise ConfigError(f"{option} {p}: not found{hint}")
    if not p.is_dir():
        raise ConfigError(f"{option} {p}: is a file; expected {_article(what)}{hint}")
    return p


def features_dir(path: str | Path, option: str = "--features") -> Path:
    """An ``avrec features`` output folder (``features.json`` and ``items.parquet``), not read."""
    from recsys.data.item_features import FEATURES_JSON, ITEMS_PARQUET

    hint = "create one with `avrec features`"
    p = input_dir(path, option, "features folder", hint)
    missing = [f for f in (FEATURES_JSON, ITEMS_PARQUET) if not (p / f).is_file()]
    if missing:
        raise ConfigError(f"{option} {p} is not a features folder (no {' or '.join(missing)}); {hint}")
    return p


def bundle_dir(path: str | Path, option: str = "--bundle") -> Path:
    """A bundle folder (``manifest.json``), not read or verified."""
    from serving.bundle import MANIFEST

    hint = "create one with `avrec fit`"
    p = input_dir(path, option, "bundle", hint)
    if not (p / MANIFEST).is_file():
        raise ConfigError(f"{option} {p} is not an avrec bundle (no {MANIFEST}); {hint}")
    return p


def catalog_path(path: str | Path, option: str = "--catalog") -> Path:
    """A catalog CSV/Parquet file or a folder of media files to scan; must exist."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{option} {p}: not found (expected a catalog CSV item_id,path,... or a folder of media "
                          "files)")
    return p


def split_folder(path: str | Path, option: str = "--dataset") -> Path:
    """A split folder: exists, and holds a train and a test file (their contents are read later)."""
    p = input_dir(path, option, "split folder")
    for part in ("train", "test"):
        if not split_part(p, part):
            raise ConfigError(f"{option} {p} has no {part} file; a split folder needs train.csv and test.csv "
                              "(columns user_id,item_id[,timestamp][,weight]), optionally val.csv")
    return p


def split_part(folder: Path, part: str) -> bool:
    """Whether a split folder has a file for ``part`` (``train``, ``val``, ``test``)."""
    return any((folder / f"{part}{s}").is_file() for s in SPLIT_TABLE_SUFFIXES)


def split_has_features(folder: Path) -> bool:
    """Whether a split folder has ``<modality>_feat.npy|parquet`` files (not read)."""
    return any(f.is_file() and f.suffix.lower() in FEATURE_FILE_SUFFIXES and f.stem.endswith("_feat")
               and len(f.stem) > len("_feat") for f in folder.iterdir())


# ----------------------------------------------------------------------------------------- outputs
def output_file(path: str | Path, option: str, suffixes: Sequence[str] = ()) -> Path:
    """A file to write (replaced if it exists): right suffix, not a folder, no file in the way of its folder."""
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} must end in {' or '.join(suffixes)}, got {p.name or p}")
    if p.is_dir():
        raise ConfigError(f"{option} {p}: is a folder; expected a file name")
    _parent_is_a_folder(p, option)
    return p


def output_dir(path: str | Path, option: str, *, overwrite: bool | None = None, what: str = "folder",
               marker: str | None = None) -> Path:
    """A folder to write.

    Parameters
    ----------
    path : path
    option : str
        The option's name in messages (``--out``).
    overwrite : bool, optional
        None: an existing folder is written into (a resumable output). False: an existing path
        is refused (``--overwrite`` replaces it). True: an existing folder is replaced, but only
        when it holds ``marker`` (or is empty): ``--overwrite`` never deletes a folder that is not
        one of ours.
    what : str
        What the folder is, for messages (``bundle``).
    marker : str, optional
        The file that marks a folder as one of ``what`` (a bundle's ``manifest.json``).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {p}: is a file; expected {_article(what)} to write")
    if p.is_dir() and overwrite is False:
        raise ConfigError(f"{option} {p} exists; pass --overwrite (overwrite=True) to replace it")
    if p.is_dir() and overwrite and marker and not (p / marker).is_file() and any(p.iterdir()):
        raise ConfigError(f"{option} {p} exists and is not {_article(what)} (no {marker}); --overwrite only "
                          f"replaces {_article(what)}: choose another folder")
    _parent_is_a_folder(p, option)
    return p


def _parent_is_a_folder(p: Path, option: str) -> None:
    # the nearest existing ancestor must be a folder, or mkdir fails later with "File exists"
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {p}: {parent} is a file, not a folder")
            return


# ----------------------------------------------------------------------------------------- numbers
def at_least(value: float | None, option: str, low: float, *, none_ok: bool = True) -> None:
    """ConfigError unless ``value >= low`` (None passes when ``none_ok``)."""
    if value is None and none_ok:
        return
    if value is None or not _finite(value) or value < low:
        raise ConfigError(f"{option} must be >= {low:g}, got {value}")


def positive(value: float | None, option: str, *, none_ok: bool = True) -> None:
    """ConfigError unless ``value > 0`` (None passes when ``none_ok``)."""
    if value is None and none_ok:
        return
    if value is None or not _finite(value) or value <= 0:
        raise ConfigError(f"{option} must be > 0, got {value}")


def within(value: float, option: str, low: float, high: float, *, high_open: bool = False) -> None:
    """ConfigError unless ``low <= value <= high`` (``< high`` when ``high_open``)."""
    ok = _finite(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        raise ConfigError(f"{option} must be in [{low:g}, {high:g}{')' if high_open else ']'}, got {value}")


def one_of(value: str, option: str, allowed: Iterable[str]) -> None:
    """ConfigError unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{option} must be one of {', '.join(allowed)}; got {value!r}")


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------------------------------ models
def model_names(names: Sequence[str], option: str = "--models") -> list[str]:
    """Lower-cased model names, each a :data:`recsys.models.MODELS` name; ConfigError naming the
    unknown one, the closest known name and every known name."""
    from recsys.models import MODELS

    out = [n.strip().lower() for n in names]
    if not out or not all(out):
        raise ConfigError(f"{option} needs at least one model name; known models: {', '.join(MODELS)}")
    for n in out:
        if n not in MODELS:
            close = difflib.get_close_matches(n, list(MODELS), n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{option}: unknown model {n!r}{guess}; known models: {', '.join(MODELS)}")
    return out


def needing_features(names: Sequence[str]) -> list[str]:
    """The models among ``names`` whose ``fit`` needs item features (``uses_features``)."""
    from recsys.models import MODELS, capabilities

    return [n for n in names if capabilities(MODELS[n])["uses_features"]]


def features_available(names: Sequence[str], features: str | None, dataset: str | None, option: str) -> None:
    """ConfigError when a model in ``names`` needs item features and none will be loaded: no
    ``--features`` folder, and no ``<modality>_feat`` file in the ``--dataset`` folder."""
    need = needing_features(names)
    if not need or features is not None:
        return
    if dataset is not None and split_has_features(Path(dataset)):
        return
    where = (" or put <modality>_feat.npy files in the --dataset folder" if dataset is not None
             else "")
    raise ConfigError(f"{option} {','.join(need)}: {' and '.join(need)} need{'s' if len(need) == 1 else ''} item "
                      f"features: pass --features DIR (a folder written by `avrec features`){where}")


def _article(what: str) -> str:
    return f"{'an' if what[:1] in 'aeiou' else 'a'} {what}"
