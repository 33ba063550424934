"""Progress display of a feature extraction run: a tqdm bar on a terminal, plain lines in a log."""

from __future__ import annotations

import sys
import time
from typing import Any


class _LineProgress:
    """Progress for a stderr that is not a terminal (a log file, CI): one plain line per 10 %.

    tqdm's carriage-return redraws would fill a log with one long unreadable line.
    """

    def __init__(self, total: int, initial: int, stream: Any = None) -> None:
        self.total, self.n, self.failed = total, initial, 0
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()
        self.last_tenth = initial * 10 // max(total, 1)
        if initial < total:
            cached = f" ({initial} of {total} from cache)" if initial else ""
            self._print(f"features: extracting {total - initial} files{cached}")

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def _line(self) -> None:
        pct = 100 * self.n // max(self.total, 1)
        failed = f", {self.failed} failed" if self.failed else ""
        elapsed = time.perf_counter() - self.t0
        self._print(f"features: {self.n}/{self.total} files ({pct}%){failed}, {elapsed:.1f} s")

    def set_postfix(self, failed: int = 0, refresh: bool = False) -> None:
        self.failed = failed

    def update(self, k: int) -> None:
        self.n += k
        tenth = self.n * 10 // max(self.total, 1)
        if tenth > self.last_tenth:
            self.last_tenth = tenth
            self._line()

    def close(self) -> None:
        pass


def progress_bar(total: int, initial: int, enabled: bool):
    """A tqdm bar on a terminal, :class:`_LineProgress` otherwise, a silent bar when disabled."""
    if enabled and not _isatty(sys.stderr):
        return _LineProgress(total, initial)
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, disable=not enabled, unit="file", desc="features", dynamic_ncols=True
    )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False
