"""Every CLI error is one clear line and exit code 2: each command with wrong types, missing files,
folders for files and files for folders. In-process (``main``) for the whole table, and as real
processes for the four cases issue 15 found printing tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("cli-errors")
    log = d / "log.csv"
    log.write_text("user_id,item_id,timestamp\n"
                   + "".join(f"u{u},i{(u * 3 + k) % 7},{u * 10 + k}\n" for u in range(12) for k in range(3)))
    (d / "folder").mkdir()
    (d / "plain.txt").write_text("not a table, not a folder\n")
    (d / "catalog.csv").write_text(f"item_id,path\ni0,{d / 'plain.txt'}\n")
    good = d / "bundle"
    assert main(["fit", "--log", str(log), "--model", "popularity", "--out", str(good)]) == 0
    tampered = d / "tampered"
    assert main(["fit", "--log", str(log), "--model", "popularity", "--out", str(tampered)]) == 0
    (tampered / "users.parquet").write_bytes((tampered / "users.parquet").read_bytes()[:-9] + b"tampered!")
    return {"LOG": str(log), "DIR": str(d / "folder"), "FILE": str(d / "plain.txt"), "MISSING": str(d / "nope.csv"),
            "BUNDLE": str(good), "TAMPERED": str(tampered), "OUT": str(d / "out"), "CATALOG": str(d / "catalog.csv")}


CASES = [
    # evaluate / info: data options
    "evaluate --log DIR",
    "evaluate --log MISSING",
    "evaluate --log FILE",
    "evaluate --dataset FILE",
    "evaluate --dataset MISSING",
    "evaluate --log LOG --param als.factors=abc",
    "evaluate --log LOG --param hybrid.cold_share=abc",
    "evaluate --log LOG --param als.nosuch=1",
    "evaluate --log LOG --param factors=3",
    "evaluate --log LOG --models nosuch",
    "evaluate --log LOG --k abc",
    "evaluate --log LOG --test-size abc",
    "evaluate --log LOG --features FILE",
    "evaluate --log LOG --features DIR",
    "evaluate --log LOG --user-col nosuch",
    "evaluate",
    "info --log DIR",
    "info --dataset FILE",
    "info --log LOG --seed abc",
    # fit
    "fit --log DIR --model als --out OUT",
    "fit --log LOG --model nosuch --out OUT",
    "fit --log LOG --model als --param als.factors=abc --out OUT",
    "fit --log LOG --model als --param als.factors=2.5 --out OUT",
    "fit --log LOG --model popularity --out FILE",
    "fit --log LOG --model popularity --out BUNDLE",
    "fit --log LOG --model content --out OUT",
    "fit --log LOG --model bridge --features FILE --out OUT",
    "fit --dataset LOG --model als --out OUT",
    "fit --log LOG --model als",
    # recommend
    "recommend --bundle DIR --out OUT/r.csv",
    "recommend --bundle FILE --out OUT/r.csv",
    "recommend --bundle MISSING --out OUT/r.csv",
    "recommend --bundle TAMPERED --out OUT/r.csv",
    "recommend --bundle BUNDLE --out OUT/r.txt",
    "recommend --bundle BUNDLE --out DIR",
    "recommend --bundle BUNDLE --out OUT/r.csv --n abc",
    "recommend --bundle BUNDLE --out OUT/r.csv --n 0",
    "recommend --bundle BUNDLE --out OUT/r.csv --users DIR",
    "recommend --bundle BUNDLE --out OUT/r.csv --users MISSING",
    "recommend --bundle BUNDLE --out FILE/r.csv",
    # serve (none of these may start a server)
    "serve --bundle TAMPERED",
    "serve --bundle FILE",
    "serve --bundle DIR",
    "serve --bundle BUNDLE --media-root FILE",
    "serve --bundle BUNDLE --port abc",
    "serve --bundle BUNDLE --port 99999",
    "serve --bundle BUNDLE --log-level chatty",
    "serve --bundle BUNDLE --token short",
    # features / encoders / demo data
    "features --catalog MISSING --out OUT/f",
    "features --catalog FILE --out OUT/f",
    "features --catalog DIR --out OUT/f",
    "features --catalog CATALOG --out FILE",
    "features --catalog CATALOG --out OUT/f --fps abc",
    "features --catalog CATALOG --out OUT/f --fusion-weights audio",
    "train-encoders --features FILE --catalog DIR",
    "train-encoders --features MISSING --catalog LOG",
    "demo-data --out FILE --items 16 --users 5",
    "demo-data --out OUT/d --items abc",
    "demo --items abc",
    "nosuch-command",
]


def _argv(case: str, paths: dict[str, str]) -> list[str]:
    out = []
    for word in case.split():
        for key, value in paths.items():
            word = word.replace(key, value) if word.startswith(key) or f"={key}" in word else word
        out.append(word)
    return out


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code)


@pytest.mark.parametrize("case", CASES)
def test_cli_error_is_one_line_and_exit_2(paths, case, capsys):
    rc = _run(_argv(case, paths))
    err = capsys.readouterr().err
    assert rc == 2, (case, rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    assert len(lines[0]) < 600


def test_none_is_a_value(paths):
    """`--param hybrid.cold_share=none` printed a TypeError; "none" now means None (README's table)."""
    from recsys.models.params import parse_params

    assert parse_params(["hybrid.cold_share=none", "content.half_life_days=null"]) == {
        "hybrid": {"cold_share": None}, "content": {"half_life_days": None}}


@pytest.mark.parametrize("case", ["evaluate --log DIR", "evaluate --log LOG --param als.factors=abc",
                                  "fit --log LOG --model hybrid --param hybrid.cold_share=abc --out OUT",
                                  "serve --bundle TAMPERED"])
def test_issue_cases_in_a_real_process(paths, case):
    proc = subprocess.run([sys.executable, "-m", "recsys.cli", *_argv(case, paths)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    if "TAMPERED" in case:
        assert "checksum mismatch" in proc.stderr and json.dumps(paths["TAMPERED"]).strip('"') in proc.stderr
