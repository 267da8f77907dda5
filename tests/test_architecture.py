"""The layering of DESIGN.md is enforced by the import-linter contracts in ``.importlinter``.

The first test runs the contracts on the installed source; the second proves they bite: a copy
of the package with one upward import added (devices -> nn) must fail, naming the contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"
SRC = ROOT / "src" / "memcim"
LAYERS_CONTRACT = "memcim layers: a lower layer never imports a higher one"

pytestmark = pytest.mark.skipif(
    shutil.which("lint-imports") is None,
    reason="import-linter is not installed (pip install import-linter)",
)


def _lint(src_root: Path) -> subprocess.CompletedProcess[str]:
    """Run the contracts on the ``memcim`` package found first on ``src_root``."""
    env = dict(os.environ, PYTHONPATH=str(src_root))
    # --no-cache: the copy and the real tree must not share (or write) a cache in the repo.
    return subprocess.run(
        [shutil.which("lint-imports"), "--config", str(CONFIG), "--no-cache"],
        cwd=src_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_contracts_are_kept():
    result = _lint(SRC.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    copy = tmp_path / "memcim"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "devices" / "__init__.py").open("a") as f:
        f.write("\nimport memcim.nn  # an upward import: devices must not know nn\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"{LAYERS_CONTRACT} BROKEN" in result.stdout
    assert "memcim.devices is not allowed to import memcim.nn" in result.stdout
    # The copy, not the installed package, was analysed.
    assert "memcim.devices -> memcim.nn" in result.stdout


def test_an_unplaced_subpackage_breaks_the_layers_contract(tmp_path):
    """``exhaustive = True``: a new subpackage must be placed in a layer before it passes."""
    copy = tmp_path / "memcim"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "unplaced").mkdir()
    (copy / "unplaced" / "__init__.py").write_text('"""Not in any layer."""\n')
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"{LAYERS_CONTRACT} BROKEN" in result.stdout
    assert "memcim.unplaced" in result.stdout
