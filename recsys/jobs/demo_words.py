"""Searches and explanations for ``avrec demo`` to print: :func:`run_search_demo`.

``recsys.jobs.demo`` calls it with the demo's bundle (or a service over it) and prints the lines; the
function only reads, so it can run on any bundle fitted with text features.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_QUERIES = ("rain", "calm piano", "energetic drums")


def run_search_demo(bundle_or_service: Any, queries: Sequence[str] = DEFAULT_QUERIES,
                    users: Sequence[Any] | None = None, n: int = 5, explain_n: int = 3) -> list[str]:
    """A few searches (without and with a user) and explained recommendations, as printable lines.

    Parameters
    ----------
    bundle_or_service : path, Bundle, RecommendationService or SearchService
        A bundle fitted with ``--features`` of a catalog with text (the demo's ``bundle/``).
    queries : sequence of str
        Searched once without a user and once for each of ``users``.
    users : sequence of user ids, optional
        Default: the first two users with history.
    n : int
        Items per search.
    explain_n : int
        Recommendations explained for the first user (0: none).

    Returns
    -------
    list of str
        One line each; items found through their media alone are marked ``[media]``.
    """
    from serving.search_service import SearchService
    from serving.service import RecommendationService

    search = bundle_or_service
    if isinstance(search, (str, Path)):
        from serving.bundle import load_bundle

        search = load_bundle(search)
    if not isinstance(search, (RecommendationService, SearchService)):
        search = RecommendationService(search)
    if isinstance(search, RecommendationService):
        search = SearchService(search)
    service = search.service
    x = service.interactions
    if users is None:
        users = x.user_ids[x.active_users()[:2]].tolist()
    lines = []
    for q in queries:
        for user in (None, *users):
            res = search.search(q, user_id=user, n=n)
            who = "" if user is None else f" as user {user}"
            shown = ", ".join(f"{it['item_id']}{' [media]' if it['matched_by'] == 'media' else ''}"
                              for it in res["items"])
            lines.append(f"search {q!r}{who}: {shown}")
    if explain_n and users:
        user = users[0]
        items = service.recommend_user(user, n=explain_n)["items"]
        for it in search.explain_items(user, items):
            e = it["explanation"]
            parts = []
            if e["cf"] and e["cf"]["because"]:
                parts.append("because you watched " + ", ".join(str(b["item_id"]) for b in e["cf"]["because"]))
            parts += [s["phrase"] for s in e["similar"].values()]
            lines.append(f"user {user} gets {it['item_id']}: " + ("; ".join(parts) or "no reason available"))
    return lines
