"""The command line: help through both entry points, and the demo end to end."""

import json
import subprocess
import sys

from memcim import cli


def test_python_m_memcim_help():
    out = subprocess.run(
        [sys.executable, "-m", "memcim", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "demo" in out and "usage: memcim" in out


def test_memcim_help_entry_point(capsys):
    try:
        cli.main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert "usage: memcim" in capsys.readouterr().out


def test_demo_quick_writes_results(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert (tmp_path / "mvm_error_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "Mean relative MVM error" in printed
    # Drift without compensation must hurt PCM more after a day than after a second, and
    # compensation must recover most of it (the demo's central claims).
    assert metrics["mvm_error_PCM_1day"] > 1.5 * metrics["mvm_error_PCM_1s"]
    assert metrics["mvm_error_PCM_1day_compensated"] < 0.7 * metrics["mvm_error_PCM_1day"]
    assert 0.9 < metrics["accuracy_software"] <= 1.0
    assert abs(metrics["accuracy_ideal_devices"] - metrics["accuracy_software"]) < 0.02
