"""Frozen-dataclass configs: (de)serialisation, validation and presets.

A recipe's config is a frozen dataclass whose fields are all JSON-friendly (numbers,
strings, bools, tuples and nested frozen dataclasses). The CLI is generated from it by
tyro, so each field is a flag; its docstring documents the flag.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from selftaught.core.errors import ConfigError

C = TypeVar("C")


def to_dict(config: Any) -> dict:
    """A JSON-serialisable dict of a (nested) dataclass config."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{config!r} is not a dataclass")
    out = {}
    for f in dataclasses.fields(config):
        out[f.name] = _plain(getattr(config, f.name))
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def from_dict(cls: type[C], data: dict, *, where: str = "") -> C:
    """Rebuild a config of type `cls` from `to_dict` output; unknown keys and values of the
    wrong type are a ConfigError naming the key (`where` prefixes nested keys)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where + ': ' if where else ''}expected a mapping for {cls.__name__}, "
            f"got {type(data).__name__}"
        )
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"unknown field(s) {sorted(unknown)} for {cls.__name__}"
            f"{' (' + where + ')' if where else ''}; "
            + (_moved(cls, hints, unknown, where) or f"known: {sorted(names)}")
        )
    kwargs = {
        k: _from_plain(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()
    }
    return cls(**kwargs)


def _moved(cls: type, hints: dict, unknown: set[str], where: str) -> str:
    """'they are now under X.sub' when every unknown key is a field of one nested config
    field `sub` of `cls` (a config written before those fields moved there), else ''."""
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and f.name not in unknown and unknown <= {
                g.name for g in dataclasses.fields(tp)}:
            return (f"they are now under {where + '.' if where else ''}{f.name} (a config "
                    "written by an older version; start a new run)")
    return ""


def _wrong(key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(
        f"field {key!r} must be {expected}, got {type(value).__name__} {str(value)[:40]!r}"
    )


def _from_plain(tp: Any, value: Any, key: str = "value") -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _wrong(key, f"an object of {tp.__name__} fields", value)
        return from_dict(tp, value, where=key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _wrong(key, "a list", value)
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise _wrong(key, f"a list of {len(args)} items", value)
        return tuple(_from_plain(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _from_plain(arg, value, key)
            except ConfigError:
                continue
        raise _wrong(key, " or ".join(getattr(a, "__name__", str(a)) for a in args), value)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise _wrong(key, f"one of {list(typing.get_args(tp))}", value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _wrong(key, "true or false", value)
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong(key, "an integer", value)
        return value
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _wrong(key, "a number", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _wrong(key, "a string", value)
        return value
    return value


def validate(config: Any) -> Any:
    """Call `config.validate()` (and nested configs' validate) if defined; return config."""
    for f in dataclasses.fields(config):
        sub = getattr(config, f.name)
        if dataclasses.is_dataclass(sub):
            validate(sub)
    fn = getattr(config, "validate", None)
    if callable(fn):
        fn()
    return config


def replace(config: C, **changes: Any) -> C:
    """dataclasses.replace that accepts dotted names for nested fields ('model.width')."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[key] = value
    for head, sub in nested.items():
        flat[head] = replace(getattr(config, head), **sub)
    return dataclasses.replace(config, **flat)
