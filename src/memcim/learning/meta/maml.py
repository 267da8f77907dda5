"""MAML and ANIL with ``torch.func``: inner loops vectorised over the tasks of a meta-batch.

MAML (Finn et al. 2017) adapts every parameter in the inner loop; ANIL (Raghu et al. 2020, the
variant Ortner et al. run on PCM) adapts only the readout ``head`` and keeps the features
fixed, so the features of a task are computed once. Inner steps are plain SGD,
θ' = θ − α ∇θ L_support(θ), taken with ``torch.func.grad`` inside ``torch.func.vmap`` over the
tasks; the meta-gradient flows through them (second order) unless ``first_order`` drops the
inner gradients from the graph (FOMAML).

A model is an ``nn.Module`` with ``features(x)`` and a ``head`` submodule such that
``model(x) == model.head(model.features(x))`` (see :mod:`memcim.learning.meta.models`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from memcim._errors import ConfigError, check_count, is_real, require

Params = dict[str, Tensor]


@dataclass(frozen=True, kw_only=True)
class MetaConfig:
    """The inner loop.

    Attributes:
        adapt: ``"head"`` (ANIL: only the readout adapts) or ``"all"`` (MAML).
        inner_steps: SGD steps on the support set (>= 1).
        inner_lr: their learning rate α.
        first_order: drop second-order terms of the meta-gradient (FOMAML).
        loss: ``"cross_entropy"`` (classification, labels) or ``"mse"`` (regression).
    """

    adapt: Literal["head", "all"] = "head"
    inner_steps: int = 4
    inner_lr: float = 0.1
    first_order: bool = False
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"

    def __post_init__(self) -> None:
        require(self.adapt in ("head", "all"), "MetaConfig.adapt", self.adapt, "'head' or 'all'")
        check_count(self.inner_steps, "MetaConfig.inner_steps", 1)
        require(is_real(self.inner_lr) and self.inner_lr > 0, "MetaConfig.inner_lr",
                self.inner_lr, "a finite number > 0")  # fmt: skip
        require(isinstance(self.first_order, bool), "MetaConfig.first_order", self.first_order,
                "True or False")  # fmt: skip
        require(self.loss in ("cross_entropy", "mse"), "MetaConfig.loss", self.loss,
                "'cross_entropy' or 'mse'")  # fmt: skip


def task_loss(kind: str, out: Tensor, y: Tensor) -> Tensor:
    """Mean loss of one task's outputs ``out`` [N, C] against ``y``."""
    return F.cross_entropy(out, y) if kind == "cross_entropy" else F.mse_loss(out, y)


class Evaluation(NamedTuple):
    """Query loss and accuracy of ``B`` tasks after 0, 1, …, ``steps`` inner steps.

    Attributes:
        loss: [B, steps + 1] mean query loss per task.
        accuracy: [B, steps + 1] query accuracy per task (classification), else ``None``.
    """

    loss: Tensor
    accuracy: Tensor | None


def check_task_batch(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> None:
    """Raise a ConfigError unless the four sets are tensors with one leading task dim."""
    for name, t in (("support_x", sx), ("support_y", sy), ("query_x", qx), ("query_y", qy)):
        shape = tuple(t.shape) if isinstance(t, Tensor) else t
        require(isinstance(t, Tensor) and t.dim() >= 2, name, shape, "a tensor [tasks, N, ...]")
    if not sx.shape[0] == sy.shape[0] == qx.shape[0] == qy.shape[0]:
        raise ConfigError(
            f"support and query sets hold different numbers of tasks: {sx.shape[0]}, "
            f"{sy.shape[0]}, {qx.shape[0]}, {qy.shape[0]}"
        )


class MetaLearner:
    """Meta-trains a model with MAML or ANIL and adapts it to new tasks in software.

    Args:
        model: ``nn.Module`` with ``features(x)`` and a ``head`` submodule.
        config: the inner loop (:class:`MetaConfig`).
    """

    def __init__(self, model: nn.Module, config: MetaConfig | None = None) -> None:
        if not (isinstance(getattr(model, "head", None), nn.Module) and hasattr(model, "features")):
            raise ConfigError("model needs a `features(x)` method and a `head` submodule")
        self.model = model
        self.config = config if config is not None else MetaConfig()
        self._adapted = model.head if self.config.adapt == "head" else model

    # --- the inner loop ---------------------------------------------------------------------
    def initial_params(self) -> Params:
        """The adapted parameters at meta-initialisation (the head's, or all of them)."""
        return dict(self._adapted.named_parameters())

    def _inputs(self, x: Tensor) -> Tensor:
        """What the adapted module sees: the features in ANIL (computed once), else ``x``."""
        return self.model.features(x) if self.config.adapt == "head" else x

    def _apply(self, params: Params, inputs: Tensor) -> Tensor:
        return functional_call(self._adapted, params, (inputs,))

    def inner_loop(self, params: Params, x: Tensor, y: Tensor, steps: int | None = None,
                   on_step: Callable[[Params], None] | None = None) -> Params:  # fmt: skip
        """SGD steps on one task's support set (inputs as :meth:`_inputs` returns them).

        Args:
            params: the adapted parameters to start from.
            x, y: one task's support inputs and targets.
            steps: number of steps (default ``config.inner_steps``).
            on_step: called with the parameters before every step and after the last.

        Returns:
            The adapted parameters, differentiable with respect to ``params`` (second order
            unless ``config.first_order``).
        """
        cfg = self.config
        gradient = grad(lambda p: task_loss(cfg.loss, self._apply(p, x), y))
        for _ in range(cfg.inner_steps if steps is None else steps):
            if on_step is not None:
                on_step(params)
            g = gradient(params)
            if cfg.first_order:
                g = {k: v.detach() for k, v in g.items()}
            params = {k: params[k] - cfg.inner_lr * g[k] for k in params}
        if on_step is not None:
            on_step(params)
        return params

    # --- meta-training -----------------------------------------------------------------------
    def query_losses(self, support_x: Tensor, support_y: Tensor, query_x: Tensor,
                     query_y: Tensor) -> Tensor:  # fmt: skip
        """Query loss after adaptation of each of ``B`` tasks [B], differentiable with respect
        to the model's parameters (the meta-objective). Inputs carry a leading task dim."""
        check_task_batch(support_x, support_y, query_x, query_y)
        params, kind = self.initial_params(), self.config.loss

        def one_task(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> Tensor:
            fast = self.inner_loop(params, sx, sy)
            return task_loss(kind, self._apply(fast, qx), qy)

        return vmap(one_task)(self._inputs(support_x), support_y, self._inputs(query_x), query_y)

    def meta_train(
        self,
        sample: Callable[[], tuple[Tensor, Tensor, Tensor, Tensor]],
        iterations: int,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        progress: bool = False,
        on_iteration: Callable[[int, float], None] | None = None,
    ) -> list[float]:
        """Meta-train for ``iterations`` meta-batches.

        Args:
            sample: returns one meta-batch ``(support_x, support_y, query_x, query_y)``.
            iterations: outer steps.
            optimizer: outer optimiser over ``model.parameters()`` (default Adam, ``lr``).
            lr: Adam's learning rate when ``optimizer`` is None (Finn et al., Ortner et al.:
                1e-3).
            progress: a progress bar (on a terminal only).
            on_iteration: called with (iteration, mean query loss) after every step, e.g.
                to checkpoint.

        Returns:
            The mean query loss of every meta-batch.
        """
        check_count(iterations, "iterations", 1)
        opt = optimizer if optimizer is not None else torch.optim.Adam(self.model.parameters(), lr)
        self.model.train()
        history = []
        bar = tqdm(range(iterations), desc="meta-train", disable=None if progress else True,
                   leave=False)  # fmt: skip
        for i in bar:
            opt.zero_grad(set_to_none=True)
            loss = self.query_losses(*sample()).mean()
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            if on_iteration is not None:
                on_iteration(i, history[-1])
        return history

    # --- evaluation --------------------------------------------------------------------------
    def evaluate(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor,
                 steps: int | None = None) -> Evaluation:  # fmt: skip
        """Adapt to each of ``B`` tasks on its support set and score its query set after every
        inner step (software, float32)."""
        check_task_batch(support_x, support_y, query_x, query_y)
        steps = self.config.inner_steps if steps is None else check_count(steps, "steps", 0)
        params, kind = {k: v.detach() for k, v in self.initial_params().items()}, self.config.loss

        def one_task(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor]:
            outs: list[Tensor] = []
            self.inner_loop(params, sx, sy, steps, lambda p: outs.append(self._apply(p, qx)))
            out = torch.stack(outs)  # [steps + 1, Nq, ...]
            losses = torch.stack([task_loss(kind, o, qy) for o in out])
            hits = (out.argmax(-1) == qy).float().mean(-1) if kind == "cross_entropy" else losses
            return losses, hits

        with torch.no_grad():
            sx, qx = self._inputs(support_x), self._inputs(query_x)
        losses, hits = vmap(one_task)(sx, support_y, qx, query_y)
        return Evaluation(losses.detach(), hits.detach() if kind == "cross_entropy" else None)
