"""Aleatoric and epistemic parts of a world model's predictive variance (Lin et al. [9]).

A Bayesian network with a latent input z predicts the next state y'. Drawing M latent values
and N weight sets gives predictions y'[m, n]. For each latent draw the spread over the
weights is what the model does not know (epistemic); the spread over the latent draws of the
weight-averaged prediction is the environment's own noise (aleatoric):

    aleatoric = Var_z( E_W[y'] ),   epistemic = E_z[ Var_W(y') ]

With population variances over the M × N grid the two add up exactly to the total variance
of the M·N predictions (the law of total variance).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from memcim._errors import ConfigError


@dataclass(frozen=True)
class VarianceSplit:
    """Per point and output dimension ([..., D]), in the output's units squared.

    Attributes:
        aleatoric: Var_z(E_W[y']).
        epistemic: E_z[Var_W(y')].
        total: the variance of all M·N predictions, = aleatoric + epistemic.
    """

    aleatoric: Tensor
    epistemic: Tensor
    total: Tensor


def split_variance(draws: Tensor) -> VarianceSplit:
    """Split the variance of predictions ``draws`` [M, N, ...] (M latent draws, the first
    dimension; N weight draws, the second) into its aleatoric and epistemic parts.

    Raises:
        ConfigError: fewer than two dimensions, M or N below 1, or a non-finite draw.
    """
    if not isinstance(draws, Tensor) or draws.dim() < 2 or min(draws.shape[:2]) < 1:
        shape = tuple(draws.shape) if isinstance(draws, Tensor) else type(draws).__name__
        raise ConfigError(f"draws={shape} is invalid: a tensor [M latent, N weight, ...]")
    if not bool(draws.isfinite().all()):
        raise ConfigError("draws contain NaN or infinite predictions")
    aleatoric = draws.mean(1).var(0, correction=0)
    epistemic = draws.var(1, correction=0).mean(0)
    total = draws.flatten(0, 1).var(0, correction=0)
    return VarianceSplit(aleatoric=aleatoric, epistemic=epistemic, total=total)
