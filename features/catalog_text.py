"""The words of a catalog: text columns joined per item, the has_text mask, and the tag vocabulary.

An item's text is its non-empty text columns joined with ``". "`` (title, tags, description by
default). An item whose columns are all empty or missing has no text: ``has_text`` is False and
its ``text`` block row is zero, flagged like missing audio or video (never silent zeros).

Tags: the ``tags`` column split on ``,``, ``;`` or ``|`` (lower-cased, trimmed). The vocabulary of
predicted tags is every tag used at least ``min_count`` times; a catalog without a ``tags``
column gets its most frequent words instead (scikit-learn's ``CountVectorizer``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys.errors import ConfigError

DEFAULT_TEXT_COLUMNS = ("title", "tags", "description")
TAG_COLUMN = "tags"
_TAG_SPLIT = re.compile(r"[,;|]")


@dataclass
class CatalogText:
    """Per-item text of a catalog.

    Attributes
    ----------
    item_ids : (n,) array
    texts : list of str, length n
        Joined text ("" where the item has none).
    has_text : (n,) bool
    tags : list of list of str
        The item's own tags (empty where none).
    columns : list of str
        The columns that were read.
    """

    item_ids: np.ndarray
    texts: list[str]
    has_text: np.ndarray
    tags: list[list[str]]
    columns: list[str]


def split_tags(value: object) -> list[str]:
    """``"rain, Tin roof;night"`` -> ``["rain", "tin roof", "night"]``."""
    if value is None:
        return []
    return [t.strip().lower() for t in _TAG_SPLIT.split(str(value)) if t.strip()]


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    return str(value).strip()


def text_from_columns(item_ids: Sequence, columns: dict[str, Sequence], order: Sequence[str]) -> CatalogText:
    """Join the text columns of each item.

    Parameters
    ----------
    item_ids : sequence, length n
    columns : mapping of column name to a sequence of n values (str or None)
    order : column names to read, in this order; missing ones are skipped

    Returns
    -------
    CatalogText
    """
    from features.text import has_words

    ids = np.asarray(item_ids, dtype=object)
    use = [c for c in order if c in columns]
    texts, tags = [], []
    for row in range(len(ids)):
        parts = [_cell(columns[c][row]) for c in use]
        joined = ". ".join(p for p in parts if p)
        texts.append(joined if has_words(joined) else "")
        tags.append(split_tags(columns[TAG_COLUMN][row]) if TAG_COLUMN in use else [])
    has_text = np.array([bool(t) for t in texts], dtype=bool)
    return CatalogText(ids, texts, has_text, tags, use)


def catalog_text(catalog, columns: Sequence[str] = DEFAULT_TEXT_COLUMNS, required: bool = False) -> CatalogText:
    """Text of a :class:`~recsys.data.Catalog` from its metadata columns.

    Parameters
    ----------
    catalog : Catalog
    columns : column names (``--text-cols``)
    required : bool
        Raise when none of ``columns`` exists (an explicit ``--text-cols`` that matches nothing).
    """
    meta = catalog.metadata
    have = [] if meta is None else [c for c in columns if c in meta.columns]
    if required and not have:
        known = [] if meta is None else list(meta.columns)
        raise ConfigError(f"none of the text columns {list(columns)} is in the catalog (its columns: {known})")
    data = {c: meta.get_column(c).cast(str, strict=False).to_list() for c in have} if have else {}
    return text_from_columns(catalog.item_ids, data, columns)


def tag_vocabulary(text: CatalogText, min_count: int = 1, max_tags: int = 500) -> list[str]:
    """Tags the catalog uses (most used first), or its most frequent words without a tags column."""
    counts = Counter(t for tags in text.tags for t in set(tags))
    if counts:
        return [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count][:max_tags]
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [t for t in text.texts if t]
    if not docs:
        return []
    cv = CountVectorizer(max_features=max_tags, binary=True).fit(docs)
    df = np.asarray(cv.transform(docs).sum(axis=0)).ravel()
    names = cv.get_feature_names_out()
    order = np.lexsort((names, -df))
    return [str(names[i]) for i in order if df[i] >= min_count]
