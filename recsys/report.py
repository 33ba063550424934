"""Evaluation reports: a rich console table, JSON, a markdown table and PNG plots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsys.evaluation import EvalResult


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def table_rows(results: Sequence[EvalResult], k: int) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table at cut-off ``k``: all / warm / cold segments."""
    check_one_protocol(results)
    header = ["model", "learned from", f"recall@{k}", f"ndcg@{k}", f"precision@{k}", f"map@{k}", "auc",
              f"warm recall@{k}", f"cold recall@{k} (users)", "warm-only", "cold-only", "users", "seconds"]
    rows = []
    for r in results:
        a = r.segments["all"]
        w = r.segments.get("warm", {})
        c = r.segments.get("cold", {})
        wo = r.segments.get("warm_only", {})
        co = r.segments.get("cold_only", {})
        rows.append([
            r.model,
            r.learned_from or "-",
            _fmt(a.get(f"recall@{k}", float("nan"))),
            _fmt(a.get(f"ndcg@{k}", float("nan"))),
            _fmt(a.get(f"precision@{k}", float("nan"))),
            _fmt(a.get(f"map@{k}", float("nan"))),
            _fmt(a.get("auc", float("nan"))),
            _fmt(w.get(f"recall@{k}", float("nan"))),
            _fmt(c.get(f"recall@{k}", float("nan"))) + (f" ({c['users']})" if c.get("users") else ""),
            _fmt(wo.get(f"recall@{k}", float("nan"))),
            _fmt(co.get(f"recall@{k}", float("nan"))),
            str(a.get("users", "")),
            f"{r.seconds:.2f}",
        ])
    return header, rows


def check_one_protocol(results: Sequence[EvalResult]) -> str:
    """The one protocol of ``results`` ('' when none is named); rows of two protocols never share
    a table (their models learned from different data)."""
    names = {r.protocol for r in results if r.protocol}
    if len(names) > 1:
        from recsys.errors import ConfigError

        raise ConfigError(f"results of different protocols {sorted(names)} cannot share one table")
    return names.pop() if names else ""


def make_console():
    """A rich console; wide when output is not a terminal (logs, CI), so tables are not cut."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def print_table(results: Sequence[EvalResult], k: int, title: str = "Evaluation", console=None) -> None:
    """Print the summary table with rich."""
    from rich.table import Table

    header, rows = table_rows(results, k)
    t = Table(title=title)
    for h in header:
        t.add_column(h, justify="left" if h == "model" else "right")
    for r in rows:
        t.add_row(*r)
    (console or make_console()).print(t)


def markdown_table(results: Sequence[EvalResult], k: int) -> str:
    """The summary table as GitHub markdown."""
    header, rows = table_rows(results, k)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def results_json(results: Sequence[EvalResult], extra: dict | None = None) -> dict[str, Any]:
    """``{model: {"recall@20": .., "auc": .., "segments": {"warm": {..}, "cold": {..}}}}``."""
    out: dict[str, Any] = {r.model: r.to_json() for r in results}
    if extra:
        out["_meta"] = extra
    return out


def write_json(path: str | Path, results: Sequence[EvalResult], extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results_json(results, extra), indent=2, default=_json_default, allow_nan=True))
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_report(directory: str | Path, results: Sequence[EvalResult], k: int, extra: dict | None = None) -> list[Path]:
    """Write ``results.json``, ``results.md``, ``recall_at_k.png`` and ``roc.png`` into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = [write_json(d / "results.json", results, extra)]
    md = d / "results.md"
    protocol = check_one_protocol(results)
    head = ""
    if protocol:
        desc = (extra or {}).get("protocol_description", "")
        head = f"Protocol: **{protocol}**" + (f" ({desc})" if desc else "") + "\n\n"
    md.write_text(head + markdown_table(results, k))
    paths.append(md)
    paths += plot_results(d, results)
    return paths


#: What each recall@k panel ranks, and why it can be empty.
_PANELS = {
    "all": ("all items", "no test users (no held-out interactions)"),
    "warm": ("warm items", "no warm items in test\n(every held-out item is new to training)"),
    "cold": ("cold items", "no cold items in test\n(every held-out item was seen in training)"),
    "cold_only": ("cold items ranked alone", "no cold items in test\n(every held-out item was seen in training)"),
}


def plot_results(directory: Path, results: Sequence[EvalResult]) -> list[Path]:
    """Write ``recall_at_k.png`` (:func:`recall_figure`) and ``roc.png`` (:func:`roc_figure`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for name, fig in (("recall_at_k.png", recall_figure(results)), ("roc.png", roc_figure(results))):
        p = Path(directory) / name
        # "tight" keeps the legend, which sits outside the axes so that it never hides a curve
        fig.savefig(p, dpi=110, bbox_inches="tight")
        plt.close(fig)
        out.append(p)
    return out


def recall_figure(results: Sequence[EvalResult]):
    """Recall@k curves, one panel per evaluated segment (all, warm, cold, cold ranked alone).

    A panel without a curve says why in its middle (``no cold items in test`` ...). The k axis has
    integer ticks; one legend for all panels sits right of them, outside every axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    segs = [s for s in _PANELS if any(s in r.recall_curve for r in results)] or ["all"]
    fig, axes = plt.subplots(1, len(segs), figsize=(4.2 * len(segs), 3.6), squeeze=False)
    handles: dict[str, Any] = {}
    # every panel spans the same k (1..largest cut-off), so empty ones line up with the others
    kmax = max((len(c) for r in results for c in r.recall_curve.values()), default=1)
    for ax, s in zip(axes[0], segs):
        what, empty = _PANELS[s]
        for r in results:
            c = r.recall_curve.get(s)
            if c is not None and np.isfinite(c).any():
                (line,) = ax.plot(np.arange(1, len(c) + 1), c, label=r.model, marker="o" if len(c) <= 3 else None)
                handles.setdefault(r.model, line)
        ax.set_title(f"recall@k ({what})")
        ax.set_xlabel("k")
        ax.set_ylabel("recall")
        if kmax == 1:  # a single cut-off: one tick, the point in the middle
            ax.set_xlim(0.5, 1.5)
            ax.set_xticks([1])
        else:
            ax.set_xlim(1, kmax)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.grid(alpha=0.3)
        else:
            ax.set_ylim(0, 1)
            ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, color="0.35")
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5),
                   fontsize=8, frameon=False, title="model")
    fig.tight_layout()
    return fig


def roc_figure(results: Sequence[EvalResult]):
    """ROC curves of pooled scores (negatives sampled for the plot; the AUCs in the legend are exact).

    The legend sits right of the axes; without any pooled scores the panel says why.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.2))  # room for the legend right of a square plot
    for r in results:
        if r.roc_sample is None or not len(r.roc_sample[0]) or not len(r.roc_sample[1]):
            continue
        fpr, tpr = roc_curve(*r.roc_sample)
        ax.plot(fpr, tpr, label=f"{r.model} (AUC {r.segments['all'].get('auc', float('nan')):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="_chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, pooled scores\n(negatives sampled for the plot; AUC in legend is exact)", fontsize=9)
    if len(ax.lines) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    else:
        no_users = all(r.segments.get("all", {}).get("users", 0) == 0 for r in results)
        why = ("no test users (no held-out interactions)" if no_users
               else "no pooled scores: evaluated without AUC\nor without sampled negatives")
        ax.text(0.5, 0.62, why, ha="center", va="center", transform=ax.transAxes, color="0.35")
    fig.tight_layout()
    return fig


def roc_curve(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates over all thresholds of pooled scores."""
    pos = pos[np.isfinite(pos)]
    neg = neg[np.isfinite(neg)]
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores, kind="stable")
    labels = labels[order]
    tpr = np.concatenate([[0], np.cumsum(labels) / max(len(pos), 1)])
    fpr = np.concatenate([[0], np.cumsum(1 - labels) / max(len(neg), 1)])
    return fpr, tpr
