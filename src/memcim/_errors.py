"""Exceptions shared by every memcim module."""

import math

import torch


class ConfigError(ValueError):
    """A configuration field or an argument is out of its allowed range.

    The message always names the field, the value received and what is allowed.
    """


def require(condition: bool, field: str, value: object, allowed: str) -> None:
    """Raise :class:`ConfigError` naming ``field`` unless ``condition`` holds.

    Args:
        condition: the check that must hold.
        field: name of the offending field or argument (e.g. ``"PCM.g_max_us"``).
        value: the value received, shown in the message.
        allowed: human-readable statement of the allowed range.
    """
    if not condition:
        raise ConfigError(f"{field}={value!r} is invalid: {allowed}")


def is_int(value: object) -> bool:
    """True for a Python ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """True for a finite Python ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_count(value: object, field: str, minimum: int) -> int:
    """Return an ``int`` (not bool) ``value`` >= ``minimum``; else raise naming ``field``."""
    require(is_int(value) and value >= minimum, field, value, f"an integer >= {minimum}")
    return value  # type: ignore[return-value]


def check_generator(generator: object) -> torch.Generator:
    """Return ``generator`` or raise :class:`ConfigError` naming ``generator``."""
    require(
        isinstance(generator, torch.Generator),
        "generator",
        generator,
        "a torch.Generator (e.g. torch.Generator().manual_seed(0)); memcim never uses global RNG",
    )
    return generator  # type: ignore[return-value]
