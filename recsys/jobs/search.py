"""The ``avrec search`` and ``avrec tags`` jobs: the words of a bundle, without a server.

Both read a bundle fitted with a features folder that had text (``avrec fit --features DIR``) and
ask :class:`serving.search_service.SearchService`, the same service the HTTP routes use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recsys.errors import ConfigError
from recsys.jobs import checks

#: what ``avrec tags`` writes
TAG_SUFFIXES = (".parquet", ".csv")


def check_search(bundle: str | Path, query: str, n: int = 10, user_weight: float = 0.3,
                 json_out: str | Path | None = None) -> None:
    """Every check of ``avrec search``, before the bundle is loaded.

    Raises
    ------
    ConfigError
        Not a bundle folder; an empty query; ``n < 1``; ``user_weight`` outside [0, 1]; a
        ``json_out`` that cannot be written.
    """
    checks.bundle_dir(bundle)
    if not query.strip():
        raise ConfigError("--query is empty; give the words to search for")
    checks.at_least(n, "--n", 1, none_ok=False)
    checks.within(user_weight, "--user-weight", 0.0, 1.0)
    if json_out is not None:
        checks.output_file(json_out, "--json")


def check_tags(bundle: str | Path, out: str | Path, n: int = 5) -> None:
    """Every check of ``avrec tags``, before the bundle is loaded (bundle folder, ``out`` suffix, ``n``)."""
    checks.bundle_dir(bundle)
    checks.output_file(out, "--out", TAG_SUFFIXES)
    checks.at_least(n, "--n", 1, none_ok=False)


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

    Raises
    ------
    ConfigError
        What :func:`check_search` refuses, before the bundle is loaded.
    """
    check_search(bundle, query, n, user_weight, json_out)
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
        What :func:`check_tags` refuses, before the bundle is loaded.
    """
    import polars as pl

    check_tags(bundle, out, n)
    out = Path(out)
    df = pl.DataFrame(_search_service(bundle).tags(n=n), strict=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.write_csv(out) if out.suffix.lower() == ".csv" else df.write_parquet(out)
    return out, (df.get_column("item_id").n_unique() if df.height else 0)
