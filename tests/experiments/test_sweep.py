"""Sweeps: resumable after kill -9, same numbers on joblib and Dask, failures recorded."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from memcim import ConfigError
from memcim.experiments.registry import Result, register
from memcim.experiments.sweep import grid_points, parse_grid, read_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[2]


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines()]


def test_grid_parsing_and_points():
    grid = parse_grid(["t_s=1,3600", "device=pcm"])
    assert grid == {"t_s": ["1", "3600"], "device": ["pcm"]}
    points = grid_points(grid, [0, 1])
    assert len(points) == 4 and len({p.key for p in points}) == 4
    with pytest.raises(ConfigError, match="twice"):
        parse_grid(["a=1", "a=2"])
    with pytest.raises(ConfigError, match="empty value"):
        parse_grid(["a=1,,2"])


def test_bad_grid_values_fail_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="must be one of"):
        run_sweep("mvm-error", tmp_path, {"device": ["pcm", "nope"]})
    assert not (tmp_path / "sweep.jsonl").exists()


def test_sweep_killed_with_sigkill_resumes_with_one_line_per_point(tmp_path):
    out = tmp_path / "sweep"
    times = ",".join(str(t) for t in (1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7))
    cmd = [sys.executable, "-m", "memcim", "sweep", "mvm-error", "--out", str(out),
           "--grid", f"t_s={times}", "--seeds", "0,1", "--set", "batch=2048"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jsonl = out / "sweep.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail("the sweep finished before it could be killed; make points slower")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(jsonl.read_text().splitlines())
    assert 3 <= killed_at < 16, killed_at
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    records = _lines(out)
    assert len(records) == 16
    assert len({r["key"] for r in records}) == 16
    assert all(r["status"] == "ok" for r in records)
    # Running it a third time adds nothing.
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert len(_lines(out)) == 16


def test_a_torn_last_line_is_dropped_and_its_point_rerun(tmp_path):
    grid = {"t_s": ["1", "10"], "rows": ["32"], "cols": ["8"], "batch": ["4"]}
    run_sweep("mvm-error", tmp_path, grid)
    path = tmp_path / "sweep.jsonl"
    first, second = path.read_text().splitlines()
    path.write_text(first + "\n" + second[: len(second) // 2])  # a crash mid-write
    assert len(read_sweep(tmp_path)) == 1
    records = run_sweep("mvm-error", tmp_path, grid)
    assert len(records) == 2 and len(_lines(tmp_path)) == 2


def test_local_and_dask_backends_give_identical_metrics(tmp_path):
    pytest.importorskip("distributed")
    grid = {"device": ["pcm", "rram"], "t_s": ["1", "86400"], "rows": ["64"], "cols": ["16"],
            "batch": ["32"]}  # fmt: skip
    local = run_sweep("mvm-error", tmp_path / "local", grid, seeds=[0, 1], jobs=1)
    dask = run_sweep("mvm-error", tmp_path / "dask", grid, seeds=[0, 1], jobs=2, backend="dask")
    by_key = {r["key"]: r["metrics"] for r in local}
    assert len(by_key) == 8
    assert {r["key"]: r["metrics"] for r in dask} == by_key  # exact equality, not approx


@dataclass(frozen=True, kw_only=True)
class FlakyConfig:
    fail: bool = False


@register("test-flaky", FlakyConfig, "fails when fail=true (test only)")
def _flaky(config, *, seed, out_dir, progress):
    if config.fail:
        raise RuntimeError("deliberate failure for the test")
    return Result(metrics={"value": float(seed)})


def test_a_failing_point_is_recorded_with_its_traceback_and_the_sweep_goes_on(tmp_path):
    records = run_sweep("test-flaky", tmp_path, {"fail": ["false", "true"]}, seeds=[0, 1, 2])
    failed = [r for r in records if r["status"] == "failed"]
    assert len(records) == 6 and len(failed) == 3
    assert all("deliberate failure for the test" in r["error"] for r in failed)
    assert all("Traceback" in r["error"] for r in failed)


def test_dask_backend_on_an_existing_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    grid = {"t_s": ["1", "3600"], "rows": ["32"], "cols": ["8"], "batch": ["8"]}
    local = run_sweep("mvm-error", tmp_path / "local", grid, seeds=[3])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:  # fmt: skip
        remote = run_sweep("mvm-error", tmp_path / "remote", grid, seeds=[3], backend="dask",
                           scheduler=cluster.scheduler_address)  # fmt: skip
    assert {r["key"]: r["metrics"] for r in remote} == {r["key"]: r["metrics"] for r in local}
