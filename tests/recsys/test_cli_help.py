"""``--help`` is complete and the README's command summary matches the parser (issue 16, item 6).

Every option of every subcommand has help text that states its default (flags and required
options excepted); ``evaluate --models`` and ``fit --model`` list every registered model, read from
the registry; README.md's "Command line" block names exactly the parser's commands and options.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from recsys.cli import build_parser
from recsys.models import MODELS
from recsys.tuning import SEARCH_SPACES

ROOT = Path(__file__).resolve().parents[2]
OPTION = re.compile(r"--[a-z][a-z0-9-]*")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.option_strings[-1]: a for a in p._actions if a.option_strings and a.dest != "help"}


def _help_text(p: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The text ``--help`` prints for one option (placeholders and defaults filled in)."""
    return p._get_formatter()._expand_help(action)


COMMANDS = _subparsers(build_parser())
ALL_OPTIONS = [(cmd, opt) for cmd, p in COMMANDS.items() for opt in _options(p)]


@pytest.mark.parametrize(("command", "option"), ALL_OPTIONS, ids=[f"{c} {o}" for c, o in ALL_OPTIONS])
def test_every_option_has_help_with_its_default(command, option):
    p = COMMANDS[command]
    action = _options(p)[option]
    text = _help_text(p, action)
    assert action.help and len(text) > 8, f"avrec {command} {option} has no help"
    flag = action.nargs == 0
    if not (flag or action.required):
        # "required: this or --log" for the two options of which one is required
        assert re.search(r"\b(default|required)\b", text), \
            f"avrec {command} {option}: help does not state the default: {text!r}"
        assert "default: None" not in text, f"avrec {command} {option}: say what None means: {text!r}"


def test_model_lists_come_from_the_registry(capsys):
    for command, option in (("evaluate", "--models"), ("fit", "--model")):
        p = COMMANDS[command]
        text = _help_text(p, _options(p)[option])
        assert all(name in text for name in MODELS), (command, text)
    text = _help_text(COMMANDS["evaluate"], _options(COMMANDS["evaluate"])["--tune"])
    assert all(name in text for name in SEARCH_SPACES)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert ",".join(MODELS) in re.sub(r"\s+", "", out)  # the printed help, wrapped lines joined


def _readme_summary() -> tuple[dict[str, set[str]], str]:
    """``{command: options}`` of README.md's "Command line" block, DATA/ENGINE expanded; and the block."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Command line")
    block = text[text.index("```\n", start) + 4: text.index("```", text.index("```\n", start) + 4)]
    entries: list[list[str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            entries[-1].append(line)
        else:
            entries.append([line])
    macros, commands = {}, {}
    for entry in entries:
        head, body = entry[0].split(None, 1)[0], " ".join(entry)
        if head == "avrec":
            commands[body.split()[1]] = body
        else:  # NAME = ...
            macros[head] = body.split("=", 1)[1]
    out = {}
    for cmd, body in commands.items():
        for name, value in macros.items():
            if re.search(rf"\b{name}\b", body.split(None, 2)[2] if len(body.split()) > 2 else ""):
                body += " " + value
        out[cmd] = set(OPTION.findall(body))
    return out, block


def test_readme_summary_matches_the_parser():
    documented, block = _readme_summary()
    assert set(documented) == set(COMMANDS), (
        f"commands in the parser but not in README.md's summary: {sorted(set(COMMANDS) - set(documented))}; "
        f"in README.md only: {sorted(set(documented) - set(COMMANDS))}")
    for cmd, p in COMMANDS.items():
        parser_options = set(_options(p))
        missing = sorted(parser_options - documented[cmd])
        extra = sorted(documented[cmd] - parser_options)
        assert not missing, f"README.md's summary of avrec {cmd} lacks {missing}"
        assert not extra, f"README.md's summary of avrec {cmd} names options the parser lacks: {extra}"
