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


def from_dict(cls: type[C], data: dict) -> C:
    """Rebuild a config of type `cls` from `to_dict` output; unknown keys are an error."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"unknown field(s) {sorted(unknown)} for {cls.__name__}; known: {sorted(names)}"
        )
    kwargs = {k: _from_plain(hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def _from_plain(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(args[0], v) for v in value)
        return tuple(_from_plain(a, v) for a, v in zip(args, value, strict=False))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return from_dict(arg, value)
        return value
    if tp is float and isinstance(value, int):
        return float(value)
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
