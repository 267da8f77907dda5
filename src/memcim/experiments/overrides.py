"""``--set key=value`` parsing, typed and validated against an experiment's config dataclass.

Values are parsed from the field's type annotation: ``int``, ``float``, ``bool``
(true/false/yes/no/1/0), ``str``, ``Path``, ``Literal[...]``, ``Enum`` (by name or value),
``X | None`` (``none`` for None) and tuples (elements separated by ``,`` or ``;`` — use ``;``
inside a ``--grid`` value, where ``,`` separates grid values). The config's own
``__post_init__`` then checks ranges.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any

from memcim._errors import ConfigError

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def settable_fields(config_type: type) -> dict[str, Any]:
    """Field name -> resolved type annotation, for the fields ``--set`` may change."""
    hints = typing.get_type_hints(config_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_type) if f.init}


def parse_value(text: str, annotation: Any, key: str) -> Any:
    """Parse ``text`` as a value of ``annotation``; ConfigError naming ``key`` otherwise."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    try:
        if origin in (typing.Union, types.UnionType):
            if text.strip().lower() in ("none", "null") and type(None) in args:
                return None
            options = [a for a in args if a is not type(None)]
            errors = []
            for option in options:
                try:
                    return parse_value(text, option, key)
                except ConfigError as error:
                    errors.append(str(error))
            raise ConfigError(" / ".join(errors))
        if origin is typing.Literal:
            for allowed in args:
                candidate = parse_value(text, type(allowed), key)
                if candidate == allowed:
                    return allowed
            raise ConfigError(f"{key}={text!r} is invalid: must be one of {list(args)}")
        if origin is tuple:
            parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(parse_value(p, args[0], key) for p in parts)
            if len(parts) != len(args):
                raise ConfigError(f"{key}={text!r} is invalid: needs {len(args)} values")
            return tuple(parse_value(p, a, key) for p, a in zip(parts, args, strict=True))
        if annotation is bool:
            low = text.strip().lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ConfigError(f"{key}={text!r} is invalid: must be true or false")
        if annotation is int:
            return int(text)
        if annotation is float:
            return float(text)
        if annotation in (str, Path):
            return annotation(text)
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            for member in annotation:
                if text in (member.name, str(member.value)):
                    return member
            raise ConfigError(
                f"{key}={text!r} is invalid: must be one of {[m.name for m in annotation]}"
            )
    except ValueError as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{key}={text!r} is invalid: expected {_describe(annotation)}") from None
    raise ConfigError(f"{key} has type {_describe(annotation)}, which --set cannot parse")


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation)


def split_assignment(item: str) -> tuple[str, str]:
    """``"key=value"`` -> (key, value), with a clear error for anything else."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{item!r} is not of the form key=value")
    return key.strip(), value


def apply_overrides(config: Any, assignments: dict[str, str]) -> Any:
    """A copy of ``config`` with each ``key=value`` parsed and validated.

    Raises:
        ConfigError: an unknown key (the message lists the valid keys) or a value that does
            not parse or fails the config's own validation.
    """
    fields = settable_fields(type(config))
    unknown = sorted(set(assignments) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {unknown} for {type(config).__name__}; valid keys: "
            f"{', '.join(fields)}"
        )
    values = {k: parse_value(v, fields[k], k) for k, v in assignments.items()}
    try:
        return dataclasses.replace(config, **values)
    except TypeError as error:  # e.g. a type the config's validation did not anticipate
        raise ConfigError(f"invalid override for {type(config).__name__}: {error}") from None
