"""Bayesian neural networks for compute-in-memory: variational layers and MC prediction.

- :class:`BayesianLinear`, :class:`BayesianConv2d`: mean-field Gaussian layers (μ, ρ,
  σ = softplus(ρ)) with a Gaussian prior (:class:`BayesConfig`), trained by reparameterisation
  or local reparameterisation, with a Monte-Carlo sample dimension (``layer(x, samples=S)``).
- :func:`to_bayesian`: convert a trained model's ``nn.Linear``/``nn.Conv2d`` layers.
- :func:`forward_samples` / :func:`mc_sampling`: S samples of a whole model in one forward,
  folded into the batch (plain modules in between see ``[S·N, ...]``).
- :func:`predict`: predictive ``[S, N, C]`` with total / aleatoric / epistemic entropy (nats).
- :func:`model_kl`, :func:`elbo_loss`, :func:`elbo_objective`, :func:`train_elbo`: training.
- :class:`SamplingScheme`, :class:`HardwareSampling`: weight samples drawn by the devices
  themselves; :class:`SampledMatrix` holds one matrix's samples as tile state and multiplies
  them on the tiles; :func:`to_hardware` puts a trained model on tiles that way;
  :func:`realise` reads the samples a tile holds; :mod:`memcim.bayes.fidelity` measures how
  well they follow N(μ, σ²).
- :class:`DeviceAware` (``train_elbo(..., device_aware=)``), :func:`realisable_sigma`,
  :func:`technological_loss`, :func:`project_sigma_`, :func:`feasible_fraction`: device-aware
  training, keeping each σ within what the devices realise at its μ.
"""

from memcim.bayes import fidelity
from memcim.bayes.convert import to_bayesian
from memcim.bayes.device_aware import (
    DeviceAware,
    SigmaRange,
    feasible_fraction,
    project_sigma_,
    realisable_ranges,
    realisable_sigma,
    sigma_projection,
    technological_loss,
    technological_penalty,
)
from memcim.bayes.hardware import (
    HardwareBayesianConv2d,
    HardwareBayesianLinear,
    hardware_layers,
    read_at,
    resample,
    to_hardware,
)
from memcim.bayes.layers import (
    BayesConfig,
    BayesianConv2d,
    BayesianLayer,
    BayesianLinear,
    bayesian_layers,
    forward_samples,
    inverse_softplus,
    mc_sampling,
    model_kl,
    seed,
    set_eval_mode,
)
from memcim.bayes.predict import Predictive, predict
from memcim.bayes.sampled import Programming, SampledMatrix, SamplerCounters, realise
from memcim.bayes.schemes import HardwareSampling, Realisation, SamplingScheme
from memcim.bayes.train import elbo_loss, elbo_objective, train_elbo

__all__ = [
    "BayesConfig",
    "BayesianConv2d",
    "BayesianLayer",
    "BayesianLinear",
    "DeviceAware",
    "HardwareBayesianConv2d",
    "HardwareBayesianLinear",
    "HardwareSampling",
    "Predictive",
    "Programming",
    "Realisation",
    "SampledMatrix",
    "SamplerCounters",
    "SamplingScheme",
    "SigmaRange",
    "bayesian_layers",
    "elbo_loss",
    "elbo_objective",
    "feasible_fraction",
    "fidelity",
    "forward_samples",
    "hardware_layers",
    "inverse_softplus",
    "mc_sampling",
    "model_kl",
    "predict",
    "project_sigma_",
    "read_at",
    "realisable_ranges",
    "realisable_sigma",
    "realise",
    "resample",
    "seed",
    "set_eval_mode",
    "sigma_projection",
    "technological_loss",
    "technological_penalty",
    "to_bayesian",
    "to_hardware",
    "train_elbo",
]
