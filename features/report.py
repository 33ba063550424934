"""What a feature extraction run did: :class:`ExtractionReport`, written as ``DIR/report.json``.

Both engines fill it (:func:`features.store.extract_catalog` and the Spark engine in
:mod:`recsys.spark.features`); the CLI prints :meth:`ExtractionReport.summary` and exits with
:meth:`ExtractionReport.exit_code`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The report of the last run, in the output folder.
REPORT_JSON = "report.json"


@dataclass
class ExtractionReport:
    """What :func:`features.store.extract_catalog` did.

    Attributes
    ----------
    out_dir : Path
    n_items : int
        Catalog rows (= rows of the output).
    n_ok, n_failed : int
        Rows with status "ok" / "failed".
    n_cached : int
        Rows served from the cache (ok or failed) instead of extracted in this run.
    failures : list of (item_id, path, reason)
    seconds : float
        Wall time of the whole call.
    video_seconds : float
        Media duration of the rows extracted (not cached) successfully in this run.
    config_key : str
        Cache folder name under ``out_dir/cache``.
    executor : str
        How the files were extracted: ``"in-process"`` (one after another), ``"threads"``,
        ``"processes"``, or ``"none"`` (everything came from the cache).
    workers : int
        Files extracted at a time (0 when nothing was extracted).
    """

    out_dir: Path
    n_items: int
    n_ok: int
    n_failed: int
    n_cached: int
    failures: list[tuple[Any, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    video_seconds: float = 0.0
    config_key: str = ""
    executor: str = "none"
    workers: int = 0

    @property
    def n_extracted(self) -> int:
        """Rows computed in this run (not from the cache)."""
        return self.n_items - self.n_cached

    def exit_code(self) -> int:
        """CLI status: 0 when at least one item succeeded (failures are warnings), 1 otherwise."""
        return 0 if self.n_ok > 0 else 1

    def summary(self, max_failures: int = 10) -> str:
        """Human-readable result; failures listed (up to ``max_failures``) with their reasons."""
        lines = [
            f"features: {self.n_ok}/{self.n_items} items ok, {self.n_failed} failed, "
            f"{self.n_cached} from cache, {self.seconds:.1f} s -> {self.out_dir}"
        ]
        if self.video_seconds > 0 and self.seconds > 0:
            how = f", {self.executor}" + (f" x{self.workers}" if self.workers > 1 else "")
            lines.append(
                f"throughput: {self.video_seconds / self.seconds:.1f} media-seconds per second "
                f"({self.video_seconds:.1f} s of media extracted{how})"
            )
        if self.n_ok == 0:
            lines.append("ERROR: no item could be extracted; see the reasons below")
        elif self.n_failed:
            lines.append(
                f"WARNING: {self.n_failed} item(s) failed; they are kept with status 'failed' and every "
                "modality mask False (rerun with retry_failed / --retry-failed after fixing the files)"
            )
        for item_id, path, reason in self.failures[:max_failures]:
            lines.append(f"  {item_id!s}: {path}: {reason}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more (items.parquet, column 'error')")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["failures"] = [[_json_id(i), p, r] for i, p, r in self.failures]
        return d


def _json_id(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x