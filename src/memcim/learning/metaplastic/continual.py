"""Sequential training over tasks with per-task BatchNorm state, and the GEM accuracy matrix.

Each task gets a fresh optimiser (moments reset, as Laborieux et al.'s code does). After each
task (and, for the figure, after every epoch) every task seen so far is tested with *its own*
BatchNorm affine state; the test uses batch statistics of ``test_batch`` images at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from memcim._errors import check_count
from memcim._modules import device_of


class Task(NamedTuple):
    """One task's images (any shape per image) and labels, train and test."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


@dataclass
class SequenceResult:
    """What training over a sequence of tasks measured.

    Attributes:
        matrix: R[i, j] = test accuracy on task j after training task i (j > i included, as
            GEM's matrix), [T, T].
        curves: after every epoch, the test accuracy of every task seen so far: a list of
            (epochs so far, {task: accuracy}).
    """

    matrix: Tensor
    curves: list[tuple[int, dict[int, float]]] = field(default_factory=list)


Penalty = Callable[[nn.Module], Tensor]


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1000,
             forward: Callable[[Tensor], Tensor] | None = None) -> float:  # fmt: skip
    """Accuracy of ``model`` (or of ``forward``) on ``x``, ``batch_size`` images at a time
    (batch statistics are taken per batch)."""
    run = forward if forward is not None else model
    hits = 0
    for s in range(0, len(y), batch_size):
        hits += int((run(x[s : s + batch_size]).argmax(-1) == y[s : s + batch_size]).sum())
    return hits / len(y)


def train_task(
    model: nn.Module,
    task: Task,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    penalty: Penalty | None = None,
    after_step: Callable[[], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
    progress: bool = False,
) -> None:
    """Train on one task: cross-entropy (+ ``penalty(model)``), shuffled mini-batches.

    ``after_step`` runs after every optimiser step (e.g. to re-program changed devices),
    ``on_epoch`` after every epoch with the epoch number.
    """
    check_count(epochs, "epochs", 1)
    n = len(task.y_train)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator, device=device_of(generator))
        steps = range(0, n - batch_size + 1, batch_size)  # full batches: BN needs > 1 image
        for s in tqdm(steps, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                      disable=None if progress else True):  # fmt: skip
            idx = order[s : s + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(task.x_train[idx]), task.y_train[idx])
            if penalty is not None:
                loss = loss + penalty(model)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
        if on_epoch is not None:
            on_epoch(epoch)


class EWC:
    """Elastic weight consolidation (Kirkpatrick et al. 2017) over the tasks seen so far:
    λ/2 · Σ_tasks Σ_i F_i (θ_i − θ*_i)², F the diagonal empirical Fisher estimated from the
    squared mini-batch gradients of the task's training loss at its end.

    Args:
        strength: λ (Laborieux et al.'s baseline: 5000).
        params: which parameters to anchor, as a function of the model (default: all with more
            than one dimension, i.e. the weights).
    """

    def __init__(self, strength: float, params: Callable[[nn.Module], list[Tensor]] | None = None,
                 ) -> None:  # fmt: skip
        self.strength = strength
        self._select = params or (lambda m: [p for p in m.parameters() if p.dim() > 1])
        self.anchors: list[tuple[list[Tensor], list[Tensor]]] = []

    def consolidate(self, model: nn.Module, task: Task, *, batch_size: int,
                    batches: int = 50) -> None:  # fmt: skip
        """Estimate the Fisher of ``task`` and anchor the present parameters."""
        params = self._select(model)
        fisher = [torch.zeros_like(p) for p in params]
        n = min(batches, len(task.y_train) // batch_size)
        for b in range(n):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            loss = F.cross_entropy(model(task.x_train[sl]), task.y_train[sl])
            for f, g in zip(fisher, torch.autograd.grad(loss, params), strict=True):
                f += g.square() / n
        self.anchors.append(([p.detach().clone() for p in params], fisher))

    def __call__(self, model: nn.Module) -> Tensor:
        params = self._select(model)
        total = params[0].new_zeros(())
        for anchor, fisher in self.anchors:
            for p, a, f in zip(params, anchor, fisher, strict=True):
                total = total + (f * (p - a).square()).sum()
        return 0.5 * self.strength * total


def run_sequence(
    model: nn.Module,
    tasks: list[Task],
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    test_batch: int = 1000,
    ewc: EWC | None = None,
    after_step: Callable[[], None] | None = None,
    forward: Callable[[Tensor], Tensor] | None = None,
    progress: bool = False,
) -> SequenceResult:
    """Train ``model`` on ``tasks`` in order and fill the accuracy matrix.

    The model needs ``norm_state()`` / ``load_norm_state()`` (its BatchNorm affine state per
    task, e.g. :class:`MetaplasticMLP`). ``forward`` replaces the model's forward at test time
    (e.g. inference through tiles).
    """
    count = len(tasks)
    matrix = torch.zeros(count, count, device="cpu")  # results: on the CPU
    norms: dict[int, dict[str, Tensor]] = {}
    result = SequenceResult(matrix)
    done = 0

    def test(upto: int) -> dict[int, float]:
        now = model.norm_state()
        scores = {}
        model.eval()
        for j in range(upto + 1):
            model.load_norm_state(norms.get(j, now))
            scores[j] = evaluate(model, tasks[j].x_test, tasks[j].y_test, batch_size=test_batch,
                                 forward=forward)  # fmt: skip
        model.load_norm_state(now)
        model.train()
        return scores

    for i, task in enumerate(tasks):

        def on_epoch(epoch: int, i=i) -> None:
            nonlocal done
            done += 1
            norms[i] = model.norm_state()
            result.curves.append((done, test(i)))

        train_task(model, task, make_optimizer(model), epochs=epochs, batch_size=batch_size,
                   generator=generator, penalty=ewc, after_step=after_step, on_epoch=on_epoch,
                   progress=progress)  # fmt: skip
        norms[i] = model.norm_state()
        if ewc is not None:
            ewc.consolidate(model, task, batch_size=batch_size)
        scores = result.curves[-1][1]
        for j in range(count):
            if j > i:  # not yet trained: tested with the present BatchNorm state
                model.eval()
                matrix[i, j] = evaluate(model, tasks[j].x_test, tasks[j].y_test,
                                        batch_size=test_batch, forward=forward)  # fmt: skip
                model.train()
            else:
                matrix[i, j] = scores[j]
    return result
