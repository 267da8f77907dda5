"""Monte-Carlo predictive distribution and its uncertainty decomposition."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from memcim._errors import ConfigError, is_int, require
from memcim.bayes.layers import _DRAWS, Draw, forward_samples
from memcim.metrics import decompose


@dataclass(frozen=True)
class Predictive:
    """S Monte-Carlo class distributions and the entropy decomposition (nats), as computed by
    :func:`memcim.metrics.decompose`.

    Attributes:
        probs: softmax of each sample's logits, ``[S, N, C]``.
        mean: predictive mean p̄ = mean_s p_s, ``[N, C]``.
        total: H[p̄], ``[N]``.
        aleatoric: expected entropy mean_s H[p_s], ``[N]``.
        epistemic: mutual information total − aleatoric, ``[N]`` (>= 0; rounding below 0 is
            clipped to 0).
    """

    probs: Tensor
    mean: Tensor
    total: Tensor
    aleatoric: Tensor
    epistemic: Tensor

    @property
    def samples(self) -> int:
        """Number S of Monte-Carlo samples."""
        return self.probs.shape[0]

    @property
    def label(self) -> Tensor:
        """Predicted class ``argmax p̄``, ``[N]`` int64."""
        return self.mean.argmax(-1)


def predict(
    model: nn.Module,
    x: Tensor,
    samples: int = 32,
    *,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    method: Draw = "local",
) -> Predictive:
    """Monte-Carlo predictive of a classifier with S samples, batched over samples.

    The model runs in eval mode under ``no_grad`` on the inputs repeated S times and folded into
    the batch (:func:`memcim.bayes.forward_samples`); every Bayesian layer samples, also in
    ``eval_mode="mean"``. Every module's training flag is restored afterwards. ``method``:

    * ``"local"`` (default): a :class:`~memcim.bayes.BayesianLinear` on ``[N, in]`` rows draws
      its outputs, ``y ~ N(x μᵀ + b_μ, x² σ²ᵀ + σ_b²)``, fresh for every input and sample. For
      one input this is *exactly* the distribution whole weight samples give: its outputs use
      disjoint independent weights, so given the layer's input they are independent Gaussians
      with that mean and variance, layer after layer. Each input's S predictive samples, and so
      ``mean``/``total``/``aleatoric``/``epistemic``, are distributed exactly as with
      ``"weights"``. What differs is only the joint over inputs: ``probs[s]`` is not one network
      applied to the whole batch. The first layer's mean and variance are computed once for all
      samples. Convolutions (whose positions share a kernel) and hardware layers
      (device-realised samples) always use whole weights.
    * ``"weights"``: every layer draws S whole weight sets ``w = μ + σ ε``; ``probs[s]`` is
      network s on every input (use it for per-network statistics).

    Args:
        model: a classifier returning logits ``[N, C]``; may mix Bayesian and plain layers.
        x: inputs ``[N, ...]``, finite.
        samples: S >= 1.
        generator: source of every layer's noise (default: the layers' private generators).
        batch_size: evaluate at most this many inputs at once (S·batch_size rows per forward);
            each chunk draws fresh weight samples. ``None``: all at once.
        method: ``"local"`` or ``"weights"`` (above).

    Returns:
        :class:`Predictive` with ``probs`` ``[S, N, C]`` and the decomposition in nats.

    Raises:
        ConfigError: bad ``samples``/``batch_size``/``method``, non-finite inputs or
            non-``[N, C]`` outputs.
    """
    require(is_int(samples) and samples >= 1, "samples", samples, "an int >= 1")
    require(method in _DRAWS, "method", method, f"one of {_DRAWS}")
    if batch_size is not None:
        require(is_int(batch_size) and batch_size >= 1, "batch_size", batch_size, "an int >= 1")
    if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[0] < 1:
        raise ConfigError(f"x must be a tensor [N, ...] with N >= 1, got {x!r:.80}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ConfigError("x contains NaN or infinite values")
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            step = batch_size or x.shape[0]
            chunks = [
                forward_samples(model, x[i : i + step], samples, generator=generator, draw=method)
                for i in range(0, x.shape[0], step)
            ]
    finally:
        for m, flag in flags:
            m.training = flag
    logits = torch.cat(chunks, dim=1)
    if logits.dim() != 3:
        raise ConfigError(
            f"predict needs a classifier with logits [N, C]; the model returned "
            f"{tuple(logits.shape[1:])} per sample"
        )
    probs = torch.softmax(logits, dim=-1)
    parts = decompose(probs)  # the library's one definition of the decomposition
    return Predictive(probs, parts.mean, parts.total, parts.aleatoric, parts.epistemic)
