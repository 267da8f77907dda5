"""Experiments mesu-pmnist and mesu-ood: small runs end to end, resuming, and the acceptance
criteria (slow)."""

from __future__ import annotations

import json

import pytest
import torch

from memcim import ConfigError
from memcim.experiments.mesu import epistemic_bits, paper_auroc
from memcim.experiments.runner import run_experiment
from memcim.metrics import decompose, ood_auroc

TINY_PMNIST = {"tasks": "3", "train_images": "300", "test_images": "200", "ood_images": "200",
               "fisher_samples": "100", "jobs": "1"}  # fmt: skip
TINY_OOD = {"train_images": "300", "epochs": "6", "test_images": "500", "memories": "3,inf",
            "eval_every": "3", "jobs": "1", "draw": "local"}  # fmt: skip


def test_small_pmnist_run_compares_every_learner_and_the_devices(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz", "fashion_mnist.npz"))
    settings = {
        **TINY_PMNIST,
        "data_dir": data_dir,
        "device_chips": "2",
        "device_test_images": "2000",
    }
    run_experiment("mesu-pmnist", tmp_path, assignments=settings, seed=0, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    m = results["metrics"]
    for variant in ("mesu", "sgd", "online_ewc", "si"):
        matrix = results["accuracy_matrices"][variant]
        assert len(matrix) == 3 and m[f"newest_task_accuracy_{variant}"] == matrix[-1][-1]
        assert m[f"last5_accuracy_{variant}"] == pytest.approx(sum(matrix[-1]) / 3)
        assert 0 <= m[f"auroc_total_{variant}"] <= 1
    # 300 images of the first task: every learner is well above chance (10 %).
    assert min(results["accuracy_matrices"][v][0][0] for v in ("mesu", "sgd")) > 0.4
    # Point-weight networks have no epistemic part; MESU's samples disagree.
    assert m["auroc_epistemic_sgd"] == 0.5 and m["epistemic_in_nats_sgd"] == 0
    assert m["epistemic_in_nats_mesu"] > 0
    assert m["memory_samples"] == 1500  # 5 tasks' worth of samples
    assert m["device_separate_mu_sigma_feasible_fraction"] == 1.0
    assert m["device_separate_mu_sigma_writes"] > 0
    # Two chips from their own seeds: the first gives the single-chip metrics.
    for name in ("separate_mu_sigma", "separate_mu_sigma_single_pulse"):
        gaps = [m[f"device_{name}_gap_points_chip{k}"] for k in range(2)]
        assert gaps[0] == m[f"device_{name}_gap_points"] and gaps[0] != gaps[1]
        assert m[f"device_{name}_gap_points_mean"] == pytest.approx(sum(gaps) / 2)
        assert m[f"device_{name}_gap_points_worst"] == max(gaps)
    assert (tmp_path / "mesu-pmnist_accuracy.png").is_file()
    assert results["summary_table"]["rows"][0][0] == "mesu"


def test_pmnist_resumes_from_finished_variants(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz", "fashion_mnist.npz"))
    settings = {**TINY_PMNIST, "data_dir": data_dir, "variants": "sgd",
                "device_schemes": ""}  # fmt: skip
    run_experiment("mesu-pmnist", tmp_path, assignments=settings, seed=0, progress=False)
    first = json.loads((tmp_path / "results.json").read_text())["metrics"]
    (tmp_path / "checkpoints" / "sgd.pt").unlink()  # only the finished record remains
    run_experiment("mesu-pmnist", tmp_path, assignments=settings, seed=0, progress=False)
    again = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert again == first


def test_small_ood_run_measures_every_memory(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz"))
    run_experiment("mesu-ood", tmp_path, assignments={**TINY_OOD, "data_dir": data_dir}, seed=0,
                   progress=False)  # fmt: skip
    results = json.loads((tmp_path / "results.json").read_text())
    m = results["metrics"]
    for label in ("3", "inf"):
        assert 0 <= m[f"auroc_epistemic_N{label}"] <= 1
        assert 0 <= m[f"auroc_epistemic_paper_N{label}"] <= 1
        assert len(results["curves"][label]) == 2  # every 3 epochs
    # The prior (σ_p = 0.06) pulls σ toward it only with a finite memory, and that forgetting
    # is what keeps the predictive entropy telling permuted images apart (seeds 0 and 1:
    # 0.979 / 0.982 at N = 3 epochs against 0.776 / 0.850 at N = ∞).
    assert m["sigma_median_N3"] < m["sigma_median_Ninf"]
    assert m["auroc_total_N3"] > m["auroc_total_Ninf"] + 0.05
    assert (tmp_path / "mesu-ood_auroc.png").is_file()


def test_the_papers_auroc_matches_the_exact_one_on_positive_scores():
    """Two-class probabilities whose samples disagree more out of distribution: every score
    is positive, and 1000 thresholds resolve the curve to within 0.01 of the exact AUROC."""
    g = torch.Generator().manual_seed(0)
    spread_in, spread_out = (
        0.05 * torch.rand(2000, generator=g),
        0.15 * torch.rand(2000, generator=g),
    )

    def two_samples(spread):
        first = torch.stack([0.5 + spread, 0.5 - spread], -1)
        return torch.stack([first, first.flip(-1)])  # [S=2, N, C=2]

    p_in, p_out = two_samples(spread_in), two_samples(spread_out)
    bits_in, bits_out = epistemic_bits(p_in), epistemic_bits(p_out)
    nats = decompose(p_in).epistemic
    torch.testing.assert_close(bits_in, nats / torch.log(torch.tensor(2.0)), rtol=1e-4, atol=1e-6)
    exact = ood_auroc(decompose(p_in).epistemic, decompose(p_out).epistemic)
    assert paper_auroc(bits_in, bits_out) == pytest.approx(exact, abs=0.01)


def test_the_papers_auroc_loses_the_area_of_negative_scores():
    """In-distribution scores that rounding put just below 0, and a third of the others too:
    the exact AUROC counts the out-of-distribution scores above them (2/3, plus half the
    ties), the paper's curve starts at (1/3, 1) and misses the area before it (and ends at
    299/300: the largest score is never below a threshold)."""
    scores_in = torch.full((300,), -1e-7)
    scores_out = torch.cat([torch.full((100,), -1e-7), torch.linspace(0.1, 1.0, 200)])
    assert ood_auroc(scores_in, scores_out) == pytest.approx(2 / 3 + 0.5 / 3)
    assert paper_auroc(scores_in, scores_out) == pytest.approx(299 / 300 - 1 / 3, abs=1e-6)


def test_ood_refuses_a_checkpoint_of_other_settings(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz"))
    small = {**TINY_OOD, "data_dir": data_dir, "memories": "inf", "epochs": "2"}
    run_experiment("mesu-ood", tmp_path, assignments=small, seed=0, progress=False)
    with pytest.raises(ConfigError, match="train_images"):
        run_experiment("mesu-ood", tmp_path, assignments={**small, "train_images": "200"},
                       seed=0, progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="epochs trained"):
        run_experiment("mesu-ood", tmp_path, assignments={**small, "epochs": "1"}, seed=0,
                       progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="order"):
        run_experiment("mesu-ood", tmp_path, assignments={**small, "order": "shuffled"},
                       seed=0, progress=False)  # fmt: skip


def test_epochs_follow_the_data_order_or_a_fresh_shuffle():
    """The authors' runs visit the images in the data's order every epoch; the shuffled
    option draws a new order each epoch."""
    from memcim.learning.mesu import train_epochs

    class Recorder:
        def __init__(self):
            self.seen = []

        def step(self, x, y):
            self.seen.append(int(y))
            return 0.0

    x, y = torch.zeros(6, 2), torch.arange(6)
    fixed, shuffled = Recorder(), Recorder()
    train_epochs(fixed, x, y, 2, generator=torch.Generator().manual_seed(0), shuffle=False)
    train_epochs(shuffled, x, y, 2, generator=torch.Generator().manual_seed(0))
    assert fixed.seen == [0, 1, 2, 3, 4, 5] * 2
    first, second = shuffled.seen[:6], shuffled.seen[6:]
    assert sorted(first) == sorted(second) == list(range(6)) and first != second


def test_a_bad_order_is_named():
    from memcim.experiments.mesu import MesuOodConfig

    with pytest.raises(ConfigError, match="order"):
        MesuOodConfig(order="random")


# The margin over SGD depends on the machine as well as the seed: a batch-1 stream turns a
# last-bit difference of the float kernels into another trajectory (seed 0: SGD 81.66 % on
# AVX-512, 77.88 % held to AVX2, 80.46 % on the machine that first ran it). Where a seed passes
# on one machine and not on another, a strict marker would be wrong, so these are not strict;
# the reasons give what docs/experiments/mesu.md measured. Seed 2 met every target there.
_MISSES = pytest.mark.xfail(strict=False, raises=AssertionError,  # any other failure is an error
                            reason="MESU is 9.4 (seed 0) and 8.1 (seed 1) points above SGD, not "
                            "10; seed 1's first chip is 1.14 points below software (one task of "
                            "five); see docs/experiments/mesu.md")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("seed", [pytest.param(s, marks=_MISSES) for s in (0, 1)] + [2])
def test_pmnist_meets_the_acceptance_criteria(seed, tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz", "fashion_mnist.npz"))
    run_experiment("mesu-pmnist", tmp_path, assignments={"data_dir": data_dir}, seed=seed,
                   progress=False)  # fmt: skip
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert m["last5_accuracy_mesu"] >= m["last5_accuracy_online_ewc"]
    assert m["last5_accuracy_mesu"] >= m["last5_accuracy_si"]
    assert m["last5_accuracy_mesu"] >= m["last5_accuracy_sgd"] + 0.10
    assert m["auroc_total_mesu"] >= m["auroc_total_sgd"]
    # Every chip within 1 point of software, not only the first.
    chips = [v for k, v in m.items() if k.startswith("device_separate_mu_sigma_gap_points_chip")]
    assert len(chips) == 3 and all(abs(gap) <= 1.0 for gap in chips)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # the gap falls short; any other failure is an error
    reason="neither the reduced run (0.998 vs 0.958 in the authors' order of the images) nor "
    "the authors' full protocol (shuffled) "
    "reproduces the paper's gap of 0.15 between finite N and N = inf: see "
    "docs/experiments/mesu.md",
)
def test_ood_meets_the_acceptance_criteria(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz"))
    run_experiment("mesu-ood", tmp_path, assignments={"data_dir": data_dir}, seed=0,
                   progress=False)  # fmt: skip
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    best = max(v for k, v in m.items() if k.startswith("auroc_epistemic_N") and "inf" not in k)
    assert best >= 0.95
    assert best >= m["auroc_epistemic_Ninf"] + 0.15


def test_mesu_on_devices_trains_as_mesu_and_counts_its_writes(tmp_path, shared_data):
    data_dir = str(shared_data("mnist.npz", "fashion_mnist.npz"))
    settings = {**TINY_PMNIST, "tasks": "2", "data_dir": data_dir, "device_schemes": "",
                "variants": "mesu,mesu_on_devices"}  # fmt: skip
    run_experiment("mesu-pmnist", tmp_path, assignments=settings, seed=0, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    m = results["metrics"]
    matrices = results["accuracy_matrices"]
    assert matrices["mesu_on_devices"] == matrices["mesu"]  # the devices do not change training
    # Every device is programmed once at the start, then again as μ and σ move.
    assert m["writes_per_device_mean_mesu_on_devices"] > 1.0
    assert m["writes_counted_from_task_mesu_on_devices"] == 1
