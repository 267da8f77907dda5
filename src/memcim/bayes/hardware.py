"""Put a trained Bayesian network on simulated hardware: its weight samples drawn by devices.

:func:`to_hardware` replaces every Bayesian layer by a hardware copy whose Monte-Carlo weight
samples are realised once by a :class:`~memcim.bayes.schemes.SamplingScheme` — programming,
drift and read noise of the chosen device, never a software Gaussian — and stored as
``realised_weight`` [K, ...] / ``realised_bias`` [K, out]. Sample s of :func:`memcim.bayes.predict`
uses realised set s mod K, so ``samples <= K`` gives S distinct device draws. Biases are realised
with the same scheme as the weights. :func:`resample` draws a new set (e.g. another read).

The matrix products themselves are exact (float32): DAC/ADC quantisation of these products is
not modelled here (see :mod:`memcim.nn` for that).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from memcim._errors import ConfigError, require
from memcim._modules import replace_modules
from memcim.bayes.layers import BayesianConv2d, BayesianLayer, BayesianLinear
from memcim.bayes.schemes import HardwareSampling, realise


class _RealisedSamples:
    """Mixin: weight samples come from the stored device realisations."""

    realised_weight: Tensor
    realised_bias: Tensor | None

    def _sample_parameters(self, samples: int) -> tuple[Tensor, Tensor | None]:
        index = torch.arange(samples) % self.realised_weight.shape[0]
        bias = None if self.realised_bias is None else self.realised_bias[index]
        return self.realised_weight[index], bias

    def _local_is_exact(self, xs: Tensor) -> bool:
        return False  # the samples are the devices' realisations, never a software Gaussian

    def train(self, mode: bool = True):
        if mode:
            raise ConfigError(
                f"{type(self).__name__} holds device-realised weight samples and cannot be "
                "trained; train the Bayesian model, then call to_hardware again"
            )
        return super().train(False)


class HardwareBayesianLinear(_RealisedSamples, BayesianLinear):
    """A :class:`BayesianLinear` whose weight samples were drawn by devices."""


class HardwareBayesianConv2d(_RealisedSamples, BayesianConv2d):
    """A :class:`BayesianConv2d` whose weight samples were drawn by devices."""


def _hardware_copy(layer: BayesianLayer) -> BayesianLayer:
    cls = HardwareBayesianLinear if isinstance(layer, BayesianLinear) else HardwareBayesianConv2d
    new = copy.deepcopy(layer)
    new.__class__ = cls  # same parameters and buffers; only the sampling differs
    return new


def _realise_layer(layer: _RealisedSamples, sampling: HardwareSampling, samples: int,
                   generator: torch.Generator) -> dict[str, float]:  # fmt: skip
    with torch.no_grad():
        mu, sigma = layer.weight_mu, layer.weight_sigma
        w = realise(mu, sigma, sampling, samples, generator=generator)
        layer.realised_weight = w.samples
        layer.realised_bias = None
        writes, energy, clipped = w.writes, w.write_energy_pj, w.clipped
        if layer.bias_mu is not None:
            b = realise(layer.bias_mu, layer.bias_sigma, sampling, samples, generator=generator)
            layer.realised_bias = b.samples
            writes, energy = writes + b.writes, energy + b.write_energy_pj
            clipped += b.clipped
    return {"writes": float(writes), "write_energy_pj": energy,
            "feasible_fraction": float(w.feasible.float().mean()),
            "clipped": float(clipped)}  # fmt: skip


def to_hardware(
    model: nn.Module,
    sampling: HardwareSampling | None = None,
    *,
    samples: int = 64,
    generator: torch.Generator | None = None,
) -> tuple[nn.Module, dict[str, dict[str, float]]]:
    """A copy of ``model`` whose Bayesian layers draw their weight samples from devices.

    Args:
        model: a model with :class:`BayesianLinear` / :class:`BayesianConv2d` layers (not
            modified).
        sampling: scheme, device and read time (default: differential RRAM pairs at t = 0).
        samples: K, weight sets realised per layer (programmings, population rows or reads).
        generator: randomness of every programming and read.

    Returns:
        ``(hardware_model, report)``: the copy, in eval mode, and per layer name the
        programming pulses (``writes``), their energy (``write_energy_pj``), the fraction of
        weights whose σ the scheme can realise (``feasible_fraction``) and the targets of its
        weights and biases clamped into the device window (``clipped``, see
        :attr:`~memcim.bayes.Realisation.clipped`).
    """
    sampling = sampling if sampling is not None else HardwareSampling()
    require(isinstance(samples, int) and samples >= 1, "samples", samples, "an int >= 1")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    names = [n for n, m in model.named_modules() if isinstance(m, BayesianLayer)]
    if not names:
        raise ConfigError("the model has no Bayesian layers: convert it with to_bayesian first")
    hardware = replace_modules(
        copy.deepcopy(model), {n: _hardware_copy(model.get_submodule(n)) for n in names}
    )
    report = {
        n: _realise_layer(hardware.get_submodule(n), sampling, samples, generator) for n in names
    }
    return hardware.eval(), report


def resample(model: nn.Module, sampling: HardwareSampling, *, samples: int,
             generator: torch.Generator) -> dict[str, dict[str, float]]:  # fmt: skip
    """Draw new device realisations for every hardware layer of ``model`` (in place)."""
    return {
        name: _realise_layer(layer, sampling, samples, generator)
        for name, layer in model.named_modules()
        if isinstance(layer, _RealisedSamples)
    }
