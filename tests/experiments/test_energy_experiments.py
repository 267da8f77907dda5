"""The energy-movement, energy-batch and energy-bayes experiments: hand-checked figures and the
shapes of the curves they exist to show (small MNIST runs, seconds)."""

import itertools
import json
import math
from pathlib import Path

import pytest
import torch

from memcim import ConfigError
from memcim.energy import PROCESSORS
from memcim.experiments import registry
from memcim.experiments.energy_batch import EnergyBatchConfig, crossover_batch
from memcim.experiments.energy_bayes import EnergyBayesConfig
from memcim.experiments.runner import run_experiment


def test_energy_movement_ratio_is_horowitz(tmp_path: Path):
    run_experiment("energy-movement", tmp_path, seed=0, progress=False)
    metrics = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert metrics["ratio_dram_read_to_fp32_mult"] == pytest.approx(640 / 3.7)  # ≈ 173
    assert metrics["ratio_ddr_32b_to_fp32_mult"] == pytest.approx(32 * 17.5 / 3.7)  # ≈ 151
    assert (tmp_path / "operation_energies.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("config_type", "field", "value"),
    [
        (EnergyBatchConfig, "models", ("resnet",)),
        (EnergyBatchConfig, "processors", ("tpu",)),
        (EnergyBatchConfig, "batches", (0,)),
        (EnergyBatchConfig, "device", "sram"),
        (EnergyBayesConfig, "schemes", ("gibbs",)),
        (EnergyBayesConfig, "samples", ()),
        (EnergyBayesConfig, "e_gaussian_pj", -1.0),
        (EnergyBayesConfig, "batch", 0),
        (EnergyBayesConfig, "measured_samples", 0),
        (EnergyBayesConfig, "population", 0),
    ],
)
def test_configs_reject_bad_values_naming_the_field(config_type, field, value):
    with pytest.raises(ConfigError, match=field):
        config_type(**{field: value})


def test_crossover_closed_form():
    # floor 10 pJ + 90 pJ / B <= 40 pJ  <=>  B >= 3.
    assert crossover_batch(40.0, 10.0, 90.0) == 3
    # Exactly on the boundary counts: 10 + 90/B <= 55 at B = 2.
    assert crossover_batch(55.0, 10.0, 90.0) == 2
    # A floor above CIM never crosses.
    assert crossover_batch(9.0, 10.0, 90.0) is None


def test_energy_batch_shows_the_crossover(tmp_path: Path, shared_data):
    data_dir = shared_data("mnist.npz")
    torch.set_num_threads(1)
    small = {"train_images": "2000", "epochs": "1", "profile_images": "64",
             "batches": "1,4,16,64,256,1024", "data_dir": str(data_dir)}  # fmt: skip
    config = EnergyBatchConfig(batches=(1, 4, 16, 64, 256, 1024))
    run_experiment("energy-batch", tmp_path, assignments=small, seed=0, progress=False)
    result = json.loads((tmp_path / "results.json").read_text())
    m = result["metrics"]
    for model in ("mlp", "cnn"):
        cim = m[f"cim_pj_{model}"]
        for proc in config.processors:
            curve = [m[f"digital_pj_{model}_{proc}_b{b}"] for b in config.batches]
            # Digital energy per inference falls with the batch (weights amortised) ...
            assert all(a > b for a, b in itertools.pairwise(curve)), (model, proc)
            floor = m[f"digital_floor_pj_{model}_{proc}"]
            assert curve[-1] > floor
            # ... and the crossover, where reported, is where the curve meets the CIM line.
            b_star = m.get(f"crossover_batch_{model}_{proc}")
            if b_star is None:
                assert floor >= cim
            else:
                weights_b1 = curve[0] - floor
                assert floor + weights_b1 / b_star <= cim * (1 + 1e-9)
                assert b_star == 1 or floor + weights_b1 / (b_star - 1) > cim
    # The recent-node NPU crosses the CNN's CIM line inside the plotted range; the 45 nm
    # processors never do (their arithmetic alone costs more than the CIM inference).
    assert 1 < m["crossover_batch_cnn_edge_npu"] <= 1024
    assert "crossover_batch_mlp_edge_cpu" not in m and "crossover_batch_cnn_mcu" not in m
    assert m["tile_tops_per_w"] > 0 and math.isclose(
        sum(v for k, v in m.items() if k.startswith("tile_share_")), 1.0, rel_tol=1e-9
    )
    assert (tmp_path / "energy_vs_batch.png").stat().st_size > 0
    assert result["summary_table"]["rows"][0][0] == "mlp"


def test_energy_bayes_measures_sampling_on_the_tiles_per_scheme(tmp_path: Path, shared_data):
    """A reduced run: the MLP on tiles at S_m = 2 (profiled at S = 2 and 4), population K = 4,
    16 images. Differential is left out for time (its per-weight solve takes ~15 s on this MLP);
    its measurement is tested on a small layer in tests/energy/test_bayes_tiles.py."""
    data_dir = shared_data("mnist.npz")
    torch.set_num_threads(1)
    schemes = ("cycle_to_cycle", "device_population", "read_noise", "separate_mu_sigma")
    small = {"train_images": "2000", "epochs": "1", "profile_images": "16", "samples": "1,2,4",
             "measured_samples": "2", "population": "4", "schemes": ",".join(schemes),
             "data_dir": str(data_dir)}  # fmt: skip
    config = EnergyBayesConfig(samples=(1, 2, 4))
    run_experiment("energy-bayes", tmp_path, assignments=small, seed=0, progress=False)
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert m["cim_measured_samples"] == 2
    # The tiles hold weights and biases: the bias is one more word line of every layer.
    cells = 785 * 256 + 257 * 128 + 129 * 10
    outputs = 256 + 128 + 10
    slope = {s: m[f"cim_pj_per_sample_{s}"] for s in schemes}
    # Re-programming per sample, counted by the tiles (1 pJ per RESET+SET, batch 1): one
    # write per weight and sample for cycle-to-cycle; the read-only schemes read.
    assert m["cim_part_pj_cycle_to_cycle_sample_writes_s4"] == pytest.approx(4 * cells * 1.0)
    assert slope["cycle_to_cycle"] > cells * 1.0
    assert slope["device_population"] < cells * 1.0
    assert slope["read_noise"] < cells * 1.0
    # The one-off programming the tiles counted: 2K = 8 writes per weight for the population,
    # 3 for read noise, 4 (a μ pair and a σ² pair) for separate μ/σ².
    assert m["program_pj_device_population"] == pytest.approx(8 * cells * 1.0)
    assert m["program_pj_read_noise"] == pytest.approx(3 * cells * 1.0)
    assert m["program_pj_separate_mu_sigma"] == pytest.approx(4 * cells * 1.0)
    # Separate μ/σ²: 16 random bits (1 pJ STT-MRAM writes) and one combination (32.3 pJ) per
    # output and sample; its first layer reads the shared image once for all samples, so its
    # line has an intercept, where the schemes that draw in the array have none (up to the
    # activity of the later layers, whose inputs differ from sample to sample: ~0.1 % here).
    assert m["cim_part_pj_separate_mu_sigma_rng_s4"] == pytest.approx(16 * outputs * 4 * 1.0)
    assert m["cim_part_pj_separate_mu_sigma_combine_s4"] == pytest.approx(outputs * 4 * 32.3)
    for scheme in schemes:
        e = [m[f"cim_pj_{scheme}_s{s}"] for s in config.samples]
        intercept = e[0] - (e[1] - e[0])
        if scheme == "separate_mu_sigma":
            assert intercept > 0.05 * e[0]
        else:
            assert abs(intercept) < 1e-2 * e[0], scheme
    # Digital: one Gaussian (10 pJ) per weight and sample at batch 1.
    weights = 784 * 256 + 256 * 128 + 128 * 10
    for proc in config.processors:
        assert m[f"digital_rng_pj_{proc}_s4"] == pytest.approx(4 * weights * 10.0)
    assert (tmp_path / "energy_vs_samples.png").stat().st_size > 0


def test_registered():
    for name in ("energy-movement", "energy-batch", "energy-bayes"):
        assert name in registry.names()
    assert set(EnergyBatchConfig().processors) <= set(PROCESSORS)


def test_system_chiplets_costs_the_bayesian_chiplet_with_the_tile_model(tmp_path: Path):
    from memcim.energy.system import BAYESIAN_CIM, neurosim_bayesian_cim_pj
    from memcim.experiments.system_chiplets import SystemChipletsConfig, compare_builds

    default = compare_builds(SystemChipletsConfig())["3d"]
    four_bit = compare_builds(SystemChipletsConfig(bayes_adc_bits=4))["3d"]
    # The pipeline's chiplet is the tile model's: 4-bit ADCs save 10 samples × 74 outputs ×
    # 10 fJ × (256 − 16) = 1,776 pJ per inference, in the chiplet and so in the whole system.
    assert default.energy_breakdown_pj["bayesian_cim"] == pytest.approx(BAYESIAN_CIM.e_pj)
    assert default.stage_energy_pj - four_bit.stage_energy_pj == pytest.approx(1776.0)
    fixed = compare_builds(SystemChipletsConfig(bayes_e_pj=1000.0, bayes_adc_bits=4))["3d"]
    assert fixed.energy_breakdown_pj["bayesian_cim"] == 1000.0  # an explicit override wins
    record = run_experiment("system-chiplets", tmp_path, assignments={"bayes_adc_bits": "4"})
    m = record["metrics"]
    assert m["bayes_cim_pj"] == pytest.approx(four_bit.energy_breakdown_pj["bayesian_cim"])
    assert m["bayes_cim_neurosim_pj"] == pytest.approx(neurosim_bayesian_cim_pj())
    assert m["bayes_cim_model_to_neurosim"] == pytest.approx(
        m["bayes_cim_pj"] / m["bayes_cim_neurosim_pj"]
    )
    totals = ("bayes_cim_pj", "bayes_cim_neurosim_pj", "bayes_cim_program_pj")
    parts = [k for k in m if k.startswith("bayes_cim_") and k.endswith("_pj") and k not in totals]
    assert sum(m[k] for k in parts) == pytest.approx(m["bayes_cim_pj"])
    rows = json.loads((tmp_path / "results.json").read_text())["bayes_cim_table"]["rows"]
    assert [r[0].split(" (")[0] for r in rows] == ["memcim tile model", "NeuroSim 1.4"]
