"""``AdamMeta``: Adam whose steps toward a quantisation boundary shrink as a hidden weight
consolidates (Laborieux et al. [22]; multi-level reading after D'Agostino et al. [21])."""

from __future__ import annotations

import torch
from torch import Tensor

from memcim._errors import is_real, require
from memcim.learning.metaplastic.layers import level_values


def meta_factor(w_hidden: Tensor, step: Tensor, meta: float, levels: int = 2) -> Tensor:
    """The factor f_meta applied to each hidden weight's step.

    A step that moves W_h toward the boundary it would have to cross to change its quantised
    level is multiplied by f_meta = 1 − tanh²(m · d), d the distance from W_h to that boundary;
    other steps are not changed (factor 1). For 2 levels the boundary is 0 and d = |W_h|
    (Laborieux et al.); for more levels every quantisation interval has its own boundaries, the
    midpoints between levels (one meta-function per interval, our reading of D'Agostino et al.).

    Args:
        w_hidden: hidden weights.
        step: the step about to be *added* to them (same shape).
        meta: m >= 0 (0: plain steps).
        levels: quantisation levels.
    """
    if levels == 2:
        toward = torch.sign(w_hidden) * step < 0
        distance = w_hidden.abs()
    else:
        values = level_values(levels, w_hidden.device).to(w_hidden)
        bounds = (values[1:] + values[:-1]) / 2  # the thresholds between levels
        # Nearest boundary in the direction of the step: above for a positive step.
        up = torch.searchsorted(bounds, w_hidden.contiguous(), right=True)  # first bound > w
        down = up - 1  # last bound <= w
        above = bounds[up.clamp(max=bounds.numel() - 1)]
        below = bounds[down.clamp(min=0)]
        has_above, has_below = up < bounds.numel(), down >= 0
        toward = torch.where(step > 0, has_above, has_below) & (step != 0)
        distance = torch.where(step > 0, above - w_hidden, w_hidden - below).abs()
    factor = 1 - torch.tanh(meta * distance) ** 2
    return torch.where(toward, factor, torch.ones_like(factor))


class AdamMeta(torch.optim.Optimizer):
    """Adam with metaplastic attenuation of the hidden weights' steps.

    Moments and bias corrections as ``torch.optim.Adam`` (weight decay added to the gradient,
    L2); for every parameter of 2 or more dimensions (hidden weights) the step is scaled by
    :func:`meta_factor`; 1-D parameters (BatchNorm) take plain Adam steps. With ``meta=0`` it
    equals ``torch.optim.Adam`` step for step.

    Args:
        params: parameters or parameter groups.
        lr, betas, eps, weight_decay: as ``torch.optim.Adam`` (Laborieux et al.: 0.005,
            (0.9, 0.999), 1e-8, 1e-7).
        meta: metaplasticity m >= 0.
        levels: quantisation levels of the hidden weights (2 = binarized).
    """

    def __init__(self, params, lr: float = 0.005, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, meta: float = 0.0,
                 levels: int = 2) -> None:  # fmt: skip
        require(is_real(lr) and lr > 0, "lr", lr, "a finite number > 0")
        require(all(is_real(b) and 0 <= b < 1 for b in betas), "betas", betas, "each in [0, 1)")
        require(is_real(eps) and eps > 0, "eps", eps, "a finite number > 0")
        require(is_real(weight_decay) and weight_decay >= 0, "weight_decay", weight_decay, ">= 0")
        require(is_real(meta) and meta >= 0, "meta", meta, "a finite number >= 0")
        require(isinstance(levels, int) and 2 <= levels <= 16, "levels", levels, "2 to 16")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, meta=meta,
                        levels=levels)  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias1 = 1 - beta1 ** state["step"]
                bias2_sqrt = (1 - beta2 ** state["step"]) ** 0.5
                denom = (v.sqrt() / bias2_sqrt).add_(group["eps"])
                update = m / denom * (-group["lr"] / bias1)
                if p.dim() > 1 and group["meta"] > 0:
                    update = update * meta_factor(p, update, group["meta"], group["levels"])
                p.add_(update)
        return loss
