"""Experiments metaplastic-mnist-fmnist and metaplastic-pmnist: small runs end to end, and the
acceptance criteria (slow)."""

from __future__ import annotations

import json

import pytest

from memcim.experiments.runner import run_experiment

SMALL = {
    "train_images": "1000",
    "hidden": "64",
    "epochs": "1",
    "test_batch": "500",
    "verify_tolerance_us": "3.0",
}


def test_small_mnist_fmnist_run_compares_every_variant(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz", "fashion_mnist.npz"))
    run_experiment("metaplastic-mnist-fmnist", tmp_path, assignments={**SMALL,
                   "data_dir": data_dir}, seed=0, progress=False)  # fmt: skip
    results = json.loads((tmp_path / "results.json").read_text())
    m = results["metrics"]
    for variant in ("metaplastic", "non_metaplastic", "ewc", "float", "memristor"):
        for task in ("mnist", "fmnist"):
            assert 0.0 <= m[f"final_accuracy_{task}_{variant}"] <= 1.0
        assert (
            results["accuracy_matrices"][variant][0][0] == m[f"first_task_after_training_{variant}"]
        )
    # 1000 images, one epoch: every network learns MNIST well above chance (10 %).
    assert m["first_task_after_training_metaplastic"] > 0.5
    assert m["writes_per_device_mean_memristor"] >= 1.0  # deployment, then level changes
    assert m["writes_per_device_max_memristor"] > 1.0
    assert "memristor_gap_mnist" in m
    assert (tmp_path / "metaplastic-mnist-fmnist_accuracy.png").is_file()


def test_small_pmnist_run(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz"))
    run_experiment("metaplastic-pmnist", tmp_path, assignments={**SMALL, "tasks": "3",
                   "variants": "metaplastic,non_metaplastic", "data_dir": data_dir}, seed=0,
                   progress=False)  # fmt: skip
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert set(m) >= {"acc_metaplastic", "bwt_non_metaplastic", "final_accuracy_task3_metaplastic"}


@pytest.mark.slow
def test_mnist_fmnist_meets_the_acceptance_criteria(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz", "fashion_mnist.npz"))
    run_experiment("metaplastic-mnist-fmnist", tmp_path, assignments={"data_dir": data_dir},
                   seed=0, progress=False)  # fmt: skip
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert m["final_accuracy_mnist_metaplastic"] >= 0.90  # m = 1.5 keeps MNIST
    assert m["final_accuracy_fmnist_metaplastic"] >= 0.80  # and learns Fashion-MNIST
    assert m["final_accuracy_mnist_non_metaplastic"] < 0.50  # m = 0 forgets it
    assert abs(m["memristor_gap_mnist"]) <= 0.015 and abs(m["memristor_gap_fmnist"]) <= 0.015


@pytest.mark.slow
def test_pmnist_meets_the_acceptance_criterion(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz"))
    run_experiment("metaplastic-pmnist", tmp_path, assignments={"data_dir": data_dir}, seed=0,
                   progress=False)  # fmt: skip
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    gain = m["final_accuracy_task1_metaplastic"] - m["final_accuracy_task1_non_metaplastic"]
    assert gain >= 0.20, gain  # the first task after the last, m = 1.35 vs m = 0
