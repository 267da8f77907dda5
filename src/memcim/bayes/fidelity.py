"""How faithfully realised weight samples follow their target Gaussians.

For every weight with target N(μ, σ²) and S realised samples, the samples are standardised,
z = (w − μ)/σ, and compared with N(0, 1):

* ``mean_error``: (mean(w) − μ)/σ, the mean error in units of the target σ;
* ``sigma_rel_error``: std(w)/σ − 1;
* ``wasserstein``: the 1-Wasserstein distance between the empirical z and N(0, 1), from sorted
  samples against normal quantiles at (i + ½)/S (the exact W1 of the empirical distribution to
  the discretised normal; → the continuous W1 as S grows), in units of σ;
* ``ks``: the Kolmogorov–Smirnov statistic sup |F_S(z) − Φ(z)|.

Each is reported as statistics over weights (mean, median, 95th percentile of |·|).
:func:`versus_time` repeats the measurement for a posterior programmed for one read time and
read at later times (drift and relaxation).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from memcim._errors import ConfigError
from memcim.bayes.sampled import realise
from memcim.bayes.schemes import HardwareSampling


def per_weight(samples: Tensor, mu: Tensor, sigma: Tensor) -> dict[str, Tensor]:
    """Fidelity measures per weight.

    Args:
        samples: realised weights [S, ...] (S >= 2).
        mu, sigma: target mean and std, broadcastable to ``samples.shape[1:]``; σ > 0.

    Returns:
        ``mean_error``, ``sigma_rel_error``, ``wasserstein``, ``ks``, each of shape
        ``samples.shape[1:]``.
    """
    if samples.dim() < 1 or samples.shape[0] < 2:
        raise ConfigError(f"samples must have a leading sample dimension >= 2, got {samples.shape}")
    if not bool((sigma > 0).all()):
        raise ConfigError("sigma must be > 0 for every weight to measure fidelity")
    s = samples.shape[0]
    z = ((samples - mu) / sigma).double()
    z_sorted = z.sort(dim=0).values
    levels = (torch.arange(s, dtype=torch.float64) + 0.5) / s
    shape = (s,) + (1,) * (z.dim() - 1)
    quantiles = torch.special.ndtri(levels).view(shape)
    cdf = torch.special.ndtr(z_sorted)
    upper = torch.arange(1, s + 1, dtype=torch.float64).view(shape) / s
    lower = torch.arange(0, s, dtype=torch.float64).view(shape) / s
    ks = torch.maximum((upper - cdf).abs(), (cdf - lower).abs()).amax(0)
    return {
        "mean_error": z.mean(0).float(),
        "sigma_rel_error": (z.std(0) - 1.0).float(),
        "wasserstein": (z_sorted - quantiles).abs().mean(0).float(),
        "ks": ks.float(),
    }


def summary(samples: Tensor, mu: Tensor, sigma: Tensor) -> dict[str, float]:
    """Statistics over weights of :func:`per_weight`: mean, median and 95th percentile of |·|."""
    out: dict[str, float] = {}
    for name, values in per_weight(samples, mu, sigma).items():
        mag = values.abs().flatten()
        out[f"{name}_mean"] = float(values.mean())
        out[f"{name}_abs_median"] = float(mag.median())
        out[f"{name}_abs_p95"] = float(mag.kthvalue(max(1, int(0.95 * mag.numel()))).values)
    return out


def versus_time(
    mu: Tensor,
    sigma: Tensor,
    sampling: HardwareSampling,
    times_s: tuple[float, ...],
    *,
    samples: int,
    generator: torch.Generator,
) -> dict[float, dict[str, float]]:
    """:func:`summary` of samples programmed for ``sampling.t_s`` and read at each later time.

    The programming conditions (medians, scale) are those chosen for ``sampling.t_s``
    (``design_t_s``); each entry realises fresh samples read ``t`` seconds after programming, so
    the trend shows what drift and relaxation do to a posterior nobody re-tunes.

    Args:
        mu, sigma: target Gaussians (weight units), σ > 0.
        sampling: scheme and device; its ``t_s`` is the design time.
        times_s: read times (s), each >= 0.
        samples: S >= 2 per time.
        generator: randomness of every programming and read.

    Returns:
        ``{t: summary}`` in the order of ``times_s``.
    """
    design = sampling.t_s if sampling.design_t_s is None else sampling.design_t_s
    out = {}
    for t in times_s:
        at_t = dataclasses.replace(sampling, t_s=t, design_t_s=design)
        drawn = realise(mu, sigma, at_t, samples, generator=generator)
        out[t] = summary(drawn.samples, mu.detach().float(), sigma.detach().float())
    return out
