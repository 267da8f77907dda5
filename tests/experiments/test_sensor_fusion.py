"""Experiment sensor-fusion: a reduced run end to end, and the claims it makes."""

from __future__ import annotations

import json

import pytest

from memcim.experiments.runner import run_experiment

REDUCED = {"train_subset": "4000", "test_subset": "1000", "validation": "1024",
           "snn_epochs": "2", "epochs": "2", "bnn_epochs": "2", "members": "3", "draws": "2",
           "samples": "8", "noise_levels": "0,0.3"}  # fmt: skip


@pytest.fixture(scope="module")
def reduced(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("sensor_fusion")
    data_dir = str(shared_data("mnist.npz"))
    run_experiment("sensor-fusion", out, assignments={**REDUCED, "data_dir": data_dir}, seed=0,
                   progress=False)  # fmt: skip
    return out, json.loads((out / "results.json").read_text())


def test_reduced_run_scores_every_rule_at_every_condition(reduced):
    out, results = reduced
    m = results["metrics"]
    for condition in ("flip0", "flip0.3", "noise"):
        for rule in ("a", "b", "best_single", "mean", "poe", "uw", "uw_input", "early"):
            assert 0 <= m[f"accuracy_{rule}_{condition}"] <= 1
            assert m[f"nll_{rule}_{condition}"] > 0
    assert (out / "sensor-fusion.png").is_file()
    assert results["summary_table"]["rows"][5][0] == "uw"


def test_spiking_network_on_tiles_keeps_its_accuracy(reduced):
    m = reduced[1]["metrics"]
    assert m["snn_accuracy_sw"] > 0.85
    assert m["snn_ideal_predictions_differing"] <= 2  # float32 ties at the threshold only
    assert m["snn_ideal_current_error_eps"] <= 8  # the same currents up to float32 rounding
    assert {f"snn_gap_points_{k}" for k in range(3)} <= m.keys()  # every network checked
    assert m["snn_gap_points"] <= 1.5


def test_uncertainty_weighting_follows_the_sensor_that_still_sees(reduced):
    """A pure noise: the product of experts is dragged down by A's confident wrong answers,
    the uncertainty-weighted pool is not (its weight on A collapses), and is within its 95 %
    CI of the best single sensor at every condition. A fusion that ignored the uncertainty
    (fixed weights) would be the product or the mean, and fails the first two lines. A's
    uncertainty is the disagreement of its three networks: with one network and six spike
    trains instead (members=1, draws=6) the same run measured AUROC 0.878 and a margin of
    -1.9 points, failing the last two lines."""
    m = reduced[1]["metrics"]
    assert m["nll_uw_noise"] < 0.5 * m["nll_poe_noise"]
    assert m["accuracy_uw_noise"] > m["accuracy_mean_noise"] + 0.05
    assert m["weight_a_noise"] < 0.2 * m["weight_a_flip0"]
    assert m["uw_vs_best_margin_min"] >= 0
    assert m["auroc_a_noise"] >= 0.9
