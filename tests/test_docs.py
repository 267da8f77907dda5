"""Every public name has a docstring: the API reference of the documentation site is generated
from them (mkdocstrings), and a name without one would show as an empty entry."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = ("devices", "crossbar", "nn", "bayes", "metrics", "learning", "spiking", "rl",
            "energy", "data", "experiments")  # fmt: skip


def _undocumented(package: str) -> list[str]:
    module = importlib.import_module(f"memcim.{package}")
    missing = [] if inspect.getdoc(module) else [f"memcim.{package}"]
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(f"memcim.{package}.{name}")
        if not inspect.isclass(obj):
            continue
        for member, value in vars(obj).items():
            function = value.fget if isinstance(value, property) else value
            # getdoc on the class attribute inherits an overridden method's docstring.
            public = not member.startswith("_") and inspect.isfunction(function)
            if public and not inspect.getdoc(getattr(obj, member)):
                missing.append(f"memcim.{package}.{name}.{member}")
    return missing


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_has_a_docstring(package):
    assert _undocumented(package) == []
