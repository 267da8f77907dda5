"""Sweeps: one experiment over a grid of config values and seeds, locally or on Dask.

Every finished point appends one JSON line to ``DIR/sweep.jsonl`` (a single ``write`` on a file
opened with ``O_APPEND``, then ``fsync``), from the parent process only. Re-running the same
command reads the file first and skips the points it holds, so a sweep killed at any moment —
``kill -9`` included — resumes without losing or duplicating points: a point killed before its
line was written runs again, a torn last line (if the machine died mid-write) is dropped. A point
that raises is recorded with ``"status": "failed"`` and its traceback, and the sweep goes on;
a re-run counts it as finished (delete its line from ``sweep.jsonl`` to retry it).

Each point runs in its own folder ``DIR/points/<id>/`` with one torch thread, on both backends,
so that a point's numbers do not depend on where it ran.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from memcim._errors import ConfigError, require
from memcim.experiments.overrides import apply_overrides, split_assignment
from memcim.experiments.registry import get, output_dir
from memcim.experiments.runner import run_experiment

SWEEP_FILE = "sweep.jsonl"
Backend = Literal["local", "dask"]


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: config overrides (as text) and a seed."""

    params: tuple[tuple[str, str], ...]
    seed: int

    @property
    def key(self) -> str:
        """Stable identity of the point (same grid values and seed, same key)."""
        return json.dumps({"params": dict(self.params), "seed": self.seed}, sort_keys=True)

    @property
    def folder(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:12]


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["lr=0.1,0.01", "device=pcm"]`` -> ``{"lr": ["0.1", "0.01"], "device": ["pcm"]}``."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, values = split_assignment(item)
        parts = [v.strip() for v in values.split(",")]
        if not all(parts):
            raise ConfigError(f"--grid {item!r} has an empty value")
        if key in grid:
            raise ConfigError(f"--grid names {key!r} twice")
        grid[key] = parts
    return grid


def grid_points(grid: dict[str, list[str]], seeds: list[int]) -> list[SweepPoint]:
    """The Cartesian product of the grid values, times the seeds, in a fixed order."""
    keys = list(grid)
    combos = itertools.product(*(grid[k] for k in keys)) if keys else [()]
    return [
        SweepPoint(tuple(zip(keys, combo, strict=True)), seed) for combo in combos for seed in seeds
    ]


def read_sweep(out_dir: str | Path) -> list[dict]:
    """The recorded points, first record per point; repairs a torn or duplicated file."""
    path = Path(out_dir) / SWEEP_FILE
    if not path.exists():
        return []
    records, seen, dirty = [], set(), False
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            key = record["key"]
        except (json.JSONDecodeError, KeyError, TypeError):
            dirty = True  # a line torn by a crash mid-write
            continue
        if key in seen:
            dirty = True
            continue
        seen.add(key)
        records.append(record)
    if dirty:
        tmp = path.with_suffix(".jsonl.repair")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        os.replace(tmp, path)
    return records


def _append(path: Path, record: dict) -> None:
    data = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_point(name: str, out_dir: str, point: SweepPoint) -> dict:
    """Run one point (in whatever process the backend chose) and return its sweep record."""
    folder = Path(out_dir) / "points" / point.folder
    base = {"key": point.key, "params": dict(point.params), "seed": point.seed,
            "dir": str(folder.relative_to(out_dir))}  # fmt: skip
    try:
        with _torch_threads(1):
            record = run_experiment(name, folder, assignments=dict(point.params),
                                    seed=point.seed, progress=False)  # fmt: skip
        return {**base, "status": "ok", "metrics": record["metrics"], "wall_s": record["wall_s"]}
    except Exception:
        return {**base, "status": "failed", "error": traceback.format_exc()}


def _completed_local(name: str, out: Path, todo: list[SweepPoint], jobs: int) -> Iterator[dict]:
    if jobs == 1:
        for point in todo:
            yield run_point(name, str(out), point)
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=jobs, return_as="generator_unordered")
    yield from parallel(delayed(run_point)(name, str(out), p) for p in todo)


def _completed_dask(
    name: str, out: Path, todo: list[SweepPoint], jobs: int, scheduler: str | None
) -> Iterator[dict]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError(
            "the dask backend needs dask.distributed: pip install 'memcim[dask]'"
        ) from None
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                               dashboard_address=None)  # fmt: skip
        client = Client(cluster)
    try:
        futures = [client.submit(run_point, name, str(out), p, pure=False) for p in todo]
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_sweep(
    name: str,
    out_dir: str | Path,
    grid: dict[str, list[str]],
    *,
    seeds: list[int] | None = None,
    jobs: int = 1,
    backend: Backend = "local",
    scheduler: str | None = None,
    progress: bool | None = None,
) -> list[dict]:
    """Run (or resume) a sweep; returns all records in ``DIR/sweep.jsonl``.

    Args:
        name: a registered experiment.
        out_dir: the sweep folder (sweep.jsonl, points/).
        grid: key -> list of value texts (see :func:`parse_grid`).
        seeds: seeds per grid point (default ``[0]``).
        jobs: points run at once (processes for joblib, workers for a Dask LocalCluster).
        backend: ``"local"`` (joblib, no server) or ``"dask"`` (LocalCluster, or the
            scheduler at ``scheduler``).
        progress: a progress bar over points; ``None`` shows it only on a terminal.
    """
    experiment = get(name)
    seeds = [0] if seeds is None else seeds
    require(len(seeds) > 0 and all(isinstance(s, int) for s in seeds), "seeds", seeds,
            "must be a non-empty list of ints")  # fmt: skip
    require(isinstance(jobs, int) and jobs >= 1, "jobs", jobs, "must be an int >= 1")
    require(backend in ("local", "dask"), "backend", backend, "must be 'local' or 'dask'")
    points = grid_points(grid, seeds)
    for point in points:  # every point must parse before anything runs
        apply_overrides(experiment.default_config(), dict(point.params))
    out = output_dir(out_dir)
    done = {r["key"] for r in read_sweep(out)}
    todo = [p for p in points if p.key not in done]
    if todo:
        from tqdm.auto import tqdm

        show = sys.stderr.isatty() if progress is None else progress
        results = (
            _completed_local(name, out, todo, jobs)
            if backend == "local"
            else _completed_dask(name, out, todo, jobs, scheduler)
        )
        for record in tqdm(results, total=len(todo), desc=f"sweep {name}", disable=not show):
            _append(out / SWEEP_FILE, record)
    return read_sweep(out)
