"""Items registered while serving, kept on disk: an append-only, checksummed log beside the bundle.

A registration is data: ``POST /items`` appends one record (the item id, the path it came from and
its extracted feature blocks) to ``<bundle>.items.jsonl`` *before* the item joins the model, and
the server replays the log when it starts, so registered items survive restarts. The bundle
directory itself is never written (its manifest lists every file and a checksum of each).

Format: one record per line, ``<JSON>\\t<SHA-256 of the JSON bytes>\\n``. A record is committed
when its whole line is written and ``fsync``-ed. The only state a crash can leave is a torn last
line (no newline, or a checksum that does not match): it is dropped at start-up with a warning,
and the file is cut back to the last whole record. A bad checksum on any earlier line means the
file was edited or damaged, and the server refuses to start rather than serve a guess.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from recsys.errors import BundleError

log = logging.getLogger(__name__)

SUFFIX = ".items.jsonl"


def log_path_for(bundle_dir: str | Path) -> Path:
    """Where the registrations of the bundle at ``bundle_dir`` are kept: ``<bundle>.items.jsonl``."""
    d = Path(bundle_dir).resolve()
    return d.with_name(d.name + SUFFIX)


class RegistrationLog:
    """The append-only log of one bundle's registered items.

    Parameters
    ----------
    path : path
        The log file (created on the first append; its folder must exist).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def check_writable(self) -> None:
        """Raise BundleError now, not at the first registration, when the log cannot be written."""
        target = self.path if self.path.exists() else self.path.parent
        if not os.access(target, os.W_OK):
            raise BundleError(f"cannot write the registrations log {self.path} (permission denied); "
                              "registered items would be lost on restart")

    def read(self) -> list[dict[str, Any]]:
        """Every committed record, oldest first; a torn last line is dropped and cut off the file.

        Raises
        ------
        BundleError
            A record other than the last fails its checksum or does not parse.
        """
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        records, good_bytes = [], 0
        for n, line in enumerate(lines, start=1):
            last = n == len(lines)
            if last and not line:  # the file ends with a newline: nothing after it
                break
            record = _parse(line) if not last else None  # a last line without newline is torn
            if record is None:
                if n >= len(lines) - 1:  # the final line: a write the server did not finish
                    log.warning("%s: dropping a torn record at line %d (a crash while registering)", self.path, n)
                    break
                raise BundleError(f"{self.path}, line {n}: record fails its checksum; the registrations log was "
                                  "edited or is damaged (restore it from a backup, or move it away to start "
                                  "without the registered items)")
            records.append(record)
            good_bytes += len(line) + 1
        if good_bytes < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_bytes)
                fh.flush()
                os.fsync(fh.fileno())
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and fsync it: when this returns, the record survives a crash."""
        body = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
        line = body + b"\t" + hashlib.sha256(body).hexdigest().encode() + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def _parse(line: bytes) -> dict[str, Any] | None:
    """The record on ``line``, or None when its checksum does not match or it does not parse."""
    body, sep, digest = line.rpartition(b"\t")
    if not sep or hashlib.sha256(body).hexdigest().encode() != digest:
        return None
    try:
        record = json.loads(body)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None
