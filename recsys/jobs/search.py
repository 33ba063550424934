"""The ``avrec search`` and ``avrec tags`` jobs: the words of a bundle, without a server.

Both read a bundle fitted with a features folder that had text (``avrec fit --features DIR``) and
ask :class:`serving.search_service.SearchService`, the same service the HTTP routes use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recsys.errors import ConfigError


def _search_service(bundle: str | Path):
    from serving.bundle import load_bundle
    from serving.search_service import SearchService
    from serving.service import RecommendationService

    return SearchService(RecommendationService(load_bundle(bundle)))


def search_bundle(bundle: str | Path, query: str, user: Any = None, n: int = 10, user_weight: float = 0.3,
                  json_out: str | Path | None = None) -> dict:
    """Items of a bundle for a text query, optionally mixed with a user's recommendation scores.

    Parameters
    ----------
    bundle : path
    query : str
    user : user id, optional
        Blend relevance with this user's scores (an unknown user: relevance only).
    n : int
    user_weight : float
        Share of the user's score in the order (0: relevance only).
    json_out : path, optional
        Also write the answer here as JSON.

    Returns
    -------
    dict
        ``SearchService.search``'s answer: ``query``, ``known_user``, ``items`` (``item_id``,
        ``score``, ``relevance``, ``user_score``, ``matched_by``) best first.
    """
    res = _search_service(bundle).search(query, user_id=user, n=n, user_weight=user_weight)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(res, indent=1, default=str))
    return res


def write_tags(bundle: str | Path, out: str | Path, n: int = 5) -> tuple[Path, int]:
    """Top-``n`` tags of every item of a bundle (own words, or predicted from media) to a table.

    Parameters
    ----------
    bundle : path
    out : path
        ``.parquet`` or ``.csv``: item_id, rank, tag, score, own, source.
    n : int
        Tags per item.

    Returns
    -------
    (Path written, number of items with tags)

    Raises
    ------
    ConfigError
        ``out`` has another suffix (checked before the bundle is loaded).
    """
    import polars as pl

    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out must end in .parquet or .csv, got {out.name}")
    df = pl.DataFrame(_search_service(bundle).tags(n=n), strict=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.write_csv(out) if out.suffix.lower() == ".csv" else df.write_parquet(out)
    return out, (df.get_column("item_id").n_unique() if df.height else 0)
