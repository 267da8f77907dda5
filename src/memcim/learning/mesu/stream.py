"""Batch-1 continual learning over a stream of tasks, MESU and its baselines in one loop.

A learner takes one labelled example per step (the protocol of Bonnet et al. [23]: one epoch
per task, batch 1) and predicts with S Monte-Carlo samples (S = 1 for point-weight networks).
:func:`run_stream` trains a learner task after task and fills the GEM accuracy matrix
R[i, j], the test accuracy on task j after training task i (``memcim.metrics.acc`` / ``bwt``).
Its :class:`StreamResult` is saved after every task so that a long stream resumes where it
stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from memcim._errors import check_count, check_generator, is_real, require
from memcim.bayes import predict
from memcim.learning.mesu.baselines import Regulariser
from memcim.learning.mesu.optim import MESU, mesu_step
from memcim.learning.metaplastic.continual import Task, evaluate
from memcim.training import save_atomic


class Predictor:
    """Monte-Carlo class probabilities of a network; subclasses implement :meth:`probs`."""

    model: nn.Module

    def probs(self, x: Tensor) -> Tensor:
        """Class probabilities [S, N, C] of the S Monte-Carlo samples."""
        raise NotImplementedError

    def scores(self, x: Tensor) -> Tensor:
        """Mean log-probability over the samples [N, C]: the authors' prediction rule."""
        return self.probs(x).clamp_min(1e-30).log().mean(0)

    def predict(self, x: Tensor) -> Tensor:
        """Labels: argmax of :meth:`scores`."""
        return self.scores(x).argmax(-1)


class SampledPredictor(Predictor):
    """Predictions of a ``memcim.bayes`` network, in software or on tiles (a model from
    :func:`~memcim.learning.mesu.on_devices`), from ``samples`` Monte-Carlo samples
    (:func:`memcim.bayes.predict`; inference only)."""

    def __init__(self, model: nn.Module, *, samples: int = 10,
                 generator: torch.Generator) -> None:  # fmt: skip
        self.model = model
        self.samples = check_count(samples, "samples", 1)
        self.generator = check_generator(generator)

    def probs(self, x: Tensor) -> Tensor:
        return predict(self.model, x, samples=self.samples, generator=self.generator).probs


class Learner(Predictor):
    """What :func:`run_stream` drives: subclasses implement :meth:`step` and :meth:`probs`."""

    def start_task(self) -> None:
        """Before each task."""

    def step(self, x: Tensor, y: Tensor) -> float:
        """One update on ``(x, y)``; returns the step's cost."""
        raise NotImplementedError

    def end_task(self, task: Task) -> None:
        """After each task, with its data."""

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])


class MESULearner(Learner):
    """A Bayesian network (``memcim.bayes`` layers with ``estimator="reparam"``) trained by
    :class:`MESU`, ``samples`` weight samples per step, all in one batched forward/backward
    (``draw``: whole weight samples or local draws, see :func:`~memcim.learning.mesu.mc_cost`).
    Predictions use ``test_samples`` samples; ``after_step`` runs after every update (e.g.
    :meth:`~memcim.learning.mesu.ProgrammedPosterior.sync`)."""

    def __init__(self, model: nn.Module, optimizer: MESU, *, samples: int = 10,
                 test_samples: int = 10, generator: torch.Generator, draw: str = "weights",
                 after_step: Callable[[], object] | None = None) -> None:  # fmt: skip
        require(isinstance(optimizer, MESU), "optimizer", type(optimizer).__name__, "a MESU")
        require(draw in ("weights", "local"), "draw", draw, "'weights' or 'local'")
        self.draw, self.after_step = draw, after_step
        self.model, self.optimizer = model.train(), optimizer
        self.samples = check_count(samples, "samples", 1)
        self.test_samples = check_count(test_samples, "test_samples", 1)
        self.generator = check_generator(generator)

    def step(self, x: Tensor, y: Tensor) -> float:
        cost = mesu_step(self.model, self.optimizer, x, y, self.samples, generator=self.generator,
                         draw=self.draw)  # fmt: skip
        if self.after_step is not None:
            self.after_step()
        return cost

    def probs(self, x: Tensor) -> Tensor:
        # Local draws: for each input exactly the distribution of whole weight samples, faster.
        return predict(self.model, x, self.test_samples, generator=self.generator).probs

    def state_dict(self) -> dict:
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])


class SGDLearner(Learner):
    """A point-weight network trained by plain SGD on the summed negative log-likelihood, with
    an optional :class:`~memcim.learning.mesu.baselines.Regulariser` (online EWC, SI)."""

    def __init__(self, model: nn.Module, *, lr: float = 0.002,
                 regulariser: Regulariser | None = None) -> None:  # fmt: skip
        require(is_real(lr) and lr > 0, "lr", lr, "a finite number > 0")
        self.model, self.lr = model.train(), lr
        self.regulariser = regulariser if regulariser is not None else Regulariser()
        self.params = list(model.parameters())

    def start_task(self) -> None:
        self.regulariser.start_task(self.model)

    def step(self, x: Tensor, y: Tensor) -> float:
        cost = F.cross_entropy(self.model(x), y, reduction="sum")
        penalty = self.regulariser.penalty(self.params)
        total = cost if penalty is None else cost + penalty
        grads = torch.autograd.grad(total, self.params)
        with torch.no_grad():
            moves = [-self.lr * g for g in grads]
            for p, d in zip(self.params, moves, strict=True):
                p.add_(d)
        self.regulariser.observe(grads, moves)
        return float(total.detach())

    def end_task(self, task: Task) -> None:
        self.regulariser.end_task(self.model, task.x_train, task.y_train)

    @torch.no_grad()
    def probs(self, x: Tensor) -> Tensor:
        return self.model(x).softmax(-1).unsqueeze(0)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "regulariser": vars(self.regulariser)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        vars(self.regulariser).update(state["regulariser"])


@dataclass
class StreamResult:
    """What :func:`run_stream` measured.

    Attributes:
        matrix: R[i, j], test accuracy on task j after training task i, [T, T]
            (rows not trained yet are zero).
        tasks_done: how many tasks have been trained.
        cost: mean training cost per task.
    """

    matrix: Tensor
    tasks_done: int = 0
    cost: list[float] = field(default_factory=list)

    def last_tasks_accuracy(self, k: int = 5) -> float:
        """Mean accuracy over the last ``k`` tasks after the last task trained."""
        i = self.tasks_done - 1
        return float(self.matrix[i, max(0, i - k + 1) : i + 1].mean())


def accuracy(learner: Predictor, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> float:
    """Test accuracy of ``learner.predict`` on ``(x, y)``, ``batch_size`` images at a time."""
    return evaluate(learner.model, x, y, batch_size=batch_size, forward=learner.scores)


def run_stream(learner: Learner, tasks: Sequence[Task], *, generator: torch.Generator,
               checkpoint: str | os.PathLike[str] | None = None, progress: bool = False,
               on_task: Callable[[int, StreamResult], None] | None = None,
               ) -> StreamResult:  # fmt: skip
    """Train ``learner`` on ``tasks`` in order, one epoch of shuffled batch-1 steps per task,
    and test every task after each (GEM's matrix includes the tasks not yet trained).

    Args:
        learner: a :class:`Learner`.
        tasks: the stream.
        generator: the order of the examples.
        checkpoint: a file to save the learner and the result to after every task, and to
            resume from if it exists.
        progress: a progress bar over each task's steps.
        on_task: called with (task index, result so far) after each task.
    """
    check_generator(generator)
    count = check_count(len(tasks), "len(tasks)", 1)
    result = StreamResult(torch.zeros(count, count))
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=True)
        learner.load_state_dict(saved["learner"])
        generator.set_state(saved["order"])
        result = StreamResult(**saved["result"])
    for i in range(result.tasks_done, count):
        task = tasks[i]
        learner.start_task()
        mean_cost = _one_epoch(learner, task.x_train, task.y_train, generator,
                               f"task {i + 1}/{count}", progress)  # fmt: skip
        learner.end_task(task)
        for j, other in enumerate(tasks):
            result.matrix[i, j] = accuracy(learner, other.x_test, other.y_test)
        result.cost.append(mean_cost)
        result.tasks_done = i + 1
        if path is not None:
            save_atomic(path, {"learner": learner.state_dict(), "order": generator.get_state(),
                         "result": vars(result)})  # fmt: skip
        if on_task is not None:
            on_task(i, result)
    return result


def _one_epoch(learner: Learner, x: Tensor, y: Tensor, generator: torch.Generator, label: str,
               progress: bool, shuffle: bool = True) -> float:  # fmt: skip
    """One pass of batch-1 steps, shuffled by ``generator`` or in the data's order; returns the
    mean cost."""
    order = (torch.randperm(len(y), generator=generator, device=generator.device).tolist()
             if shuffle else range(len(y)))  # fmt: skip
    total = 0.0
    for k in tqdm(order, desc=label, leave=False, disable=None if progress else True):
        total += learner.step(x[k : k + 1], y[k : k + 1])
    return total / len(order)


def train_epochs(learner: Learner, x: Tensor, y: Tensor, epochs: int, *,
                 generator: torch.Generator, start: int = 0, progress: bool = False,
                 on_epoch: Callable[[int], None] | None = None,
                 shuffle: bool = True) -> list[float]:  # fmt: skip
    """Epochs ``start`` .. ``epochs - 1`` of batch-1 steps on one data set (the authors'
    out-of-distribution protocol); ``on_epoch(epoch)`` after each. Returns the mean cost of
    each epoch. ``shuffle``: a new order from ``generator`` every epoch; ``False``: the data's
    own order every epoch, as the authors' in-memory loader visits it."""
    check_generator(generator)
    check_count(epochs, "epochs", 1)
    costs = []
    for epoch in range(start, epochs):
        costs.append(_one_epoch(learner, x, y, generator, f"epoch {epoch + 1}/{epochs}", progress,
                                shuffle))  # fmt: skip
        if on_epoch is not None:
            on_epoch(epoch)
    return costs


@torch.no_grad()
def sampled_probs(predictor: Predictor, x: Tensor, *, batch_size: int = 1000) -> Tensor:
    """``predictor.probs`` over ``x`` [N, ...] in batches: class probabilities [S, N, C]."""
    return torch.cat([predictor.probs(x[s : s + batch_size])
                      for s in range(0, len(x), batch_size)], dim=1)  # fmt: skip


def scores_from_probs(probs_in: Tensor, probs_out: Tensor) -> dict[str, float]:
    """:func:`ood_scores` of probabilities already sampled ([S, N, C] each)."""
    from memcim.metrics import decompose, ood_auroc

    inside, outside = decompose(probs_in), decompose(probs_out)
    scores = {}
    for kind in ("total", "aleatoric", "epistemic"):
        a, b = getattr(inside, kind), getattr(outside, kind)
        scores[f"auroc_{kind}"] = ood_auroc(a, b)
        scores[f"{kind}_in_nats"] = float(a.mean())
        scores[f"{kind}_out_nats"] = float(b.mean())
    return scores


def ood_scores(predictor: Predictor, x_in: Tensor, x_out: Tensor, *,
               batch_size: int = 1000) -> dict[str, float]:  # fmt: skip
    """How well each uncertainty of ``predictor`` tells ``x_out`` (out of distribution) from
    ``x_in``: the AUROC of the predictive (``total``), ``aleatoric`` and ``epistemic``
    entropies (:func:`memcim.metrics.decompose`, nats; the authors' code uses bits, which
    changes the entropies by a factor 1/ln 2 and no AUROC), and their means on each set.
    A point-weight network (S = 1) has no epistemic part: its AUROC is 0.5."""
    return scores_from_probs(sampled_probs(predictor, x_in, batch_size=batch_size),
                             sampled_probs(predictor, x_out, batch_size=batch_size))  # fmt: skip
