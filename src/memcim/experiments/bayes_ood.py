"""Experiment ``bayes-ood``: a Bayesian MLP whose weight samples are drawn by memristors.

On MNIST (or scikit-learn's 8×8 digits for a quick version):

1. a deterministic MLP (784-256-128-10 for MNIST) is trained with the shared loop
   (:func:`memcim.training.train`), initialised from a ``torch.Generator``;
2. a Bayesian copy (:func:`memcim.bayes.to_bayesian`, μ from the trained deterministic network
   or a fresh one) is trained on the negative ELBO (:func:`memcim.bayes.train_elbo`, local
   reparameterisation);
3. the software BNN is evaluated with S Monte-Carlo samples (``*_sw`` metrics);
4. for every :class:`~memcim.bayes.SamplingScheme` the BNN is put on crossbar tiles with
   :func:`memcim.bayes.to_hardware` (S device-realised weight sets held as tile state, every
   product through the tiles' DAC, array, read noise and ADC; ``dac_bits``/``adc_bits``) and
   evaluated (``*_hw_<scheme>``), with the fidelity of its first layer's samples to N(μ, σ²);
5. the deterministic network is evaluated in software (``*_det``) and on tiles of the same
   device and converters with :func:`memcim.nn.convert` (eval mode: programmed once)
   (``*_det_hw``); every network on tiles first reads 1 000 training images (at most
   ``eval_batch_size`` for the BNN), whose currents set its ADC ranges;
6. both on tiles again at each of ``converter_bits`` (``*_hw_bits<b>``, ``*_det_hw_bits<b>``);
7. the headline scheme's BNN is programmed once on each of ``drift_devices`` and read at each
   of ``drift_times_s`` (:func:`memcim.bayes.read_at`): ``drift_accuracy_<device>_at_<time>``,
   ``drift_ece_...``, ``drift_ood_auroc_...`` (the OOD score chosen at deployment).

Out of distribution: Fashion-MNIST test images for MNIST (uniform-noise images for ``digits``),
OOD the positive class; for MNIST also Omniglot evaluation images, a far OOD set
(``ood_auroc_omniglot_<model>``, scored with the score chosen on the near validation data).
Each model's OOD score is chosen on validation data, never on the test set:
``validation_fraction`` of the training images are held out (not trained on) as
in-distribution validation samples, and as many OOD validation samples are taken apart from the
test ones (Fashion-MNIST *training* images; for ``digits`` other uniform-noise images). The
BNN's candidates are its epistemic (mutual information) and total predictive entropy, the
deterministic network's its max-softmax score (1 − max p) and softmax entropy; the one with the
higher validation AUROC (ties: the first named) scores the test set: ``ood_auroc_<model>`` is
its test AUROC, ``ood_auroc_val_<score>_<model>`` the validation AUROCs, and
``ood_auroc_<score>_<model>`` every candidate's test AUROC (reported, not chosen from); the
names chosen are in ``results.json``'s ``ood_scores`` and the summary table.

Noisy inputs: the test images with Gaussian noise σ = ``noise_sigma`` (clipped to [0, 1]);
``acc_at_coverage_noisy_*`` is the accuracy on the ``coverage`` fraction of them with the lowest
uncertainty (total entropy for the BNN, softmax entropy for the deterministic network; fixed,
not chosen). ``epistemic_mean_<model>`` / ``epistemic_mean_ood_<model>`` are the BNN's mean
epistemic uncertainty (nats) on the test and OOD images: zero when the device draws no spread.
``clipped_targets_hw_<scheme>`` counts the device targets clamped into the window
(:attr:`memcim.bayes.Realisation.clipped`). Headline metrics (``accuracy_hw``, ``ece_hw``,
``nll_hw``, ``ood_auroc_hw``, ...) are those of ``DIFFERENTIAL`` (or the first listed scheme
without it).

The acceptance criteria are measured, never enforced: ``accept_accuracy`` (every scheme's
hardware accuracy within 1 point of the software BNN), ``accept_ood`` (headline AUROC >= 0.90
against the OOD test set and, for MNIST, against Omniglot),
``accept_ece`` (``ece_hw <= ece_det_hw``) and ``accept_noisy``
(``acc_at_coverage_noisy_hw >= acc_at_coverage_noisy_det_hw``) are 1.0 or 0.0.

Randomness: every stage draws from its own ``torch.Generator`` seeded from ``seed`` and the
stage's name. Same seed, same numbers on CPU.

Command line: ``memcim run bayes-ood --out runs/bo [--set dataset=digits ...] [--seed 0]``.
"""

from __future__ import annotations

import copy
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from memcim._errors import is_int, is_real, require
from memcim.bayes import (
    BayesConfig,
    BayesianLinear,
    DeviceAware,
    HardwareSampling,
    SamplingScheme,
    fidelity,
    predict,
    read_at,
    to_bayesian,
    to_hardware,
    train_elbo,
)
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.data import gaussian_corruption, load_fashion_mnist, load_mnist, load_omniglot
from memcim.data.sklearn_sets import load_digits
from memcim.devices import PCM, FilamentaryRRAM
from memcim.experiments.registry import Result, register, stage_generator, stage_seed, time_label
from memcim.metrics import (
    accuracy,
    accuracy_at_coverage,
    accuracy_rejection_curve,
    decompose,
    ece,
    nll,
    ood_auroc,
    reliability_curve,
)
from memcim.metrics.ood import select_ood_score
from memcim.nn import CIMConfig, convert, drift_to, program
from memcim.nn import seed as seed_layers
from memcim.training import init_default_, train

EXPERIMENT = "bayes-ood"
SCHEMES: tuple[str, ...] = tuple(s.value for s in SamplingScheme)
DEVICES = {"rram": FilamentaryRRAM, "pcm": PCM}
HEADLINE_SCHEME = SamplingScheme.DIFFERENTIAL.value
_MAX_SAMPLES = 100
#: Training images read first by every network on tiles: their currents set the ADC ranges.
_CALIBRATION_IMAGES = 1000
#: OOD score candidates, chosen between on validation data; on a tie the first is taken.
BNN_OOD_SCORES = ("epistemic", "total")
DET_OOD_SCORES = ("max_softmax", "entropy")


def _scheme_name(name: object) -> str:
    """``SamplingScheme`` value from a value or a member name (any case); '' if unknown."""
    if isinstance(name, SamplingScheme):
        return name.value
    if not isinstance(name, str):
        return ""
    for s in SamplingScheme:
        if name.lower() in (s.value, s.name.lower()):
            return s.value
    return ""


@dataclass(frozen=True, kw_only=True)
class BayesOodConfig:
    """What the ``bayes-ood`` experiment trains and evaluates.

    Attributes:
        dataset: ``"mnist"`` (in distribution; Fashion-MNIST out) or ``"digits"`` (scikit-learn
            8×8 digits; uniform-noise images out), the quick version.
        hidden: hidden-layer widths of the MLP (ReLU); MNIST: 784-256-128-10.
        epochs: training epochs of the deterministic network (Adam, cosine decay).
        lr: its learning rate.
        batch_size: training mini-batch size (both networks).
        bnn_epochs: ELBO training epochs of the Bayesian network.
        bnn_lr: its learning rate.
        bnn_init: ``"deterministic"`` (μ from the trained deterministic network) or ``"fresh"``
            (a newly initialised MLP).
        device_aware: ``""`` (plain ELBO) or a sampling scheme: train the BNN device-aware for
            that scheme on ``device`` (:class:`~memcim.bayes.DeviceAware` in ``"project"``
            mode: every σ clamped into what the scheme realises at its μ after each step), so
            that the posterior is programmable there; every scheme is still evaluated.
            ``fidelity_feasible_fraction_<scheme>`` shows the effect.
        prior_sigma: std of the N(0, prior_sigma²) prior of every weight and bias.
        sigma_init: initial posterior σ.
        kl_weight: multiplier of the KL term of the ELBO (1 = the ELBO; < 1 a tempered,
            "cold" posterior, Wenzel et al. 2020). Selected with ``bnn_epochs`` on a validation
            split, never on the test set (``scripts/select_kl_weight.py --bnn-epochs 5 10 20``:
            train on 50 000 MNIST training images, score on the other 10 000 and on
            Fashion-MNIST *training* images): the pair with the highest validation epistemic
            OOD AUROC among those whose validation ECE is at most the deterministic network's.
            Of 5, 10, 20 epochs × 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02 that was 20 epochs, 0.02
            (validation ECE 0.0061 vs 0.0073 deterministic, AUROC 0.959; 5 epochs reached at
            most 0.899); the full ELBO (1) gave ECE 0.029 to 0.046, an under-confident BNN.
        samples: S, Monte-Carlo samples (software) and device-realised weight sets per layer
            (hardware), 1 <= S <= 100.
        schemes: sampling schemes evaluated on hardware (``SamplingScheme`` values or names).
        device: ``"rram"`` (:class:`~memcim.devices.FilamentaryRRAM`) or ``"pcm"``
            (:class:`~memcim.devices.PCM`), for the BNN samples and the deterministic network.
        t_s: read time after programming (s), also the time the programming is designed for.
        fidelity_times_s: later read times (s) at which the first layer's samples are drawn
            again, programmed for ``t_s``, to measure how drift degrades fidelity
            (``fidelity_wasserstein_<scheme>_at_<time>``, ``fidelity_vs_time.png``); empty: skip.
        dac_bits, adc_bits: resolution of every tile's DAC and ADC (calibrated ranges), for the
            BNN's tiles and the deterministic network's alike; ``None``: ideal.
        non_gaussian_read: how the tiles draw read noise that is not Gaussian (``READ_NOISE``'s
            Laplace reads): ``"moment_matched"`` (default here: each column's noise a Gaussian
            of its exact variance, see :attr:`memcim.crossbar.TileConfig.non_gaussian_read`)
            or ``"per_cell"`` (exact; every cell read anew per vector and sample, which costs
            one cell-sized Laplace draw per vector and makes MNIST runs impractical).
        converter_bits: further DAC/ADC resolutions at which the headline scheme's BNN and the
            deterministic network are evaluated (``*_bits<b>`` metrics, ``converters.png``).
        drift_devices: devices on which the headline scheme's BNN is programmed once (for
            ``t_s``) and read at every ``drift_times_s``: accuracy, ECE and OOD AUROC
            (``drift_*`` metrics, ``drift.png``); empty: skip.
        drift_times_s: those read times (s).
        noise_sigma: σ of the Gaussian input noise (pixel units, images in [0, 1]).
        coverage: fraction of the noisy test set kept for ``acc_at_coverage_noisy_*``.
        eval_batch_size: test images per forward (× S rows for the BNN).
        train_subset: train on this many images drawn at random (``None``: all).
        test_subset: evaluate on the first this many test (and OOD) images (``None``: all).
        validation_fraction: share of the training images held out (drawn at random, before
            ``train_subset``) as in-distribution validation data, with as many OOD validation
            samples apart from the test ones; each model's OOD score is chosen on them.
        data_dir: folder of ``mnist.npz`` / ``fashion_mnist.npz``; ``None``: the default.
    """

    dataset: Literal["mnist", "digits"] = "mnist"
    hidden: tuple[int, ...] = (256, 128)
    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 128
    bnn_epochs: int = 20
    bnn_lr: float = 1e-3
    bnn_init: Literal["deterministic", "fresh"] = "deterministic"
    device_aware: str = ""
    prior_sigma: float = 0.1
    sigma_init: float = 0.01
    kl_weight: float = 0.02
    samples: int = 64
    schemes: tuple[str, ...] = SCHEMES
    device: Literal["rram", "pcm"] = "rram"
    t_s: float = 0.0
    fidelity_times_s: tuple[float, ...] = (3600.0, 86_400.0, 3.15e7)
    dac_bits: int | None = 8
    adc_bits: int | None = 8
    non_gaussian_read: Literal["per_cell", "moment_matched"] = "moment_matched"
    converter_bits: tuple[int, ...] = (4, 6)
    drift_devices: tuple[str, ...] = ("rram", "pcm")
    drift_times_s: tuple[float, ...] = (1.0, 3600.0, 86_400.0, 2_592_000.0, 3.15e7)
    noise_sigma: float = 0.5
    coverage: float = 0.5
    eval_batch_size: int = 1000
    train_subset: int | None = None
    test_subset: int | None = None
    validation_fraction: float = 0.1
    data_dir: str | None = None

    def __post_init__(self) -> None:
        name = "BayesOodConfig"
        for field, allowed in (
            ("dataset", ("mnist", "digits")),
            ("bnn_init", ("deterministic", "fresh")),
            ("device", tuple(DEVICES)),
        ):
            value = getattr(self, field)
            require(value in allowed, f"{name}.{field}", value, f"must be one of {allowed}")
        hidden = tuple(self.hidden) if isinstance(self.hidden, tuple | list) else self.hidden
        require(
            isinstance(hidden, tuple) and len(hidden) > 0 and all(is_int(h) and h >= 1
                                                                  for h in hidden),
            f"{name}.hidden",
            self.hidden,
            "must be a non-empty tuple of widths >= 1",
        )  # fmt: skip
        object.__setattr__(self, "hidden", hidden)
        raw = (self.schemes,) if isinstance(self.schemes, str) else tuple(self.schemes)
        schemes = tuple(_scheme_name(s) for s in raw)
        require(
            len(schemes) > 0 and all(schemes) and len(set(schemes)) == len(schemes),
            f"{name}.schemes",
            self.schemes,
            f"must be a non-empty tuple of distinct sampling schemes from {SCHEMES}",
        )
        object.__setattr__(self, "schemes", schemes)
        aware = _scheme_name(self.device_aware) if self.device_aware != "" else ""
        require(self.device_aware == "" or aware, f"{name}.device_aware", self.device_aware,
                f"must be '' (off) or a sampling scheme from {SCHEMES}")  # fmt: skip
        object.__setattr__(self, "device_aware", aware)
        times = self.fidelity_times_s
        times = tuple(times) if isinstance(times, tuple | list) else (times,)
        require(all(is_real(t) and t >= 0 for t in times), f"{name}.fidelity_times_s",
                self.fidelity_times_s, "must be a tuple of times >= 0 (s)")  # fmt: skip
        object.__setattr__(self, "fidelity_times_s", tuple(float(t) for t in times))
        self._check_hardware_fields()
        for field in ("epochs", "bnn_epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, field)
            require(is_int(value) and value >= 1, f"{name}.{field}", value, "must be an int >= 1")
        require(
            is_int(self.samples) and 1 <= self.samples <= _MAX_SAMPLES,
            f"{name}.samples",
            self.samples,
            f"must be an int in [1, {_MAX_SAMPLES}]",
        )
        for field in ("lr", "bnn_lr", "prior_sigma", "sigma_init"):
            value = getattr(self, field)
            require(
                is_real(value) and value > 0, f"{name}.{field}", value, "must be finite and > 0"
            )
        for field in ("kl_weight", "t_s", "noise_sigma"):
            value = getattr(self, field)
            require(
                is_real(value) and value >= 0, f"{name}.{field}", value, "must be finite and >= 0"
            )
        require(
            is_real(self.validation_fraction) and 0 < self.validation_fraction < 1,
            f"{name}.validation_fraction",
            self.validation_fraction,
            "must be in (0, 1)",
        )
        require(
            is_real(self.coverage) and 0 < self.coverage <= 1,
            f"{name}.coverage",
            self.coverage,
            "must be in (0, 1]",
        )
        for field in ("train_subset", "test_subset"):
            value = getattr(self, field)
            require(
                value is None or (is_int(value) and value >= 1),
                f"{name}.{field}",
                value,
                "must be None (the whole split) or an int >= 1",
            )

    def _check_hardware_fields(self) -> None:
        name = "BayesOodConfig"
        for field in ("dac_bits", "adc_bits"):
            value = getattr(self, field)
            require(value is None or (is_int(value) and value >= 2), f"{name}.{field}", value,
                    "must be None (ideal) or an int >= 2")  # fmt: skip
        require(self.non_gaussian_read in ("per_cell", "moment_matched"),
                f"{name}.non_gaussian_read", self.non_gaussian_read,
                "must be 'per_cell' or 'moment_matched'")  # fmt: skip
        for field, check, allowed in (
            ("converter_bits", lambda b: is_int(b) and b >= 2, "ints >= 2"),
            ("drift_devices", lambda d: d in DEVICES, f"names from {tuple(DEVICES)}"),
            ("drift_times_s", lambda t: is_real(t) and t >= 0, "times >= 0 (s)"),
        ):
            raw = getattr(self, field)
            values = tuple(raw) if isinstance(raw, tuple | list) else (raw,)
            require(all(check(v) for v in values), f"{name}.{field}", raw,
                    f"must be a tuple of {allowed}")  # fmt: skip
            object.__setattr__(self, field, values)
        object.__setattr__(self, "drift_times_s", tuple(float(t) for t in self.drift_times_s))

    def sampling(self, scheme: str, device: str | None = None) -> HardwareSampling:
        """The hardware sampling of ``scheme`` on ``device`` (default this config's) at the
        read time ``t_s``. ``READ_NOISE`` samples on Lin et al.'s devices
        (:class:`~memcim.devices.LaplaceRRAM`) whatever the device."""
        scheme = SamplingScheme(scheme)
        cell = None if scheme is SamplingScheme.READ_NOISE else DEVICES[device or self.device]()
        return HardwareSampling(scheme=scheme, device=cell, t_s=self.t_s)

    def tile(self, bits: int | None = -1, device: str | None = None) -> TileConfig:
        """Tiles of ``device`` (default this config's) with the configured converters, or
        ``bits``-bit DAC and ADC (``None``: ideal)."""
        dac, adc = (self.dac_bits, self.adc_bits) if bits == -1 else (bits, bits)
        return TileConfig(device=DEVICES[device or self.device](), dac=ConverterConfig(bits=dac),
                          adc=ConverterConfig(bits=adc),
                          non_gaussian_read=self.non_gaussian_read)  # fmt: skip

    @classmethod
    def quick(cls, **overrides) -> BayesOodConfig:
        """A run of seconds: scikit-learn digits, a small MLP, S = 16, without the converter
        and drift stages.

        ``kl_weight`` 0.005 was selected as for MNIST (see the class docstring) with
        ``scripts/select_kl_weight.py --dataset digits``: 5 splits of the digits training set
        (900 train / 357 validation, uniform-noise OOD); validation ECE 0.0268 vs 0.0275
        deterministic, AUROC 0.969 (0.01 was the better detector but less calibrated).
        """
        fields = {
            "dataset": "digits",
            "hidden": (64,),
            "epochs": 30,
            "bnn_epochs": 30,
            "lr": 1e-2,
            "bnn_lr": 1e-2,
            "batch_size": 64,
            "kl_weight": 0.005,
            "samples": 16,
            "converter_bits": (),  # the MNIST run measures these two
            "drift_devices": (),
        }
        return cls(**{**fields, **overrides})


# --- data and models --------------------------------------------------------------------------
@dataclass
class _Data:
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor  # in-distribution validation images, held out of training
    x_test: Tensor
    y_test: Tensor
    x_ood: Tensor  # OOD test samples
    x_ood_val: Tensor  # OOD validation samples, none of them an OOD test sample
    ood_name: str
    x_far: Tensor | None = None  # a second OOD test set (MNIST: Omniglot evaluation images)
    far_name: str = ""


def load_data(config: BayesOodConfig, seed: int) -> _Data:
    """Training, validation, test and OOD sets (flattened images in [0, 1]).

    The validation images are ``validation_fraction`` of the training set, drawn at random and
    removed from it before ``train_subset`` picks the training images; the OOD validation
    samples (as many) come from a different pool than the OOD test samples (Fashion-MNIST's
    training split; for ``digits`` uniform noise from another generator). For MNIST a second,
    far OOD test set is drawn at random from Omniglot's evaluation images
    (``omniglot_small.npz``), as many as test images; scores are never chosen on it.
    """
    if config.dataset == "mnist":
        x_train, y_train, x_test, y_test = load_mnist(config.data_dir)
        fashion = load_fashion_mnist(config.data_dir)
        x_ood, ood_pool, ood_name = fashion.x_test, fashion.x_train, "Fashion-MNIST"
    else:
        digits = load_digits(seed=seed % 2**32)
        x_train, y_train = digits.x_train.float(), digits.y_train
        x_test, y_test = digits.x_test.float(), digits.y_test
        x_ood = torch.rand(x_test.shape, generator=stage_generator(seed, "ood_noise"))
        ood_pool = torch.rand(x_train.shape, generator=stage_generator(seed, "ood_val_noise"))
        ood_name = "uniform noise"
    n_val = max(1, round(config.validation_fraction * len(y_train)))
    order = torch.randperm(len(y_train), generator=stage_generator(seed, "validation"))
    x_val, keep = x_train[order[:n_val]], order[n_val:]
    x_train, y_train = x_train[keep], y_train[keep]
    pick = torch.randperm(len(ood_pool), generator=stage_generator(seed, "ood_validation"))
    x_ood_val = ood_pool[pick[:n_val]]
    if config.train_subset is not None and config.train_subset < len(y_train):
        pick = torch.randperm(len(y_train), generator=stage_generator(seed, "train_subset"))
        pick = pick[: config.train_subset]
        x_train, y_train = x_train[pick], y_train[pick]
    x_far = None
    if config.dataset == "mnist":  # as many Omniglot evaluation images as test images
        far = load_omniglot(config.data_dir).evaluation.x
        pick = torch.randperm(len(far), generator=stage_generator(seed, "omniglot"))
        x_far = far[pick[: len(x_test)]]
    if config.test_subset is not None:
        x_test, y_test = x_test[: config.test_subset], y_test[: config.test_subset]
        x_ood = x_ood[: config.test_subset]
        x_far = None if x_far is None else x_far[: config.test_subset]
    flat = [t.reshape(t.shape[0], -1).float() for t in (x_train, x_val, x_test, x_ood, x_ood_val)]
    far_flat = None if x_far is None else x_far.reshape(x_far.shape[0], -1).float()
    return _Data(flat[0], y_train.long(), flat[1], flat[2], y_test.long(), flat[3], flat[4],
                 ood_name, far_flat, "" if x_far is None else "Omniglot")  # fmt: skip


def build_mlp(
    n_in: int, hidden: tuple[int, ...], n_out: int, generator: torch.Generator
) -> nn.Sequential:
    """An MLP n_in-hidden...-n_out (ReLU), weights and biases U(±1/√fan_in) from ``generator``."""
    widths = (n_in, *hidden, n_out)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    return init_default_(model, generator)


def _softmax(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    """Class probabilities [N, C] of a deterministic model, in eval mode."""
    model.eval()
    with torch.no_grad():
        return torch.cat(
            [torch.softmax(model(x[i : i + batch_size]), -1) for i in range(0, len(x), batch_size)]
        )


def _entropy(probs: Tensor) -> Tensor:
    return decompose(probs.unsqueeze(0)).total


@dataclass
class _Eval:
    """Predictions of one model on the test sets, and its OOD scores on the validation sets."""

    clean: Tensor  # [N, C] predictive mean
    noisy: Tensor
    ood: Tensor
    u_clean: Tensor  # total entropy [N]: the rejection score of the coverage metrics
    u_noisy: Tensor
    u_ood: Tensor
    scores: dict[str, tuple[Tensor, Tensor]]  # OOD score name -> (test in, test OOD)
    val_scores: dict[str, tuple[Tensor, Tensor]]  # -> (validation in, validation OOD)
    far: dict[str, Tensor] | None = None  # OOD score name -> scores on the far OOD set
    far_name: str = ""


def _eval_bnn(model: nn.Module, data: _Data, x_noisy: Tensor, config: BayesOodConfig,
              generator: torch.Generator | None) -> _Eval:  # fmt: skip
    kw = {"samples": config.samples, "generator": generator, "batch_size": config.eval_batch_size}
    inputs = (data.x_test, x_noisy, data.x_ood, data.x_val, data.x_ood_val)
    clean, noisy, ood, val, val_ood = (predict(model, x, **kw) for x in inputs)

    def pair(a, b) -> dict[str, tuple[Tensor, Tensor]]:
        return {name: (getattr(a, name), getattr(b, name)) for name in BNN_OOD_SCORES}

    far = None
    if data.x_far is not None:
        p_far = predict(model, data.x_far, **kw)
        far = {name: getattr(p_far, name) for name in BNN_OOD_SCORES}
    return _Eval(clean.mean, noisy.mean, ood.mean, clean.total, noisy.total, ood.total,
                 pair(clean, ood), pair(val, val_ood), far, data.far_name.lower())  # fmt: skip


def _det_scores(probs: Tensor) -> dict[str, Tensor]:
    """The deterministic network's OOD score candidates (higher: more likely OOD)."""
    return {"max_softmax": 1 - probs.max(-1).values, "entropy": _entropy(probs)}


def _eval_det(model: nn.Module, data: _Data, x_noisy: Tensor, batch_size: int) -> _Eval:
    inputs = (data.x_test, x_noisy, data.x_ood, data.x_val, data.x_ood_val)
    p = [_softmax(model, x, batch_size) for x in inputs]
    test_in, test_out, val_in, val_out = (_det_scores(q) for q in (p[0], p[2], p[3], p[4]))

    def pair(a, b) -> dict[str, tuple[Tensor, Tensor]]:
        return {name: (a[name], b[name]) for name in DET_OOD_SCORES}

    far = None if data.x_far is None else _det_scores(_softmax(model, data.x_far, batch_size))
    return _Eval(p[0], p[1], p[2], *(_entropy(q) for q in p[:3]), pair(test_in, test_out),
                 pair(val_in, val_out), far, data.far_name.lower())  # fmt: skip


def _metrics(ev: _Eval, y: Tensor, coverage: float, suffix: str) -> tuple[dict[str, float], str]:
    """The model's metrics (suffixed), and the OOD score chosen for it on validation data."""
    out = {
        f"accuracy_{suffix}": accuracy(ev.clean, y),
        f"ece_{suffix}": ece(ev.clean, y),
        f"nll_{suffix}": nll(ev.clean, y),
        f"accuracy_noisy_{suffix}": accuracy(ev.noisy, y),
        f"acc_at_coverage_noisy_{suffix}": accuracy_at_coverage(ev.noisy, y, ev.u_noisy, coverage),
    }
    chosen, val_aurocs = select_ood_score(ev.val_scores)
    for name, (s_in, s_out) in ev.scores.items():
        out[f"ood_auroc_{name}_{suffix}"] = ood_auroc(s_in, s_out)
        out[f"ood_auroc_val_{name}_{suffix}"] = val_aurocs[name]
    out[f"ood_auroc_{suffix}"] = out[f"ood_auroc_{chosen}_{suffix}"]
    if ev.far is not None:  # the score chosen on the near OOD validation set, never on this one
        out[f"ood_auroc_{ev.far_name}_{suffix}"] = ood_auroc(ev.scores[chosen][0], ev.far[chosen])
    if "epistemic" in ev.scores:
        e_in, e_out = ev.scores["epistemic"]
        out[f"epistemic_mean_{suffix}"] = float(e_in.mean())
        out[f"epistemic_mean_ood_{suffix}"] = float(e_out.mean())
    return out, chosen


# --- figures ----------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(curves: dict[str, tuple[Tensor, Tensor]], path: Path) -> None:
    """Reliability diagram: accuracy vs mean confidence per bin, one line per model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="perfect calibration")
    for label, (probs, y) in curves.items():
        c = reliability_curve(probs, y)
        full = c.count > 0
        ax.plot(c.confidence[full], c.accuracy[full], marker="o", ms=4,
                label=f"{label} (ECE {100 * ece(probs, y):.2f}%)")  # fmt: skip
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability on the test set", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_uncertainty(panels: dict[str, tuple[Tensor, Tensor]], ood_name: str, path: Path) -> None:
    """Histograms of an uncertainty score in and out of distribution, one panel per score."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, (title, (u_in, u_out)) in zip(axes.flat, panels.items(), strict=True):
        hi = float(torch.cat([u_in, u_out]).max().clamp_min(1e-6))
        bins = torch.linspace(0, hi, 41).tolist()
        ax.hist(u_in.numpy(), bins=bins, alpha=0.6, density=True, label="in (test)")
        ax.hist(u_out.numpy(), bins=bins, alpha=0.6, density=True, label=f"out ({ood_name})")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("nats")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_rejection(curves: dict[str, dict[str, tuple[Tensor, Tensor, Tensor]]],
                   path: Path) -> None:  # fmt: skip
    """Accuracy vs coverage when rejecting the most uncertain inputs: clean and noisy panels."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.3 * len(curves), 3.4), squeeze=False)
    for ax, (title, models) in zip(axes.flat, curves.items(), strict=True):
        for label, (probs, y, u) in models.items():
            c = accuracy_rejection_curve(probs, y, u)
            ax.plot(c.coverage, 100 * c.accuracy, marker=".", label=label)
        ax.set_xlabel("coverage (fraction kept)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_fidelity(metrics: dict[str, float], schemes: tuple[str, ...], path: Path) -> None:
    """Bar charts per scheme: W1 distance to N(μ, σ²) and median |σ error| (first layer)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    pos = list(range(len(schemes)))
    for ax, key, label in (
        (axes[0], "fidelity_wasserstein_mean", "mean W1 to N(μ, σ²) (units of σ)"),
        (axes[1], "fidelity_sigma_rel_error_abs_median", "median |std/σ − 1|"),
    ):
        ax.bar(pos, [metrics[f"{key}_{s}"] for s in schemes], color="tab:blue")
        ax.set_xticks(pos, [s.replace("_", "\n") for s in schemes], fontsize=7)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Fidelity of the first layer's device-realised samples", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_fidelity_vs_time(metrics: dict[str, float], schemes: tuple[str, ...],
                          times_s: tuple[float, ...], device: str, path: Path) -> None:  # fmt: skip
    """W1 to N(μ, σ²) and median |mean error| of the first layer's samples vs read time."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    labels = [time_label(t) for t in times_s]
    for ax, key, ylabel in (
        (axes[0], "wasserstein", "mean W1 to N(μ, σ²) (units of σ)"),
        (axes[1], "mean_error_abs_median", "median |mean error| (units of σ)"),
    ):
        for scheme in schemes:
            values = [metrics[f"fidelity_{key}_{scheme}_at_{lab}"] for lab in labels]
            ax.plot(range(len(labels)), values, marker="o", label=scheme)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("read time after programming")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"First layer's samples on {device}, programmed for t = {labels[0]}, read later",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


#: (metric, axis label, scale) of the converter and drift figures.
_PANELS = (
    ("accuracy", "accuracy (%)", 100),
    ("ece", "ECE (%)", 100),
    ("ood_auroc", "OOD AUROC", 1),
)


def plot_converters(metrics: dict[str, float], config: BayesOodConfig, path: Path) -> None:
    """Accuracy, ECE and OOD AUROC of the headline BNN and the deterministic network on tiles
    against the DAC/ADC resolution."""
    plt = _plt()
    main = config.adc_bits if config.adc_bits == config.dac_bits else None
    suffix = {b: f"bits{b}" for b in config.converter_bits}
    if main is not None:
        suffix[main] = ""
    bits = sorted(suffix)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    for ax, (key, label, scale) in zip(axes, _PANELS, strict=True):
        for model, name in (("hw", "BNN (headline scheme)"), ("det_hw", "deterministic")):
            values = [scale * metrics[f"{key}_{model}{'_' + suffix[b] if suffix[b] else ''}"]
                      for b in bits]  # fmt: skip
            ax.plot(bits, values, marker="o", label=name)
        ax.set_xlabel("DAC and ADC bits")
        ax.set_ylabel(label)
        ax.set_xticks(bits)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Converter resolution, {config.device} tiles", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_drift(metrics: dict[str, float], config: BayesOodConfig, headline: str,
               path: Path) -> None:  # fmt: skip
    """The headline BNN programmed once and read later: accuracy, ECE, OOD AUROC per device,
    and the first layer's sample-level W1 distance to N(μ, σ²) (``config.device``)."""
    plt = _plt()
    times = config.drift_times_s
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.3))
    for ax, (key, label, scale) in zip(axes, _PANELS, strict=False):
        for device in config.drift_devices:
            values = [scale * metrics[f"drift_{key}_{device}_at_{time_label(t)}"] for t in times]
            ax.plot([max(t, 1e-3) for t in times], values, marker="o", label=device)
        ax.set_xscale("log")
        ax.set_xlabel("read time after programming (s)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    w1_times = (config.t_s, *config.fidelity_times_s)
    keys = [f"fidelity_wasserstein_{headline}_at_{time_label(t)}" for t in w1_times]
    if all(k in metrics for k in keys):
        axes[3].plot([max(t, 1.0) for t in w1_times], [metrics[k] for k in keys], marker="o",
                     label=config.device)  # fmt: skip
        axes[3].set_xscale("log")
        axes[3].legend(fontsize=7)
    axes[3].set_xlabel("read time after programming (s)")
    axes[3].set_ylabel("first layer: mean W1 to N(μ, σ²) (σ)", fontsize=8)
    axes[3].grid(True, alpha=0.3)
    fig.suptitle(f"BNN ({headline}) programmed once, read later: drift degrades the "
                 "distribution", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- summary ----------------------------------------------------------------------------------
def summary_table(metrics: dict[str, float], config: BayesOodConfig,
                  ood_scores: dict[str, str] | None = None) -> dict[str, list]:  # fmt: skip
    """The headline numbers as a table: one row per model, percentages and nats as text.

    Rows: the deterministic network in software and on the device, the software BNN, and the
    BNN on the device with each sampling scheme. Missing metrics (the software deterministic
    network has no noisy-input column) are shown as "–". ``ood_scores`` (model suffix -> the
    OOD score chosen on validation data) adds the column "OOD score"; a far OOD set (MNIST's
    Omniglot images) the column "AUROC Omniglot".
    """
    columns = (
        ("accuracy", "accuracy", 100, "{:.2f} %"),
        ("ECE", "ece", 100, "{:.2f} %"),
        ("NLL (nats)", "nll", 1, "{:.3f}"),
        ("OOD AUROC", "ood_auroc", 1, "{:.3f}"),
        (f"noisy acc. @ {config.coverage:.0%} cov.", "acc_at_coverage_noisy", 100, "{:.1f} %"),
    )
    if "ood_auroc_omniglot_sw" in metrics:  # the far OOD set, MNIST only
        columns = (*columns[:4], ("AUROC Omniglot", "ood_auroc_omniglot", 1, "{:.3f}"),
                   columns[4])  # fmt: skip
    models = [("deterministic, software", "det"), (f"deterministic, {config.device}", "det_hw"),
              ("BNN, software", "sw")]  # fmt: skip
    models += [(f"BNN, {config.device}, {s}", f"hw_{s}") for s in config.schemes]
    rows = []
    for label, suffix in models:
        cells = [label]
        for _, key, scale, fmt in columns:
            value = metrics.get(f"{key}_{suffix}")
            cells.append("–" if value is None else fmt.format(scale * value))
        if ood_scores is not None:
            cells.append(ood_scores.get(suffix, "–").replace("_", "-"))
        rows.append(cells)
    header = ["model", *(c[0] for c in columns)]
    if ood_scores is not None:
        header.append("OOD score")
    return {"header": header, "rows": rows}


# --- the run ---------------------------------------------------------------------------------
_DESCRIPTION = "Bayesian MLP on memristors: calibration, OOD detection, noisy-input rejection"


@dataclass
class _Run:
    """What the stages of one run share."""

    config: BayesOodConfig
    seed: int
    data: _Data
    x_noisy: Tensor
    start: float
    progress: bool
    metrics: dict[str, float]
    ood_scores: dict[str, str]  # model suffix -> OOD score chosen on validation data
    timings: dict[str, float]

    def say(self, message: str) -> None:
        if self.progress:
            print(f"[{EXPERIMENT}] {message} ({time.perf_counter() - self.start:.0f} s)",
                  flush=True)  # fmt: skip

    def score(self, ev: _Eval, suffix: str, keep=lambda key: True) -> None:
        m, self.ood_scores[suffix] = _metrics(ev, self.data.y_test, self.config.coverage, suffix)
        self.metrics.update({k: v for k, v in m.items() if keep(k)})

    @property
    def calibration_images(self) -> Tensor:
        """Training images whose first read sets every tile's ADC range, before any scoring
        (so no test image shapes the converters)."""
        return self.data.x_train[:_CALIBRATION_IMAGES]

    def deploy_det(self, det: nn.Module, tile: TileConfig, name: str) -> nn.Module:
        """The deterministic network converted onto tiles, programmed, at ``t_s``, its ADC
        ranges calibrated on training images."""
        cim_seed = stage_seed(self.seed, name) % 2**31
        det_cim = convert(copy.deepcopy(det), CIMConfig(tile=tile, seed=cim_seed))
        det_cim.eval()
        seed_layers(det_cim, cim_seed)
        program(det_cim)
        drift_to(det_cim, self.config.t_s)
        _softmax(det_cim, self.calibration_images, self.config.eval_batch_size)
        return det_cim


def _deterministic_stage(r: _Run) -> tuple[nn.Module, _Eval]:
    """Train the deterministic MLP; score it in software and on the configured tiles."""
    cfg, data = r.config, r.data
    t0 = time.perf_counter()
    n_in, n_out = data.x_train.shape[1], int(data.y_train.max()) + 1
    det = build_mlp(n_in, cfg.hidden, n_out, stage_generator(r.seed, "det_init"))
    train(det, data.x_train, data.y_train, epochs=cfg.epochs, lr=cfg.lr,
          batch_size=cfg.batch_size, generator=stage_generator(r.seed, "det_train"),
          desc="deterministic", progress=r.progress)  # fmt: skip
    r.score(_eval_det(det, data, r.x_noisy, cfg.eval_batch_size), "det",
            keep=lambda k: "noisy" not in k)  # noisy: on-device only  # fmt: skip
    r.timings["det_train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    det_hw = _eval_det(r.deploy_det(det, cfg.tile(), "det_cim"), data, r.x_noisy,
                       cfg.eval_batch_size)  # fmt: skip
    r.score(det_hw, "det_hw")
    r.timings["det_hw_eval"] = time.perf_counter() - t0
    r.say(f"deterministic: software {r.metrics['accuracy_det']:.2%}, "
          f"{cfg.device} {r.metrics['accuracy_det_hw']:.2%}")  # fmt: skip
    return det, det_hw


def _bnn_stage(r: _Run, det: nn.Module) -> nn.Module:
    """Train the Bayesian copy on the ELBO and score it in software."""
    cfg, data = r.config, r.data
    t0 = time.perf_counter()
    n_in, n_out = data.x_train.shape[1], int(data.y_train.max()) + 1
    base = (
        copy.deepcopy(det)
        if cfg.bnn_init == "deterministic"
        else build_mlp(n_in, cfg.hidden, n_out, stage_generator(r.seed, "bnn_init"))
    )
    layer_seed = stage_seed(r.seed, "bnn_layers") % 2**62
    bayes = BayesConfig(prior_sigma=cfg.prior_sigma, sigma_init=cfg.sigma_init,
                        estimator="local", seed=layer_seed)  # fmt: skip
    bnn = to_bayesian(base, config=bayes)
    aware = None
    if cfg.device_aware:
        aware = DeviceAware(sampling=cfg.sampling(cfg.device_aware), mode="project")
    train_elbo(bnn, data.x_train, data.y_train, epochs=cfg.bnn_epochs, lr=cfg.bnn_lr,
               batch_size=cfg.batch_size, generator=stage_generator(r.seed, "bnn_train"),
               kl_weight=cfg.kl_weight, device_aware=aware, desc="BNN (ELBO)",
               progress=r.progress)  # fmt: skip
    bnn.eval()
    r.timings["bnn_train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = _eval_bnn(bnn, data, r.x_noisy, cfg, stage_generator(r.seed, "bnn_sw_eval"))
    r.score(ev, "sw")
    r.timings["bnn_sw_eval"] = time.perf_counter() - t0
    r.say(f"BNN software: {r.metrics['accuracy_sw']:.2%}, ECE {r.metrics['ece_sw']:.4f}, "
          f"OOD AUROC {r.metrics['ood_auroc_sw']:.3f}")  # fmt: skip
    return bnn


def _fidelity_metrics(r: _Run, hw: nn.Module, scheme: str) -> None:
    """The first layer's samples as the tiles hold them, against N(μ, σ²), now and later."""
    cfg, metrics = r.config, r.metrics
    first = next(m for m in hw.modules() if isinstance(m, BayesianLinear))
    gen = stage_generator(r.seed, "fidelity", scheme)
    samples, _ = first.weight_samples(cfg.samples, generator=gen)
    with torch.no_grad():
        fid = fidelity.summary(samples, first.weight_mu, first.weight_sigma)
    for key, value in fid.items():
        metrics[f"fidelity_{key}_{scheme}"] = value
    metrics[f"fidelity_wasserstein_{scheme}"] = fid["wasserstein_mean"]
    metrics[f"fidelity_sigma_rel_error_{scheme}"] = fid["sigma_rel_error_abs_median"]
    if not cfg.fidelity_times_s:
        return
    drift = fidelity.versus_time(
        first.weight_mu, first.weight_sigma, cfg.sampling(scheme),
        (cfg.t_s, *cfg.fidelity_times_s), samples=cfg.samples,
        generator=stage_generator(r.seed, "fidelity_time", scheme),
    )  # fmt: skip
    for t, fid_t in drift.items():
        at = time_label(t)
        metrics[f"fidelity_wasserstein_{scheme}_at_{at}"] = fid_t["wasserstein_mean"]
        metrics[f"fidelity_mean_error_abs_median_{scheme}_at_{at}"] = fid_t["mean_error_abs_median"]


def _deploy_bnn(r: _Run, bnn: nn.Module, scheme: str, tile: TileConfig,
                device: str | None = None) -> tuple[nn.Module, dict]:  # fmt: skip
    """The BNN on tiles, its ADC ranges calibrated on training images."""
    cfg = r.config
    gen = stage_generator(r.seed, "hw", scheme, device or "")
    hw, report = to_hardware(bnn, cfg.sampling(scheme, device), tile_config=tile,
                             samples=cfg.samples, generator=gen)  # fmt: skip
    predict(hw, r.calibration_images[: cfg.eval_batch_size], samples=cfg.samples)
    return hw, report


def _hardware_stage(r: _Run, bnn: nn.Module) -> dict[str, _Eval]:
    """The BNN on tiles with every scheme (the device-realised copy is scored, never the
    software BNN it came from)."""
    cfg, metrics = r.config, r.metrics
    evals: dict[str, _Eval] = {}
    for scheme in cfg.schemes:
        t0 = time.perf_counter()
        hw, report = _deploy_bnn(r, bnn, scheme, cfg.tile())
        if cfg.samples >= 2:
            _fidelity_metrics(r, hw, scheme)
        first_name = next(iter(report))
        metrics[f"fidelity_feasible_fraction_{scheme}"] = report[first_name]["feasible_fraction"]
        metrics[f"write_energy_pj_hw_{scheme}"] = sum(v["write_energy_pj"] for v in report.values())
        metrics[f"clipped_targets_hw_{scheme}"] = sum(v["clipped"] for v in report.values())
        evals[scheme] = _eval_bnn(hw, r.data, r.x_noisy, cfg, None)
        r.score(evals[scheme], f"hw_{scheme}")
        r.timings[f"hw_{scheme}"] = time.perf_counter() - t0
        r.say(f"BNN {scheme} on {cfg.device} tiles: {metrics[f'accuracy_hw_{scheme}']:.2%}, "
              f"ECE {metrics[f'ece_hw_{scheme}']:.4f}, "
              f"OOD AUROC {metrics[f'ood_auroc_hw_{scheme}']:.3f}")  # fmt: skip
        del hw
    return evals


def _converter_stage(r: _Run, bnn: nn.Module, det: nn.Module, headline: str) -> None:
    """The headline BNN and the deterministic network at each of ``converter_bits``."""
    cfg = r.config
    for bits in cfg.converter_bits:
        t0 = time.perf_counter()
        tile = cfg.tile(bits)
        hw, _ = _deploy_bnn(r, bnn, headline, tile)
        r.score(_eval_bnn(hw, r.data, r.x_noisy, cfg, None), f"hw_bits{bits}")
        det_cim = r.deploy_det(det, tile, f"det_cim_bits{bits}")
        r.score(_eval_det(det_cim, r.data, r.x_noisy, cfg.eval_batch_size), f"det_hw_bits{bits}")
        r.timings[f"bits{bits}"] = time.perf_counter() - t0
        r.say(f"{bits}-bit converters: BNN {r.metrics[f'accuracy_hw_bits{bits}']:.2%}, "
              f"deterministic {r.metrics[f'accuracy_det_hw_bits{bits}']:.2%}")  # fmt: skip


def _drift_stage(r: _Run, bnn: nn.Module, headline: str) -> None:
    """The headline BNN programmed once per device and read at every ``drift_times_s``."""
    cfg, data, y = r.config, r.data, r.data.y_test
    score = r.ood_scores[f"hw_{headline}"]  # the score chosen at deployment
    kw = {"samples": cfg.samples, "batch_size": cfg.eval_batch_size}
    for device in cfg.drift_devices:
        t0 = time.perf_counter()
        hw, _ = _deploy_bnn(r, bnn, headline, cfg.tile(device=device), device)
        for t in cfg.drift_times_s:
            read_at(hw, t)
            clean, ood = predict(hw, data.x_test, **kw), predict(hw, data.x_ood, **kw)
            at = f"{device}_at_{time_label(t)}"
            r.metrics[f"drift_accuracy_{at}"] = accuracy(clean.mean, y)
            r.metrics[f"drift_ece_{at}"] = ece(clean.mean, y)
            r.metrics[f"drift_ood_auroc_{at}"] = ood_auroc(getattr(clean, score),
                                                           getattr(ood, score))  # fmt: skip
        r.timings[f"drift_{device}"] = time.perf_counter() - t0
        last = f"{device}_at_{time_label(cfg.drift_times_s[-1])}"
        r.say(f"drift on {device}: after {time_label(cfg.drift_times_s[-1])} accuracy "
              f"{r.metrics[f'drift_accuracy_{last}']:.2%}, ECE {r.metrics[f'drift_ece_{last}']:.4f}"
              f", OOD AUROC {r.metrics[f'drift_ood_auroc_{last}']:.3f}")  # fmt: skip


def _acceptance(metrics: dict[str, float], config: BayesOodConfig, far: str) -> None:
    """The acceptance criteria, measured (1.0 = met)."""
    gaps = [100 * abs(metrics["accuracy_sw"] - metrics[f"accuracy_hw_{s}"]) for s in config.schemes]
    metrics["accuracy_gap_max_points"] = max(gaps)
    metrics["accept_accuracy"] = float(max(gaps) <= 1.0)
    far_ok = not far or metrics[f"ood_auroc_{far}_hw"] >= 0.90
    metrics["accept_ood"] = float(metrics["ood_auroc_hw"] >= 0.90 and far_ok)
    metrics["accept_ece"] = float(metrics["ece_hw"] <= metrics["ece_det_hw"])
    metrics["accept_noisy"] = float(
        metrics["acc_at_coverage_noisy_hw"] >= metrics["acc_at_coverage_noisy_det_hw"]
    )


@register(EXPERIMENT, BayesOodConfig, _DESCRIPTION)
def run(
    config: BayesOodConfig,
    *,
    seed: int,
    out_dir: str | os.PathLike[str],
    progress: bool = True,
) -> Result:
    """Train, put on tiles and evaluate the deterministic and the Bayesian network.

    Args:
        config: what to run.
        seed: seed of every generator (stages get seeds derived from it and their name).
        out_dir: folder for the figures (created).
        progress: progress bars (terminal only) and one status line per stage.

    Returns:
        :class:`Result`: the metrics named in the module docstring (fractions, nats), the
        figure paths, per-stage timings and ``ood_scores``: for each model (metric suffix,
        ``"hw"`` for the headline scheme) the OOD score chosen on the validation data.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(config, seed)
    x_noisy = gaussian_corruption(
        data.x_test, config.noise_sigma, generator=stage_generator(seed, "noise")
    )
    r = _Run(config, seed, data, x_noisy, time.perf_counter(), progress, {}, {}, {})
    det, det_hw = _deterministic_stage(r)
    bnn = _bnn_stage(r, det)
    headline = HEADLINE_SCHEME if HEADLINE_SCHEME in config.schemes else config.schemes[0]
    evals = _hardware_stage(r, bnn)
    metrics = r.metrics
    far = data.far_name.lower()
    keys = [
        "accuracy",
        "ece",
        "nll",
        "ood_auroc",
        "ood_auroc_total",
        "ood_auroc_epistemic",
        "accuracy_noisy",
        "acc_at_coverage_noisy",
        "epistemic_mean",
        "epistemic_mean_ood",
    ]
    for key in keys + ([f"ood_auroc_{far}"] if far else []):  # fmt: skip
        metrics[f"{key}_hw"] = metrics[f"{key}_hw_{headline}"]
    r.ood_scores["hw"] = r.ood_scores[f"hw_{headline}"]
    _acceptance(metrics, config, far)
    _converter_stage(r, bnn, det, headline)
    _drift_stage(r, bnn, headline)
    t0 = time.perf_counter()
    artifacts = _figures(r, evals[headline], det_hw, headline, out)
    r.timings["figures"] = time.perf_counter() - t0
    r.say("done")
    extra = {
        "timings_s": r.timings,
        "headline_scheme": headline,
        "train_images": len(data.y_train),
        "test_images": len(data.y_test),
        "validation_images": len(data.x_val),
        "ood_set": data.ood_name,
        "far_ood_set": data.far_name,
        "ood_scores": r.ood_scores,
        "summary_table": summary_table(metrics, config, r.ood_scores),
    }
    return Result(metrics=metrics, artifacts=artifacts, extra=extra)


def _figures(r: _Run, head_eval: _Eval, det_hw: _Eval, headline: str, out: Path) -> list[str]:
    """Write the run's figures; returns their file names."""
    config, metrics, data, y = r.config, r.metrics, r.data, r.data.y_test
    bnn_label, det_label = f"BNN {headline} ({config.device})", f"deterministic ({config.device})"
    figures = {
        "reliability.png": lambda p: plot_reliability(
            {bnn_label: (head_eval.clean, y), det_label: (det_hw.clean, y)}, p
        ),
        "uncertainty_hist.png": lambda p: plot_uncertainty(
            {
                f"{bnn_label}: total entropy": (head_eval.u_clean, head_eval.u_ood),
                f"{bnn_label}: epistemic": head_eval.scores["epistemic"],
                f"{det_label}: softmax entropy": (det_hw.u_clean, det_hw.u_ood),
            },
            data.ood_name,
            p,
        ),
        "accuracy_rejection.png": lambda p: plot_rejection(
            {
                "clean test set": {
                    bnn_label: (head_eval.clean, y, head_eval.u_clean),
                    det_label: (det_hw.clean, y, det_hw.u_clean),
                },
                f"Gaussian noise σ = {config.noise_sigma:g}": {
                    bnn_label: (head_eval.noisy, y, head_eval.u_noisy),
                    det_label: (det_hw.noisy, y, det_hw.u_noisy),
                },
            },
            p,
        ),
    }
    if config.samples >= 2:
        figures["fidelity.png"] = lambda p: plot_fidelity(metrics, config.schemes, p)
    if config.samples >= 2 and config.fidelity_times_s:
        times = (config.t_s, *config.fidelity_times_s)
        figures["fidelity_vs_time.png"] = lambda p: plot_fidelity_vs_time(
            metrics, config.schemes, times, config.device, p
        )
    if config.converter_bits:
        figures["converters.png"] = lambda p: plot_converters(metrics, config, p)
    if config.drift_devices and config.drift_times_s:
        figures["drift.png"] = lambda p: plot_drift(metrics, config, headline, p)
    for name, draw in figures.items():
        draw(out / name)
    return list(figures)
