"""Software references for the in-situ sampler: Gaussian random-walk MH and NUTS (Pyro).

Both sample the same models (:mod:`memcim.learning.network`) with the same Gaussian prior on the
weights, in float arithmetic, so that :class:`memcim.learning.InSituMCMC` can be compared with
(a) the textbook sampler whose randomness is a software Gaussian and (b) a gold-standard
posterior. Pyro is an optional extra (``pip install memcim[pyro]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from memcim._errors import ConfigError, check_count, is_real, require
from memcim.learning import network
from memcim.learning.network import Activation


@dataclass(frozen=True, kw_only=True)
class GaussianMHConfig:
    """Random-walk Metropolis with isotropic Gaussian proposals on all weights at once.

    Attributes:
        layers, activation, chains, steps, burn_in, thin, prior_std: as in
            :class:`~memcim.learning.InSituMCMCConfig`.
        step_size: initial proposal std (weight units).
        target_acceptance: during the burn-in each chain's step size is adapted toward this
            acceptance rate (0.234, optimal for random-walk Metropolis in many dimensions,
            Roberts, Gelman & Gilks 1997); fixed afterwards, so the kept samples come from a
            valid Markov chain.
    """

    layers: tuple[int, ...] = (30, 1)
    activation: Activation = "tanh"
    chains: int = 8
    steps: int = 3000
    burn_in: int = 1000
    thin: int = 20
    prior_std: float | None = 1.0
    step_size: float = 0.05
    target_acceptance: float = 0.234

    def __post_init__(self) -> None:
        name = "GaussianMHConfig"
        network.check_chains(self, name)
        require(is_real(self.step_size) and self.step_size > 0, f"{name}.step_size",
                self.step_size, "must be > 0")  # fmt: skip
        require(0 < self.target_acceptance < 1, f"{name}.target_acceptance",
                self.target_acceptance, "must be in (0, 1)")  # fmt: skip


@dataclass
class Posterior:
    """Weight samples of a model and how they were drawn.

    Attributes:
        weights: one tensor per layer, [chains, samples, out, in + 1].
        activation: hidden-layer nonlinearity of the model.
        acceptance_rate: accepted / proposed (MH), or NUTS's mean acceptance probability.
    """

    weights: list[Tensor]
    activation: str
    acceptance_rate: float

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities [N, classes] averaged over every sample."""
        probs = network.probabilities(network.forward(self.weights, x.float(), self.activation))
        return probs.mean(dim=(0, 1))


def gaussian_mh(
    config: GaussianMHConfig,
    x: Tensor,
    y: Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Posterior:
    """Run ``config.chains`` random-walk Metropolis chains at once (vectorised over chains)."""
    cfg = config
    x, y = network.check_data(x, y, cfg.layers)
    shapes = network.shapes(cfg.layers)
    sizes = [o * i for o, i in shapes]

    def unflatten(theta: Tensor) -> list[Tensor]:
        parts = theta.split(sizes, dim=-1)
        return [p.reshape(*theta.shape[:-1], o, i) for p, (o, i) in zip(parts, shapes,
                                                                         strict=True)]  # fmt: skip

    def log_post(theta: Tensor) -> Tensor:
        w = unflatten(theta)
        lik = network.log_likelihood(network.forward(w, x, cfg.activation), y)
        return lik + network.gaussian_log_prior(w, cfg.prior_std)

    scale = cfg.prior_std if cfg.prior_std is not None else 1.0
    theta = torch.randn(cfg.chains, sum(sizes), generator=generator) * scale
    current = log_post(theta)
    log_step = torch.full((cfg.chains,), math.log(cfg.step_size))
    accepted = torch.zeros(cfg.chains)
    kept: list[Tensor] = []
    for step in tqdm(
        range(cfg.steps), desc="software MH", disable=None if progress else True, leave=False
    ):
        noise = torch.randn(theta.shape, generator=generator, device=theta.device)
        proposal = theta + log_step.exp().unsqueeze(-1) * noise
        new = log_post(proposal)
        accept = torch.log(torch.rand(cfg.chains, generator=generator)) < new - current
        theta = torch.where(accept.unsqueeze(-1), proposal, theta)
        current = torch.where(accept, new, current)
        if step < cfg.burn_in:
            # Robbins–Monro toward the target acceptance, with a decaying gain.
            log_step += (accept.float() - cfg.target_acceptance) / math.sqrt(step + 1)
        else:
            accepted += accept
            if (step - cfg.burn_in) % cfg.thin == 0:
                kept.append(theta)
    weights = unflatten(torch.stack(kept, dim=1))
    rate = float(accepted.sum()) / (cfg.chains * (cfg.steps - cfg.burn_in))
    return Posterior(weights, cfg.activation, rate)


def nuts(
    layers: tuple[int, ...],
    x: Tensor,
    y: Tensor,
    *,
    prior_std: float = 1.0,
    activation: str = "tanh",
    samples: int = 300,
    warmup: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> Posterior:
    """The No-U-Turn sampler (Pyro) on the same model and prior: one chain, float64.

    Pyro draws from the global random state; it is seeded with ``seed`` inside
    :func:`torch.random.fork_rng`, so the caller's global state is left as it was.

    Raises:
        ConfigError: Pyro is not installed (``pip install memcim[pyro]``).
    """
    try:
        import pyro
        import pyro.distributions as dist
        from pyro.infer import MCMC, NUTS
    except ImportError as err:
        raise ConfigError("NUTS needs Pyro: pip install 'memcim[pyro]' (pyro-ppl)") from err
    network.check_layers(layers, "layers")
    network.check_activation(activation, "activation")
    x, y = network.check_data(x, y, layers)
    check_count(samples, "samples", 1)
    check_count(warmup, "warmup", 1)
    shapes = network.shapes(layers)
    xd = x.double()

    def model() -> None:
        w = [
            pyro.sample(
                f"w{i}", dist.Normal(torch.zeros(o, n, dtype=torch.float64), prior_std).to_event(2)
            )
            for i, (o, n) in enumerate(shapes)
        ]
        logits = network.forward(w, xd, activation)
        pyro.factor("log_likelihood", network.log_likelihood(logits, y))

    with torch.random.fork_rng():
        pyro.set_rng_seed(seed)
        pyro.clear_param_store()
        kernel = NUTS(model)
        mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=not progress)
        mcmc.run()
    drawn = mcmc.get_samples()
    weights = [drawn[f"w{i}"].float().unsqueeze(0) for i in range(len(shapes))]
    rate = float(mcmc.diagnostics().get("acceptance rate", {}).get("chain 0", math.nan))
    return Posterior(weights, activation, rate)
