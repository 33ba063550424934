"""What search and tags need of a catalog's words, saved as plain files: :class:`TextState`.

Written by ``avrec features`` into ``FEATURES/text/`` (rows follow the features' items) and copied,
aligned to the model's item map, into ``BUNDLE/text/`` by ``avrec fit --features``::

    text/text.json         columns read, tag vocabulary, text_weight, encoder kind
    text/items.parquet     item_id, text, has_text, tags (";"-joined own tags)
    text/encoder.json|npz  the text encoder (features.text): vocabularies, idf, SVD components
    text/projection.json|npz  the media -> text ridge (training.text_projection), when trained
    text/model/            BUNDLE only, semantic encoder: a copy of the sentence-transformers folder

No pickle: JSON, Parquet and ``.npz`` loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import DataError

TEXT_DIR = "text"
TEXT_JSON = "text.json"
ITEMS_PARQUET = "items.parquet"
MODEL_DIR = "model"
#: where an item has both its own words and media, its search vector is this much its own words
DEFAULT_TEXT_WEIGHT = 0.8


@dataclass
class TextState:
    """Encoder, per-item texts and the media -> text projection.

    Attributes
    ----------
    encoder : features.text.TextEncoder
    item_ids : (n,) array
    texts : list of str
    has_text : (n,) bool
    tags : list of list of str
        Each item's own tags.
    vocabulary : list of str
        Tags that can be predicted.
    projection : training.text_projection.MediaToText or None
    columns : list of str
        Catalog columns the texts came from.
    text_weight : float in [0, 1]
        Own words vs projected media where an item has both.
    """

    encoder: Any
    item_ids: np.ndarray
    texts: list[str]
    has_text: np.ndarray
    tags: list[list[str]]
    vocabulary: list[str]
    projection: Any = None
    columns: list[str] = field(default_factory=list)
    text_weight: float = DEFAULT_TEXT_WEIGHT

    def align(self, item_ids) -> "TextState":
        """Rows reordered to ``item_ids``; items unknown here have no text."""
        from recsys.data.interactions import IdMap

        ids = item_ids.ids if isinstance(item_ids, IdMap) else np.asarray(item_ids, dtype=object)
        src = IdMap(self.item_ids, "item").indices(ids, missing="mark")
        have = src >= 0
        texts = [self.texts[s] if h else "" for s, h in zip(src, have)]
        tags = [self.tags[s] if h else [] for s, h in zip(src, have)]
        return TextState(self.encoder, np.asarray(ids, dtype=object), texts,
                         np.where(have, self.has_text[np.maximum(src, 0)], False), tags,
                         list(self.vocabulary), self.projection, list(self.columns), self.text_weight)

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path, copy_model: bool = False) -> Path:
        """Write the layout of the module docstring; ``copy_model`` copies a semantic model folder in."""
        import polars as pl

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.encoder.save(d)
        if copy_model and getattr(self.encoder, "kind", "") == "semantic":
            shutil.copytree(self.encoder.model_dir, d / MODEL_DIR, dirs_exist_ok=True)
        if self.projection is not None:
            self.projection.save(d)
        pl.DataFrame({"item_id": self.item_ids.tolist(), "text": list(self.texts),
                      "has_text": self.has_text.astype(bool), "tags": [";".join(t) for t in self.tags]},
                     strict=False).write_parquet(d / ITEMS_PARQUET)
        meta = {"columns": list(self.columns), "vocabulary": list(self.vocabulary),
                "text_weight": float(self.text_weight), "encoder": self.encoder.kind,
                "projection": self.projection is not None}
        (d / TEXT_JSON).write_text(json.dumps(meta, indent=1))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "TextState":
        """Read a ``text/`` folder (a bundle's own model copy is preferred for a semantic encoder)."""
        import polars as pl

        from features.text import load_encoder

        d = Path(directory)
        if not (d / TEXT_JSON).is_file() or not (d / ITEMS_PARQUET).is_file():
            raise DataError(f"{d} is not a text folder (needs {TEXT_JSON} and {ITEMS_PARQUET}); "
                            "run avrec features on a catalog with text columns")
        meta = json.loads((d / TEXT_JSON).read_text())
        encoder = load_encoder(d, d / MODEL_DIR if (d / MODEL_DIR).is_dir() else None)
        projection = None
        if meta.get("projection"):
            from training.text_projection import MediaToText

            projection = MediaToText.load(d)
        items = pl.read_parquet(d / ITEMS_PARQUET)
        ids = np.asarray(items.get_column("item_id").to_list())
        ids = ids.astype(object) if ids.dtype.kind == "U" else ids
        tags = [[t for t in (s or "").split(";") if t] for s in items.get_column("tags").to_list()]
        return cls(encoder, ids, [t or "" for t in items.get_column("text").to_list()],
                   items.get_column("has_text").to_numpy().astype(bool), tags, list(meta["vocabulary"]),
                   projection, list(meta.get("columns", [])), float(meta.get("text_weight", DEFAULT_TEXT_WEIGHT)))
