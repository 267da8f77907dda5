""".ci/run: runs the README's test command with the shared data found and every skip explained.

The script is run for real on a copy laid out as CI lays it out (the clone beside a ``shared``
folder), with stand-ins for pip, python and the optional system tools on ``PATH``, so nothing
is installed and no test suite runs: the ``python`` stand-in records what it was asked to do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="bash not found")


def _stub(path: Path, body: str) -> None:
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def _run_ci(tmp_path: Path, *, shared_data: bool, env_data_dir: str | None = None,
            pytest_status: int = 0) -> tuple[subprocess.CompletedProcess, str]:  # fmt: skip
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", clone / ".ci" / "run")
    if shared_data:
        (tmp_path / "shared" / "data").mkdir(parents=True)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    record = tmp_path / "python_called.txt"
    for tool in ("chromium", "ngspice", "pip", "mkdocs"):  # present: nothing to install
        _stub(stubs / tool, "exit 0")
    _stub(stubs / "python", f'echo "$*|${{MEMCIM_DATA_DIR:-unset}}" > "{record}"\n'
                            f"exit {pytest_status}")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MEMCIM_DATA_DIR"}
    env["PATH"] = f"{stubs}{os.pathsep}{os.path.dirname(BASH)}{os.pathsep}/usr/bin:/bin"
    if env_data_dir is not None:
        env["MEMCIM_DATA_DIR"] = env_data_dir
    done = subprocess.run([BASH, str(clone / ".ci" / "run")], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    return done, record.read_text().strip() if record.exists() else ""


def test_ci_points_the_data_tests_at_the_shared_folder_beside_the_clone(tmp_path):
    done, called = _run_ci(tmp_path, shared_data=True)
    assert done.returncode == 0, done.stderr
    args, data_dir = called.split("|")
    assert args == "-m pytest"
    assert Path(data_dir) == (tmp_path / "shared" / "data").resolve()


def test_a_data_folder_the_caller_set_wins_and_none_is_invented(tmp_path):
    _, called = _run_ci(tmp_path / "a", shared_data=True, env_data_dir="/elsewhere")
    assert called.split("|")[1] == "/elsewhere"
    _, called = _run_ci(tmp_path / "b", shared_data=False)
    assert called.split("|")[1] == "unset"


def test_ci_fails_when_the_tests_fail(tmp_path):
    for status in (1, 5):  # failures, and pytest's "no tests ran"
        done, _ = _run_ci(tmp_path / str(status), shared_data=True, pytest_status=status)
        assert done.returncode == status


def test_pytest_prints_the_reason_of_every_skip():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "-rs" in config["tool"]["pytest"]["ini_options"]["addopts"].split()
