"""The experiment registry: an experiment is a frozen config dataclass plus a ``run`` function.

``run(config, *, seed, out_dir, progress) -> Result`` does the work and returns flat metrics and
the relative paths of the files it wrote; :func:`memcim.experiments.runner.run_experiment`
adds everything else a ``results.json`` holds (config, seed, versions, wall time).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcim._errors import ConfigError


@dataclass
class Result:
    """What an experiment's ``run`` returns.

    Attributes:
        metrics: flat name -> number (accuracies as fractions, energies with units in names).
        artifacts: files written under the output folder, as paths relative to it.
        extra: further JSON-serialisable bookkeeping for results.json (e.g. per-stage
            timings); it cannot replace the standard keys.
    """

    metrics: dict[str, float]
    artifacts: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


RunFn = Callable[..., Result]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment."""

    name: str
    config_type: type
    run: RunFn
    description: str

    def default_config(self) -> Any:
        return self.config_type()


_REGISTRY: dict[str, Experiment] = {}


def register(name: str, config_type: type, description: str) -> Callable[[RunFn], RunFn]:
    """Decorator registering ``run`` under ``name`` with its config dataclass."""
    if not (dataclasses.is_dataclass(config_type) and config_type.__dataclass_params__.frozen):
        raise TypeError(f"{config_type!r} must be a frozen dataclass")

    def decorate(run: RunFn) -> RunFn:
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"experiment {name!r} is registered twice")
        _REGISTRY[name] = Experiment(name, config_type, run, description)
        return run

    return decorate


def _load_builtin() -> None:
    # Importing the modules registers them; kept lazy so that `memcim --help` stays fast.
    from memcim.experiments import builtin  # noqa: F401


def names() -> list[str]:
    """Registered experiment names, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    """The experiment ``name``; an unknown name raises a ConfigError listing the known ones."""
    _load_builtin()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ConfigError(f"unknown experiment {name!r}; registered experiments: {known}")
    return _REGISTRY[name]


def stage_seed(seed: int, *parts: str) -> int:
    """A stable 63-bit seed for one stage of a run (e.g. ``stage_seed(seed, "mlp", "init")``),
    independent of the order in which stages run or which other stages a config lists."""
    return (seed * 1_000_003 + zlib.crc32("/".join(parts).encode())) % (2**63)


def stage_generator(seed: int, *parts: str):
    """A ``torch.Generator`` seeded with :func:`stage_seed` (``seed``, ``parts``)."""
    import torch  # here, so that the registry itself stays free of torch at import

    return torch.Generator().manual_seed(stage_seed(seed, *parts))


def output_dir(path: str | Path) -> Path:
    """Create (if needed) and return an output folder."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


_TIME_LABELS = {1.0: "1s", 3600.0: "1h", 86_400.0: "1day", 2_592_000.0: "30days", 3.15e7: "1year"}


def time_label(t_s: float) -> str:
    """Metric suffix of a read time: ``1s``, ``1h``, ``1day``, ``1year``, else e.g. ``30s``."""
    return _TIME_LABELS.get(float(t_s), f"{t_s:g}s".replace("+", ""))
