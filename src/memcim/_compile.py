"""``torch.compile`` as an opt-in, with a failure that names its cause.

torch.compile on CPU generates C++ and needs a working compiler; without one the first call
fails deep inside inductor. Every option that compiles a hot path wraps it here, so that the
first call's failure names the compiler and the option that turns compiling off.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import torch

from memcim._errors import ConfigError


def compiler_available() -> bool:
    """Whether a C++ compiler, which torch.compile on CPU needs, is on the PATH."""
    return bool(shutil.which("c++") or shutil.which("g++"))


def compiled(fn: Callable, *, what: str, option: str, **options) -> Callable:
    """``torch.compile(fn, **options)`` whose first call, which compiles, reports a failure as
    a :class:`ConfigError` naming ``what`` was compiled and the ``option`` that avoids it."""
    step = torch.compile(fn, **options)
    done = False

    def run(*args):
        nonlocal done
        if done:
            return step(*args)
        try:
            out = step(*args)
        except Exception as error:
            raise ConfigError(
                f"{option}=True: torch.compile could not build {what} (it needs a working C++ "
                f"compiler); use {option}=False. The error: {error}"
            ) from error
        done = True
        return out

    return run
