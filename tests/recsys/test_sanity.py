"""Warnings for models that do not clear popularity on validation (recsys.sanity)."""

from __future__ import annotations

from recsys.models import ALS
from recsys.synthetic.planted import planted_catalog
from recsys.sanity import PopularityCheck, below_popularity


def test_below_popularity_names_models_and_values():
    metrics = {"popularity": {"recall@20": 0.2818, "ndcg@20": 0.20},
               "als": {"recall@20": 0.2955, "ndcg@20": 0.21},  # a collapsed ALS: barely above
               "itemknn": {"recall@20": 0.7523, "ndcg@20": 0.55},
               "content:audio": {"recall@20": 0.10, "ndcg@20": 0.05}}
    lines = below_popularity(metrics)
    assert len(lines) == 2
    assert lines[0].startswith("als is less than 1.1x popularity on val (recall@20 0.2955 vs 0.2818")
    assert "--tune als" in lines[0]
    assert lines[1].startswith("content:audio is below popularity") and "--tune" not in lines[1]
    assert below_popularity(metrics, margin=0.0) == lines[1:]
    assert below_popularity({"als": {"recall@20": 0.1}}) == []  # no baseline, no verdict


def test_popularity_check_names_the_collapsed_als():
    """On a 100-item planted catalog the previous fixed ALS defaults (256 factors, penalty 100)
    score like popularity on val and are named; ALS with the automatic settings is not."""
    split = planted_catalog(seed=0).split()
    check = PopularityCheck(split.train, split.val, k=20)
    check.add("als", ALS(factors=256, regularization=100.0, alpha=3.0, bm25_b=0.5, iterations=10,
                         num_threads=1).fit(split.train))
    check.add("als:auto", ALS(num_threads=1).fit(split.train))
    lines = check.warnings()
    assert "popularity" in check.metrics
    assert [line.split(" ")[0] for line in lines] == ["als"], lines
    assert check.metrics["als:auto"]["recall@20"] > 1.5 * check.metrics["popularity"]["recall@20"]


def test_avrec_fit_warns_about_a_model_below_popularity(tmp_path):
    """`avrec fit` on a split folder with a val part runs the same check as `avrec evaluate`."""
    import csv

    from recsys.jobs.fit import fit_bundle

    split = planted_catalog(seed=0).split()
    for name, part in (("train", split.train), ("val", split.val), ("test", split.test)):
        with open(tmp_path / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["user_id", "item_id"])
            for u, i in zip(*part.matrix.nonzero()):
                w.writerow([part.user_ids[u], part.item_ids[i]])
    lines: list[str] = []
    fit_bundle("als", tmp_path / "bundle", dataset=str(tmp_path), log_fn=lines.append,
               params={"factors": 256, "regularization": 100.0, "alpha": 3.0, "bm25_b": 0.5, "iterations": 10})
    assert any(line.startswith("warning: als ") and "popularity" in line for line in lines), lines
    lines.clear()
    fit_bundle("als", tmp_path / "bundle2", dataset=str(tmp_path), log_fn=lines.append)
    assert not any(line.startswith("warning:") for line in lines), lines
