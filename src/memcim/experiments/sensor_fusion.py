"""Experiment ``sensor-fusion``: a spiking and a Bayesian classifier, each on memristor tiles,
fused by their uncertainty.

Two sensors see the same MNIST digit:

- **A**: an event sensor whose pixels flip with probability ``p`` (0 to 0.5; 0.5 leaves no
  digit), rate-coded over ``steps`` steps and classified by an ensemble of ``members``
  spiking networks (:class:`memcim.spiking.SpikingMLP`, trained on clean digits from
  different initialisations) whose synapses are tiles of ``device`` driven by the spikes.
  Its probabilities are the softmax of the output spike counts, over the networks and
  ``draws`` draws of the spike train (and the tiles' read noise) each; its uncertainty is
  their spread (mutual information, nats). The networks' disagreement is what makes it
  epistemic: the spread over spike trains alone barely grows on corrupted inputs.
- **B**: a camera with Gaussian noise σ = ``b_sigma``, classified by a Bayesian MLP trained on
  such views whose weight samples are drawn by the devices (:func:`memcim.bayes.to_hardware`,
  differential scheme); its uncertainty is the epistemic part over ``samples`` samples.

Fusion rules (:mod:`memcim.spiking.fusion`): product of experts, mean of probabilities,
uncertainty-weighted log-linear pooling (each modality's weight a function of its epistemic
uncertainty averaged over the last ``window`` inputs of its stream, fitted on validation data;
``uw_input``: the same over one input), early concatenation (an MLP in software on A's spike
rates next to B's pixels, trained on flips drawn from ``noise_levels``) and the best single
modality at each level (chosen on the test set: an upper bound for picking one).

Every rule is scored at each flip probability of A with B fixed, and with A pure noise
(uniform random pixels, a condition no model or weighting saw): accuracy (with its 95 % CI),
NLL and ECE. ``snn_*``: the spiking network in software, on ideal tiles (``snn_ideal_*``: how
many output spikes and predictions differ from software; float32 rounding of the conductance
mapping can move a membrane that sits on its threshold; ``snn_ideal_current_error_eps``: the
largest difference of the synaptic currents on the same input spikes, in float32 eps of the
largest current) and on ``device`` tiles, on one spike train of the clean test digits.
``auroc_a_<condition>``: how well A's epistemic uncertainty flags its own corruption, one
input at a time (corrupted inputs positive, clean negative); ``auroc_b``: the same for B
against B's clean views.

Validation: the last ``validation`` training images, never trained on; A's flip probability
is drawn from ``noise_levels`` once per window of the stream, as a sensor stays corrupted.

Randomness: every stage draws from its own generator seeded from ``seed`` and its name.
Command line: ``memcim run sensor-fusion --out runs/sf [--seed 0] [--set key=value]``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from memcim._errors import check_count, is_int, is_real, require
from memcim.bayes import (
    BayesConfig,
    HardwareSampling,
    SamplingScheme,
    predict,
    to_bayesian,
    to_hardware,
    train_elbo,
)
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.data import gaussian_corruption, load_mnist, pixel_flip
from memcim.devices import PCM, FilamentaryRRAM, IdealDevice
from memcim.energy import EDGE_CPU, profile
from memcim.energy.cim import combine
from memcim.energy.system import SystemCost, build, pipeline_cost
from memcim.experiments.bayes_ood import build_mlp
from memcim.experiments.registry import Result, register, stage_generator, stage_seed
from memcim.experiments.runner import write_json_atomic
from memcim.experiments.system_chiplets import plot_energy_breakdown
from memcim.learning.hybrid import HybridConfig, HybridTrainer
from memcim.metrics import accuracy, decompose, ece, nll, ood_auroc
from memcim.nn import CIMConfig
from memcim.spiking import (
    SPIKE_DRIVE,
    SpikeEnergy,
    SpikingMLP,
    current_error,
    on_tiles,
    rate,
    spike_energy,
)
from memcim.spiking.fusion import (
    fit_uncertainty_weighting,
    log_linear_pool,
    mean_of_probabilities,
    product_of_experts,
)
from memcim.spiking.system import (
    event_sensor,
    fusion_chiplet,
    learning_chiplet,
    spiking_chiplet,
)
from memcim.spiking.train import predict_spiking, train_spiking
from memcim.training import init_default_, train

EXPERIMENT = "sensor-fusion"
DEVICES = {"rram": FilamentaryRRAM, "pcm": PCM}
#: Fusion rules and single modalities, in the order of tables and figures.
RULES = ("a", "b", "best_single", "mean", "poe", "uw", "uw_input", "early")
#: The condition where A sees uniform random pixels.
PURE_NOISE = "noise"
_CALIBRATION_IMAGES = 1000  # training images whose first read sets the ADC ranges


@dataclass(frozen=True, kw_only=True)
class SensorFusionConfig:
    """Attributes:
    noise_levels: flip probabilities of A's pixels, each in [0, 0.5].
    steps: time steps of A's rate code.
    hidden: hidden width of both networks (784-hidden-10).
    beta: membrane decay per step of the spiking neurons.
    snn_epochs, snn_lr: training of the spiking network (surrogate gradients).
    members: spiking networks of A's ensemble, each trained from its own initialisation.
    draws: spike-train draws per network and A prediction.
    b_sigma: Gaussian noise σ of B's view (pixels in [0, 1], clipped).
    epochs, lr: training of B's deterministic start and of the early-concatenation MLP.
    bnn_epochs, kl_weight, prior_sigma, sigma_init: B's variational training.
    samples: device-drawn weight samples per B prediction.
    device: memristor of every tile, ``"rram"`` or ``"pcm"``.
    adc_bits: ADC bits of every tile (``None``: ideal); dac_bits: B's DAC (A's spikes drive
        the word lines without one).
    window: inputs per window of the stream uncertainty that weights the pooling.
    validation: training images held out to fit the weighting (and to train the learning
        chiplet's readout).
    energy_images: test images whose pass through every chiplet is priced.
    train_subset, test_subset: use only the first k images (``None``: all).
    batch_size: training batch size.
    data_dir: folder or file of MNIST (``None``: the shared data folder).
    """

    noise_levels: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    steps: int = 20
    hidden: int = 128
    beta: float = 0.9
    snn_epochs: int = 2
    snn_lr: float = 2e-3
    members: int = 4
    draws: int = 2
    b_sigma: float = 0.4
    epochs: int = 3
    lr: float = 1e-3
    bnn_epochs: int = 3
    kl_weight: float = 0.05
    prior_sigma: float = 0.1
    sigma_init: float = 0.01
    samples: int = 16
    device: str = "rram"
    adc_bits: int | None = 8
    dac_bits: int | None = 8
    window: int = 32
    validation: int = 5000
    energy_images: int = 256
    train_subset: int | None = None
    test_subset: int | None = None
    batch_size: int = 128
    data_dir: str | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        levels = self.noise_levels
        require(isinstance(levels, tuple) and len(levels) >= 1 and 0.0 in levels
                and all(is_real(p) and 0 <= p <= 0.5 for p in levels), f"{name}.noise_levels",
                levels, "flip probabilities in [0, 0.5], 0 among them")  # fmt: skip
        for f in ("steps", "hidden", "snn_epochs", "members", "draws", "epochs", "bnn_epochs",
                  "samples", "window", "batch_size", "energy_images"):  # fmt: skip
            check_count(getattr(self, f), f"{name}.{f}", 1)
        check_count(self.validation, f"{name}.validation", 2)
        require(self.window <= self.validation // 2, f"{name}.window", self.window,
                f"<= validation / 2 ({self.validation // 2}): two windows to fit on")  # fmt: skip
        for f in ("snn_lr", "lr", "kl_weight", "prior_sigma", "sigma_init"):
            value = getattr(self, f)
            require(is_real(value) and value > 0, f"{name}.{f}", value, "a number > 0")
        require(is_real(self.beta) and 0 <= self.beta <= 1, f"{name}.beta", self.beta, "in [0, 1]")
        require(is_real(self.b_sigma) and self.b_sigma >= 0, f"{name}.b_sigma", self.b_sigma,
                ">= 0")  # fmt: skip
        require(self.device in DEVICES, f"{name}.device", self.device, f"one of {tuple(DEVICES)}")
        for f in ("adc_bits", "dac_bits"):
            value = getattr(self, f)
            require(value is None or (is_int(value) and value >= 2), f"{name}.{f}", value,
                    "None (ideal) or an int >= 2")  # fmt: skip
        for f in ("train_subset", "test_subset"):
            value = getattr(self, f)
            require(value is None or (is_int(value) and value >= 100), f"{name}.{f}", value,
                    "None (all) or an int >= 100")  # fmt: skip
        require(self.data_dir is None or isinstance(self.data_dir, str), f"{name}.data_dir",
                self.data_dir, "None or a path")  # fmt: skip

    def tile(self, dac: ConverterConfig) -> TileConfig:
        return TileConfig(device=DEVICES[self.device](), dac=dac,
                          adc=ConverterConfig(bits=self.adc_bits))  # fmt: skip


@dataclass
class _Data:
    x_train: Tensor  # [N, 784] clean pixels
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor


def load_data(config: SensorFusionConfig) -> _Data:
    d = load_mnist(config.data_dir)
    x, y = d.x_train.reshape(len(d.x_train), -1), d.y_train
    require(config.validation < len(x) // 2, "SensorFusionConfig.validation", config.validation,
            f"< half the training images ({len(x)})")  # fmt: skip
    x_val, y_val = x[-config.validation :], y[-config.validation :]
    keep = slice(0, min(len(x) - config.validation, config.train_subset or len(x)))
    x, y = x[keep], y[keep]
    x_test = d.x_test.reshape(len(d.x_test), -1)[: config.test_subset]
    return _Data(x, y, x_val, y_val, x_test, d.y_test[: config.test_subset])


# --- the two modalities and the early-fusion baseline -----------------------------------------
def _spiking_member(config: SensorFusionConfig, data: _Data, seed: int, k: int,
                    progress: bool) -> tuple[SpikingMLP, dict[str, float]]:  # fmt: skip
    """One spiking network of A's ensemble: trained from its own initialisation, put on ideal
    and on ``device`` tiles and compared with software on one spike train of the clean test
    digits; returned on ``device`` tiles."""
    snn = SpikingMLP((data.x_train.shape[1], config.hidden, 10), beta=config.beta)
    init_default_(snn, stage_generator(seed, "snn_init", str(k)))
    train_spiking(snn, data.x_train, data.y_train, steps=config.steps, epochs=config.snn_epochs,
                  lr=config.snn_lr, batch_size=config.batch_size,
                  generator=stage_generator(seed, "snn_train", str(k)),
                  progress=progress)  # fmt: skip
    snn.eval()
    ideal_tile = TileConfig(device=IdealDevice(), dac=SPIKE_DRIVE,
                            adc=ConverterConfig(bits=None))  # fmt: skip
    ideal = on_tiles(snn, CIMConfig(tile=ideal_tile, clip_sigma=None)).eval()
    tiles_seed = stage_seed(seed, "snn_tiles", str(k)) % 2**62
    hw = on_tiles(snn, CIMConfig(tile=config.tile(SPIKE_DRIVE), seed=tiles_seed)).eval()
    with torch.no_grad():
        gen = stage_generator(seed, "snn_calibration", str(k))
        hw(rate(data.x_train[:_CALIBRATION_IMAGES], config.steps, generator=gen))
        spikes = rate(data.x_test, config.steps, generator=stage_generator(seed, "snn_check"))
        runs = {name: net(spikes) for name, net in (("sw", snn), ("ideal", ideal), ("hw", hw))}
    labels = {k: out_spikes.sum(0).argmax(-1) for k, (out_spikes, _) in runs.items()}
    correct = {k: int((p == data.y_test).sum()) for k, p in labels.items()}
    m = {f"accuracy_{k}": c / len(data.y_test) for k, c in correct.items()}
    sw_spikes, ideal_spikes = runs["sw"][0], runs["ideal"][0]
    m["ideal_spikes_differing"] = float((ideal_spikes != sw_spikes).sum())
    m["ideal_predictions_differing"] = float((labels["ideal"] != labels["sw"]).sum())
    # The currents on the same input spikes: how far from software the ideal tiles compute.
    error, largest = current_error(snn, ideal, spikes)
    m["ideal_current_error_eps"] = error / (largest * torch.finfo(torch.float32).eps)
    # From the counts: a difference of rounded accuracies puts 15 of 1000 at 1.500005 points.
    m["gap_points"] = 100 * abs(correct["sw"] - correct["hw"]) / len(data.y_test)
    return hw, m


def _spiking_ensemble(config: SensorFusionConfig, data: _Data, seed: int,
                      progress: bool) -> tuple[list[SpikingMLP], dict[str, float]]:  # fmt: skip
    """Modality A: ``members`` spiking networks on ``device`` tiles. ``snn_<metric>_<k>`` per
    network; ``snn_accuracy_*`` their mean, ``snn_gap_points`` the largest software-to-tiles
    gap, ``snn_ideal_*_differing`` summed over the networks."""
    nets, per = zip(*(_spiking_member(config, data, seed, k, progress)
                      for k in range(config.members)), strict=True)  # fmt: skip
    m = {f"snn_{key}_{k}": v for k, mk in enumerate(per) for key, v in mk.items()}
    for key in ("accuracy_sw", "accuracy_ideal", "accuracy_hw"):
        m[f"snn_{key}"] = sum(p[key] for p in per) / len(per)
    m["snn_gap_points"] = max(p["gap_points"] for p in per)
    for key in ("ideal_spikes_differing", "ideal_predictions_differing"):
        m[f"snn_{key}"] = sum(p[key] for p in per)
    m["snn_ideal_current_error_eps"] = max(p["ideal_current_error_eps"] for p in per)
    m["snn_ideal_spikes_equal"] = float(m["snn_ideal_spikes_differing"] == 0)
    return list(nets), m


def _predict_a(nets: list[SpikingMLP], x: Tensor, config: SensorFusionConfig,
               generator: torch.Generator) -> Tensor:  # fmt: skip
    """A's probabilities [members · draws, N, C]: every network, ``draws`` spike trains each."""
    return torch.cat([predict_spiking(net, x, steps=config.steps, draws=config.draws,
                                      generator=generator) for net in nets])  # fmt: skip


def _bayesian_network(config: SensorFusionConfig, data: _Data, seed: int,
                      progress: bool) -> nn.Module:  # fmt: skip
    """Modality B: train the Bayesian MLP on B's noisy views; its samples on ``device``."""
    x = gaussian_corruption(data.x_train, config.b_sigma, generator=stage_generator(seed, "b_view"))
    det = build_mlp(x.shape[1], (config.hidden,), 10, stage_generator(seed, "b_init"))
    train(det, x, data.y_train, epochs=config.epochs, lr=config.lr,
          batch_size=config.batch_size, generator=stage_generator(seed, "b_det_train"),
          desc="B (deterministic start)", progress=progress)  # fmt: skip
    bayes = BayesConfig(prior_sigma=config.prior_sigma, sigma_init=config.sigma_init,
                        estimator="local", seed=stage_seed(seed, "b_layers") % 2**62)  # fmt: skip
    bnn = to_bayesian(det, config=bayes)
    train_elbo(bnn, x, data.y_train, epochs=config.bnn_epochs, lr=config.lr,
               batch_size=config.batch_size, generator=stage_generator(seed, "b_train"),
               kl_weight=config.kl_weight, desc="B (ELBO)", progress=progress)  # fmt: skip
    bnn.eval()
    sampling = HardwareSampling(scheme=SamplingScheme.DIFFERENTIAL, device=DEVICES[config.device]())
    hw, _ = to_hardware(bnn, sampling, samples=config.samples,
                        tile_config=config.tile(ConverterConfig(bits=config.dac_bits)),
                        generator=stage_generator(seed, "b_tiles"))  # fmt: skip
    predict(hw, x[:_CALIBRATION_IMAGES], samples=config.samples)  # sets the ADC ranges
    return hw


def _early_inputs(config: SensorFusionConfig, x_a: Tensor, x_b: Tensor,
                  generator: torch.Generator) -> Tensor:  # fmt: skip
    """What early concatenation sees: A's spike rates over the window next to B's pixels."""
    return torch.cat([rate(x_a, config.steps, generator=generator).mean(0), x_b], dim=1)


def _early_fusion(config: SensorFusionConfig, data: _Data, seed: int,
                  progress: bool) -> nn.Module:  # fmt: skip
    """An MLP on both views at once, trained on A's flips drawn from ``noise_levels``."""
    gen = stage_generator(seed, "early_views")
    levels = torch.tensor(config.noise_levels)
    p = levels[torch.randint(len(levels), (len(data.x_train),), generator=gen)]
    x_a = pixel_flip(data.x_train, p, generator=gen)
    x_b = gaussian_corruption(data.x_train, config.b_sigma, generator=gen)
    x = _early_inputs(config, x_a, x_b, gen)
    model = build_mlp(x.shape[1], (config.hidden,), 10, stage_generator(seed, "early_init"))
    train(model, x, data.y_train, epochs=config.epochs, lr=config.lr,
          batch_size=config.batch_size, generator=stage_generator(seed, "early_train"),
          desc="early concatenation", progress=progress)  # fmt: skip
    return model.eval()


# --- fusion -----------------------------------------------------------------------------------
def _view_a(x: Tensor, condition: float | str, generator: torch.Generator) -> Tensor:
    if condition == PURE_NOISE:
        return torch.rand(x.shape, generator=generator, device=x.device)
    return pixel_flip(x, condition, generator=generator)


def _fit_weightings(config: SensorFusionConfig, data: _Data, snn_hw, b_hw, seed: int):
    """Fit the windowed and the per-input weighting on the validation stream, A's flip
    probability drawn per window; also returns both modalities' probabilities there
    (``validation_probs`` [N, 20]), what the learning chiplet learns from."""
    gen = stage_generator(seed, "validation")
    levels = torch.tensor(config.noise_levels)
    windows = math.ceil(len(data.x_val) / config.window)
    p = levels[torch.randint(len(levels), (windows,), generator=gen)]
    p = p.repeat_interleave(config.window)[: len(data.x_val)]
    x_a = pixel_flip(data.x_val, p, generator=gen)
    a = decompose(_predict_a(snn_hw, x_a, config, gen))
    x_b = gaussian_corruption(data.x_val, config.b_sigma, generator=gen)
    b = predict(b_hw, x_b, samples=config.samples)
    probs, u = [a.mean, b.mean], [a.epistemic, b.epistemic]
    return {"uw": fit_uncertainty_weighting(probs, u, data.y_val, window=config.window),
            "uw_input": fit_uncertainty_weighting(probs, u, data.y_val, window=1),
            "validation_probs": torch.cat(probs, dim=1)}  # fmt: skip


def _condition_label(condition: float | str) -> str:
    return condition if isinstance(condition, str) else f"flip{condition:g}"


def _score(probs: dict[str, Tensor], y: Tensor, label: str) -> dict[str, float]:
    m = {}
    for rule, p in probs.items():
        acc = accuracy(p, y)
        m[f"accuracy_{rule}_{label}"] = acc
        m[f"accuracy_ci95_{rule}_{label}"] = 1.96 * math.sqrt(acc * (1 - acc) / len(y))
        m[f"nll_{rule}_{label}"] = nll(p, y)
        m[f"ece_{rule}_{label}"] = ece(p, y)
    return m


def _evaluate(config: SensorFusionConfig, data: _Data, models: dict, seed: int,
              progress: bool) -> dict[str, float]:  # fmt: skip
    """Every rule at every condition of A, B fixed; AUROC of each modality's uncertainty."""
    y = data.y_test
    gen = stage_generator(seed, "test_b")
    x_b = gaussian_corruption(data.x_test, config.b_sigma, generator=gen)
    b = predict(models["b"], x_b, samples=config.samples)
    b_clean = predict(models["b"], data.x_test, samples=config.samples)
    m = {"auroc_b": ood_auroc(b_clean.epistemic, b.epistemic)}
    a_clean = None
    for condition in (*config.noise_levels, PURE_NOISE):
        label = _condition_label(condition)
        gen = stage_generator(seed, "test_a", label)
        x_a = _view_a(data.x_test, condition, gen)
        a = decompose(_predict_a(models["a"], x_a, config, gen))
        probs, u = [a.mean, b.mean], [a.epistemic, b.epistemic]
        weights = models["uw"].weights(u)
        with torch.no_grad():
            early = torch.softmax(models["early"](_early_inputs(config, x_a, x_b, gen)), -1)
        fused = {"a": a.mean, "b": b.mean, "mean": mean_of_probabilities(probs),
                 "poe": product_of_experts(probs), "uw": log_linear_pool(probs, list(weights)),
                 "uw_input": models["uw_input"].pool(probs, u), "early": early}  # fmt: skip
        best = max(("a", "b"), key=lambda k: accuracy(fused[k], y))
        fused["best_single"] = fused[best]
        m.update(_score(fused, y, label))
        m[f"best_single_is_a_{label}"] = float(best == "a")
        m[f"weight_a_{label}"], m[f"weight_b_{label}"] = (float(w.mean()) for w in weights)
        if condition == 0.0:
            a_clean = a.epistemic
        else:
            m[f"auroc_a_{label}"] = ood_auroc(a_clean, a.epistemic)
        if progress:
            print(f"[{EXPERIMENT}] A {label}: A {m[f'accuracy_a_{label}']:.2%}, B "
                  f"{m[f'accuracy_b_{label}']:.2%}, uncertainty-weighted "
                  f"{m[f'accuracy_uw_{label}']:.2%}, product {m[f'accuracy_poe_{label}']:.2%}",
                  flush=True)  # fmt: skip
    return m


# --- the pipeline as chiplets -----------------------------------------------------------------
#: How the chiplets are joined, in the order of metrics and figures.
INTEGRATIONS = ("2d", "2.5d", "3d")


def _learning_writes(config: SensorFusionConfig, models: dict, data: _Data,
                     seed: int) -> tuple[float, int, int]:  # fmt: skip
    """The learning chiplet's work, counted: a readout of both modalities' probabilities
    (20 → 10) trained with hybrid FeCAP/RRAM synapses on the labelled validation stream.
    Returns (writes in pJ, samples, weights)."""
    x = models["validation_probs"]
    trainer = HybridTrainer(HybridConfig(layers=(x.shape[1], 10), epochs=1,
                                         rram=DEVICES["rram"]()))  # fmt: skip
    stats = trainer.fit(x, data.y_val, generator=stage_generator(seed, "learning"))
    return stats.energy_total_pj, len(x), (x.shape[1] + 1) * 10


def _system(config: SensorFusionConfig, data: _Data, models: dict,
            seed: int) -> tuple[dict[str, float], dict[str, SystemCost]]:  # fmt: skip
    """Every chiplet priced from its counters on ``energy_images`` clean test digits, and the
    pipeline built 2D, 2.5D and 3D."""
    gen = stage_generator(seed, "energy")
    x = data.x_test[: config.energy_images]
    spikes = rate(x, config.steps, generator=gen)
    per_network = [spike_energy(net, spikes) for net in models["a"]]
    spikes_in = sum(e.input_spikes for e in per_network)
    cost = combine([e.cost for e in per_network], parallel=False)
    spiking = SpikeEnergy(cost, spikes_in, config.steps, len(x))
    x_b = gaussian_corruption(x, config.b_sigma, generator=gen)
    report = profile(models["b"], x_b, samples=config.samples)
    fusion, fusion_digital = fusion_chiplet(report, EDGE_CPU, classes=10,
                                            samples=(config.members * config.draws,
                                                     config.samples))  # fmt: skip
    learning, _ = learning_chiplet(*_learning_writes(config, models, data, seed), EDGE_CPU)
    stages = (event_sensor(spikes), spiking_chiplet(spiking, draws=config.draws, classes=10),
              fusion, learning)  # fmt: skip
    m = {f"chiplet_{c.name}_pj": c.e_pj for c in stages}
    m.update({f"chiplet_{c.name}_latency_s": c.latency_s for c in stages})
    m["chiplet_fusion_tiles_pj"] = report.energy_pj
    m["chiplet_fusion_digital_pj"] = fusion_digital.total_pj
    m["spiking_array_per_spike_pj"] = spiking.array_per_spike_pj
    per_inference = spiking.cost.scaled(config.draws / spiking.samples).energy_pj
    m.update({f"chiplet_spiking_{k}_pj": v for k, v in per_inference.items() if k != "write"})
    costs = {integ: pipeline_cost(build(stages, integ)) for integ in INTEGRATIONS}
    for integ, cost in costs.items():
        key = integ.replace(".", "_")
        m[f"system_energy_{key}_pj"] = cost.energy_pj
        m[f"system_link_share_{key}"] = cost.link_share
        m[f"system_latency_{key}_s"] = cost.latency_s
        m[f"system_throughput_{key}_per_s"] = cost.throughput_per_s
    return m, costs


def _acceptance(m: dict[str, float], config: SensorFusionConfig) -> None:
    """The issue's targets, measured (1.0 = met)."""
    labels = [_condition_label(c) for c in (*config.noise_levels, PURE_NOISE)]
    m["accept_snn_ideal_exact"] = m["snn_ideal_spikes_equal"]
    m["accept_snn_hw"] = float(m["snn_gap_points"] <= 1.5)
    margins = [m[f"accuracy_uw_{c}"] + m[f"accuracy_ci95_uw_{c}"] - m[f"accuracy_best_single_{c}"]
               for c in labels]  # fmt: skip
    m["uw_vs_best_margin_min"] = min(margins)
    m["accept_uw_vs_best"] = float(min(margins) >= 0)
    m["accept_uw_nll_vs_poe_noise"] = float(m[f"nll_uw_{PURE_NOISE}"] < m[f"nll_poe_{PURE_NOISE}"])
    m["accept_flagged"] = float(m[f"auroc_a_{PURE_NOISE}"] >= 0.9)


def plot(m: dict[str, float], config: SensorFusionConfig, path: Path) -> None:
    """Accuracy, NLL and ECE of every rule against A's flip probability (pure noise at the
    right), and the AUROC with which A's uncertainty flags its corruption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = [*config.noise_levels, PURE_NOISE]
    xs = [*config.noise_levels, 0.6]
    labels = [_condition_label(c) for c in conditions]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4), layout="constrained")
    for ax, metric in zip(axes[:3], ("accuracy", "nll", "ece"), strict=True):
        for rule in RULES:
            if rule == "best_single":
                continue
            ax.plot(xs, [m[f"{metric}_{rule}_{c}"] for c in labels], "o-", ms=3, label=rule)
        ax.set_xticks(xs, [f"{p:g}" for p in config.noise_levels] + ["noise"])
        ax.set_xlabel("A: flip probability")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    flagged = labels[1:]
    axes[3].bar(range(len(flagged)), [m[f"auroc_a_{c}"] for c in flagged])
    axes[3].set_xticks(range(len(flagged)), [c.removeprefix("flip") for c in flagged])
    axes[3].axhline(0.9, color="grey", ls=":", lw=1)
    axes[3].set_ylim(0.5, 1)
    axes[3].set_title("AUROC: A's uncertainty flags A's corruption")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(m: dict[str, float], config: SensorFusionConfig) -> dict:
    labels = [_condition_label(c) for c in (*config.noise_levels, PURE_NOISE)]
    rows = [[rule] + [f"{100 * m[f'accuracy_{rule}_{c}']:.2f} / {m[f'nll_{rule}_{c}']:.3f}"
                      for c in labels] for rule in RULES]  # fmt: skip
    return {"header": ["rule (accuracy % / NLL)", *labels], "rows": rows}


_DESCRIPTION = "spiking (A) and Bayesian (B) classifiers on tiles, fused by their uncertainty"


@register(EXPERIMENT, SensorFusionConfig, _DESCRIPTION)
def run(config: SensorFusionConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = load_data(config)
    snn_hw, m = _spiking_ensemble(config, data, seed, progress)
    if progress:
        print(f"[{EXPERIMENT}] spiking network: software {m['snn_accuracy_sw']:.2%}, ideal tiles "
              f"{m['snn_accuracy_ideal']:.2%}, {config.device} {m['snn_accuracy_hw']:.2%} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    write_json_atomic(out / "partial_results.json", {"metrics": m})
    models = {"a": snn_hw, "b": _bayesian_network(config, data, seed, progress),
              "early": _early_fusion(config, data, seed, progress)}  # fmt: skip
    models.update(_fit_weightings(config, data, snn_hw, models["b"], seed))
    m.update(_evaluate(config, data, models, seed, progress))
    _acceptance(m, config)
    system, costs = _system(config, data, models, seed)
    m.update(system)
    m["wall_s"] = time.perf_counter() - start
    figures = ["sensor-fusion.png", "sensor-fusion-system.png"]
    plot(m, config, out / figures[0])
    plot_energy_breakdown(
        costs, out / figures[1], title="event sensor → spiking → fusion → learning chiplets"
    )
    extra = {"summary_table": _table(m, config),
             "system": {k: c.as_dict() for k, c in costs.items()}}  # fmt: skip
    return Result(metrics=m, artifacts=figures, extra=extra)
