"""What ``avrec serve`` tells its operator: the start-up line and the log settings.

- **Start-up line** (stderr, once, when the bundle is loaded and the socket listens): the URL and
  the docs URL, the bundle path, model, users, items (registered ones counted), whether text
  search and item registration are on (and why not), the worker count with ``--workers N``.
  With several workers the parent prints it once every worker answers.
- **Access log**: one line per request (uvicorn's ``uvicorn.access`` logger, on stdout) at
  ``info`` whatever ``--log-level`` says, so a server answers visibly by default.
- **The rest** (uvicorn's own messages, avrec's: reloads, the registrations log) at ``--log-level``
  (default ``warning``), on stderr.
- **Quiet** (``--quiet``): errors only; no start-up line, no access log.
"""

from __future__ import annotations

import copy
import logging
import sys
from typing import Any

#: ``--log-level`` values, most to least severe ("trace" is uvicorn's level below debug)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_TRACE = 5  # uvicorn.logging.TRACE_LOG_LEVEL, without importing uvicorn here
# avrec's own loggers the server writes to: reloads ("avrec.serving"), the registrations log
# ("serving.registry")
_AVREC_LOGGERS = ("avrec", "serving")


def _level_number(name: str) -> int:
    return _TRACE if name == "trace" else logging.getLevelName(name.upper())


def log_config(level: str = "warning", quiet: bool = False) -> dict[str, Any]:
    """uvicorn's logging configuration with the levels of ``avrec serve`` (see the module docstring).

    It is a ``logging.config.dictConfig`` dict, so it travels to the worker processes of a
    multi-worker server (uvicorn applies it again in each); pass it as ``log_config`` with
    ``log_level=None`` (a ``log_level`` would set the access logger to the same level).

    Parameters
    ----------
    level : str
        One of :data:`LOG_LEVELS`; the access log is at ``info`` or below whatever this says.
    quiet : bool
        Errors only: every logger at ``error``, the access log's too (the caller also passes
        ``access_log=False``, which removes its handler).
    """
    from uvicorn.config import LOGGING_CONFIG

    if level not in LOG_LEVELS:
        raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    number = _level_number("error" if quiet else level)
    config = copy.deepcopy(LOGGING_CONFIG)
    loggers = config["loggers"]
    loggers["uvicorn"]["level"] = number
    loggers["uvicorn.error"]["level"] = number
    loggers["uvicorn.access"]["level"] = number if quiet else min(number, logging.INFO)
    for name in _AVREC_LOGGERS:  # formatted like uvicorn's lines, and silenced with them by --quiet
        loggers[name] = {"handlers": ["default"], "level": number, "propagate": False}
    return config


def base_url(host: str, port: int) -> str:
    """``http://host:port`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def describe_service(service, token: str | None) -> dict[str, Any]:
    """What the start-up line says about a served bundle.

    Parameters
    ----------
    service : serving.service.RecommendationService
        Built, registrations replayed.
    token : str or None
        The server's write token (registration needs one).

    Returns
    -------
    dict
        ``path``, ``model``, ``n_users``, ``n_items`` (registered items included),
        ``registered_items``, ``search`` and ``registration`` (``"on ..."`` or ``"off (why)"``).
    """
    bundle = service.bundle
    x = service.interactions
    if service.media_root is None:
        registration = "off (no --media-root)"
    elif bundle.extractor is None:
        registration = "off (the bundle has no extractor settings: fit it with --features DIR)"
    elif token is None:
        registration = "off (no --token or $AVREC_TOKEN)"
    else:
        registration = f"on (POST /items, media under {service.media_root})"
    return {"path": None if bundle.path is None else str(bundle.path), "model": service.model.name,
            "n_users": int(x.n_users), "n_items": int(x.n_items), "registered_items": int(service.n_registered),
            "search": "on" if bundle.text is not None else "off (the bundle has no text)",
            "registration": registration}


def startup_line(summary: dict[str, Any], host: str, port: int, workers: int = 1) -> str:
    """The one line ``avrec serve`` prints when it answers.

    Parameters
    ----------
    summary : dict
        :func:`describe_service`'s answer.
    host, port : where the socket listens (``port``: the bound one, never 0)
    workers : int
        Worker processes; named when more than one.

    Examples
    --------
    ``avrec serve: http://127.0.0.1:8000 (docs: http://127.0.0.1:8000/docs) serving /srv/b: als,
    200 users, 111 items (3 registered); search: off (...); registration: off (...); Ctrl-C stops``
    """
    url = base_url(host, port)
    where = " on every interface" if host in ("0.0.0.0", "::", "") else ""
    s = summary
    parts = [f"avrec serve: {url}{where} (docs: {url}/docs) serving {s['path'] or 'a bundle in memory'}: "
             f"{s['model']}, {s['n_users']:,} users, {s['n_items']:,} items ({s['registered_items']:,} registered)",
             f"search: {s['search']}", f"registration: {s['registration']}"]
    if workers > 1:
        parts.append(f"{workers} workers")
    parts.append("Ctrl-C stops")
    return "; ".join(parts)


def announce(line: str) -> None:
    """Write ``line`` to stderr now (flushed: a supervisor or a test reads it while the server runs)."""
    print(line, file=sys.stderr, flush=True)
