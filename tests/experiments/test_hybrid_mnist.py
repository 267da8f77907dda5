"""Experiment hybrid-mnist: a small run end to end, and its acceptance criterion (slow)."""

from __future__ import annotations

import json

import pytest

from memcim.experiments.runner import run_experiment

SMALL = {"train_images": "3000", "epochs": "1", "k_values": "64", "retention_s": "0.01,1",
         "low_endurance": "20"}  # fmt: skip


def test_small_run_compares_every_training(tmp_path, shared_data):
    data_dir = shared_data("mnist.npz", "fashion_mnist.npz")
    run_experiment("hybrid-mnist", tmp_path, assignments={**SMALL, "data_dir": str(data_dir)},
                   seed=0, progress=False)  # fmt: skip
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    for key in ("software", "direct_rram", "hybrid_feram", "hybrid_feram_k64", "hybrid_sram",
                "hybrid_gain_cell", "hybrid_gain_cell_tau0.01", "direct_rram_low_endurance",
                "software_fashion_mnist", "hybrid_feram_fashion_mnist"):  # fmt: skip
        assert 0.0 <= m[f"accuracy_{key}"] <= 1.0, key
    # 3000 images, one epoch: software SGD is far above chance (10 %).
    assert m["accuracy_software"] > 0.6
    assert m["rram_writes_direct_rram"] > m["rram_writes_hybrid_feram"] > 0
    # Direct SGD re-programs one device of every weight with a non-zero update at each of the
    # 94 steps (4.4 M writes); the hybrid only the devices whose level changed at its 5
    # transfers (154 here: one epoch of 3000 images is too short for it to learn, 12 %, so
    # the digits test in tests/learning/test_hybrid.py checks the writes of a hybrid that
    # learns). Re-programming every device whenever a layer changes (0.85 M hybrid writes,
    # and 20.6 M direct ones) gave a ratio of 24: >= 100 (the full run's target) fails that.
    assert m["rram_write_ratio_direct_to_feram"] >= 100
    assert m["rram_write_ratio_direct_to_feram"] == pytest.approx(
        m["rram_writes_direct_rram"] / m["rram_writes_hybrid_feram"]
    )
    assert m["accuracy_hybrid_gain_cell_tau1"] == m["accuracy_hybrid_gain_cell"]
    assert m["rram_writes_per_device_max_direct_rram_low_endurance"] == 20
    assert m["stuck_fraction_direct_rram_low_endurance"] > 0
    assert (tmp_path / "hybrid_mnist.png").is_file()
    assert (tmp_path / "partial_results.json").is_file()


@pytest.mark.slow
def test_feram_hybrid_meets_the_acceptance_criterion(tmp_path, shared_data):
    data_dir = shared_data("mnist.npz")
    run_experiment("hybrid-mnist", tmp_path, assignments={"datasets": "mnist", "k_values": "",
                   "retention_s": "", "low_endurance": "0", "data_dir": str(data_dir)},
                   seed=0, progress=False)  # fmt: skip
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    # Acceptance: within 1.5 points of software SGD with >= 100x fewer RRAM writes than direct.
    assert m["accuracy_gap_feram_to_software"] <= 0.015, m["accuracy_gap_feram_to_software"]
    assert m["rram_write_ratio_direct_to_feram"] >= 100
