"""Run one registered experiment and write its ``results.json``."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from memcim._errors import ConfigError
from memcim.experiments.overrides import apply_overrides
from memcim.experiments.registry import get, output_dir


def versions() -> dict[str, str]:
    """Versions that make a result reproducible: memcim, torch, python."""
    import torch

    import memcim

    return {"memcim": memcim.__version__, "torch": torch.__version__,
            "python": platform.python_version()}  # fmt: skip


def to_jsonable(value: Any) -> Any:
    """Config values as JSON: dataclasses as dicts, enums by value, paths as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "type": type(value).__name__,
            **{f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON so that readers never see a half-written file (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_experiment(
    name: str,
    out_dir: str | Path,
    *,
    assignments: dict[str, str] | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> dict:
    """Run experiment ``name`` with ``key=value`` overrides; write and return results.json.

    Args:
        name: a registered experiment (see ``memcim list``).
        out_dir: folder for results.json and the experiment's figures (created).
        assignments: ``{key: value-text}`` overrides of the default config.
        seed: the run's seed.
        progress: progress bars; ``None`` shows them only on a terminal.

    Returns:
        The results.json content: experiment, config, seed, versions, metrics, artifacts,
        wall_s (and whatever extra records the experiment returns).
    """
    config = apply_overrides(get(name).default_config(), assignments or {})
    return run_config(name, config, out_dir, seed=seed, progress=progress)


def run_config(
    name: str,
    config: Any,
    out_dir: str | Path,
    *,
    seed: int = 0,
    progress: bool | None = None,
) -> dict:
    """Run experiment ``name`` with a ready config object; write and return results.json.

    Same as :func:`run_experiment`, for callers holding a config (e.g. a preset such as
    ``BayesOodConfig.quick()``) rather than ``key=value`` text.
    """
    experiment = get(name)
    if not isinstance(config, experiment.config_type):
        raise ConfigError(
            f"config for {name!r} must be a {experiment.config_type.__name__}, "
            f"got {type(config).__name__}"
        )
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed={seed!r} is invalid: must be an int")
    out = output_dir(out_dir)
    if progress is None:
        progress = sys.stderr.isatty()
    start = time.perf_counter()
    result = experiment.run(config, seed=seed, out_dir=out, progress=progress)
    record = {
        **{k: to_jsonable(v) for k, v in result.extra.items()},
        "experiment": name,
        "config": to_jsonable(config),
        "seed": seed,
        "versions": versions(),
        "metrics": {k: float(v) for k, v in result.metrics.items()},
        "artifacts": list(result.artifacts),
        "wall_s": time.perf_counter() - start,
    }
    write_json_atomic(out / "results.json", record)
    return record
