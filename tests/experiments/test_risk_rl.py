"""Experiment risk-rl: a small run end to end."""

from __future__ import annotations

import json

from memcim.experiments.runner import run_experiment

TINY = {"transitions": "400", "epochs": "3", "latent_draws": "4", "weight_draws": "4",
        "iterations": "2", "population": "8", "elites": "2", "model_episodes": "2",
        "eval_episodes": "20", "gammas": "0.95"}  # fmt: skip


def test_small_run_trains_maps_and_policies(tmp_path):
    run_experiment("risk-rl", tmp_path, assignments=TINY, seed=0, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    m = results["metrics"]
    for kind in ("aleatoric", "epistemic"):
        assert -1 <= m[f"map_correlation_{kind}"] <= 1
        assert m[f"map_{kind}_max_tiles"] > 0
    for name in ("neutral", "sensitive_gamma0.95", "hold_y5", "hold_y7"):
        assert 0 <= m[f"crash_rate_{name}"] <= 1
        assert m[f"crash_low_{name}"] <= m[f"crash_rate_{name}"] <= m[f"crash_high_{name}"]
    assert "return_ratio_sensitive_gamma0.95" in m
    assert [row[0] for row in results["summary_table"]["rows"]][:2] == [
        "neutral",
        "sensitive_gamma0.95",
    ]
    assert (tmp_path / "risk-rl.png").is_file()
