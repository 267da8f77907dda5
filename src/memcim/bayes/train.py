"""The evidence lower bound (ELBO) as a loss, and a training loop mirroring the shared one.

Loss per mini-batch (the negative ELBO divided by the training-set size D)::

    L = mean over samples s and batch rows n of −log p(y_n | x_n, w_s)  +  kl_weight · KL(q‖p) / D

The full-data negative ELBO is Σ_n E_q[−log p(y_n | x_n, w)] + KL(q‖p); dividing it by D makes
the KL a cost *per training example*, on the scale of the mean cross-entropy, and a mini-batch
mean of the NLL is an unbiased estimate of the first term divided by D. ``kl_weight`` < 1 tempers
the posterior (a common, documented departure from the exact ELBO).

Device-aware training (:class:`~memcim.bayes.device_aware.DeviceAware`, the "technological
loss" of [8]) keeps every σ realisable by a chosen device and mapping: ``"penalty"`` adds
``weight · Σ d² / D`` (d the log-distance of each σ to its realisable interval; scaled like the
KL) to L; ``"project"`` clamps σ into the interval after every optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcim._errors import ConfigError, is_int, is_real, require
from memcim.bayes.device_aware import (
    DeviceAware,
    project_sigma_,
    sigma_projection,
    technological_penalty,
)
from memcim.bayes.layers import forward_samples, model_kl
from memcim.training import train

LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


def elbo_loss(
    logits_or_samples: Tensor,
    y: Tensor,
    kl: Tensor | float,
    dataset_size: int,
    *,
    kl_weight: float = 1.0,
) -> Tensor:
    """Negative ELBO per training example: mean NLL + kl_weight · KL / dataset_size.

    Args:
        logits_or_samples: logits ``[N, C]`` (one weight sample) or ``[S, N, C]`` (S samples;
            the NLL is averaged over samples too, a Monte-Carlo estimate of E_q[NLL]).
        y: labels ``[N]`` (int64).
        kl: KL(q‖p) in nats for the whole model (e.g. :func:`model_kl`).
        dataset_size: number D of training examples the KL is spread over.
        kl_weight: multiplier of the KL term, >= 0 (1 = the ELBO).

    Returns:
        The loss, a 0-d tensor in nats per example.
    """
    require(is_int(dataset_size) and dataset_size >= 1, "dataset_size", dataset_size, ">= 1")
    require(is_real(kl_weight) and kl_weight >= 0, "kl_weight", kl_weight, "finite and >= 0")
    logits = logits_or_samples
    if logits.dim() not in (2, 3) or y.dim() != 1 or logits.shape[-2] != y.shape[0]:
        raise ConfigError(
            f"elbo_loss needs logits [N, C] or [S, N, C] and labels [N]; got "
            f"{tuple(logits.shape)} and {tuple(y.shape)}"
        )
    if logits.dim() == 3:
        y = y.expand(logits.shape[0], -1).reshape(-1)
        logits = logits.reshape(-1, logits.shape[-1])
    return F.cross_entropy(logits, y) + kl_weight * kl / dataset_size


def _check_device_aware(device_aware: object) -> None:
    require(device_aware is None or isinstance(device_aware, DeviceAware), "device_aware",
            device_aware, "None or a memcim.bayes.DeviceAware")  # fmt: skip


def elbo_objective(
    dataset_size: int,
    *,
    kl_weight: float = 1.0,
    samples: int = 1,
    device_aware: DeviceAware | None = None,
) -> LossFn:
    """A ``loss_fn(model, x, y)`` computing :func:`elbo_loss` with S samples per step.

    The hook a shared training loop can call in place of ``F.cross_entropy(model(x), y)``.
    With ``device_aware`` in ``"penalty"`` mode it adds ``weight · Σ d² / D`` (bounds
    refreshed every ``refresh_steps`` calls, i.e. optimizer steps); ``"project"`` mode adds
    nothing here: pass :func:`memcim.bayes.sigma_projection` as the loop's ``after_step``.
    """
    require(is_int(dataset_size) and dataset_size >= 1, "dataset_size", dataset_size, ">= 1")
    require(is_real(kl_weight) and kl_weight >= 0, "kl_weight", kl_weight, "finite and >= 0")
    require(is_int(samples) and samples >= 1, "samples", samples, "an int >= 1")
    _check_device_aware(device_aware)
    penalty = None
    if device_aware is not None and device_aware.mode == "penalty":
        penalty = technological_penalty(device_aware, dataset_size=dataset_size)

    def loss_fn(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        logits = model(x) if samples == 1 else forward_samples(model, x, samples)
        loss = elbo_loss(logits, y, model_kl(model), dataset_size, kl_weight=kl_weight)
        return loss if penalty is None else loss + penalty(model)

    return loss_fn


def train_elbo(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    kl_weight: float = 1.0,
    samples: int = 1,
    device_aware: DeviceAware | None = None,
    desc: str = "train",
    progress: bool = True,
) -> nn.Module:
    """The shared loop (:func:`memcim.training.train`) on the negative ELBO: Adam in train
    mode, reshuffled with ``generator`` every epoch, cosine decay of the learning rate.

    The KL is divided by ``len(y)`` (see :func:`elbo_loss`). The layers draw their noise from
    their private generators (seeded by :class:`BayesConfig` / :func:`memcim.bayes.seed`).

    Args:
        model: a model with Bayesian layers; trained in place and returned.
        x, y: training inputs ``[D, ...]`` and labels ``[D]``.
        epochs, lr, batch_size: as the shared loop.
        generator: shuffles the training set.
        kl_weight: multiplier of the KL term (1 = the ELBO).
        samples: Monte-Carlo samples per step, folded into the batch.
        device_aware: keep σ realisable on its devices (see the module docstring): a penalty
            in the loss, or a projection after every step and once more, with fresh bounds,
            after the last. ``None``: plain ELBO training.
        desc, progress: progress-bar label; ``progress=False`` silences it.
    """
    require(is_int(epochs) and epochs >= 1, "epochs", epochs, "an int >= 1")
    require(is_real(lr) and lr > 0, "lr", lr, "finite and > 0")
    require(is_int(batch_size) and batch_size >= 1, "batch_size", batch_size, "an int >= 1")
    if y.dim() != 1 or len(y) < 1 or x.shape[0] != len(y):
        raise ConfigError(
            f"x [D, ...] and y [D] must match; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    _check_device_aware(device_aware)
    loss_fn = elbo_objective(len(y), kl_weight=kl_weight, samples=samples,
                             device_aware=device_aware)  # fmt: skip
    project = device_aware is not None and device_aware.mode == "project"
    train(model, x, y, epochs=epochs, lr=lr, batch_size=batch_size, generator=generator,
          loss_fn=loss_fn, after_step=sigma_projection(device_aware) if project else None,
          desc=desc, progress=progress)  # fmt: skip
    if project:  # the cached bounds may be up to refresh_steps steps old
        project_sigma_(model, device_aware.sampling)
    return model
