"""Experiment ``mcmc-cancer``: in-situ Bayesian learning with RRAM programming noise (Dalgaty [7]).

scikit-learn's Wisconsin breast-cancer set (standardised, stratified split fixed by the seed)
is learned by Metropolis–Hastings inside RRAM tiles (:class:`memcim.learning.InSituMCMC`):
the proposals are RESET+SET draws, the likelihood comes from the crossbars' MVMs with read noise
and 8-bit converters, the posterior samples are array rows, and prediction averages the rows.
Compared, on a logistic model and a small MLP (30-``hidden``-1):

(a) in-situ RRAM MH (plain Metropolis ratio; variants: the exact Hastings ratio, in-place
    ``"device"`` proposals, and reading the rows a day after training, when relaxation
    has moved them);
(b) software MH with Gaussian proposals (step adapted during burn-in);
(c) NUTS (Pyro, when installed; logistic model), the reference posterior: the mean absolute
    difference of the predicted class-1 probability from it measures how close (a) and (b) are;
(d) a network trained by backprop with as many memory elements as the in-situ sample array
    (two devices per weight), deployed on the same RRAM, and in float;
(e) the prior-only classifier: the training set's majority class for every test point
    (``accuracy_majority``, 63 % benign), the floor every learner must clear.

Training cost of (a), logistic model: writes per device against the 10^7 endurance cycles [7]
trained after, and energy from the tiles' counters (:func:`memcim.energy.cim.counters_cost`).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from memcim._errors import is_int, is_real, require
from memcim.crossbar import TileConfig
from memcim.data import load_breast_cancer
from memcim.devices import FilamentaryRRAM
from memcim.experiments.registry import Result, register, stage_generator, stage_seed
from memcim.learning import InSituMCMC, InSituMCMCConfig
from memcim.learning.reference import GaussianMHConfig, Posterior, gaussian_mh, nuts
from memcim.metrics import accuracy
from memcim.nn import CIMConfig, convert, program
from memcim.nn import seed as seed_layers
from memcim.training import accuracy as model_accuracy
from memcim.training import init_default_, train

#: Endurance figure after which [7] still trains (docs/references.md).
ENDURANCE_REFERENCE = 1e7
DAY_S = 86400.0


@dataclass(frozen=True, kw_only=True)
class MCMCCancerConfig:
    """Attributes:
    test_fraction: share of the 569 samples held out (stratified).
    hidden: hidden units of the small MLP (30-hidden-1, tanh).
    chains, steps, burn_in, thin: every sampler's schedule (chains run at once).
    proposal: in-situ proposal of the main run, ``"row"`` or ``"device"``.
    w_max: weight of a differential pair at full window (in-situ).
    prior_std: std of the Gaussian prior on weights and biases (every sampler).
    read_noise: read-to-read noise on the in-situ reads.
    dac_bits, adc_bits: converters of the tiles (in-situ and backprop on RRAM).
    variants: also run the exact-Hastings and in-place ``"device"`` in-situ variants.
    nuts: ``"auto"`` runs NUTS when Pyro is installed, ``"on"`` requires it, ``"off"`` skips.
    nuts_samples, nuts_warmup: the NUTS schedule (one chain).
    backprop_epochs: epochs of the backprop baseline (Adam, batch 32, cosine decay).
    """

    test_fraction: float = 0.3
    hidden: int = 4
    chains: int = 8
    steps: int = 2000
    burn_in: int = 1000
    thin: int = 20
    proposal: Literal["row", "device"] = "row"
    w_max: float = 3.0
    prior_std: float = 1.0
    read_noise: bool = True
    dac_bits: int = 8
    adc_bits: int = 8
    variants: bool = True
    nuts: Literal["auto", "on", "off"] = "auto"
    nuts_samples: int = 300
    nuts_warmup: int = 200
    backprop_epochs: int = 100

    def __post_init__(self) -> None:
        name = "MCMCCancerConfig"
        require(is_real(self.test_fraction) and 0 < self.test_fraction < 1,
                f"{name}.test_fraction", self.test_fraction, "must be in (0, 1)")  # fmt: skip
        for f in ("hidden", "nuts_samples", "nuts_warmup", "backprop_epochs", "dac_bits",
                  "adc_bits"):  # fmt: skip
            value = getattr(self, f)
            require(is_int(value) and value >= 1, f"{name}.{f}", value, "must be an int >= 1")
        require(self.nuts in ("auto", "on", "off"), f"{name}.nuts", self.nuts,
                "must be 'auto', 'on' or 'off'")  # fmt: skip
        self.insitu("logistic")  # validates the sampler fields

    def insitu(self, model: Literal["logistic", "mlp"]) -> InSituMCMCConfig:
        """The in-situ sampler of one model."""
        return InSituMCMCConfig(
            layers=self.layers(model), chains=self.chains, steps=self.steps,
            burn_in=self.burn_in, thin=self.thin, proposal=self.proposal, w_max=self.w_max,
            prior_std=self.prior_std, read_noise=self.read_noise, dac_bits=self.dac_bits,
            adc_bits=self.adc_bits,
        )  # fmt: skip

    def software(self, model: Literal["logistic", "mlp"]) -> GaussianMHConfig:
        return GaussianMHConfig(layers=self.layers(model), chains=self.chains, steps=self.steps,
                                burn_in=self.burn_in, thin=self.thin,
                                prior_std=self.prior_std)  # fmt: skip

    def layers(self, model: str) -> tuple[int, ...]:
        return (30, 1) if model == "logistic" else (30, self.hidden, 1)


def _backprop(hidden: int, config: MCMCCancerConfig, data, seed: int,
              progress: bool) -> tuple[float, float]:  # fmt: skip
    """Test accuracy (float, on RRAM) of a 30-hidden-1 network trained by backprop."""
    net = nn.Sequential(nn.Linear(30, hidden), nn.Tanh(), nn.Linear(hidden, 2))
    init_default_(net, stage_generator(seed, "backprop", "init"))
    train(net, data.x_train, data.y_train, epochs=config.backprop_epochs, lr=3e-3, batch_size=32,
          generator=stage_generator(seed, "backprop", "order"), desc="backprop",
          progress=progress)  # fmt: skip
    float_acc = model_accuracy(net, data.x_test, data.y_test)
    tile = TileConfig(device=FilamentaryRRAM(), dac=replace(TileConfig().dac, bits=config.dac_bits),
                      adc=replace(TileConfig().adc, bits=config.adc_bits))  # fmt: skip
    cim = convert(copy.deepcopy(net), CIMConfig(tile=tile)).eval()
    seed_layers(cim, stage_seed(seed, "backprop", "rram"))
    program(cim)
    with torch.no_grad():
        return float_acc, model_accuracy(cim, data.x_test, data.y_test)


def _gap(p: Tensor, reference: Tensor) -> float:
    """Mean |p(class 1) − reference p(class 1)| over the test set."""
    return float((p[:, 1] - reference[:, 1]).abs().mean())


def plot_mcmc(trace: Tensor, accuracies: dict[str, float], burn_in: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(-trace.numpy(), lw=0.7)
    ax1.axvline(burn_in, color="k", ls="--", lw=0.8, label="end of burn-in")
    ax1.set_yscale("log")
    ax1.set_xlabel("MH step")
    ax1.set_ylabel("−log p(D | θ) of the current row (nats)")
    ax1.set_title("in-situ chains, logistic model")
    ax1.legend(fontsize=8)
    names = list(accuracies)
    ax2.barh(names, [100 * accuracies[n] for n in names], color="tab:blue")
    ax2.set_xlim(min(85.0, min(100 * v for v in accuracies.values()) - 2), 100)
    ax2.axvline(96.3, color="tab:red", ls=":", lw=1)
    ax2.set_xlabel("test accuracy (%)")
    ax2.set_title("dotted: Dalgaty [7], 96.3 %", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_DESCRIPTION = "in-situ MCMC with RRAM programming noise on breast cancer vs MH, NUTS, backprop"


@register("mcmc-cancer", MCMCCancerConfig, _DESCRIPTION)
def run(config: MCMCCancerConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_breast_cancer(seed=seed, test_fraction=config.test_fraction)
    x, y, xt, yt = data
    m: dict[str, float] = {}
    timings: dict[str, float] = {}
    # (e) the class prior alone, no features: the floor a learned classifier must clear.
    majority = int(torch.bincount(y).argmax())
    m["accuracy_majority"] = float((yt == majority).float().mean())

    def log(text: str) -> None:
        if progress:
            print(f"[mcmc-cancer] {text}", flush=True)

    def insitu(label: str, cfg: InSituMCMCConfig) -> tuple[InSituMCMC, Tensor]:
        start = time.perf_counter()
        sampler = InSituMCMC(cfg)
        stats = sampler.fit(x, y, generator=stage_generator(seed, label, "fit"), progress=progress)
        p = sampler.predict_proba(xt, generator=stage_generator(seed, label, "read"))
        m[f"accuracy_{label}"] = accuracy(p, yt)
        m[f"acceptance_{label}"] = stats.acceptance_rate
        timings[label] = time.perf_counter() - start
        log(f"{label}: accuracy {100 * m[f'accuracy_{label}']:.2f} %, acceptance "
            f"{stats.acceptance_rate:.3f}, {stats.wall_s:.1f} s")  # fmt: skip
        return sampler, p

    # (a) in situ, logistic model: the main run, with its training cost.
    sampler, p_insitu = insitu("insitu", config.insitu("logistic"))
    stats = sampler.stats
    e = stats.energy_pj
    m.update(
        writes_per_device_max=stats.writes_per_device_max,
        writes_per_device_mean=stats.writes_per_device_mean,
        endurance_fraction_max=stats.writes_per_device_max / ENDURANCE_REFERENCE,
        cell_writes=stats.cell_writes,
        rows_per_chain=stats.rows_per_chain,
        samples_per_chain=stats.samples_kept,
        energy_train_uj=stats.energy_total_pj * 1e-6,
        energy_train_uj_per_chain=stats.energy_total_pj * 1e-6 / config.chains,
        energy_array_and_writes_uj_per_chain=(e["array"] + e["write"]) * 1e-6 / config.chains,
        energy_write_uj=e["write"] * 1e-6,
        train_time_s_insitu=stats.wall_s,
    )
    for k, v in e.items():
        m[f"energy_train_uj_{k}"] = v * 1e-6
    p_day = sampler.predict_proba(xt, t_s=DAY_S, generator=stage_generator(seed, "insitu", "day"))
    m["accuracy_insitu_after_1_day"] = accuracy(p_day, yt)
    trace = stats.log_likelihood
    # Devices holding the kept samples: every chain's sample rows (2 devices per weight).
    rows_kept = config.chains * stats.samples_kept
    memory_elements = rows_kept * sum(s.g_us[0, 0].numel() for s in sampler.samples)
    m["memory_elements"] = memory_elements
    log(f"writes per device: max {stats.writes_per_device_max} "
        f"({m['endurance_fraction_max']:.1e} of 1e7), training energy "
        f"{m['energy_train_uj_per_chain']:.1f} µJ per chain")  # fmt: skip
    if config.variants:
        insitu("insitu_hastings", replace(config.insitu("logistic"), hastings=True))
        device_cfg = replace(config.insitu("logistic"), proposal="device", devices_per_step=4)
        dev_sampler, _ = insitu("insitu_device_mode", device_cfg)
        m["restore_error_us_device_mode"] = dev_sampler.stats.restore_error_us
        m["writes_per_device_max_device_mode"] = dev_sampler.stats.writes_per_device_max
    insitu("insitu_mlp", config.insitu("mlp"))

    # (b) software MH with Gaussian proposals.
    posteriors: dict[str, Posterior] = {}
    for model in ("logistic", "mlp"):
        suffix = "" if model == "logistic" else "_mlp"
        start = time.perf_counter()
        post = gaussian_mh(config.software(model), x, y,
                           generator=stage_generator(seed, "software_mh", model))  # fmt: skip
        posteriors[model] = post
        m[f"accuracy_software_mh{suffix}"] = accuracy(post.predict_proba(xt), yt)
        m[f"acceptance_software_mh{suffix}"] = post.acceptance_rate
        timings[f"software_mh{suffix}"] = time.perf_counter() - start

    # (c) NUTS reference posterior (logistic model).
    use_nuts = config.nuts == "on" or (
        config.nuts == "auto" and importlib.util.find_spec("pyro") is not None
    )
    if use_nuts:
        start = time.perf_counter()
        ref = nuts((30, 1), x, y, prior_std=config.prior_std, samples=config.nuts_samples,
                   warmup=config.nuts_warmup, seed=stage_seed(seed, "nuts") % 2**32)  # fmt: skip
        p_ref = ref.predict_proba(xt)
        m["accuracy_nuts"] = accuracy(p_ref, yt)
        m["predictive_gap_insitu_vs_nuts"] = _gap(p_insitu, p_ref)
        m["predictive_gap_software_mh_vs_nuts"] = _gap(posteriors["logistic"].predict_proba(xt),
                                                       p_ref)  # fmt: skip
        timings["nuts"] = time.perf_counter() - start
        log(f"NUTS: accuracy {100 * m['accuracy_nuts']:.2f} %, |Δp| in situ "
            f"{m['predictive_gap_insitu_vs_nuts']:.3f}, software MH "
            f"{m['predictive_gap_software_mh_vs_nuts']:.3f}")  # fmt: skip
    else:
        log("NUTS skipped (Pyro not installed: pip install 'memcim[pyro]')")

    # (d) backprop with the same memory elements: 2 devices per weight, 32 h + 1 weights.
    hidden = max(1, (memory_elements // 2 - 1) // 32)
    start = time.perf_counter()
    m["backprop_hidden"] = hidden
    m["accuracy_backprop_float"], m["accuracy_backprop"] = _backprop(hidden, config, data, seed,
                                                                     progress)  # fmt: skip
    timings["backprop"] = time.perf_counter() - start
    log(f"backprop 30-{hidden}-2 ({memory_elements} devices): {100 * m['accuracy_backprop']:.2f} "
        "% on RRAM")  # fmt: skip

    shown = {
        "in situ (RRAM MH)": m["accuracy_insitu"],
        "in situ, MLP": m["accuracy_insitu_mlp"],
        "software MH": m["accuracy_software_mh"],
        "software MH, MLP": m["accuracy_software_mh_mlp"],
        **({"NUTS (Pyro)": m["accuracy_nuts"]} if use_nuts else {}),
        f"backprop 30-{hidden}-2, RRAM": m["accuracy_backprop"],
    }
    plot_mcmc(trace, shown, config.burn_in, out / "mcmc_cancer.png")
    rows = [[name, f"{100 * v:.2f}"] for name, v in shown.items()]
    rows.append(["majority class (prior only)", f"{100 * m['accuracy_majority']:.2f}"])
    rows.append(["writes per device, max (of 1e7)", f"{stats.writes_per_device_max}"])
    rows.append(["training energy per chain (µJ)", f"{m['energy_train_uj_per_chain']:.1f}"])
    return Result(metrics=m, artifacts=["mcmc_cancer.png"],
                  extra={"summary_table": {"header": ["", "test accuracy (%) / value"],
                                           "rows": rows},
                         "timings_s": timings})  # fmt: skip
