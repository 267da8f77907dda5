"""The bayes-ood experiment: config validation, a smoke run on scikit-learn digits (seconds),
registration, and the acceptance criteria on the full MNIST run (``--runslow``)."""

import functools
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from memcim import ConfigError
from memcim.bayes import SamplingScheme
from memcim.data.sklearn_sets import load_digits
from memcim.devices import FilamentaryRRAM
from memcim.experiments import bayes_ood, registry
from memcim.experiments.bayes_ood import SCHEMES, BayesOodConfig, build_mlp, load_data, run
from memcim.metrics import ood_auroc
from memcim.metrics.ood import select_ood_score


def tiny(**overrides) -> BayesOodConfig:
    """Digits, 400 training images, 4 steps per epoch, S = 8: a few seconds on two cores."""
    fields = dict(
        dataset="digits",
        hidden=(32,),
        epochs=10,
        bnn_epochs=10,
        lr=1e-2,
        bnn_lr=1e-2,
        batch_size=100,
        kl_weight=0.1,
        samples=8,
        train_subset=400,
        test_subset=150,
        converter_bits=(),
        drift_devices=(),
    )
    return BayesOodConfig(**{**fields, **overrides})


# --- config -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dataset", "cifar"),
        ("device", "sram"),
        ("samples", 0),
        ("samples", 101),
        ("schemes", ()),
        ("schemes", ("differential", "differential")),
        ("schemes", ("gibbs",)),
        ("hidden", ()),
        ("hidden", (0,)),
        ("coverage", 0.0),
        ("coverage", 1.5),
        ("noise_sigma", -0.1),
        ("kl_weight", float("nan")),
        ("prior_sigma", 0.0),
        ("t_s", -1.0),
        ("fidelity_times_s", (3600.0, -1.0)),
        ("epochs", 0),
        ("train_subset", 0),
        ("bnn_init", "pretrained"),
        ("device_aware", "gibbs"),
        ("validation_fraction", 0.0),
        ("validation_fraction", 1.0),
        ("dac_bits", 1),
        ("adc_bits", 0),
        ("converter_bits", (4, 1)),
        ("drift_devices", ("sram",)),
        ("drift_times_s", (-1.0,)),
        ("non_gaussian_read", "gaussian"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        BayesOodConfig(**{field: value})


def test_config_normalises_scheme_names_and_defaults():
    config = BayesOodConfig(schemes=("DIFFERENTIAL", SamplingScheme.READ_NOISE, "cycle_to_cycle"))
    assert config.schemes == ("differential", "read_noise", "cycle_to_cycle")
    default = BayesOodConfig()
    assert default.dataset == "mnist" and default.samples <= 100
    assert default.schemes == SCHEMES == tuple(s.value for s in SamplingScheme)
    assert default.noise_sigma == 0.5 and default.coverage == 0.5


def test_build_mlp_shape_and_seeded_init():
    a = build_mlp(784, (256, 128), 10, torch.Generator().manual_seed(3))
    b = build_mlp(784, (256, 128), 10, torch.Generator().manual_seed(3))
    assert [tuple(p.shape) for p in a.parameters()] == [
        (256, 784), (256,), (128, 256), (128,), (10, 128), (10,)
    ]  # fmt: skip
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert a(torch.zeros(2, 784)).shape == (2, 10)


def test_registered():
    experiment = registry.get("bayes-ood")
    assert experiment.config_type is BayesOodConfig
    assert isinstance(experiment.default_config(), BayesOodConfig)


PER_SCHEME = ("accuracy", "ece", "nll", "ood_auroc", "ood_auroc_total", "ood_auroc_epistemic",
              "acc_at_coverage_noisy")  # fmt: skip


# --- smoke run --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The tiny run on filamentary RRAM, shared by the tests that read it: (result, folder)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("smoke")
        config = tiny(converter_bits=(2,), drift_devices=("pcm",), drift_times_s=(1.0, 3.15e7))
        return run(config, seed=0, out_dir=out, progress=False), out
    finally:
        torch.set_num_threads(before)


def test_smoke_run_reports_every_metric_and_writes_figures(smoke):
    result, tmp_path = smoke
    m = result.metrics
    names = ["accuracy_sw", "ece_sw", "nll_sw", "accuracy_det", "ece_det", "accuracy_det_hw",
             "ece_det_hw", "acc_at_coverage_noisy_det_hw", "ood_auroc_det_hw", "accuracy_hw",
             "ece_hw", "nll_hw", "ood_auroc_hw", "acc_at_coverage_noisy_hw",
             "accept_accuracy", "accept_ood", "accept_ece", "accept_noisy"]  # fmt: skip
    for scheme in SCHEMES:
        names += [f"{k}_hw_{scheme}" for k in PER_SCHEME]
        names += [f"fidelity_wasserstein_{scheme}", f"fidelity_sigma_rel_error_{scheme}"]
        names += [f"fidelity_wasserstein_{scheme}_at_{t}" for t in ("0s", "1h", "1day", "1year")]
    names += [f"{k}_hw_bits2" for k in PER_SCHEME]
    names += [f"{k}_det_hw_bits2" for k in ("accuracy", "ece", "nll", "ood_auroc")]
    names += [f"drift_{k}_pcm_at_{t}" for k in ("accuracy", "ece", "ood_auroc")
              for t in ("1s", "1year")]  # fmt: skip
    missing = [n for n in names if n not in m]
    assert not missing, missing
    for name in names:
        value = m[name]
        assert value == value, name  # not NaN
        if name.startswith(("accuracy", "acc_at", "ood_auroc", "ece", "accept")):
            assert 0.0 <= value <= 1.0, (name, value)
    assert m["accuracy_hw"] == m["accuracy_hw_differential"]
    for scheme in SCHEMES:  # the scale realise chooses keeps every target in the window
        assert m[f"clipped_targets_hw_{scheme}"] == 0, scheme
    # Chance on 10 classes is 0.1; even this tiny run must learn the digits.
    assert m["accuracy_det"] > 0.5 and m["accuracy_sw"] > 0.5
    expected = {"reliability.png", "uncertainty_hist.png", "accuracy_rejection.png", "fidelity.png",
                "fidelity_vs_time.png", "converters.png", "drift.png"}  # fmt: skip
    assert set(result.artifacts) == expected
    for name in expected:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_converter_resolution_reaches_both_networks_tiles(smoke):
    """2-bit DAC and ADC (codes −1, 0, 1) leave three levels per logit: both networks lose
    most of their accuracy. Were the resolution not applied to the tiles, the 2-bit rows would
    equal the 8-bit ones."""
    m = smoke[0].metrics
    assert m["accuracy_hw_bits2"] < m["accuracy_hw"] - 0.2, (
        m["accuracy_hw_bits2"],
        m["accuracy_hw"],
    )
    assert m["accuracy_det_hw_bits2"] < m["accuracy_det_hw"] - 0.2


# --- OOD scores chosen on validation data ------------------------------------------------------
MODELS = ("det", "det_hw", "sw", *(f"hw_{s}" for s in SCHEMES))


def test_each_ood_score_is_chosen_on_validation_data_and_named(smoke):
    result, _ = smoke
    m, named = result.metrics, result.extra["ood_scores"]
    for model in MODELS:
        candidates = bayes_ood.DET_OOD_SCORES if model.startswith("det") else \
            bayes_ood.BNN_OOD_SCORES  # fmt: skip
        val = {c: m[f"ood_auroc_val_{c}_{model}"] for c in candidates}
        chosen = next(c for c in candidates if val[c] == max(val.values()))  # ties: the first
        assert named[model] == chosen, model
        assert m[f"ood_auroc_{model}"] == m[f"ood_auroc_{chosen}_{model}"], model
    assert named["hw"] == named["hw_differential"]
    table = result.extra["summary_table"]
    assert table["header"][-1] == "OOD score"
    assert {row[-1] for row in table["rows"]} <= {"epistemic", "total", "max-softmax", "entropy"}


def _scores(n_in: int, n_out: int, overlap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """In/out scores whose AUROC falls with ``overlap``: in 0..1, out shifted by 1 − overlap."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n_in, generator=gen), torch.rand(n_out, generator=gen) + (1 - overlap)


def test_the_score_choice_never_looks_at_the_test_set():
    # Validation favours "total", the test set "epistemic": the reported AUROC must be the
    # test AUROC of "total" (the validation choice), not the better test AUROC.
    perfect, weak, poor = _scores(50, 50, 0.0), _scores(50, 50, 0.6), _scores(50, 50, 0.9)
    probs = torch.full((50, 10), 0.1)
    ev = bayes_ood._Eval(probs, probs, probs, probs[:, 0], probs[:, 0], probs[:, 0],
                         scores={"epistemic": perfect, "total": weak},
                         val_scores={"epistemic": poor, "total": perfect})  # fmt: skip
    out, chosen = bayes_ood._metrics(ev, torch.zeros(50, dtype=torch.long), 0.5, "hw_x")
    assert chosen == "total"
    assert out["ood_auroc_hw_x"] == out["ood_auroc_total_hw_x"] == ood_auroc(*weak)
    assert out["ood_auroc_epistemic_hw_x"] == 1.0 > out["ood_auroc_hw_x"]
    assert out["ood_auroc_val_total_hw_x"] == 1.0 > out["ood_auroc_val_epistemic_hw_x"]
    # A tie goes to the first score named.
    assert select_ood_score({"a": weak, "b": weak})[0] == "a"
    with pytest.raises(ConfigError, match="validation"):
        select_ood_score({})


def test_the_far_ood_set_is_scored_with_the_score_chosen_on_the_near_validation_set():
    # Validation picks "total"; on the far set "epistemic" would be perfect and "total" weak:
    # the far AUROC must be total's.
    perfect, weak = _scores(50, 50, 0.0), _scores(50, 50, 0.6)
    probs = torch.full((50, 10), 0.1)
    ev = bayes_ood._Eval(probs, probs, probs, probs[:, 0], probs[:, 0], probs[:, 0],
                         scores={"epistemic": perfect, "total": weak},
                         val_scores={"epistemic": weak, "total": perfect},
                         far={"epistemic": perfect[1], "total": weak[1]},
                         far_name="omniglot")  # fmt: skip
    out, chosen = bayes_ood._metrics(ev, torch.zeros(50, dtype=torch.long), 0.5, "hw")
    assert chosen == "total"
    assert out["ood_auroc_omniglot_hw"] == ood_auroc(weak[0], weak[1]) < 1.0


def test_mnist_data_has_a_far_ood_set_of_omniglot_evaluation_images(shared_data):
    data_dir = shared_data("mnist.npz", "fashion_mnist.npz", "omniglot_small.npz")
    data = load_data(tiny(dataset="mnist", data_dir=str(data_dir), test_subset=300), seed=0)
    assert data.far_name == "Omniglot" and data.x_far.shape == (300, 784)
    assert float(data.x_far.min()) >= 0.0 and float(data.x_far.max()) <= 1.0
    from memcim.data import load_omniglot

    evaluation = load_omniglot(str(data_dir)).evaluation.x.reshape(-1, 784)
    # Each far image is one of the evaluation images (ink on a dark background, like MNIST).
    assert all(bool((evaluation == x).all(-1).any()) for x in data.x_far[:20])
    assert float(data.x_far.mean()) < 0.5


def test_validation_images_are_held_out_of_training_and_the_ood_ones_apart_from_the_test():
    config = tiny(train_subset=None, test_subset=None)
    data = load_data(config, seed=0)
    full = load_digits(seed=0).x_train.float()
    n_val = round(0.1 * len(full))
    assert len(data.x_val) == len(data.x_ood_val) == n_val
    assert len(data.x_train) == len(full) - n_val
    # Validation and training images together are the training split, each image once.
    ours = torch.unique(torch.cat([data.x_val, data.x_train]), dim=0, return_counts=True)
    split = torch.unique(full, dim=0, return_counts=True)
    assert all(torch.equal(a, b) for a, b in zip(ours, split, strict=True))
    # OOD validation noise is another draw than the OOD test noise (no image shared).
    shared = (data.x_ood_val[:, None, :] == data.x_ood[None, :, :]).all(-1)
    assert not bool(shared.any())


# --- the hardware rows come from device realisations ------------------------------------------
#: Filamentary RRAM without cycle-to-cycle, device-to-device, read or relaxation noise.
QUIET_RRAM = functools.partial(FilamentaryRRAM, c2c_coeff=0.0, d2d_sigma=0.0, read_noise_rel=0.0,
                               relax_sigma_rel=0.0)  # fmt: skip
#: The schemes whose spread is the memristors' own (READ_NOISE draws Lin et al.'s measured
#: currents and SEPARATE_MU_SIGMA its ε from STT-MRAM bits, neither from this device).
MEMRISTOR_SCHEMES = ("cycle_to_cycle", "device_population", "differential")


def test_without_device_spread_the_hardware_bnn_has_no_epistemic_uncertainty(
    smoke, tmp_path: Path, one_thread, monkeypatch
):
    monkeypatch.setitem(bayes_ood.DEVICES, "rram", QUIET_RRAM)
    config = tiny(schemes=MEMRISTOR_SCHEMES, fidelity_times_s=())
    quiet = run(config, seed=0, out_dir=tmp_path, progress=False).metrics
    noisy = smoke[0].metrics
    # Same training (device-independent), so the software BNN is the smoke run's exactly.
    assert quiet["epistemic_mean_sw"] == noisy["epistemic_mean_sw"] > 1e-3
    for scheme in MEMRISTOR_SCHEMES:
        # Every realised weight set is the same: the mutual information is 0 up to float32
        # rounding of H[p̄] − mean H[p_s] (~1e-7 nats per image); 1e-6 allows 10 ulps. The
        # real device's spread gives 0.005-0.03 nats here, the software BNN's 0.002.
        assert quiet[f"epistemic_mean_hw_{scheme}"] < 1e-6, scheme
        assert quiet[f"epistemic_mean_ood_hw_{scheme}"] < 1e-6, scheme
        assert noisy[f"epistemic_mean_hw_{scheme}"] > 1e-3, scheme


def test_another_device_changes_the_hardware_rows_and_nothing_else(smoke, tmp_path: Path,
                                                                   one_thread):  # fmt: skip
    schemes = ("cycle_to_cycle", "differential")
    pcm = run(tiny(schemes=schemes, fidelity_times_s=(), device="pcm"), seed=0, out_dir=tmp_path,
              progress=False).metrics  # fmt: skip
    rram = smoke[0].metrics
    for key in ("accuracy_sw", "ece_sw", "nll_sw", "ood_auroc_sw", "epistemic_mean_sw",
                "accuracy_det", "ece_det"):  # fmt: skip
        assert pcm[key] == rram[key], key  # software rows: the same networks, same seed
    for scheme in schemes:
        rows = ("accuracy", "ece", "nll", "epistemic_mean", "epistemic_mean_ood")
        changed = [k for k in rows if pcm[f"{k}_hw_{scheme}"] != rram[f"{k}_hw_{scheme}"]]
        assert len(changed) >= 4, (scheme, changed)
        # Same number of programming pulses, 10 pJ (PCM) instead of 1 pJ (RRAM) each.
        ratio = pcm[f"write_energy_pj_hw_{scheme}"] / rram[f"write_energy_pj_hw_{scheme}"]
        assert ratio == pytest.approx(10.0, rel=1e-12), scheme


def test_device_aware_option_makes_the_cycle_to_cycle_posterior_realisable(
    tmp_path: Path, one_thread
):
    # One device per weight fixes σ by μ; plain ELBO training ignores that (few weights
    # feasible), device-aware training for that scheme must make most of them feasible.
    config = tiny(schemes=("cycle_to_cycle",), fidelity_times_s=())
    plain = run(config, seed=0, out_dir=tmp_path / "a", progress=False).metrics
    aware = run(replace(config, device_aware="CYCLE_TO_CYCLE"), seed=0,
                out_dir=tmp_path / "b", progress=False).metrics  # fmt: skip
    key = "fidelity_feasible_fraction_cycle_to_cycle"
    assert plain[key] < 0.2 and aware[key] > 0.8, (plain[key], aware[key])


def test_smoke_run_is_reproducible(tmp_path: Path, one_thread):
    config = tiny(schemes=("differential",), epochs=2, bnn_epochs=2)
    a = run(config, seed=5, out_dir=tmp_path / "a", progress=False).metrics
    b = run(config, seed=5, out_dir=tmp_path / "b", progress=False).metrics
    assert a == b


# --- acceptance criteria ---------------------------------------------------------------------
@pytest.mark.slow
def test_full_mnist_run_meets_the_acceptance_criteria(tmp_path: Path, shared_data):
    data_dir = shared_data("mnist.npz", "fashion_mnist.npz", "omniglot_small.npz")
    config = BayesOodConfig(data_dir=str(data_dir))
    m = run(config, seed=0, out_dir=tmp_path, progress=False).metrics
    for scheme in config.schemes:  # hardware within 1 point of the software BNN, S <= 100
        assert abs(m["accuracy_sw"] - m[f"accuracy_hw_{scheme}"]) <= 0.010, scheme
    assert m["ood_auroc_hw"] >= 0.90  # MNIST vs Fashion-MNIST, the score chosen on validation
    assert m["ood_auroc_omniglot_hw"] >= 0.90  # and vs Omniglot with that same score
    assert m["ece_hw"] <= m["ece_det_hw"]
    assert m["acc_at_coverage_noisy_hw"] >= m["acc_at_coverage_noisy_det_hw"]
