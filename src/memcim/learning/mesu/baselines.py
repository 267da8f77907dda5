"""Continual-learning baselines for batch-1 SGD, as Bonnet et al. [23] ran them against MESU:
online elastic weight consolidation and synaptic intelligence.

Both add a quadratic penalty pulling each weight toward its value at the end of the previous
task, weighted by an importance estimated on the tasks seen so far. They plug into
:class:`memcim.learning.mesu.SGDLearner`, which calls :meth:`start_task` before each task,
:meth:`penalty` in every step, :meth:`observe` after every update and :meth:`end_task` after
each task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from memcim._errors import check_count, is_real, require


def _zero_like(params: list[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p) for p in params]


def _weighted_distance(
    params: list[Tensor], anchors: list[Tensor], weights: list[Tensor]
) -> Tensor:
    """Σ_i weight_i (θ_i − anchor_i)² over all parameter tensors."""
    total = params[0].new_zeros(())
    for p, a, w in zip(params, anchors, weights, strict=True):
        total = total + (w * (p - a).square()).sum()
    return total


class Regulariser:
    """No penalty: plain SGD. Subclasses hold an importance per weight and an anchor."""

    def penalty(self, params: list[Tensor]) -> Tensor | None:
        """The penalty added to the step's cost (``None``: nothing to add)."""
        return None

    def start_task(self, model: nn.Module) -> None:
        """Before a task."""

    def observe(self, grads: list[Tensor], moves: list[Tensor]) -> None:
        """After an update: the gradients it used and the moves Δθ it made."""

    def end_task(self, model: nn.Module, x: Tensor, y: Tensor) -> None:
        """After a task, with (a sample of) its training data."""


class OnlineEWC(Regulariser):
    """Online EWC (Schwarz et al. 2018): F ← γ·F + F_task after each task and a penalty
    (λ/2)·Σ F (θ − θ*)², θ* the weights at the end of the last task.

    F_task is the diagonal empirical Fisher: the mean over up to ``fisher_samples`` training
    images of the squared per-image gradient of the negative log-likelihood, computed in one
    vectorised pass (``torch.func.vmap`` of ``grad``).

    Args:
        importance: λ (Bonnet et al.'s pMNIST baseline: 2).
        decay: γ, the down-weighting of older tasks' Fisher (0.2).
        fisher_samples: images per Fisher estimate.
    """

    def __init__(self, importance: float = 2.0, decay: float = 0.2,
                 fisher_samples: int = 1000) -> None:  # fmt: skip
        require(is_real(importance) and importance >= 0, "importance", importance, ">= 0")
        require(is_real(decay) and 0 <= decay <= 1, "decay", decay, "in [0, 1]")
        self.importance, self.decay = importance, decay
        self.fisher_samples = check_count(fisher_samples, "fisher_samples", 1)
        self.fisher: list[Tensor] | None = None
        self.anchors: list[Tensor] | None = None

    def penalty(self, params: list[Tensor]) -> Tensor | None:
        if self.fisher is None:
            return None
        return 0.5 * self.importance * _weighted_distance(params, self.anchors, self.fisher)

    def end_task(self, model: nn.Module, x: Tensor, y: Tensor) -> None:
        fisher = empirical_fisher(model, x[: self.fisher_samples], y[: self.fisher_samples])
        if self.fisher is None:
            self.fisher = fisher
        else:
            self.fisher = [self.decay * old + new for old, new in zip(self.fisher, fisher,
                                                                       strict=True)]  # fmt: skip
        self.anchors = [p.detach().clone() for p in model.parameters()]


def empirical_fisher(model: nn.Module, x: Tensor, y: Tensor) -> list[Tensor]:
    """Diagonal empirical Fisher of ``model``: the mean over the images ``x`` of the squared
    per-image gradient of −log p(y|x), one tensor per parameter."""
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def nll(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        logits = functional_call(model, p, (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    per_image = vmap(grad(nll), in_dims=(None, 0, 0))(params, x, y)
    return [per_image[n].square().mean(0) for n in names]


class SynapticIntelligence(Regulariser):
    """Synaptic intelligence (Zenke et al. 2017): each weight's contribution to the decrease
    of the cost along its path, ω = −Σ_steps g·Δθ, turned at the end of each task into an
    importance Ω += relu(ω / (Δ² + ξ)) (Δ the move over the task), and a penalty
    c·Σ Ω (θ − θ*)².

    The path integral uses the gradient of the whole cost of the step (penalty included), as
    the authors' baseline does.

    Args:
        coefficient: c (Bonnet et al.: 1e-4).
        damping: ξ (1).
    """

    def __init__(self, coefficient: float = 1e-4, damping: float = 1.0) -> None:
        require(is_real(coefficient) and coefficient >= 0, "coefficient", coefficient, ">= 0")
        require(is_real(damping) and damping > 0, "damping", damping, "> 0")
        self.coefficient, self.damping = coefficient, damping
        self.omega: list[Tensor] | None = None
        self.anchors: list[Tensor] | None = None
        self.path: list[Tensor] = []
        self.task_start: list[Tensor] = []

    def penalty(self, params: list[Tensor]) -> Tensor | None:
        if self.omega is None:
            return None
        return self.coefficient * _weighted_distance(params, self.anchors, self.omega)

    def observe(self, grads: list[Tensor], moves: list[Tensor]) -> None:
        for w, g, d in zip(self.path, grads, moves, strict=True):
            w.sub_(g * d)

    def start_task(self, model: nn.Module) -> None:
        self.path = _zero_like(list(model.parameters()))
        self.task_start = [p.detach().clone() for p in model.parameters()]

    def end_task(self, model: nn.Module, x: Tensor, y: Tensor) -> None:
        params = [p.detach() for p in model.parameters()]
        if self.omega is None:
            self.omega = _zero_like(params)
        for o, w, p, p0 in zip(self.omega, self.path, params, self.task_start, strict=True):
            o.add_(torch.relu(w / ((p - p0).square() + self.damping)))
        self.anchors = [p.clone() for p in params]
