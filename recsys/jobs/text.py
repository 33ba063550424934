"""The text modality job: catalog words -> ``text`` block, fused vectors, media -> text projection.

:func:`build_text` works on arrays (ItemFeatures + CatalogText) and is what benchmarks and tests
call; :func:`add_text_features` runs it on an ``avrec features`` folder (the extraction job
:func:`recsys.jobs.extract.extract_features` calls it after media extraction), rewriting
``text.npy``, the ``has_text`` column, the fused matrix and its fusion statistics, and writing
``text/`` (:mod:`serving.text_state`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TEXT_BLOCK = "text"


def build_text(item_features, text, model_dir: str | Path | None = None, dim: int = 128,
               fusion_config: Any = None, project: bool = True):
    """Encode the catalog text, add the ``text`` block and train the media -> text projection.

    Parameters
    ----------
    item_features : ItemFeatures
        Media blocks aligned to ``text.item_ids`` (a previous ``text`` block is replaced).
    text : features.catalog_text.CatalogText
    model_dir : path, optional
        A local sentence-transformers model: semantic encoder; default lexical TF-IDF.
    dim : int
        Dense size of the lexical block.
    fusion_config : features.fusion.FusionConfig, optional
        Refit fusion over every block (text included) with these settings; None keeps ``fused``
        as it is (then the text block is not in the fused vector).
    project : bool
        Train the media -> text projection (needs media blocks and >= 3 items with text and media).

    Returns
    -------
    (ItemFeatures, serving.text_state.TextState, fusion or None)
        Features with the ``text`` block (n_items, dim) and ``has_text`` mask; the text state
        aligned to the same items; the refitted :class:`~features.fusion.Fusion`.
    """
    from features.catalog_text import tag_vocabulary
    from features.text import make_encoder
    from recsys.data import ItemFeatures
    from recsys.errors import DataError
    from serving.text_state import TextState
    from training.text_projection import MIN_TRAIN_ITEMS, MediaToText, media_blocks

    if not np.array_equal(np.asarray(item_features.item_ids, dtype=object), np.asarray(text.item_ids, dtype=object)):
        raise DataError("catalog text and item features list different items; align them first")
    has = np.asarray(text.has_text, bool)
    encoder = make_encoder(model_dir, dim).fit([t for t, h in zip(text.texts, has) if h])
    coords = encoder.encode(text.texts)
    coords[~has] = 0.0  # no text: zero row AND has_text False
    blocks = {k: v for k, v in item_features.blocks.items() if k != TEXT_BLOCK}
    block_masks = {k: v for k, v in item_features.block_masks.items() if k != TEXT_BLOCK}
    feats = ItemFeatures(item_features.item_ids, {**blocks, TEXT_BLOCK: coords},
                         {**{k: v for k, v in item_features.masks.items() if k != TEXT_BLOCK}, TEXT_BLOCK: has},
                         block_masks={**block_masks, TEXT_BLOCK: TEXT_BLOCK}, fused=item_features.fused,
                         provenance=item_features.provenance)
    projection = None
    if project and media_blocks(feats):
        with_media = np.logical_or.reduce([feats.mask_of(b) for b in media_blocks(feats)])
        if (has & with_media).sum() >= MIN_TRAIN_ITEMS:
            projection = MediaToText().fit(feats, coords, has)
    fusion = None
    if fusion_config is not None:
        from features.fusion import Fusion

        fusion = Fusion(fusion_config).fit(feats)
        feats = fusion.transform(feats)
    prov = {"columns": text.columns, "encoder": encoder.kind, "dim": int(coords.shape[1]),
            "n_with_text": int(has.sum()),
            "projection": None if projection is None else {"alpha": projection.alpha_, "n_train": projection.n_train_}}
    feats = feats.with_blocks({}, provenance={"text": prov})
    state = TextState(encoder, np.asarray(text.item_ids, dtype=object), list(text.texts), has, list(text.tags),
                      tag_vocabulary(text), projection, list(text.columns))
    return feats, state, fusion


def catalog_text_features(item_features, catalog, columns=None, model_dir: str | Path | None = None,
                          dim: int = 128, fusion_config: Any = None, required: bool = False):
    """:func:`build_text` on a catalog's text columns, rows in ``item_features``' order.

    Returns
    -------
    (ItemFeatures, TextState, fusion or None), or None when the catalog has no text
    """
    from features.catalog_text import DEFAULT_TEXT_COLUMNS, catalog_text

    text = catalog_text(catalog, DEFAULT_TEXT_COLUMNS if columns is None else columns, required=required)
    if not text.columns or not text.has_text.any():
        return None
    # the text rows follow the features' item order (catalog order, but do not rely on it)
    return build_text(item_features, _reorder(text, item_features.item_ids), model_dir=model_dir, dim=dim,
                      fusion_config=fusion_config)


def add_text_features(features_dir: str | Path, catalog, columns, model_dir: str | Path | None = None,
                      dim: int = 128, required: bool = False) -> dict[str, Any] | None:
    """Add the text modality to an ``avrec features`` folder; returns its provenance (None: no text).

    Parameters
    ----------
    features_dir : path
        Written by media extraction (``features.store.extract_catalog``) for ``catalog``.
    catalog : Catalog
    columns : sequence of str
        Text columns (``--text-cols``).
    model_dir : path, optional
        Semantic encoder model folder (``--text-model``).
    required : bool
        Raise when no column exists (the user named them explicitly).
    """
    import polars as pl

    from features.fusion import Fusion, FusionConfig
    from recsys.data import ItemFeatures
    from recsys.data.item_features import ITEMS_PARQUET
    from serving.text_state import TEXT_DIR

    d = Path(features_dir)
    config = Fusion.load(d).config if (d / "fusion.json").exists() else FusionConfig()
    built = catalog_text_features(ItemFeatures.load(d), catalog, columns, model_dir=model_dir, dim=dim,
                                  fusion_config=config, required=required)
    if built is None:
        return None
    feats, state, fusion = built
    items = pl.read_parquet(d / ITEMS_PARQUET)
    extra = {c: items.get_column(c).to_list() for c in items.columns if c != "item_id" and not c.startswith("has_")}
    feats.save(d, extra_columns=extra)
    fusion.save(d)
    state.save(d / TEXT_DIR)
    return feats.provenance["text"]


def remove_text_features(features_dir: str | Path) -> None:
    """Delete the ``text/`` folder of an ``avrec features`` folder (media extraction already drops
    ``text.npy`` and refits the fusion without it when it runs again)."""
    import shutil

    from serving.text_state import TEXT_DIR

    shutil.rmtree(Path(features_dir) / TEXT_DIR, ignore_errors=True)


def _reorder(text, item_ids):
    from features.catalog_text import CatalogText
    from recsys.data.interactions import IdMap

    pos = IdMap(text.item_ids, "item").indices(np.asarray(item_ids, dtype=object))
    return CatalogText(np.asarray(item_ids, dtype=object), [text.texts[p] for p in pos], text.has_text[pos],
                       [text.tags[p] for p in pos], text.columns)
