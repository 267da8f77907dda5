"""Continual-learning task builders: pure tensor functions, explicit generators.

- :func:`permuted_tasks`: permuted-MNIST style tasks (one fixed pixel permutation per task).
- :func:`split_tasks`: split-MNIST style tasks (index sets of class groups).

The robustness builder :func:`memcim.data.gaussian_corruption` lives in the private
``memcim._corruption``, which ``memcim.metrics`` shares without importing ``memcim.data``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import torch
from torch import Tensor

from memcim._errors import ConfigError, check_count, check_generator, require


@dataclass(frozen=True)
class PermutedTasks:
    """Fixed input permutations, one per task (Goodfellow et al. 2013; Kirkpatrick et al. 2017).

    Attributes:
        permutations: [T, D] int64; row ``t`` is a permutation of ``0..D-1`` applied to the
            flattened features of every sample of task ``t``.
        sample_shape: shape of one sample (e.g. ``(28, 28)``); ``D = prod(sample_shape)``.
    """

    permutations: Tensor
    sample_shape: tuple[int, ...]

    @property
    def n_tasks(self) -> int:
        """Number of tasks ``T``."""
        return self.permutations.shape[0]

    def apply(self, x: Tensor, task: int | Tensor) -> Tensor:
        """Inputs of one task, or of a per-sample task assignment.

        Args:
            x: samples [N, *sample_shape].
            task: a task index in ``0..T-1`` for the whole batch, or an int64 tensor [N] of
                task indices, one per sample (mixed-task batches, gathered in one op).

        Returns:
            Permuted samples [N, *sample_shape]: ``out.flatten(1)[n, i] ==
            x.flatten(1)[n, permutations[t, i]]``.

        Raises:
            ConfigError: ``x`` has the wrong sample shape or ``task`` is out of range.
        """
        self._check_x(x)
        flat = x.reshape(x.shape[0], -1)
        perms = self.permutations.to(x.device)
        if isinstance(task, Tensor):
            require(
                task.shape == (x.shape[0],)
                and not task.is_floating_point()
                and task.dtype != torch.bool
                and bool(((task >= 0) & (task < self.n_tasks)).all()),
                "task",
                f"tensor {tuple(task.shape)} {task.dtype}",
                f"an integer tensor [{x.shape[0]}] with entries in 0..{self.n_tasks - 1}",
            )
            out = flat.gather(1, perms[task.to(x.device).long()])
        else:
            require(
                isinstance(task, Integral)
                and not isinstance(task, bool)
                and 0 <= task < self.n_tasks,
                "task",
                task,
                f"an integer in 0..{self.n_tasks - 1}",
            )
            out = flat[:, perms[int(task)]]
        return out.reshape(x.shape)

    def apply_all(self, x: Tensor) -> Tensor:
        """Inputs of every task at once.

        Args:
            x: samples [N, *sample_shape].

        Returns:
            [T, N, *sample_shape]; entry ``t`` equals ``apply(x, t)``.
        """
        self._check_x(x)
        flat = x.reshape(x.shape[0], -1)
        out = flat[:, self.permutations.to(x.device)]  # [N, T, D]
        return out.transpose(0, 1).reshape(self.n_tasks, *x.shape)

    def _check_x(self, x: Tensor) -> None:
        require(
            isinstance(x, Tensor) and tuple(x.shape[1:]) == self.sample_shape,
            "x",
            tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__,
            f"a tensor [N, {', '.join(map(str, self.sample_shape))}]",
        )


def permuted_tasks(
    x: Tensor, n_tasks: int, *, generator: torch.Generator, first_identity: bool = True
) -> PermutedTasks:
    """Draw ``n_tasks`` pixel permutations for permuted-MNIST style continual learning.

    Args:
        x: samples [N, *sample_shape]; only the sample shape is used.
        n_tasks: number of tasks ``T >= 1``.
        generator: source of randomness.
        first_identity: make task 0 the unpermuted data (the usual convention); otherwise all
            ``T`` permutations are random.

    Returns:
        :class:`PermutedTasks` holding [T, D] permutations, ``D = prod(sample_shape)``; use
        ``.apply(x, t)`` or ``.apply_all(x)``.

    Raises:
        ConfigError: ``x`` is not a tensor with a sample dimension, ``n_tasks < 1``, or
            ``generator`` is not a ``torch.Generator``.
    """
    require(
        isinstance(x, Tensor) and x.ndim >= 2,
        "x",
        tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__,
        "a tensor [N, *sample_shape] with at least 2 dimensions",
    )
    n_tasks = check_count(n_tasks, "n_tasks", 1)
    check_generator(generator)
    sample_shape = tuple(x.shape[1:])
    d = math.prod(sample_shape)
    # argsort of i.i.d. uniform keys is a uniform random permutation per row; float64 keys
    # make ties (which would bias it) negligible: P(tie) ~ D^2 / 2^54.
    keys = torch.rand(n_tasks, d, generator=generator, dtype=torch.float64, device=generator.device)
    perms = keys.argsort(dim=1).cpu()
    if first_identity:
        perms[0] = torch.arange(d)
    return PermutedTasks(permutations=perms, sample_shape=sample_shape)


def split_tasks(y: Tensor, groups: Sequence[Sequence[int]]) -> list[Tensor]:
    """Index sets of class groups for split-MNIST style continual learning.

    Args:
        y: labels [N], integer.
        groups: class groups, e.g. ``[(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]``; each non-empty,
            pairwise disjoint, and every class present in ``y``.

    Returns:
        One int64 tensor per group with the ascending indices ``n`` where ``y[n]`` is in the
        group. Labels are not remapped: ``y[idx]`` keeps the original classes (class-incremental
        use); for task-incremental heads map them with e.g.
        ``torch.searchsorted(torch.tensor(sorted(group)), y[idx])``.

    Raises:
        ConfigError: ``y`` is not a 1-D integer tensor, ``groups`` is empty, a group is empty
            or not integers, a class occurs in two groups, or a class has no sample in ``y``.
    """
    require(
        isinstance(y, Tensor)
        and y.ndim == 1
        and not y.is_floating_point()
        and not y.is_complex()
        and y.dtype != torch.bool,
        "y",
        f"{tuple(y.shape)} {y.dtype}" if isinstance(y, Tensor) else type(y).__name__,
        "a 1-D integer label tensor [N]",
    )
    require(
        isinstance(groups, Sequence) and not isinstance(groups, str) and len(groups) > 0,
        "groups",
        groups,
        "a non-empty sequence of class groups, e.g. [(0, 1), (2, 3)]",
    )
    present = set(torch.unique(y).tolist())
    seen: dict[int, int] = {}
    classes: list[list[int]] = []
    for g, group in enumerate(groups):
        ok = (
            isinstance(group, Sequence)
            and len(group) > 0
            and all(isinstance(c, Integral) and not isinstance(c, bool) for c in group)
        )
        require(ok, f"groups[{g}]", group, "a non-empty sequence of integer class labels")
        classes.append([int(c) for c in group])
        for c in classes[-1]:
            if c in seen:
                raise ConfigError(
                    f"groups={list(groups)!r} is invalid: class {c} is in groups[{seen[c]}] "
                    f"and groups[{g}]; groups must not overlap"
                )
            seen[c] = g
            require(
                c in present,
                f"groups[{g}]",
                group,
                f"classes present in y; class {c} has no sample (y has {sorted(present)})",
            )
    return [
        torch.isin(y, torch.tensor(group, dtype=y.dtype, device=y.device)).nonzero()[:, 0]
        for group in classes
    ]
