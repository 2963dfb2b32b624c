"""Dataclasses from plain nested dicts (YAML, JSON), with every value checked against its type annotation.

Errors are :class:`ConfigError` sentences that name the dotted key and where it came from: a wrong type, or an
unknown key with the closest known one suggested. Ints are accepted where floats are expected, and so are numbers
that YAML 1.1 reads as strings (``1e-4``: PyYAML wants ``1.0e-4``).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import reprlib
import types
import typing
from typing import Any

from .errors import ConfigError

# a decimal number with an exponent and no dot, which YAML 1.1 (PyYAML) leaves a string: 1e-4, 3E+2, -2e3
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    origin = typing.get_origin(tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return f"a list of {_type_name(inner).split(' ', 1)[1]}s"
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_name(args[0]) + " or null"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin is not None and type(None) in typing.get_args(tp):
        if value is None:
            return None
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
        origin = typing.get_origin(tp)
    ok = True
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            ok = False
        else:
            return [_coerce(v, inner, key, source) for v in value]
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{key} in {source} must be {_type_name(tp)}, got {shown(value)}.")
    return value


# A value as a message quotes it: a few items of each list or mapping, a few levels deep, long strings and numbers cut.
# (A 485-byte YAML of shared aliases is 10^9 strings once printed whole.)
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxstring, _QUOTE.maxlong, _QUOTE.maxother = 2, 80, 40, 80
_QUOTE.maxlist = _QUOTE.maxtuple = _QUOTE.maxdict = _QUOTE.maxset = 4


def shown(value: Any) -> str:
    """``repr(value)``, bounded in length however large or nested the value is."""
    try:
        return _QUOTE.repr(value)
    except ValueError:  # an integer of more digits than Python converts (4300)
        return "a number too long to print"


def build_dataclass(cls: type, values: dict[str, Any], prefix: str, source: str) -> Any:
    """An instance of ``cls`` from ``values``, nested dataclasses included; ``prefix`` names the keys in messages."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} in {source} must be a mapping, got {shown(values)}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys: {', '.join(names)}."
            raise ConfigError(f"unknown key '{prefix}{key}' in {source}" + hint)
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = build_dataclass(tp, value, f"{prefix}{key}.", source)
        else:
            kwargs[key] = _coerce(value, tp, f"{prefix}{key}", source)
    return cls(**kwargs)


def merge_dicts(base: dict, update: dict) -> dict:
    """``base`` updated by ``update``, recursively for nested dicts."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = v
    return out
