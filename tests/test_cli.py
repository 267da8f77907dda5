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


PNG = b"\x89PNG\r\n\x1a\n"


def test_demo_writes_results_figures_and_a_short_report(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    metrics = record["metrics"]
    for name in ("accuracy_sw", "accuracy_hw", "ece_hw", "nll_hw", "ood_auroc_hw",
                 "accuracy_det", "ece_det"):  # fmt: skip
        assert name in metrics, name
    for figure in ("reliability.png", "uncertainty_hist.png", "accuracy_rejection.png",
                   "fidelity.png"):  # fmt: skip
        assert (tmp_path / figure).read_bytes()[:8] == PNG, figure
    report = (tmp_path / "report.md").read_text()
    assert "| model | accuracy | ECE |" in report and "BNN, rram, differential" in report
    assert "| OOD score |" in report  # the score each model's AUROC is of, chosen on validation
    assert (tmp_path / "report.html").exists()
    printed = capsys.readouterr().out
    assert "BNN, rram, cycle_to_cycle" in printed and "deterministic, rram" in printed
    scores = record["ood_scores"]
    assert scores["hw"] in ("epistemic", "total") and scores["det_hw"] in ("max_softmax", "entropy")
    assert "each OOD score chosen on the validation images" in printed
    assert f"OOD AUROC (BNN, differential, {scores['hw']}" in printed
    for model, chosen in scores.items():  # each AUROC is the test AUROC of the validation choice
        assert metrics[f"ood_auroc_{model}"] == metrics[f"ood_auroc_{chosen}_{model}"], model
    # A working BNN on 8x8 digits: > 90 % on hardware, each scheme within a few points of
    # software (the 1-point acceptance is measured on MNIST; 540 test images are coarse).
    assert metrics["accuracy_hw"] > 0.9 and metrics["accuracy_gap_max_points"] < 3.0
    assert metrics["ood_auroc_hw"] > 0.8


def test_foundation_demo_quick_writes_results(tmp_path, capsys):
    assert cli.main(["demo", "--foundation", "--quick", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert (tmp_path / "mvm_error_vs_time.png").read_bytes()[:8] == PNG
    printed = capsys.readouterr().out
    assert "Mean relative MVM error" in printed
    # Drift without compensation must hurt PCM more after a day than after a second, and
    # compensation must recover most of it (the demo's central claims).
    assert metrics["mvm_error_PCM_1day"] > 1.5 * metrics["mvm_error_PCM_1s"]
    assert metrics["mvm_error_PCM_1day_compensated"] < 0.7 * metrics["mvm_error_PCM_1day"]
    assert 0.9 < metrics["accuracy_software"] <= 1.0
    assert abs(metrics["accuracy_ideal_devices"] - metrics["accuracy_software"]) < 0.02


def test_list_run_and_report_through_the_cli(tmp_path, capsys):
    assert cli.main(["list"]) == 0
    assert "mvm-error" in capsys.readouterr().out
    out = tmp_path / "run"
    args = ["run", "mvm-error", "--out", str(out), "--seed", "3", "--set", "rows=32",
            "--set", "cols=8", "--set", "batch=4", "--set", "device=rram"]  # fmt: skip
    assert cli.main(args) == 0
    record = json.loads((out / "results.json").read_text())
    assert set(record) == {"experiment", "config", "seed", "versions", "metrics", "artifacts",
                           "wall_s"}  # fmt: skip
    assert record["seed"] == 3 and record["config"]["device"] == "rram"
    assert set(record["versions"]) == {"memcim", "torch", "python"}
    assert 0 < record["metrics"]["mvm_error"] < 1
    assert cli.main(["report", str(out)]) == 0
    assert (out / "report.html").exists()


def test_cli_errors_are_clear_and_exit_2(tmp_path, capsys):
    assert cli.main(["run", "mvm-error", "--out", str(tmp_path), "--set", "rowz=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key(s) ['rowz']" in err and "valid keys: device, t_s" in err
    assert cli.main(["run", "no-such-experiment", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'no-such-experiment'" in err and "mvm-error" in err
