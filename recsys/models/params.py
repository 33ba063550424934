"""Model settings given as text (``--param als.factors=256``): parsed, then checked against the
model constructors' type hints, so a wrong type is a :class:`~recsys.errors.ConfigError` naming the
setting before any data is loaded, not a ``TypeError`` deep inside a fit."""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Sequence
from typing import Any

from recsys.errors import ConfigError

#: Spellings of "no value" accepted on the command line besides JSON's ``null``.
NONE_WORDS = ("none", "null")


def parse_value(text: str) -> Any:
    """``"256"`` -> 256, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"none"``/``"null"`` -> None,
    ``'{"factors": 8}'`` -> dict; anything else stays text."""
    if text.strip().lower() in NONE_WORDS:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["als.factors=128", "itemknn.k=50"]`` -> ``{"als": {"factors": 128}, "itemknn": {"k": 50}}``,
    checked with :func:`check_params`."""
    out: dict[str, dict[str, Any]] = {}
    for p in pairs:
        if "=" not in p or "." not in p.split("=", 1)[0]:
            raise ConfigError(f"--param expects model.name=value, got {p!r}")
        key, value = p.split("=", 1)
        model, name = key.split(".", 1)
        out.setdefault(model.strip().lower(), {})[name.strip()] = parse_value(value)
    check_params(out)
    return out


def check_params(params: dict[str, dict[str, Any]]) -> None:
    """Raise ConfigError for an unknown model or setting, or a value of the wrong type.

    Types come from each constructor's hints: ``int`` takes integers, ``float`` numbers, ``bool``
    true/false, ``str`` text, ``X | None`` also none, a ``Literal`` one of its values; hints this
    check does not know are left to the model.
    """
    from recsys.models import MODELS

    for model, settings in params.items():
        cls = MODELS.get(model)
        if cls is None:
            raise ConfigError(f"--param {model}.*: unknown model {model!r}; choose from {sorted(MODELS)}")
        hints = typing.get_type_hints(cls.__init__)
        known = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
        for name, value in settings.items():
            if name not in known:
                raise ConfigError(f"--param {model}.{name}: {model} has no setting {name!r}; it has {known}")
            hint = hints.get(name)
            if hint is not None and not _fits(value, hint):
                raise ConfigError(f"--param {model}.{name}={json.dumps(value) if value is not None else 'none'}: "
                                  f"expected {_describe(hint)}")
        try:  # ranges and combinations: the model's own check, before any data is read
            cls(**settings).check_settings()
        except ConfigError as e:
            given = " ".join(f"{model}.{k}={json.dumps(v)}" for k, v in settings.items())
            raise ConfigError(f"--param {given}: {e}") from None


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, list)
    return True  # a hint this check does not model: the constructor decides


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "none"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "text", dict: "a JSON object"}
    return names.get(hint, names.get(origin, str(hint)))
