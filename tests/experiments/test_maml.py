"""Experiments maml-omniglot and maml-sinusoid: small runs end to end, the split between
meta-training and test characters, resuming, and the acceptance criteria (slow)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from memcim.data import load_omniglot
from memcim.experiments.maml_omniglot import MamlOmniglotConfig, samplers
from memcim.experiments.runner import run_experiment

TINY_OMNIGLOT = {"iterations": "3", "meta_batch": "2", "test_tasks": "4", "shots": "1",
                 "test_queries": "2"}  # fmt: skip
TINY_SINUSOID = {"iterations": "20", "test_tasks": "5", "shots": "5", "test_steps": "2",
                 "test_queries": "10"}  # fmt: skip


def _canonical(images: torch.Tensor) -> set[bytes]:
    """Each image as the smallest byte string over its four rotations (rotation-invariant)."""
    out = set()
    for img in images:
        out.add(min((torch.rot90(img, k, dims=(-2, -1)) > 0.5).numpy().tobytes()
                    for k in range(4)))  # fmt: skip
    return out


def test_evaluation_characters_never_appear_in_meta_training(shared_data):
    data = load_omniglot(shared_data("omniglot_small.npz"))
    train, test = samplers(MamlOmniglotConfig(), data, 5, seed=0)
    episode = train.sample(40)
    seen = _canonical(torch.cat([episode.support_x, episode.query_x], 1).flatten(0, 1)[:, 0])
    evaluation = _canonical(data.evaluation.x)
    background = _canonical(data.background.x)
    assert seen <= background
    assert not seen & evaluation
    e = test.sample(5)
    assert _canonical(e.query_x.flatten(0, 1)[:, 0]) <= evaluation
    # Query images are distinct drawings (the authors' sampler repeated one per class).
    q = e.query_x.reshape(5, 5, -1, 28 * 28)
    for task in q:
        for cls in task:
            assert torch.unique(cls, dim=0).shape[0] == cls.shape[0]


def test_small_omniglot_run_compares_every_adaptation_and_resumes(tmp_path, shared_data):
    data_dir = str(shared_data("omniglot_small.npz"))
    assignments = {**TINY_OMNIGLOT, "data_dir": data_dir}
    run_experiment("maml-omniglot", tmp_path, assignments=assignments, seed=0, progress=False)
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    for name in ("software", "software_4bit", "pcm_0s", "pcm_1day", "rram_0s", "rram_1day"):
        assert 0.0 <= m[f"accuracy_1shot_{name}"] <= 1.0, name
        assert math.isfinite(m[f"accuracy_1shot_{name}_ci95"])
    for name in ("pcm_0s", "rram_1day"):
        assert m[f"writes_per_adaptation_1shot_{name}"] > 0
        assert m[f"adaptation_energy_nj_1shot_{name}_cim"] > 0
        assert m[f"adaptation_energy_nj_1shot_{name}_digital"] > 0
    for f in ("accuracy_vs_steps_1shot.png", "writes_per_device_1shot.png", "meta_1shot.pt"):
        assert (tmp_path / f).is_file(), f
    saved = torch.load(tmp_path / "meta_1shot.pt", weights_only=False)
    assert len(saved["history"]) == 3
    # A longer run in the same folder resumes from the checkpoint: 3 + 2 iterations.
    run_experiment("maml-omniglot", tmp_path, assignments={**assignments, "iterations": "5"},
                   seed=0, progress=False)  # fmt: skip
    resumed = torch.load(tmp_path / "meta_1shot.pt", weights_only=False)
    assert resumed["history"][:3] == saved["history"] and len(resumed["history"]) == 5


def test_small_sinusoid_run_reports_mse_per_variant(tmp_path):
    run_experiment("maml-sinusoid", tmp_path, assignments=TINY_SINUSOID, seed=0, progress=False)
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    for name in ("software", "software_4bit", "pcm_0s", "pcm_1day", "rram_0s", "rram_1day"):
        assert m[f"mse_5shot_{name}"] >= 0 and math.isfinite(m[f"mse_5shot_{name}_ci95"])
    assert (tmp_path / "mse_vs_steps_5shot.png").is_file()


@pytest.mark.slow
def test_omniglot_meets_the_acceptance_criteria(tmp_path, shared_data):
    data_dir = str(shared_data("omniglot_small.npz"))
    run_experiment("maml-omniglot", tmp_path, assignments={"data_dir": data_dir}, seed=0,
                   progress=False)  # fmt: skip
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    # Acceptance: 5-way 5-shot software >= 95 % on unseen tasks; PCM within 2 points.
    assert m["accuracy_5shot_software"] >= 0.95
    assert m["accuracy_gap_5shot_pcm_0s"] <= 0.02
    assert "accuracy_1shot_software" in m


@pytest.mark.slow
def test_sinusoid_meets_the_acceptance_criterion(tmp_path):
    run_experiment("maml-sinusoid", tmp_path, assignments={}, seed=0, progress=False)
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert m["mse_10shot_software"] <= 1.0  # acceptance: 10-shot software MSE <= 1.0
    assert "mse_10shot_pcm_0s" in m
