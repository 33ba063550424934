"""Checks that say when a fitted model is not worth using: not above popularity on validation.

Popularity (the same list for everyone) is the floor any personalised model should clear. A model
below it on the validation part, or barely above it, usually has settings that do not fit the log
(a penalty too strong for its size: a collapsed ALS scores like popularity; too few interactions
per user for the model's needs), and nothing else says so: its test numbers look like numbers. :func:`below_popularity` turns validation metrics into
warnings; :class:`PopularityCheck` collects the metrics while a job fits its models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from recsys.data.interactions import Interactions
from recsys.tuning import SEARCH_SPACES

BASELINE = "popularity"


def below_popularity(
    metrics: Mapping[str, Mapping[str, float]],
    keys: Sequence[str] = ("recall@20", "ndcg@20"),
    baseline: str = BASELINE,
    part: str = "val",
    margin: float = 0.1,
) -> list[str]:
    """Warnings for the models below the baseline, or within ``margin`` above it, on every one of ``keys``.

    Parameters
    ----------
    metrics : mapping model name -> {metric name: value}
        Metrics on one part (validation), the baseline's among them.
    keys : sequence of str
        Metrics compared (those present in both the model's and the baseline's entries).
    baseline : str
        The entry compared against.
    part : str
        Named in the messages.
    margin : float
        Relative margin a model must clear: 0.1 warns up to 1.1x the baseline (a model that
        collapsed to popularity scores a little above it, not below).

    Returns
    -------
    list of str
        One line per model below the baseline, naming the values and what to try; empty when the
        baseline is missing or every model clears it.
    """
    base = metrics.get(baseline)
    if not base:
        return []
    out = []
    for name, m in metrics.items():
        shared = [k for k in keys if k in m and k in base]
        if name == baseline or not shared or not all(m[k] < (1 + margin) * base[k] for k in shared):
            continue
        values = ", ".join(f"{k} {m[k]:.4f} vs {base[k]:.4f}" for k in shared)
        where = "below" if all(m[k] < base[k] for k in shared) else f"less than {1 + margin:.2g}x"
        model = name.split(":")[0]
        fix = f"--tune {model} or other --param {model}.* values" if model in SEARCH_SPACES else \
            f"other --param {model}.* values"
        out.append(f"{name} is {where} {baseline} on {part} ({values}): its settings may not fit this log; "
                   f"try {fix}, or use {baseline}")
    return out


class PopularityCheck:
    """Validation metrics of the models a job fits, and the warnings for those below popularity.

    Parameters
    ----------
    train, val : Interactions
        Parts of one split; models are fitted on ``train`` when :meth:`add` sees them.
    k : int
        Cut-off of recall and NDCG.
    """

    def __init__(self, train: Interactions, val: Interactions, k: int = 20) -> None:
        self.train, self.val, self.k = train, val, int(k)
        self.metrics: dict[str, dict[str, float]] = {}

    def add(self, name: str, model) -> dict[str, float]:
        """Score a model fitted on ``train`` on the validation part (train items excluded)."""
        from recsys.evaluation import evaluate

        r = evaluate(model, self.train, self.val, ks=(self.k,), auc=False, segments=False, roc_negatives=0)
        a = r.segments["all"]
        self.metrics[name] = {f"recall@{self.k}": float(a[f"recall@{self.k}"]),
                              f"ndcg@{self.k}": float(a[f"ndcg@{self.k}"])}
        return self.metrics[name]

    def warnings(self) -> list[str]:
        """:func:`below_popularity` over the models added (popularity is fitted here when no job did)."""
        if BASELINE not in self.metrics:
            from recsys.models import make_model

            self.add(BASELINE, make_model(BASELINE).fit(self.train))
        return below_popularity(self.metrics, keys=(f"recall@{self.k}", f"ndcg@{self.k}"))
