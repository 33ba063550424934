"""The ``avrec recommend`` job: a bundle -> top-n lists of every (or the listed) user, as a file.

:func:`check_recommend` runs first: the bundle folder, the output name, ``--n`` and the ``--users``
file are checked before the bundle is loaded.

Lists are computed locally in batches (:func:`serving.batch.write_recommendations`) or in Spark
tasks (:func:`recsys.spark.recommend_all_spark`, a folder of part files).
"""

from __future__ import annotations

from pathlib import Path

from recsys.errors import ConfigError
from recsys.jobs import checks

#: what a local ``recommend`` writes (Spark writes a folder of part files)
LIST_SUFFIXES = (".parquet", ".csv")


def check_recommend(bundle: str | Path, out: str | Path, n: int = 100, users: str | Path | None = None,
                    engine: str = "local") -> None:
    """Every check of ``avrec recommend``, before the bundle is loaded.

    Raises
    ------
    ConfigError
        ``bundle`` is not a bundle folder; ``out`` has another suffix than .parquet/.csv (local
        engine), is a folder, or lies under a file; ``n < 1``; the ``users`` file is missing.
    """
    checks.one_of(engine, "--engine", ("local", "spark"))
    checks.bundle_dir(bundle)
    if engine == "local":
        checks.output_file(out, "--out", LIST_SUFFIXES)
    else:
        checks.output_dir(out, "--out")
    checks.at_least(n, "--n", 1, none_ok=False)
    if users is not None:
        checks.input_file(users, "--users", "file of user ids")


def read_user_ids(path: str | Path) -> list:
    """User ids from a CSV/Parquet with a user_id column, or a text file with one id per line.

    Raises
    ------
    ConfigError
        The file is missing, or a table has no ``user_id`` column.
    """
    import polars as pl

    p = Path(path)
    checks.input_file(p, "--users", "file of user ids")
    if p.suffix.lower() in (".parquet", ".pq", ".csv"):
        df = pl.read_parquet(p) if p.suffix.lower() != ".csv" else pl.read_csv(p)
        if "user_id" not in df.columns:
            raise ConfigError(f"--users {p} has no user_id column (its columns: {df.columns}); name the column "
                              "user_id, or give a text file with one id per line")
        return df.get_column("user_id").to_list()
    return [line.strip() for line in p.read_text().splitlines() if line.strip()]


def recommend_bundle(bundle: str | Path, out: str | Path, n: int = 100, users: str | Path | None = None,
                     include_seen: bool = False, explain: bool = False, engine: str = "local",
                     spark_master: str = "local[*]", exact: bool = False) -> tuple[Path, float]:
    """Write the top-``n`` list of every user (or of the users in ``users``) of a bundle.

    Parameters
    ----------
    bundle : path
        A bundle directory (``avrec fit``); verified on load.
    out : path
        ``.parquet`` or ``.csv`` (local), or a folder of part files (Spark).
    n : int
        Items per user.
    users : path, optional
        User ids (:func:`read_user_ids`); ids unknown to the bundle get the cold-start list.
    include_seen : bool
        Keep the users' training items in their lists.
    explain : bool
        Add an explanation column (local engine).
    engine : {"local", "spark"}
    spark_master : str
    exact : bool
        Exact retrieval even when the bundle holds approximate item indexes (``--exact``).

    Returns
    -------
    (Path written, seconds spent scoring and writing)

    Raises
    ------
    ConfigError
        What :func:`check_recommend` refuses, before the bundle is loaded.
    """
    from serving.bundle import load_bundle

    check_recommend(bundle, out, n, users, engine)
    b = load_bundle(bundle, exact=exact or None)
    ids = None
    if users:
        m = b.interactions.user_map
        # ids read from text are strings; IdMap.find matches them to integer ids too
        ids = [m.raw(i) if (i := m.find(u)) >= 0 else u for u in read_user_ids(users)]
    if engine == "spark":
        from recsys.spark import recommend_all_spark

        written, seconds = recommend_all_spark(b.model, b.interactions, out, n=n, master=spark_master, users=ids,
                                               filter_seen=not include_seen)
        return Path(written), seconds
    from serving.batch import write_recommendations

    return write_recommendations(b.model, b.interactions, out, n=n, users=ids, filter_seen=not include_seen,
                                 explain_with=b.item_features if explain else False)
