"""One strict policy for every config mapping (YAML sections, checkpoint JSON): an unknown key
raises with its full path and the keys that are known, so a typo is never silently ignored."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["ConfigError", "build_dataclass", "check_keys"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A config mapping does not fit its dataclass (unknown key, wrong shape, bad value)."""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_keys(mapping: Mapping[str, Any], known: typing.Iterable[str], path: str = "") -> None:
    """Raise ConfigError for the first unknown key of ``mapping``, naming its path and ``known``."""
    known = sorted(known)
    for key in mapping:
        if key not in known:
            raise ConfigError(f"unknown key {_join(path, str(key))!r} "
                              f"(known: {', '.join(known)})")


def _dataclass_of(tp: Any) -> type | None:
    """The dataclass in an annotation (``Sub`` or ``Sub | None``), else None."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(tp) if isinstance(a, type)
                 and dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def build_dataclass(cls: type[T], mapping: Mapping[str, Any] | None, path: str = "") -> T:
    """``cls(**mapping)`` with nested dataclass fields built recursively; unknown keys, a
    non-mapping where a section is expected, and errors raised by the dataclass itself all come
    back as ConfigError naming ``path``."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got "
                          f"{type(mapping).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(mapping, fields, path)
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation only importable for type checkers
        hints = {}
    kwargs: dict[str, Any] = {}
    for key, value in mapping.items():
        sub = _dataclass_of(hints.get(key))
        if sub is not None and isinstance(value, Mapping):
            value = build_dataclass(sub, value, _join(path, key))
        elif sub is not None and value is not None and not isinstance(value, sub):
            raise ConfigError(f"{_join(path, key)}: expected a mapping, got "
                              f"{type(value).__name__}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path or cls.__name__}: {err}") from err
