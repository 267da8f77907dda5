"""MESU, Metaplasticity from Synaptic Uncertainty (Bonnet et al. [23]): a Bayesian update of
each weight's mean μ and standard deviation σ with a memory window N.

For a cost C (the negative log-likelihood, summed over the batch and averaged over the
Monte-Carlo weight samples w = μ + σ ε), every step moves

    Δμ = lr_μ · [ −σ² ∂C/∂μ + σ² (μ_p − μ) / (N σ_p²) ]
    Δσ = lr_σ · ½ · [ −σ² ∂C/∂σ + σ (σ_p² − σ²) / (N σ_p²) ]

(the authors' JAX permuted-MNIST code). σ² preconditions the learning: uncertain weights move,
certain ones are consolidated. The prior terms pull μ and σ back toward (μ_p, σ_p) at a rate
set by N, so the network forgets what it has not seen for about N samples (N counts samples
because C is a sum over them); N = ∞ never forgets.

With ``clamp_grad = c > 0`` every gradient is first clipped to ±c/σ (the authors' MNIST
out-of-distribution runs use c = 0.1), so that a single batch-1 sample cannot move a weight by
more than c·σ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcim._errors import ConfigError, is_real, require


def is_memory_window(value: object) -> bool:
    """Whether ``value`` is a memory window N: a number > 0, ``math.inf`` allowed (no
    forgetting); not a bool, not NaN."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and value > 0 and not math.isnan(value)


class MESU(torch.optim.Optimizer):
    """The MESU update of (μ, σ) pairs.

    Args:
        pairs: ``(mu, s)`` parameter pairs of the same shape, where ``s`` is σ itself
            (``softplus=False``) or ρ with σ = softplus(ρ) (``softplus=True``, the
            parameterisation of :mod:`memcim.bayes` layers; see :meth:`from_model`).
        lr_mu, lr_sigma: learning rates of μ and σ (the authors: 1 and 1).
        memory: the memory window N in samples (> 0; ``math.inf``: no forgetting).
        prior_mu, prior_sigma: the prior (μ_p, σ_p) (pMNIST: 0 and 1).
        clamp_grad: c >= 0; each gradient is clipped to ±c/σ before the step (0: no clipping).
        softplus: how ``s`` parameterises σ.

    Raises:
        ConfigError: bad settings, pairs of different shapes, or a step that would make some
            σ non-positive (lower ``lr_sigma``); nothing is clipped silently.
    """

    def __init__(self, pairs: Iterable[tuple[Tensor, Tensor]], *, lr_mu: float = 1.0,
                 lr_sigma: float = 1.0, memory: float = 300_000.0, prior_mu: float = 0.0,
                 prior_sigma: float = 1.0, clamp_grad: float = 0.0,
                 softplus: bool = False) -> None:  # fmt: skip
        for name, value in (("lr_mu", lr_mu), ("lr_sigma", lr_sigma)):
            require(is_real(value) and value >= 0, name, value, "a finite number >= 0")
        require(is_memory_window(memory), "memory", memory,
                "a number of samples > 0 (math.inf: no forgetting)")  # fmt: skip
        require(is_real(prior_mu), "prior_mu", prior_mu, "a finite number")
        require(is_real(prior_sigma) and prior_sigma > 0, "prior_sigma", prior_sigma, "> 0")
        require(is_real(clamp_grad) and clamp_grad >= 0, "clamp_grad", clamp_grad,
                "a finite number >= 0 (0: no clipping)")  # fmt: skip
        groups = []
        for mu, s in pairs:
            if mu.shape != s.shape:
                raise ConfigError(f"MESU pairs need one shape; got {tuple(mu.shape)} and "
                                  f"{tuple(s.shape)}")  # fmt: skip
            groups.append({"params": [mu, s]})
        require(len(groups) >= 1, "pairs", groups, "at least one (mu, sigma) pair")
        defaults = dict(lr_mu=lr_mu, lr_sigma=lr_sigma, memory=float(memory),
                        prior_mu=prior_mu, prior_sigma=prior_sigma, clamp_grad=clamp_grad,
                        softplus=softplus)  # fmt: skip
        super().__init__(groups, defaults)

    @classmethod
    def from_model(cls, model: nn.Module, **settings) -> MESU:
        """MESU over every ``*_mu`` / ``*_rho`` pair of the model's Bayesian layers
        (``memcim.bayes``: σ = softplus(ρ))."""
        params = dict(model.named_parameters())
        pairs = [(params[n], params[n[: -len("_mu")] + "_rho"]) for n in params
                 if n.endswith("_mu") and n[: -len("_mu")] + "_rho" in params]  # fmt: skip
        if not pairs:
            raise ConfigError("the model has no *_mu / *_rho parameter pairs (Bayesian layers)")
        return cls(pairs, softplus=True, **settings)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            mu, s = group["params"]
            sigma = F.softplus(s) if group["softplus"] else s
            g_mu = torch.zeros_like(mu) if mu.grad is None else mu.grad
            g_s = torch.zeros_like(s) if s.grad is None else s.grad
            # ∂C/∂σ from ∂C/∂ρ: dσ/dρ = sigmoid(ρ).
            g_sigma = g_s / torch.sigmoid(s) if group["softplus"] else g_s
            if group["clamp_grad"] > 0:
                bound = group["clamp_grad"] / sigma
                g_mu, g_sigma = g_mu.clamp(-bound, bound), g_sigma.clamp(-bound, bound)
            prior_var, n = group["prior_sigma"] ** 2, group["memory"]
            var = sigma.square()
            d_mu = -var * g_mu + var * (group["prior_mu"] - mu) / (n * prior_var)
            d_sigma = 0.5 * (-var * g_sigma + sigma * (prior_var - var) / (n * prior_var))
            new_sigma = sigma + group["lr_sigma"] * d_sigma
            require_positive_sigma(bool((new_sigma > 0).all()))
            mu.add_(group["lr_mu"] * d_mu)
            s.copy_(_inverse_softplus(new_sigma) if group["softplus"] else new_sigma)
        return loss


def require_positive_sigma(positive: bool) -> None:
    """Refuse a MESU step whose new σ are not all positive (``positive`` False)."""
    if not positive:
        raise ConfigError("a MESU step would make some σ <= 0: lower lr_sigma (or the gradients)")


def _inverse_softplus(sigma: Tensor) -> Tensor:
    """ρ with softplus(ρ) = σ (σ > 0), stable for small and large σ."""
    return sigma + torch.log(-torch.expm1(-sigma))


def mc_cost(model: nn.Module, x: Tensor, y: Tensor, samples: int, *,
            generator: torch.Generator | None = None, draw: str = "weights") -> Tensor:  # fmt: skip
    """MESU's cost C: the negative log-likelihood summed over the batch and averaged over
    ``samples`` Monte-Carlo samples, computed in one batched forward over the samples
    (:func:`memcim.bayes.forward_samples`).

    Args:
        draw: ``"weights"`` (default, the authors' estimator): each sample is one whole weight
            set w = μ + σ ε, shared by the batch. ``"local"``: every fully connected layer
            draws its pre-activations instead (local reparameterisation). For one input this
            is exactly the output distribution of whole weight samples, so at batch 1 both
            estimate the gradient of the same expected cost without bias; they differ in
            variance (and the local one needs S·out instead of S·out·in random numbers: about
            4x faster at batch 1). With a batch > 1 the local draws are not shared by the
            batch: a different estimator, not the authors'.

    Raises:
        ConfigError: ``draw`` is neither, or a Bayesian layer trains with the ``"local"``
            estimator while ``draw="weights"`` (build them with
            ``BayesConfig(estimator="reparam")``).
    """
    from memcim.bayes import bayesian_layers, forward_samples

    require(draw in ("weights", "local"), "draw", draw, "'weights' or 'local'")
    local = [type(m).__name__ for m in bayesian_layers(model) if m.config.estimator != "reparam"]
    if model.training and local and draw == "weights":
        raise ConfigError(
            f"MESU samples whole weights shared by the batch, but {local} use the "
            "'local' estimator: build them with BayesConfig(estimator='reparam')"
        )
    logits = forward_samples(model, x, samples, generator=generator, draw=draw)  # [S, N, C]
    nll = F.cross_entropy(logits.flatten(0, 1), y.repeat(samples), reduction="sum")
    return nll / samples


def mesu_step(model: nn.Module, optimizer: MESU, x: Tensor, y: Tensor, samples: int, *,
              generator: torch.Generator | None = None,
              draw: str = "weights") -> float:  # fmt: skip
    """One MESU update on the batch ``(x, y)`` (batch 1 in the authors' protocol); returns C.
    ``draw``: see :func:`mc_cost`."""
    optimizer.zero_grad(set_to_none=True)
    cost = mc_cost(model, x, y, samples, generator=generator, draw=draw)
    cost.backward()
    optimizer.step()
    return float(cost.detach())
