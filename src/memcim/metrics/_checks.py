"""Boundary checks shared by the metric modules: every one raises :class:`memcim.ConfigError`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

from memcim._errors import require


def _describe(x: object) -> str:
    """Short description of an argument for error messages (shape and dtype, or type name)."""
    if isinstance(x, Tensor):
        return f"tensor {list(x.shape)} {x.dtype}"
    return type(x).__name__


def prob_sum_tol(dtype: torch.dtype, n_classes: int) -> float:
    """Tolerance on ``|Σ_c p_c − 1|`` for probabilities of ``dtype`` over ``n_classes`` classes.

    ``max(1e-4, C · ε)`` with ε the machine epsilon of ``dtype``: rounding each probability
    (and a softmax normaliser summed over C terms) moves the sum by at most about ``C · ε``,
    while a logit vector or an unnormalised score misses 1 by far more.
    """
    return max(1e-4, n_classes * torch.finfo(dtype).eps)


def check_probs(probs: object, field: str, ndim: int, *, min_classes: int = 2) -> Tensor:
    """Validate a probability tensor whose last axis is the class axis.

    Args:
        probs: the argument to check.
        field: its name in error messages.
        ndim: required number of dimensions (2 for [N, C], 3 for [S, N, C]).
        min_classes: smallest allowed ``C``.

    Returns:
        ``probs`` unchanged.

    Raises:
        ConfigError: not a floating tensor of ``ndim`` dimensions with every dimension non-empty
            and ``C >= min_classes``; contains NaN; an entry outside [0, 1]; or a row whose sum
            differs from 1 by more than :func:`prob_sum_tol`.
    """
    axes = {2: "[N, C]", 3: "[S, N, C]"}.get(ndim, f"{ndim}-D")
    require(
        isinstance(probs, Tensor)
        and probs.is_floating_point()
        and probs.ndim == ndim
        and all(n > 0 for n in probs.shape)
        and probs.shape[-1] >= min_classes,
        field,
        _describe(probs),
        f"a floating-point probability tensor {axes} with no empty dimension and "
        f"C >= {min_classes} classes",
    )
    p = cast(Tensor, probs).detach()  # require() above raised unless probs is a Tensor
    n_nan = int(torch.isnan(p).sum())
    require(n_nan == 0, field, f"{_describe(p)} with {n_nan} NaN", "no NaN entries")
    outside = int(((p < 0) | (p > 1)).sum())
    if outside:  # the message's min/max are only computed on failure
        require(
            False,
            field,
            f"{_describe(p)} with {outside} entries outside [0, 1] "
            f"(min {float(p.min()):.4g}, max {float(p.max()):.4g})",
            "probabilities in [0, 1]; apply softmax to logits first",
        )
    tol = prob_sum_tol(p.dtype, p.shape[-1])
    # float64 sum: the check should not add rounding of its own to what it measures.
    deviation = float((p.sum(-1, dtype=torch.float64) - 1).abs().max())
    require(
        deviation <= tol,
        field,
        f"{_describe(p)} whose rows sum to 1 ± {deviation:.3g}",
        f"rows summing to 1 within {tol:.3g} (max(1e-4, C·eps)); apply softmax to logits first",
    )
    return probs


def check_labels(y: object, n: int, n_classes: int, field: str = "y") -> Tensor:
    """Validate integer class labels [N] in ``0..C-1``; returns them."""
    require(
        isinstance(y, Tensor)
        and y.ndim == 1
        and y.shape[0] == n
        and not y.is_floating_point()
        and not y.is_complex()
        and y.dtype != torch.bool,
        field,
        _describe(y),
        f"an integer label tensor [{n}] (one label per sample)",
    )
    y = cast(Tensor, y)  # require() above raised unless y is a Tensor
    n_bad = int(((y < 0) | (y >= n_classes)).sum())
    if n_bad:  # the message's min/max are only computed on failure
        require(
            False,
            field,
            f"{_describe(y)} with {n_bad} labels out of range "
            f"(min {int(y.min())}, max {int(y.max())})",
            f"labels in 0..{n_classes - 1} (C = {n_classes} classes)",
        )
    return y


def check_scores(x: object, field: str, n: int | None = None) -> Tensor:
    """Validate a real-valued 1-D score tensor (±inf allowed, NaN not); returns it.

    Args:
        x: the argument to check.
        field: its name in error messages.
        n: required length, or ``None`` for any length >= 1.
    """
    shape = f"[{n}]" if n is not None else "[N] with N >= 1"
    require(
        isinstance(x, Tensor)
        and x.ndim == 1
        and x.shape[0] >= 1
        and (n is None or x.shape[0] == n)
        and not x.is_complex()
        and x.dtype != torch.bool,
        field,
        _describe(x),
        f"a real-valued 1-D tensor {shape}",
    )
    x = cast(Tensor, x)  # require() above raised unless x is a Tensor
    if x.is_floating_point():
        n_nan = int(torch.isnan(x).sum())
        require(n_nan == 0, field, f"{_describe(x)} with {n_nan} NaN", "no NaN entries")
    return x


def check_number_list(
    values: object, field: str, *, low: float, high: float, low_open: bool
) -> list[float]:
    """Validate a non-empty 1-D sequence or tensor of numbers in a range; returns floats.

    The range is ``(low, high]`` when ``low_open`` else ``[low, high]``; values must be finite.
    """
    if isinstance(values, Tensor):
        ok = values.ndim == 1 and values.numel() > 0 and not values.is_complex()
        items = [float(v) for v in values.tolist()] if ok else []
    else:
        ok = (
            isinstance(values, Sequence)
            and not isinstance(values, str)
            and len(values) > 0
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        )
        items = [float(v) for v in values] if ok else []  # type: ignore[union-attr]
    left = "(" if low_open else "["
    allowed = f"a non-empty 1-D sequence of finite numbers in {left}{low:g}, {high:g}]"
    require(ok, field, values if not isinstance(values, Tensor) else _describe(values), allowed)

    def inside(v: float) -> bool:
        above = v > low if low_open else v >= low
        return math.isfinite(v) and above and v <= high

    bad = [v for v in items if not inside(v)]
    require(not bad, field, items, f"{allowed}; got {bad}")
    return items
