"""Which columns of an interaction log hold what: one detection rule for every role.

The rule (README, "Data formats"): each role -- user, item, timestamp, weight, event -- is

1. the column named for it explicitly (``--user-col`` ... ; it must exist), or turned off with
   the name ``none`` (optional roles only);
2. otherwise the first header name, compared case-insensitively and without surrounding spaces,
   in the role's list of :data:`CANDIDATES`;
3. otherwise absent (an error for user and item).

``weight`` and ``event`` both give the confidence of a row, so only one is used: the one named
explicitly (the other is then not detected), else ``weight`` (an event column found beside it is
reported unused). Columns no role uses are reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recsys.errors import DataError

ROLES = ("user", "item", "timestamp", "weight", "event")
#: Header names each role is detected by, in order of preference.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "user", "userid", "uid"),
    "item": ("item_id", "item", "itemid", "iid"),
    "timestamp": ("timestamp", "time", "ts", "datetime"),
    "weight": ("weight", "confidence"),
    "event": ("event", "event_type"),
}
#: An explicit name that turns an optional role off.
OFF = "none"
_OPTION = {"user": "--user-col", "item": "--item-col", "timestamp": "--time-col", "weight": "--weight-col",
           "event": "--event-col"}


@dataclass(frozen=True)
class LogColumns:
    """The columns a log is read with.

    Attributes
    ----------
    user, item : str
    timestamp, weight, event : str or None
    unused : tuple of str
        Columns no role reads.
    detected : tuple of str
        Roles found by the rule rather than named explicitly.
    """

    user: str
    item: str
    timestamp: str | None = None
    weight: str | None = None
    event: str | None = None
    unused: tuple[str, ...] = ()
    detected: tuple[str, ...] = ()

    def describe(self) -> str:
        """``user=user_id item=item_id timestamp=ts weight=weight (unused: note)``, one line."""
        used = " ".join(f"{r}={getattr(self, r)}" for r in ROLES if getattr(self, r) is not None)
        return used + (f" (unused: {', '.join(self.unused)})" if self.unused else "")


def detect_columns(columns: Sequence[str], path: str, **given: str | None) -> LogColumns:
    """Apply the detection rule to a header.

    Parameters
    ----------
    columns : sequence of str
        The file's column names, in order.
    path : str
        For error messages.
    **given : str or None
        ``user=``, ``item=``, ``timestamp=``, ``weight=``, ``event=``: an explicit column name,
        ``"none"`` (optional roles: off), or None (detect).

    Raises
    ------
    DataError
        A header naming one column twice, an explicit name the file lacks, no user or item column.
        Always with ``line=1`` (the header) and the column.
    """
    bad = set(given) - set(ROLES)
    if bad:
        raise TypeError(f"unknown roles {sorted(bad)}")
    seen: set[str] = set()
    for c in columns:  # two columns of one name: which one is meant cannot be known
        if c in seen:
            raise DataError(f"the header names column {c!r} twice; rename one", path=path, line=1, column=c)
        seen.add(c)
    folded = {}
    for c in columns:
        folded.setdefault(c.strip().lower(), c)
    chosen: dict[str, str | None] = {}
    detected = []
    for role in ROLES:
        name = given.get(role)
        if name is not None and name.strip().lower() == OFF and role not in ("user", "item"):
            chosen[role] = None
        elif name is not None:
            if name not in columns:
                raise DataError(f"no column {name!r} ({_OPTION[role]}); the file has columns {list(columns)}",
                                path=path, line=1, column=name)
            chosen[role] = name
        else:
            chosen[role] = next((folded[c] for c in CANDIDATES[role] if c in folded), None)
            if chosen[role] is not None:
                detected.append(role)
    for role in ("user", "item"):
        if chosen[role] is None:
            raise DataError(f"no {role} column: expected one named {' or '.join(CANDIDATES[role])} "
                            f"(or name it with {_OPTION[role]}); the file has columns {list(columns)}"
                            f"{_separator_hint(columns)}", path=path, line=1, column=CANDIDATES[role][0])
    # one source of confidence: a named one silences detection of the other; weight beats event
    if chosen["weight"] is not None and chosen["event"] is not None:
        if "weight" in detected and "event" not in detected:
            drop = "weight"
        elif "event" in detected:
            drop = "event"
        else:
            raise DataError("give either a weight column or an event column, not both", path=path, line=1,
                            column=chosen["event"])
        chosen[drop] = None
        detected.remove(drop)
    used = [c for c in chosen.values() if c is not None]
    if len(set(used)) != len(used):
        twice = next(c for c in used if used.count(c) > 1)
        raise DataError(f"one column serves two roles: {chosen}", path=path, line=1, column=twice)
    unused = tuple(c for c in columns if c not in used)
    return LogColumns(**chosen, unused=unused, detected=tuple(detected))


def _separator_hint(columns: Sequence[str]) -> str:
    """A hint when the whole header is one column holding another separator."""
    if len(columns) == 1:
        for sep in (";", "\t", "|", ","):
            if sep in columns[0]:
                return f"; the header looks {sep!r}-separated (use .tsv for tabs, or convert the file to commas)"
    return ""
