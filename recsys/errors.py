"""The avrec error hierarchy.

Every error a user can cause derives from :class:`AvrecError`, so callers (the CLI, the HTTP
service) can tell user errors from bugs. Messages name the file, line, column or id involved and
say what to do about it.
"""

from __future__ import annotations


class AvrecError(Exception):
    """Base class of every error avrec raises on purpose."""


class DataError(AvrecError, ValueError):
    """Input data is malformed: a missing column, an unparsable value, a NaN or negative weight.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    path : str, optional
        The file the problem was found in.
    line : int, optional
        1-based line number in that file (the header is line 1 for CSV).
    column : str, optional
        The column name.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class QueryError(DataError):
    """A search query that cannot be answered: empty, too long, or with no word the catalog knows."""


class SplitError(DataError):
    """A split is impossible or would leak (train/test overlap, too few interactions)."""


class NotFittedError(AvrecError, RuntimeError):
    """A model was used before ``fit``."""


class UnknownIdError(AvrecError, KeyError):
    """A raw user or item id is not in the id map."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class MediaDecodeError(AvrecError):
    """A media file could not be decoded (corrupt, truncated, empty, unreadable, wrong format).

    Parameters
    ----------
    path : str
        The media file.
    reason : str
        Why decoding failed.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class FitError(AvrecError, RuntimeError):
    """Training produced an unusable result (NaN factors, divergence)."""


class BundleError(AvrecError):
    """A saved bundle is missing files, has wrong checksums or an incompatible version."""


class ConfigError(AvrecError, ValueError):
    """An option or parameter has an invalid value."""
