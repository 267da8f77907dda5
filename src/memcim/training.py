"""The shared supervised training loop and evaluation.

Plain PyTorch with nothing of memcim's below it, so that every layer of the library (the
Bayesian layers' ELBO training, the experiments) trains through the same loop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


@torch.no_grad()
def init_default_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """PyTorch's default init of every ``nn.Linear`` / ``nn.Conv2d``, from ``generator``.

    Weights and biases ~ U(±1/√fan_in), drawn layer by layer in module order (weight, then
    bias), so a model's initial weights depend on the seed only, never on the global RNG.
    """
    for layer in model.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            bound = layer.weight[0].numel() ** -0.5
            for p in (layer.weight, layer.bias):
                if p is not None:
                    p.copy_(
                        (torch.rand(p.shape, generator=generator, device=p.device) * 2 - 1) * bound
                    )
    return model


def cross_entropy_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of ``model(x)`` against labels ``y``."""
    return F.cross_entropy(model(x), y)


def train(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    loss_fn: LossFn | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    desc: str = "train",
    progress: bool = True,
) -> nn.Module:
    """Adam in train mode, reshuffled with ``generator`` every epoch.

    The learning rate decays from ``lr`` to 0 along a cosine over all steps, so the last
    weights are converged rather than wherever a constant step size left them.

    Args:
        model: trained in place and returned.
        x, y: training inputs [D, ...] and integer labels [D].
        epochs, lr, batch_size: the schedule.
        generator: shuffles the training set.
        loss_fn: ``loss_fn(model, x_batch, y_batch) -> scalar``; default cross-entropy of
            ``model(x_batch)`` (e.g. :func:`memcim.bayes.elbo_objective` for Bayesian models).
        after_step: ``after_step(model)`` called after every optimizer step, e.g. to project
            parameters onto a constraint (:func:`memcim.bayes.sigma_projection`); its changes
            are not seen by Adam's moment estimates. ``None``: nothing.
        desc, progress: progress-bar label; shown on a terminal only.
    """
    if loss_fn is None:
        loss_fn = cross_entropy_loss
    model.train()
    n = len(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=epochs * math.ceil(n / batch_size)
    )
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator, device=generator.device)
        bar = tqdm(
            range(0, n, batch_size),
            desc=f"{desc} {epoch + 1}/{epochs}",
            disable=None if progress else True,  # None: silent when not a TTY
            leave=False,
        )
        for i, start in enumerate(bar):
            idx = order[start : start + batch_size]
            loss = loss_fn(model, x[idx], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step(model)
            sched.step()
            if i % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> float:
    """Top-1 accuracy in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(-1) == y[start : start + batch_size]).sum())
    return correct / len(y)


def save_atomic(path: str | os.PathLike[str], state: dict) -> None:
    """``torch.save`` through a temporary file, so an interrupted save leaves the old one."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
