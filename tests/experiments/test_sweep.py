"""Sweeps: resumable after kill -9, same numbers on joblib and Dask, failures recorded and
retried, one sweep per folder, an exit status a script can trust."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from memcim import ConfigError
from memcim.experiments.registry import Result, register
from memcim.experiments.sweep import (
    LOCK_FILE,
    SweepBusyError,
    grid_points,
    parse_grid,
    read_sweep,
    run_sweep,
    run_sweep_summary,
)

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
    fail_while: str = ""  # a path: the point fails while this file exists


@register("test-flaky", FlakyConfig, "fails when fail=true (test only)")
def _flaky(config, *, seed, out_dir, progress):
    if config.fail:
        raise RuntimeError("deliberate failure for the test")
    if config.fail_while and Path(config.fail_while).exists():
        raise RuntimeError(f"failing while {config.fail_while} exists")
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


def test_failed_points_are_skipped_on_a_rerun_and_run_again_with_retry_failed(tmp_path):
    flag, out = tmp_path / "flag", tmp_path / "sweep"
    flag.touch()
    grid = {"fail_while": [str(flag), str(tmp_path / "never")]}
    first = run_sweep_summary("test-flaky", out, grid, seeds=[0, 1])
    assert (len(first.done), len(first.failed_now), len(first.skipped)) == (2, 2, 0)
    assert not first.ok and [r["key"] for r in first.failed] == first.failed_now
    # A plain re-run runs nothing, and still reports the two failures.
    again = run_sweep_summary("test-flaky", out, grid, seeds=[0, 1])
    assert (len(again.done), len(again.failed_now), len(again.skipped)) == (0, 0, 4)
    assert not again.ok and len(again.failed) == 2 and "--retry-failed" in again.text()
    flag.unlink()
    retried = run_sweep_summary("test-flaky", out, grid, seeds=[0, 1], retry_failed=True)
    assert sorted(retried.done) == sorted(first.failed_now) and len(retried.skipped) == 2
    assert retried.ok and all(r["status"] == "ok" for r in retried.records)
    lines = _lines(out)  # the failures stay as history; the retries are appended after them
    assert len(lines) == 6 and [r["status"] for r in lines[-2:]] == ["ok", "ok"]
    assert len(read_sweep(out)) == 4  # one current record per point: its last line
    # Retrying again has nothing left to do: ok points are never re-run.
    final = run_sweep_summary("test-flaky", out, grid, seeds=[0, 1], retry_failed=True)
    assert not final.done and len(final.skipped) == 4 and len(_lines(out)) == 6


def test_a_last_line_without_newline_does_not_swallow_the_next_record(tmp_path):
    run_sweep("test-flaky", tmp_path, {"fail": ["false"]}, seeds=[0])
    path = tmp_path / "sweep.jsonl"
    path.write_text(path.read_text().rstrip("\n"))  # complete record, newline lost in a crash
    run_sweep("test-flaky", tmp_path, {"fail": ["false"]}, seeds=[0, 1])
    assert [r["seed"] for r in _lines(tmp_path)] == [0, 1]


def test_a_folder_locked_by_another_sweep_is_refused_and_left_alone(tmp_path):
    with FileLock(str(tmp_path / LOCK_FILE)):  # as a running sweep holds it
        with pytest.raises(SweepBusyError, match="another sweep is running"):
            run_sweep("test-flaky", tmp_path, {"fail": ["false"]})
        assert not (tmp_path / "sweep.jsonl").exists()
    assert len(run_sweep("test-flaky", tmp_path, {"fail": ["false"]})) == 1


# `python -m memcim` cannot see the test-only experiment, so this launcher loads this file first
# (registering test-flaky) and then runs the real command line, memcim.cli.main, in a new process.
_LAUNCH = ("import importlib.util, sys; "
           "spec = importlib.util.spec_from_file_location('sweep_tests', sys.argv.pop(1)); "
           "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
           "from memcim.cli import main; sys.exit(main())")  # fmt: skip


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-c", _LAUNCH, __file__, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_exit_status_and_summary_name_the_failed_points_and_retry_fixes_them(tmp_path):
    flag, out = tmp_path / "flag", tmp_path / "sweep"
    flag.touch()
    args = ["sweep", "test-flaky", "--out", str(out),
            "--grid", f"fail_while={flag},{tmp_path / 'never'}"]  # fmt: skip
    first = _cli(*args)
    assert first.returncode == 1, first.stderr
    assert "1 done, 1 failed, 0 skipped as already recorded; 2 points" in first.stdout
    failed_key = json.dumps({"params": {"fail_while": str(flag)}, "seed": 0}, sort_keys=True)
    assert f"{failed_key}: RuntimeError: failing while {flag} exists" in first.stdout
    flag.unlink()
    retried = _cli(*args, "--retry-failed")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "1 done, 0 failed, 1 skipped as already recorded; 2 points" in retried.stdout
    assert "failed points" not in retried.stdout
    assert [r["status"] for r in _lines(out)] == ["failed", "ok", "ok"]  # grid order, retry


def test_two_sweeps_started_at_once_on_one_folder_one_is_refused_nothing_duplicated(tmp_path):
    out = tmp_path / "sweep"
    # 200 points (~0.1-0.3 s each): whichever sweep takes the folder's lock is still running,
    # whatever the machine's load, when the other has started up and tries it; it is killed then.
    cmd = [sys.executable, "-m", "memcim", "sweep", "mvm-error", "--out", str(out),
           "--grid", "t_s=" + ",".join(str(10**k) for k in range(10)),
           "--seeds", ",".join(str(s) for s in range(20)), "--set", "batch=512"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while all(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "neither sweep was refused"
            time.sleep(0.05)
        refused = next(p for p in procs if p.poll() is not None)
        running = next(p for p in procs if p is not refused)
        stdout, stderr = refused.communicate()
        assert running.poll() is None, "both sweeps ended; give them more points"
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert refused.returncode == 2, stderr
    assert "another sweep is running on" in stderr and "done" not in stdout
    lines = _lines(out)  # json.loads of every line: none torn or interleaved
    assert len(lines) < 200 and len({r["key"] for r in lines}) == len(lines)
