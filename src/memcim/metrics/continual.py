"""Continual-learning summaries of an accuracy matrix (GEM, Lopez-Paz & Ranzato 2017).

``R[i, j]`` is the accuracy on task ``j`` after training on tasks ``0..i``, for ``T`` tasks
(``R`` is [T, T]). With ``T − 1`` the last task (0-based):

- ``acc(R) = mean_j R[T−1, j]``: average accuracy over all tasks at the end,
- ``bwt(R) = mean_{j < T−1} (R[T−1, j] − R[j, j])``: backward transfer, negative when learning
  later tasks erased earlier ones (catastrophic forgetting),
- ``forgetting(R) = −bwt(R)``.

Only the last row and the diagonal are read, so the entries above the diagonal (accuracy on
tasks not yet trained) may be anything, NaN included. Accuracies keep their unit (fractions or
percent), and so do the results.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from memcim._errors import ConfigError, require
from memcim.metrics._checks import _describe


def _checked(r: Tensor | Sequence[Sequence[float]], min_tasks: int) -> Tensor:
    """``R`` as a float64 CPU tensor [T, T], with finite last row and diagonal."""
    if not isinstance(r, Tensor):
        try:
            r = torch.as_tensor(r, dtype=torch.float64, device="cpu")
        except (TypeError, ValueError, RuntimeError) as error:
            # Raised here rather than through require() so that r is a Tensor below.
            raise ConfigError(
                f"R={type(r).__name__!r} is invalid: a square [T, T] accuracy matrix ({error})"
            ) from error
    require(
        r.ndim == 2
        and r.shape[0] == r.shape[1]
        and r.shape[0] >= min_tasks
        and not r.is_complex()
        and r.dtype != torch.bool,
        "R",
        _describe(r),
        f"a real square accuracy matrix [T, T] with T >= {min_tasks} tasks",
    )
    r = r.detach().to("cpu", torch.float64)
    used = torch.cat([r[-1], r.diagonal()])
    require(
        bool(torch.isfinite(used).all()),
        "R",
        f"{_describe(r)} with last row {r[-1].tolist()} and diagonal {r.diagonal().tolist()}",
        "finite entries in the last row and on the diagonal",
    )
    return r


def acc(R: Tensor | Sequence[Sequence[float]]) -> float:
    """Average accuracy after the last task: ``mean_j R[T−1, j]``.

    Args:
        R: accuracy matrix [T, T], ``R[i, j]`` = accuracy on task ``j`` after training task
            ``i``; a tensor or nested sequence, T >= 1.

    Returns:
        ACC, in the unit of ``R``.

    Raises:
        ConfigError: ``R`` is not a real square matrix, or its last row is not finite.
    """
    return float(_checked(R, 1)[-1].mean())


def bwt(R: Tensor | Sequence[Sequence[float]]) -> float:
    """Backward transfer: ``mean_{j < T−1} (R[T−1, j] − R[j, j])``.

    Args:
        R: accuracy matrix [T, T] (see :func:`acc`), T >= 2 (with one task nothing can be
            forgotten and the mean is over an empty set).

    Returns:
        BWT, in the unit of ``R``; negative means forgetting, positive means later tasks
        improved earlier ones.

    Raises:
        ConfigError: ``R`` is not a real square matrix with T >= 2, or its last row or diagonal
            is not finite.
    """
    r = _checked(R, 2)
    return float((r[-1, :-1] - r.diagonal()[:-1]).mean())


def forgetting(R: Tensor | Sequence[Sequence[float]]) -> float:
    """Forgetting ``−bwt(R)``: average drop of accuracy on earlier tasks, in the unit of ``R``.

    Args:
        R: accuracy matrix [T, T] (see :func:`acc`), T >= 2.

    Returns:
        ``−BWT``; positive means forgetting.

    Raises:
        ConfigError: see :func:`bwt`.
    """
    return -bwt(R)
