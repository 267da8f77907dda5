"""Sweeps: one experiment over a grid of config values and seeds, locally or on Dask.

Every finished point appends one JSON line to ``DIR/sweep.jsonl`` (a single ``write`` on a file
opened with ``O_APPEND``, then ``fsync``), from the parent process only. Re-running the same
command reads the file first and skips the points it holds, so a sweep killed at any moment —
``kill -9`` included — resumes without losing or duplicating points: a point killed before its
line was written runs again, a torn last line (if the machine died mid-write) is dropped. A point
that raises is recorded with ``"status": "failed"`` and its traceback, and the sweep goes on.
A re-run skips failed points too, unless ``retry_failed`` (``memcim sweep --retry-failed``) asks
to run them again: the new attempt is appended as a further line, and readers
(:func:`read_sweep`) take each point's *last* line, so the file stays a resumable log with one
current record per point (the earlier failures stay in it as history).

One sweep at a time per folder: a sweep holds an exclusive lock on ``DIR/.sweep.lock``
(:mod:`filelock`, an OS ``flock`` that the kernel releases when the process dies, ``kill -9``
included) from reading ``sweep.jsonl`` to its last append. A second sweep started on the same
folder meanwhile is refused at once with :class:`SweepBusyError` and writes nothing. Refusing was
chosen over sharing the points between two sweeps because both would repair and append to the
one file, and a refused command is easy for a script to see and run again.

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
LOCK_FILE = ".sweep.lock"
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


def _parse_lines(text: str) -> tuple[list[dict], bool]:
    """Every well-formed record in file order, and whether any line was torn."""
    records, torn = [], False
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            torn = True  # a line torn by a crash mid-write
            continue
        records.append(record)
    return records, torn


def read_sweep(out_dir: str | Path) -> list[dict]:
    """The current record of every recorded point: its last line, in first-recorded order.

    Read-only (a torn line is skipped, not removed; the sweep that owns the folder repairs the
    file), so a report may read a folder while a sweep appends to it.
    """
    path = Path(out_dir) / SWEEP_FILE
    if not path.exists():
        return []
    latest: dict[str, dict] = {}
    for record in _parse_lines(path.read_text())[0]:
        latest[record["key"]] = record  # a retry's line supersedes the failure before it
    return list(latest.values())


def _repair(path: Path) -> None:
    """Drop torn lines and end the file with a newline, so that the next append starts a line.

    Called only under the sweep lock. Every well-formed line is kept, superseded ones too.
    """
    if not path.exists():
        return
    text = path.read_text()
    records, torn = _parse_lines(text)
    if torn or (text and not text.endswith("\n")):
        tmp = path.with_suffix(".jsonl.repair")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        os.replace(tmp, path)


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


class SweepBusyError(RuntimeError):
    """Another sweep holds the folder's lock (see the module docstring)."""


@contextmanager
def _sweep_lock(out: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(out / LOCK_FILE))
    try:
        lock.acquire(timeout=0)  # refuse at once rather than queue behind the running sweep
    except Timeout:
        raise SweepBusyError(
            f"another sweep is running on {out} (it holds {out / LOCK_FILE}); wait for it to "
            "finish or give a different --out"
        ) from None
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class SweepSummary:
    """What one :func:`run_sweep_summary` call did.

    Attributes:
        records: the current record of every point in ``DIR/sweep.jsonl`` (as
            :func:`read_sweep`), points of other grids recorded in the folder included.
        done: keys of the points this call ran that finished ``"ok"``.
        failed_now: keys of the points this call ran that failed.
        skipped: keys of the grid's points already recorded, not run again.
        failed: current records of the grid's points that are failed (this call's failures
            and earlier ones that were not retried), in grid order.
    """

    records: list[dict]
    done: list[str]
    failed_now: list[str]
    skipped: list[str]
    failed: list[dict]

    @property
    def ok(self) -> bool:
        """True when every point of the grid has an ``"ok"`` record."""
        return not self.failed

    def text(self, sweep_file: str | Path = SWEEP_FILE) -> str:
        """Human-readable summary: counts, then each failed point's key and error."""
        counts = (f"{len(self.done)} done, {len(self.failed_now)} failed, "
                  f"{len(self.skipped)} skipped as already recorded")  # fmt: skip
        lines = [f"{counts}; {len(self.records)} points in {sweep_file}"]
        if self.failed:
            lines.append(f"{len(self.failed)} failed points:")
        now = set(self.failed_now)
        for record in self.failed:
            error = (record.get("error") or "").strip().splitlines() or ["(no error recorded)"]
            when = "" if record["key"] in now else " [recorded earlier; --retry-failed reruns it]"
            lines.append(f"  {record['key']}: {error[-1]}{when}")
        return "\n".join(lines)


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
    retry_failed: bool = False,
) -> list[dict]:
    """Run (or resume) a sweep; returns the current record of every point in ``sweep.jsonl``.

    Same arguments as :func:`run_sweep_summary`, which also says what ran and what failed.
    """
    return run_sweep_summary(name, out_dir, grid, seeds=seeds, jobs=jobs, backend=backend,
                             scheduler=scheduler, progress=progress,
                             retry_failed=retry_failed).records  # fmt: skip


def run_sweep_summary(
    name: str,
    out_dir: str | Path,
    grid: dict[str, list[str]],
    *,
    seeds: list[int] | None = None,
    jobs: int = 1,
    backend: Backend = "local",
    scheduler: str | None = None,
    progress: bool | None = None,
    retry_failed: bool = False,
) -> SweepSummary:
    """Run (or resume) a sweep and say what it did.

    Args:
        name: a registered experiment.
        out_dir: the sweep folder (sweep.jsonl, points/).
        grid: key -> list of value texts (see :func:`parse_grid`).
        seeds: seeds per grid point (default ``[0]``).
        jobs: points run at once (processes for joblib, workers for a Dask LocalCluster).
        backend: ``"local"`` (joblib, no server) or ``"dask"`` (LocalCluster, or the
            scheduler at ``scheduler``).
        progress: a progress bar over points; ``None`` shows it only on a terminal.
        retry_failed: also run the points whose current record is a failure (a new line is
            appended for each); otherwise every recorded point is skipped.

    Raises:
        ConfigError: bad arguments or grid values (before anything runs).
        SweepBusyError: another sweep holds ``out_dir``'s lock (nothing is run or written).
    """
    experiment = get(name)
    seeds = [0] if seeds is None else seeds
    require(len(seeds) > 0 and all(isinstance(s, int) for s in seeds), "seeds", seeds,
            "must be a non-empty list of ints")  # fmt: skip
    require(isinstance(jobs, int) and jobs >= 1, "jobs", jobs, "must be an int >= 1")
    require(backend in ("local", "dask"), "backend", backend, "must be 'local' or 'dask'")
    require(isinstance(retry_failed, bool), "retry_failed", retry_failed, "must be a bool")
    points = grid_points(grid, seeds)
    for point in points:  # every point must parse before anything runs
        apply_overrides(experiment.default_config(), dict(point.params))
    out = output_dir(out_dir)
    with _sweep_lock(out):
        _repair(out / SWEEP_FILE)
        status = {r["key"]: r.get("status") for r in read_sweep(out)}
        todo = [p for p in points
                if p.key not in status or (retry_failed and status[p.key] != "ok")]  # fmt: skip
        ran = {}
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
                ran[record["key"]] = record["status"]
        records = read_sweep(out)
    current = {r["key"]: r for r in records}
    return SweepSummary(
        records=records,
        done=[k for k, v in ran.items() if v == "ok"],
        failed_now=[k for k, v in ran.items() if v != "ok"],
        skipped=[p.key for p in points if p.key not in ran],
        failed=[current[p.key] for p in points if current[p.key].get("status") != "ok"],
    )
