"""Model bundles: a fitted pipeline saved as a directory of plain files, loaded with checks.

Layout::

    BUNDLE/
      manifest.json        format + avrec versions, model class and settings, creation time,
                           where the id maps are, the SHA-256 of every other file
      users.parquet        user_id in index order       (the id maps)
      items.parquet        item_id in index order
      interactions.npz     training CSR (data, indices, indptr, shape[, timestamps])
      model/state.json     the model's learned state: one entry per attribute, saying its kind
      model/*.npy|*.npz|*.txt and model/<nested>/...   arrays, sparse matrices, text models, nested
                           component models (a hybrid's ALS, bridge, ...); torch nets are saved as
                           their state_dict arrays plus config
      features/            item features (ItemFeatures.save) when the model reads content
      fusion.json          fusion statistics, to fuse the features of items added while serving
      extractor.json       the extractor settings the features were made with
      text/                the catalog's words for search and tags (serving.text_state), when the
                           features had text columns
      retrieval/           approximate (faiss IVF) item indexes of the model, when it has them
                           (recsys.retrieval.attach: large catalogs); exact ones are not saved

Nothing is pickled: arrays load with ``allow_pickle=False``, the ranker is LightGBM's text format
or arrays. :func:`load_bundle` verifies the checksums and versions and fails with
:class:`~recsys.errors.BundleError` naming the file or version that does not match, then gives the
model its item indexes (:func:`recsys.retrieval.attach`: the saved approximate ones, or exact ones;
``exact=True`` forces exact search).

This module saves, loads and verifies; it fits nothing. Fitting a model into a bundle is the job
``recsys.jobs.fit.fit_bundle`` (``avrec fit``), which calls :func:`save_bundle`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys import __version__
from recsys.data.interactions import IdMap, Interactions
from recsys.errors import BundleError

FORMAT = "avrec-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# strings longer than this go to their own .txt file instead of state.json (LightGBM models)
_INLINE_TEXT = 4096


@dataclass
class Bundle:
    """A loaded bundle.

    Attributes
    ----------
    model : Recommender
        Fitted; ``model.train_`` are the interactions (seen items, id maps).
    item_features : ItemFeatures or None
        Aligned to the item map, when the model reads content.
    fusion : Fusion or None
        Fitted fusion, to fuse the blocks of new items like the catalog's.
    extractor : dict or None
        :class:`features.extract.ExtractorConfig` settings of the features.
    text : serving.text_state.TextState or None
        Encoder, item texts and media -> text projection (search, tags), aligned to the item map.
    manifest : dict
    path : Path or None
    """

    model: Any
    item_features: Any = None
    fusion: Any = None
    extractor: dict | None = None
    manifest: dict = field(default_factory=dict)
    path: Path | None = None
    text: Any = None

    @property
    def interactions(self) -> Interactions:
        return self.model.train_


# ---------------------------------------------------------------------------- state tree
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _safe_name(key: str) -> str:
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key).strip("_") or "x"
    return name


def _write_value(value: Any, d: Path, key: str) -> dict[str, Any]:
    """Write one state value under ``d``; returns its state.json entry."""
    from recsys.models.base import Recommender

    name = _safe_name(key)
    if isinstance(value, Recommender):
        _write_model(value, d / name)
        return {"kind": "model", "dir": name}
    if isinstance(value, dict) and value and all(isinstance(v, Recommender) for v in value.values()):
        sub = d / name
        sub.mkdir()
        entries = {}
        for i, (k, v) in enumerate(value.items()):
            _write_model(v, sub / f"{i}")
            entries[str(k)] = f"{name}/{i}"
        return {"kind": "models", "dirs": entries}
    if isinstance(value, dict):
        sub = d / name
        sub.mkdir()
        return {"kind": "dict", "entries": {str(k): _write_value(v, sub, str(k)) for k, v in value.items()},
                "dir": name}
    if sp.issparse(value):
        v = sp.csr_matrix(value)
        np.savez(d / f"{name}.npz", data=v.data, indices=v.indices, indptr=v.indptr, shape=np.asarray(v.shape))
        return {"kind": "csr", "file": f"{name}.npz"}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise BundleError(f"state value {key!r} is an object array; bundles hold numeric arrays only")
        np.save(d / f"{name}.npy", value, allow_pickle=False)
        return {"kind": "array", "file": f"{name}.npy"}
    if isinstance(value, str) and len(value) > _INLINE_TEXT:
        (d / f"{name}.txt").write_text(value)
        return {"kind": "text", "file": f"{name}.txt"}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except TypeError:
        raise BundleError(f"state value {key!r} of type {type(value).__name__} cannot be saved without pickle") from None
    return {"kind": "json", "value": value}


def _read_value(entry: dict[str, Any], d: Path, interactions: Interactions, item_features) -> Any:
    kind = entry.get("kind")
    if kind == "model":
        return _read_model(d / entry["dir"], interactions, item_features)
    if kind == "models":
        return {k: _read_model(d / rel, interactions, item_features) for k, rel in entry["dirs"].items()}
    if kind == "dict":
        sub = d / entry["dir"]
        return {k: _read_value(e, sub, interactions, item_features) for k, e in entry["entries"].items()}
    if kind == "csr":
        z = np.load(d / entry["file"], allow_pickle=False)
        return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    if kind == "array":
        return np.load(d / entry["file"], allow_pickle=False)
    if kind == "text":
        return (d / entry["file"]).read_text()
    if kind == "json":
        return entry["value"]
    raise BundleError(f"unknown state entry kind {kind!r} in {d / 'state.json'}")


def _write_model(model, d: Path) -> None:
    d.mkdir(parents=True)
    state = model.get_state()
    entries = {k: _write_value(v, d, k) for k, v in state.items()}
    doc = {"class": type(model).__name__, "name": model.name, "params": model.get_params(), "state": entries}
    (d / "state.json").write_text(json.dumps(doc, indent=1, default=_json_default))


def _json_default(o: Any):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _read_model(d: Path, interactions: Interactions, item_features):
    from recsys.models import MODELS

    doc = json.loads((d / "state.json").read_text())
    classes = {cls.__name__: cls for cls in MODELS.values()}
    cls = classes.get(doc["class"])
    if cls is None:
        raise BundleError(f"{d / 'state.json'}: unknown model class {doc['class']!r} (known: {sorted(classes)})")
    state = {k: _read_value(e, d, interactions, item_features) for k, e in doc["state"].items()}
    return cls.from_state(doc["params"], state, interactions, item_features)


# ---------------------------------------------------------------------------- id maps and interactions
def _write_ids(ids: np.ndarray, path: Path, column: str) -> None:
    import polars as pl

    pl.DataFrame({column: ids.tolist()}, strict=False).write_parquet(path)


def _read_ids(path: Path, column: str, kind: str) -> IdMap:
    import polars as pl

    ids = np.asarray(pl.read_parquet(path).get_column(column).to_list())
    if ids.dtype.kind == "U":
        ids = ids.astype(object)
    return IdMap(ids, kind)


def _write_interactions(x: Interactions, path: Path) -> None:
    arrays = {"data": x.matrix.data, "indices": x.matrix.indices, "indptr": x.matrix.indptr,
              "shape": np.asarray(x.shape)}
    if x.timestamps is not None:
        arrays["timestamps"] = x.timestamps
    np.savez(path, **arrays)


def _read_interactions(path: Path, users: IdMap, items: IdMap) -> Interactions:
    z = np.load(path, allow_pickle=False)
    m = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    return Interactions(m, users, items, z["timestamps"] if "timestamps" in z.files else None)


# ---------------------------------------------------------------------------- public API
def save_bundle(model, out: str | Path, item_features=None, fusion=None, extractor: dict | None = None,
                overwrite: bool = False, extra: dict | None = None, text=None) -> Path:
    """Write a fitted model (and what serving needs around it) as a bundle directory.

    Parameters
    ----------
    model : Recommender
        Fitted.
    out : path
        Bundle directory; written to a temporary sibling first and renamed, so a crash leaves
        no half bundle.
    item_features : ItemFeatures, optional
        Saved (aligned to the model's item map) when given.
    fusion : Fusion, optional
    extractor : dict, optional
        ExtractorConfig settings (``features.json`` provenance ``extractor.config``).
    overwrite : bool
        Replace an existing bundle at ``out``.
    extra : dict, optional
        JSON-serialisable notes kept in the manifest (data source, metrics ...).
    text : serving.text_state.TextState, optional
        Saved to ``text/`` aligned to the model's item map (a semantic model folder is copied in).

    Returns
    -------
    Path of the bundle.
    """
    model._check_fitted()
    out = Path(out)
    if out.exists() and not overwrite:
        raise BundleError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    _remove_stale_temporaries(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        x = model.train_
        _write_ids(x.user_ids, tmp / "users.parquet", "user_id")
        _write_ids(x.item_ids, tmp / "items.parquet", "item_id")
        _write_interactions(x, tmp / "interactions.npz")
        _write_model(model, tmp / "model")
        if item_features is not None:
            item_features.align(x.item_map).save(tmp / "features")
        if fusion is not None:
            fusion.save(tmp)
        if extractor is not None:
            (tmp / "extractor.json").write_text(json.dumps(extractor, indent=1))
        if text is not None:
            text.align(x.item_map).save(tmp / "text", copy_model=True)
        from recsys.retrieval.model_index import save as save_indexes

        # before the checksums below: every index file is listed and checksummed like the rest
        retrieval = bool(save_indexes(model, tmp / "retrieval"))
        files = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "avrec_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": {"name": model.name, "class": type(model).__name__, "params": model.get_params()},
            "id_maps": {"users": "users.parquet", "items": "items.parquet"},
            "interactions": "interactions.npz",
            "shape": list(x.shape),
            "features": "features" if item_features is not None else None,
            "fusion": "fusion.json" if fusion is not None else None,
            "extractor": "extractor.json" if extractor is not None else None,
            "text": "text" if text is not None else None,
            "retrieval": "retrieval" if retrieval else None,
            "extra": extra or {},
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default))
        # the old bundle steps aside before the new one takes its name, and is deleted only after:
        # a crash at any point leaves a whole bundle at `out` or under a dot-name, never half of one
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _remove_stale_temporaries(out: Path) -> None:
    """Delete ``.<name>.tmp-<pid>`` folders of bundle writes whose process is gone (killed mid-write)."""
    for p in out.parent.glob(f".{out.name}.tmp-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def read_manifest(path: str | Path) -> dict:
    """The manifest of a bundle directory, checked for format and version."""
    d = Path(path)
    mp = d / MANIFEST
    if not mp.is_file():
        raise BundleError(f"{d} is not an avrec bundle (no {MANIFEST}); create one with `avrec fit`")
    try:
        manifest = json.loads(mp.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{mp} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{mp}: format {manifest.get('format')!r} is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{mp}: bundle format version {manifest.get('format_version')} but this avrec reads "
                          f"version {FORMAT_VERSION}; refit with `avrec fit`")
    return manifest


def verify_bundle(path: str | Path, manifest: dict | None = None) -> None:
    """Check every file's SHA-256 against the manifest; raise naming the first mismatch."""
    d = Path(path)
    manifest = manifest or read_manifest(d)
    for rel, digest in manifest.get("files", {}).items():
        p = d / rel
        if not p.is_file():
            raise BundleError(f"bundle file missing: {p}")
        if _sha256(p) != digest:
            raise BundleError(f"checksum mismatch for {p}: the bundle was modified or is corrupt")
    listed = set(manifest.get("files", {})) | {MANIFEST}
    extra = [p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()]
    unknown = sorted(set(extra) - listed)
    if unknown:
        raise BundleError(f"files not in the manifest: {unknown[:5]}; the bundle was modified")


def load_bundle(path: str | Path, verify: bool = True, strict_version: bool = True,
                exact: bool | None = None) -> Bundle:
    """Load a bundle written by :func:`save_bundle`.

    Parameters
    ----------
    path : path
    verify : bool
        Check the SHA-256 of every file (default).
    strict_version : bool
        Refuse a bundle written by another avrec version (default); False loads it when the
        format version matches.
    exact : bool, optional
        True: exact retrieval even when the bundle holds approximate indexes (``--exact``); None:
        the saved approximate indexes when there are, else exact (see
        :func:`recsys.retrieval.decide`; ``model.retrieval_`` says which and why).

    Raises
    ------
    BundleError
        Not a bundle, another format or avrec version, a checksum mismatch, a missing file.
    """
    d = Path(path)
    manifest = read_manifest(d)
    if strict_version and manifest.get("avrec_version") != __version__:
        raise BundleError(f"{d} was written by avrec {manifest.get('avrec_version')} but this is avrec "
                          f"{__version__}; refit, or load with strict_version=False at your own risk")
    if verify:
        verify_bundle(d, manifest)
    try:
        users = _read_ids(d / manifest["id_maps"]["users"], "user_id", "user")
        items = _read_ids(d / manifest["id_maps"]["items"], "item_id", "item")
        x = _read_interactions(d / manifest["interactions"], users, items)
        item_features = None
        if manifest.get("features"):
            from recsys.data import ItemFeatures

            item_features = ItemFeatures.load(d / manifest["features"])
        fusion = None
        if manifest.get("fusion"):
            from features.fusion import Fusion

            fusion = Fusion.load(d)
        extractor = json.loads((d / manifest["extractor"]).read_text()) if manifest.get("extractor") else None
        text = None
        if manifest.get("text"):
            from serving.text_state import TextState

            text = TextState.load(d / manifest["text"])
        model = _read_model(d / "model", x, item_features)
        from recsys.retrieval import attach

        attach(model, exact=exact, saved=d / manifest["retrieval"] if manifest.get("retrieval") else None,
               build=exact is False)
    except BundleError:
        raise
    except (KeyError, ValueError, OSError) as exc:
        raise BundleError(f"{d} is incomplete or inconsistent: {type(exc).__name__}: {exc}") from None
    return Bundle(model, item_features, fusion, extractor, manifest, d, text)
