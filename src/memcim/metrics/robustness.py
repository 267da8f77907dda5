"""Robustness to noisy inputs: accuracy as a function of additive Gaussian input noise."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from memcim._corruption import gaussian_corruption
from memcim._errors import require
from memcim.metrics._checks import _describe, check_labels, check_number_list, check_probs


def accuracy_under_noise(
    predict_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    sigmas: Sequence[float] | Tensor,
    *,
    generator: torch.Generator,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """Top-1 accuracy on inputs corrupted by i.i.d. Gaussian noise N(0, σ²), for each σ.

    The corruption is :func:`memcim.data.gaussian_corruption` (shared from the private
    ``memcim._corruption``, so metrics does not import data): ``x + σ z`` with
    ``z ~ N(0, 1)`` per element, then clipped to ``clip`` (pixels stay in [0, 1] by default,
    like a sensor or DAC range; near the bounds the effective noise is therefore below σ).

    Every σ uses the *same* draw ``z`` (common random numbers): the generator state is rewound
    before each σ, so differences along the curve come from σ and not from a new draw, and the
    generator ends one draw of ``x.shape`` further on, whatever the number of σ.

    Args:
        predict_fn: maps inputs [N, ...] to class probabilities [N, C] (e.g. softmax of a
            network, or the Monte-Carlo mean of a Bayesian one); called once per σ, under
            ``torch.no_grad()``.
        x: clean inputs [N, ...], floating point (in [0, 1] for the default ``clip``).
        y: labels [N], integer in ``0..C-1``.
        sigmas: noise standard deviations σ >= 0 in the units of ``x``; a non-empty sequence
            or 1-D tensor. σ = 0 gives the accuracy on the (clipped) clean inputs.
        generator: source of the noise (on the device of ``x`` or the CPU).
        clip: ``(low, high)`` applied after adding noise, or ``None`` for no clipping.

    Returns:
        Accuracy per σ [K], float64, on the CPU, in the order of ``sigmas``.

    Raises:
        ConfigError: ``x`` is not a floating tensor [N, ...], ``y`` is not integer labels [N]
            in range, a σ is negative or not finite, ``clip`` is not an increasing pair,
            ``generator`` is not a ``torch.Generator``, ``predict_fn`` is not callable or
            returns anything but valid probabilities [N, C].
    """
    require(callable(predict_fn), "predict_fn", predict_fn, "a callable x -> probs [N, C]")
    require(
        isinstance(x, Tensor) and x.is_floating_point() and x.ndim >= 1 and x.shape[0] >= 1,
        "x",
        _describe(x),
        "a floating-point input tensor [N, ...] with N >= 1",
    )
    require(
        isinstance(generator, torch.Generator),
        "generator",
        generator,
        "a torch.Generator (e.g. torch.Generator().manual_seed(0)); memcim never uses global RNG",
    )
    sigma_list = check_number_list(sigmas, "sigmas", low=0.0, high=float("inf"), low_open=False)
    n = x.shape[0]
    # Labels are checked for shape now and for range once C is known from the first output.
    check_labels(y, n, torch.iinfo(torch.int64).max)

    start = generator.get_state()
    accuracies = []
    for sigma in sigma_list:
        generator.set_state(start)
        noisy = gaussian_corruption(x, sigma, generator=generator, clip=clip)
        with torch.no_grad():
            probs = predict_fn(noisy)
        check_probs(probs, "predict_fn(x)", 2)
        require(
            probs.shape[0] == n,
            "predict_fn(x)",
            _describe(probs),
            f"probabilities [{n}, C], one row per input",
        )
        labels = check_labels(y, n, probs.shape[1]).to(probs.device)
        accuracies.append(float((probs.argmax(-1) == labels).double().mean()))
    return torch.tensor(accuracies, dtype=torch.float64, device="cpu")
