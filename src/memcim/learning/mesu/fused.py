"""Batch-1 MESU steps of a bias-free ReLU MLP without autograd: the gradients of the
Monte-Carlo cost written out by hand, and the MESU update fused with them.

The authors' protocol takes one example per step for up to 6·10⁷ steps (1000 epochs of MNIST).
At batch 1 the cost of :func:`~memcim.learning.mesu.mesu_step` is not arithmetic but
overhead: autograd's graph and two dozen small kernels over every weight matrix.
:class:`FusedMESULearner` computes the same step directly with local draws
(``draw="local"``: each layer draws its pre-activations, exactly the output distribution of
whole weight samples for one input, so the same expected gradient). For a layer with input h
(the example x, shared by the S samples, in the first layer), pre-activation
u = h μᵀ + √(h² σ²ᵀ) ε and upstream gradient g = ∂C/∂u:

    ∂C/∂μ = gᵀ h,    ∂C/∂σ = σ ⊙ (r ᵀ h²),    ∂C/∂h = g μ + h ⊙ (r σ²),    r = g ε / √(h² σ²ᵀ)

(sums over the samples; for the first layer both are outer products with x). The MESU
update follows in the same pass, with each layer's settings from the :class:`MESU`
optimiser. ``compile=True`` runs both through ``torch.compile`` (it needs a C++ compiler):
about 3x faster again on one CPU thread.

It draws its ε from the learner's generator in the order the autograd path does, so the two
follow the same trajectory up to float rounding (tested). μ and σ live in working copies
(σ itself, not ρ); :meth:`FusedMESULearner.sync` writes them back into the model, which
:meth:`~FusedMESULearner.probs`, :meth:`~FusedMESULearner.state_dict` and ``after_step`` do
first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcim._compile import compiled
from memcim._errors import ConfigError, require
from memcim.learning.mesu.optim import MESU, require_positive_sigma
from memcim.learning.mesu.stream import MESULearner


def mlp_layers(model: nn.Module) -> list[nn.Module]:
    """The Bayesian linear layers of ``model``, an ``nn.Sequential`` of bias-free
    :class:`~memcim.bayes.BayesianLinear` layers with an ``nn.ReLU`` between each two (as
    :func:`~memcim.learning.mesu.bayesian_mlp` builds); anything else raises
    :class:`ConfigError`."""
    from memcim.bayes import BayesianLinear

    modules = list(model) if isinstance(model, nn.Sequential) else []
    shape_ok = len(modules) % 2 == 1 and all(
        isinstance(m, BayesianLinear if i % 2 == 0 else nn.ReLU) for i, m in enumerate(modules)
    )
    if not shape_ok or any(m.bias_mu is not None for m in modules[::2]):
        raise ConfigError(
            "the fused MESU step takes an nn.Sequential of bias-free BayesianLinear layers with "
            f"an nn.ReLU between each two (bayesian_mlp); got {model!r}"
        )
    return modules[::2]


def _gradients(x: Tensor, target: Tensor, eps: list[Tensor], mus: list[Tensor],
               sigmas: list[Tensor]) -> tuple[Tensor, list[Tensor], list[Tensor]]:  # fmt: skip
    """The cost C (mean over the S samples of the cross-entropy) and, per layer, ∂C/∂μ and
    ∂C/∂σ, except the first layer's, which are the outer-product factors (Σ_s g, Σ_s r) of
    x and x²."""
    tiny = torch.finfo(x.dtype).tiny
    inputs, pre, std = [], [], []
    h = x
    for i, (mu, sigma, e) in enumerate(zip(mus, sigmas, eps, strict=True)):
        inputs.append(h)
        mean = F.linear(h, mu)  # [n] for the shared x, [S, n] after it
        s = F.linear(h.square(), sigma.square()).clamp_min(tiny).sqrt()
        u = mean + s * e
        pre.append(u)
        std.append(s)
        h = u.clamp_min(0) if i < len(mus) - 1 else u
    samples, one_hot = h.shape[0], F.one_hot(target, h.shape[-1]).to(h.dtype)
    cost = (torch.logsumexp(h, -1) - (h * one_hot).sum(-1)).mean()
    g = (torch.softmax(h, -1) - one_hot) / samples
    g_mu, g_sigma = [], []
    for i in range(len(mus) - 1, -1, -1):
        r = g * eps[i] / std[i]
        if i == 0:
            g_mu.append(g.sum(0))
            g_sigma.append(r.sum(0))
            break
        h = inputs[i]
        g_mu.append(g.T @ h)
        g_sigma.append(sigmas[i] * (r.T @ h.square()))
        g = (g @ mus[i] + h * (r @ sigmas[i].square())) * (pre[i - 1] > 0)
    return cost, g_mu[::-1], g_sigma[::-1]


def _update(mu: Tensor, sigma: Tensor, g_mu: Tensor, g_sigma: Tensor, settings: Tensor,
            ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """MESU's new (μ, σ) from ∂C/∂μ, ∂C/∂σ; ``settings`` = (lr_μ, lr_σ, c, μ_p, σ_p²,
    1/(N σ_p²)) as a tensor, so that compiled code does not specialise on them."""
    lr_mu, lr_sigma, clamp, prior_mu, prior_var, pull = settings.unbind()
    bound = torch.where(clamp > 0, clamp / sigma, torch.inf)
    g_mu = torch.minimum(torch.maximum(g_mu, -bound), bound)
    g_sigma = torch.minimum(torch.maximum(g_sigma, -bound), bound)
    var = sigma.square()
    d_mu = -var * g_mu + var * (prior_mu - mu) * pull
    d_sigma = 0.5 * (-var * g_sigma + sigma * (prior_var - var) * pull)
    return mu + lr_mu * d_mu, sigma + lr_sigma * d_sigma


def _first_update(mu: Tensor, sigma: Tensor, g: Tensor, r: Tensor, x: Tensor, settings: Tensor,
                  ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """:func:`_update` of the first layer, whose gradients are g xᵀ and σ ⊙ (r (x²)ᵀ)."""
    return _update(mu, sigma, torch.outer(g, x), sigma * torch.outer(r, x.square()), settings)


def _step(x: Tensor, target: Tensor, eps: list[Tensor], mus: list[Tensor],
          sigmas: list[Tensor], settings: list[Tensor],
          ) -> tuple[Tensor, list[Tensor], list[Tensor], Tensor]:  # fmt: skip
    """One whole step: the cost, every layer's new μ and σ, and the smallest new σ."""
    cost, g_mu, g_sigma = _gradients(x, target, eps, mus, sigmas)
    new = [_first_update(mus[0], sigmas[0], g_mu[0], g_sigma[0], x, settings[0])]
    new += [_update(*args) for args in zip(mus[1:], sigmas[1:], g_mu[1:], g_sigma[1:],
                                           settings[1:], strict=True)]  # fmt: skip
    smallest = torch.stack([sigma.min() for _, sigma in new]).min()
    return cost, [m for m, _ in new], [s for _, s in new], smallest


def _layer_settings(optimizer: MESU, layers: list[nn.Module]) -> list[Tensor]:
    """Each layer's MESU settings, from the optimiser's group that holds its μ."""
    groups = {id(g["params"][0]): g for g in optimizer.param_groups}
    out = []
    for i, layer in enumerate(layers):
        group = groups.get(id(layer.weight_mu))
        require(group is not None and group["params"][1] is layer.weight_rho and group["softplus"],
                f"optimizer (layer {i})", "no (weight_mu, weight_rho) group",
                "MESU.from_model(model)")  # fmt: skip
        prior_var = group["prior_sigma"] ** 2
        out.append(torch.tensor([group["lr_mu"], group["lr_sigma"], group["clamp_grad"],
                                 group["prior_mu"], prior_var,
                                 1.0 / (group["memory"] * prior_var)],
                                dtype=layer.weight_mu.dtype,
                                device=layer.weight_mu.device))  # fmt: skip
    return out


class FusedMESULearner(MESULearner):
    """:class:`MESULearner` with local draws whose batch-1 steps run without autograd (see
    the module docstring): the same updates up to float rounding, several times the samples
    per second.

    Args:
        model: a :func:`~memcim.learning.mesu.bayesian_mlp` (bias-free, ReLU).
        optimizer: ``MESU.from_model(model, ...)``; its settings are read once, here.
        samples, test_samples, generator, after_step: as :class:`MESULearner`.
        compile: run the step through ``torch.compile`` (needs a C++ compiler; the first
            step compiles, a few seconds).

    Raises:
        ConfigError: another architecture, an optimiser over other parameters, a batch other
            than one example, or a step that would make some σ non-positive.
    """

    def __init__(self, model: nn.Module, optimizer: MESU, *, samples: int = 10,
                 test_samples: int = 10, generator: torch.Generator,
                 after_step: Callable[[], object] | None = None,
                 compile: bool = False) -> None:  # fmt: skip
        super().__init__(model, optimizer, samples=samples, test_samples=test_samples,
                         generator=generator, draw="local", after_step=after_step)  # fmt: skip
        self._layers = mlp_layers(model)
        self._settings = _layer_settings(optimizer, self._layers)
        self._step = (
            compiled(_step, what="the fused MESU step", option="compile") if compile else _step
        )
        self._load_working_copies()

    def _load_working_copies(self) -> None:
        self._mu = [layer.weight_mu.detach().clone() for layer in self._layers]
        self._sigma = [layer.weight_sigma.detach().clone() for layer in self._layers]
        self._synced = True

    @torch.no_grad()
    def sync(self) -> None:
        """Write the working μ and σ into the model's parameters (σ as ρ)."""
        from memcim.bayes import inverse_softplus

        if not self._synced:
            for layer, mu, sigma in zip(self._layers, self._mu, self._sigma, strict=True):
                layer.weight_mu.copy_(mu)
                layer.weight_rho.copy_(inverse_softplus(sigma))
            self._synced = True

    def step(self, x: Tensor, y: Tensor) -> float:
        require(x.shape == (1, self._layers[0].in_features) and y.shape == (1,), "x, y",
                (tuple(x.shape), tuple(y.shape)),
                f"one example: [1, {self._layers[0].in_features}] and [1]")  # fmt: skip
        eps = [torch.randn(self.samples, layer.out_features, generator=self.generator,
                           dtype=x.dtype, device=x.device) for layer in self._layers]  # fmt: skip
        cost, mus, sigmas, smallest = self._step(x[0], y[0], eps, self._mu, self._sigma,
                                                 self._settings)  # fmt: skip
        require_positive_sigma(float(smallest) > 0)
        self._mu, self._sigma = mus, sigmas
        self._synced = False
        if self.after_step is not None:
            self.sync()
            self.after_step()
        return float(cost)

    def probs(self, x: Tensor) -> Tensor:
        self.sync()
        return super().probs(x)

    def state_dict(self) -> dict:
        """The learner's state; with the working σ, which ρ holds only up to rounding, so
        that a reloaded learner continues exactly."""
        self.sync()
        return {**super().state_dict(), "sigma": [s.clone() for s in self._sigma]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._load_working_copies()
        if "sigma" in state:
            require(len(state["sigma"]) == len(self._sigma) and all(
                a.shape == b.shape for a, b in zip(state["sigma"], self._sigma, strict=True)),
                "state['sigma']", [tuple(s.shape) for s in state["sigma"]],
                f"the shapes {[tuple(s.shape) for s in self._sigma]}")  # fmt: skip
            self._sigma = [s.clone() for s in state["sigma"]]
