"""Mean-field Gaussian variational layers (Bayes by Backprop) with a Monte-Carlo sample dimension.

Every weight and bias is an independent Gaussian ``w ~ N(μ, σ²)`` with ``σ = softplus(ρ)``
(Blundell et al. 2015); μ and ρ are the trainable parameters (``weight_mu``, ``weight_rho``,
``bias_mu``, ``bias_rho``). The prior is ``N(prior_mu, prior_sigma²)`` for every weight and bias.

Which noise a forward draws:

* **training mode** — the estimator of :class:`BayesConfig`:
  ``"reparam"`` samples the weights, ``w = μ + σ ε``, once per forward (per Monte-Carlo sample);
  ``"local"`` samples the pre-activations instead (local reparameterisation, Kingma et al. 2015):
  ``y ~ N(x μᵀ + b_μ, x² σ²ᵀ + σ_b²)``, for a convolution ``N(conv(x, μ) + b_μ,
  conv(x², σ²) + σ_b²)``, with fresh noise for every output element. Both have the same mean and
  variance per output element; local noise has lower gradient variance across a batch. (For a
  convolution it also drops the correlation between positions that share a kernel.)
* **eval mode** — ``eval_mode="sample"`` (default) draws whole weight samples ``w = μ + σ ε``:
  one network per Monte-Carlo sample, as a programmed array would hold it; ``eval_mode="mean"``
  uses μ (deterministic). :func:`memcim.bayes.predict` overrides both (its ``method``): whole
  weight samples everywhere, or local noise where that is exact for each input.

The Monte-Carlo sample dimension
--------------------------------
A layer evaluates S weight samples in one batched computation (weights ``[S, out, in]`` with a
batched matmul; for a convolution S is folded into the channels of one grouped convolution),
never in a Python loop. There are two ways to ask for it:

* explicitly, on one layer: ``layer(x, samples=S)`` with ``x`` of shape ``[N, ...]`` (shared by
  all samples) or ``[S, N, ...]`` returns ``[S, N, ...]``;
* folded, for whole models (:func:`forward_samples`, :func:`mc_sampling`): the input is repeated
  sample-major to ``[S·N, ...]`` (rows ``s·N .. s·N + N − 1`` belong to sample s), and every
  Bayesian layer, whose ``folded_samples`` attribute is set to S, views its input as
  ``[S, N, ...]``, applies weight sample s to chunk s and returns ``[S·N, ...]`` again. Plain
  modules in between (ReLU, BatchNorm in eval mode, Flatten, pooling, plain Linear layers) see an
  ordinary batch of S·N rows, so models that mix Bayesian and deterministic layers work
  unchanged. The output is viewed back as ``[S, N, ...]`` at the end.

Random numbers come from the layer's private generator (seeded ``config.seed``; see
:func:`memcim.bayes.seed`) or from a generator passed to :func:`forward_samples` /
:func:`memcim.bayes.predict`, which then drives every layer. For S weight samples a layer draws
``ε_w`` of shape ``[S, *weight.shape]`` and then ``ε_b`` of shape ``[S, out]``, in one call each,
in the order the layers run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal, kl_divergence

from memcim._errors import ConfigError, is_int, is_real, require
from memcim._modules import follow, generator_on

Estimator = Literal["reparam", "local"]
EvalMode = Literal["sample", "mean"]
Draw = Literal["weights", "local"]
_ESTIMATORS = ("reparam", "local")
_EVAL_MODES = ("sample", "mean")
_DRAWS = ("weights", "local")


@dataclass(frozen=True, kw_only=True)
class BayesConfig:
    """Prior, initialisation and sampling of the variational layers.

    Attributes:
        prior_mu: mean of the Gaussian prior of every weight and bias.
        prior_sigma: standard deviation of the prior (> 0); the default N(0, 1) is the usual
            choice of Bayes by Backprop (a configurable default, not a fitted value).
        sigma_init: initial σ of every weight and bias (> 0); ρ starts at softplus⁻¹(sigma_init).
            Small, so that a converted model starts as the trained deterministic one.
        estimator: training-mode gradient estimator: ``"reparam"`` (sample weights per forward)
            or ``"local"`` (sample pre-activations, Kingma et al. 2015).
        eval_mode: eval-mode forward: ``"sample"`` (weight samples) or ``"mean"`` (use μ).
        seed: seed of the layer's private generator (:func:`to_bayesian` gives layer i
            ``seed + i``); an int >= 0.
    """

    prior_mu: float = 0.0
    prior_sigma: float = 1.0
    sigma_init: float = 1e-3
    estimator: Estimator = "local"
    eval_mode: EvalMode = "sample"
    seed: int = 0

    def __post_init__(self) -> None:
        require(is_real(self.prior_mu), "BayesConfig.prior_mu", self.prior_mu, "a finite number")
        for name in ("prior_sigma", "sigma_init"):
            value = getattr(self, name)
            require(is_real(value) and value > 0, f"BayesConfig.{name}", value, "finite and > 0")
        require(
            self.estimator in _ESTIMATORS,
            "BayesConfig.estimator",
            self.estimator,
            f"one of {_ESTIMATORS}",
        )
        require(
            self.eval_mode in _EVAL_MODES,
            "BayesConfig.eval_mode",
            self.eval_mode,
            f"one of {_EVAL_MODES}",
        )
        require(
            is_int(self.seed) and 0 <= self.seed < 2**63,
            "BayesConfig.seed",
            self.seed,
            "an int in [0, 2**63)",
        )


def inverse_softplus(sigma: float | Tensor) -> Tensor:
    """ρ with softplus(ρ) = σ, for σ > 0 (``log(expm1(σ))``, stable for large σ)."""
    if isinstance(sigma, Tensor):
        sigma = sigma.to(torch.get_default_dtype())
    else:  # a number: a CPU scalar whatever the default device
        sigma = torch.tensor(sigma, dtype=torch.get_default_dtype(), device="cpu")
    return sigma + torch.log(-torch.expm1(-sigma))


def _compose(mu: Tensor, sigma: Tensor, eps: Tensor) -> Tensor:
    """``μ + σ ε`` (μ, σ broadcast against ``eps``); without autograd, in place in ``eps`` (a
    fresh draw), saving two passes over the ``[S, ...]`` sample tensor. Same rounding either
    way (σ·ε, then + μ)."""
    if torch.is_grad_enabled() and (mu.requires_grad or sigma.requires_grad):
        return mu + sigma * eps
    return eps.mul_(sigma).add_(mu)


def _check_samples(samples, name: str = "samples") -> int:
    require(is_int(samples) and samples >= 1, name, samples, "an int >= 1")
    return samples


class BayesianLayer(nn.Module):
    """Base of the Bayesian layers: parameters, KL, sampling modes and the sample dimension.

    Subclasses set ``weight_mu``/``weight_rho`` (and ``bias_*`` or ``None``) and implement
    ``_feature_dims`` (the trailing input dims one example has), ``_shared_op`` (one weight set for
    all samples; inputs ``[S, N, ...]``) and ``_per_sample_op`` (weights ``[S, ...]``).
    """

    weight_mu: nn.Parameter
    weight_rho: nn.Parameter
    bias_mu: nn.Parameter | None
    bias_rho: nn.Parameter | None

    def _setup(self, weight_shape: tuple[int, ...], out: int, bias: bool, config,
               device: torch.device | str | None) -> None:  # fmt: skip
        if config is None:
            config = BayesConfig()
        if not isinstance(config, BayesConfig):
            raise ConfigError(f"config={config!r} is invalid: a memcim.bayes.BayesConfig")
        self.config = config
        self.eval_mode: EvalMode = config.eval_mode
        self.generator = generator_on(device, config.seed)
        # Set by forward_samples / mc_sampling; not part of the state.
        self.folded_samples: int | None = None
        self._generator_override: torch.Generator | None = None
        self._draw: Draw | None = None
        self._shared_input: tuple[int, int] | None = None  # (data_ptr, numel) of the S·N repeat
        rho0 = float(inverse_softplus(config.sigma_init))
        on = self.generator.device
        self.weight_mu = nn.Parameter(torch.empty(weight_shape, device=on))
        self.weight_rho = nn.Parameter(torch.full(weight_shape, rho0, device=on))
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(out, device=on))
            self.bias_rho = nn.Parameter(torch.full((out,), rho0, device=on))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        fan_in = math.prod(weight_shape[1:])
        with torch.no_grad():  # nn.Linear / nn.Conv2d's default init, from the private generator
            bound = 1 / math.sqrt(fan_in)
            self.weight_mu.uniform_(-bound, bound, generator=self.generator)
            if self.bias_mu is not None:
                self.bias_mu.uniform_(-bound, bound, generator=self.generator)

    # --- distribution -------------------------------------------------------------------------
    @property
    def weight_sigma(self) -> Tensor:
        """σ = softplus(ρ) of the weights, same shape as ``weight_mu``."""
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> Tensor | None:
        """σ = softplus(ρ) of the biases, or ``None`` without bias."""
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def kl(self) -> Tensor:
        """KL(q‖p) in nats, summed over all weights and biases (0-d tensor, differentiable).

        Computed with ``torch.distributions``: Normal(μ, σ) against Normal(prior_mu, prior_sigma).
        """
        cfg = self.config
        pairs = [(self.weight_mu, self.weight_sigma)]
        if self.bias_mu is not None:
            pairs.append((self.bias_mu, self.bias_sigma))
        total = self.weight_mu.new_zeros(())
        for mu, sigma in pairs:
            prior = Normal(
                torch.full_like(mu, cfg.prior_mu),
                torch.full_like(mu, cfg.prior_sigma),
                validate_args=False,
            )
            total = total + kl_divergence(Normal(mu, sigma, validate_args=False), prior).sum()
        return total

    def reseed(self, value: int) -> None:
        """Re-seed the private generator."""
        self.generator.manual_seed(value)

    def _apply(self, fn, recurse: bool = True):
        """``.to(device)`` and the like: on another device the layer draws from a new private
        generator there, seeded with the present one's seed."""
        super()._apply(fn, recurse)
        self.generator = follow(self.generator, self.weight_mu.device)
        return self

    # --- sampling -----------------------------------------------------------------------------
    def _gen(self) -> torch.Generator:
        return self._generator_override if self._generator_override is not None else self.generator

    def _normal(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        gen = self._gen()
        eps = torch.randn(shape, generator=gen, device=gen.device, dtype=like.dtype)
        return eps.to(like.device)

    def sample_parameters(
        self, samples: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Draw S weight sets ``w = μ + σ ε``.

        Args:
            samples: S >= 1.
            generator: source of ε (default: the layer's own generator).

        Returns:
            weights ``[S, *weight_mu.shape]`` and biases ``[S, out]`` (or ``None``),
            differentiable with respect to μ and ρ.
        """
        samples = _check_samples(samples)
        saved = self._generator_override
        if generator is not None:
            self._generator_override = generator
        try:
            return self._sample_parameters(samples)
        finally:
            self._generator_override = saved

    def _sample_parameters(self, samples: int) -> tuple[Tensor, Tensor | None]:
        w_eps = self._normal((samples, *self.weight_mu.shape), self.weight_mu)
        w = _compose(self.weight_mu, self.weight_sigma, w_eps)
        b = None
        if self.bias_mu is not None:
            b_eps = self._normal((samples, *self.bias_mu.shape), self.bias_mu)
            b = _compose(self.bias_mu, self.bias_sigma, b_eps)
        return w, b

    def _local_is_exact(self, xs: Tensor) -> bool:
        """Whether local noise on ``xs`` [S, N, ...] gives every example exactly the output
        distribution of whole weight samples (true only for a fully connected layer)."""
        return False

    def _mode(self, xs: Tensor) -> str:
        if self._draw == "local" and self._local_is_exact(xs):
            return "local"
        if self._draw is not None:
            return "weights"
        if self.training:
            return "local" if self.config.estimator == "local" else "weights"
        return "mean" if self.eval_mode == "mean" else "weights"

    # --- forward ------------------------------------------------------------------------------
    def _feature_dims(self) -> int:
        raise NotImplementedError

    def _check_input(self, x: Tensor, kind: str) -> None:
        """Raise ConfigError unless ``x`` fits: kind "plain", "samples" or "folded"."""
        raise NotImplementedError

    def _shared_op(self, xs: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _per_sample_op(self, xs: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, samples: int | None = None) -> Tensor:
        """Apply the layer.

        Args:
            x: inputs. Without ``samples`` (and not folded): as for the plain layer. With
                ``samples=S``: one batch ``[N, ...]`` shared by every sample, or ``[S, N, ...]``.
                Folded (``folded_samples = S``, set by :func:`mc_sampling`): ``[S·N, ...]``,
                sample-major.
            samples: number S of Monte-Carlo samples for an explicit leading sample dimension.

        Returns:
            ``[S, N, ...]`` with ``samples``; otherwise the plain layer's shape (``[S·N, ...]``
            when folded).

        Raises:
            ConfigError: inputs of the wrong shape, or ``samples`` not matching them.
        """
        name = type(self).__name__
        if samples is not None:
            samples = _check_samples(samples)
            self._check_input(x, "samples")
            if x.dim() == self._feature_dims() + 2:
                if x.shape[0] != samples:
                    raise ConfigError(
                        f"{name}: samples={samples} but the input's leading sample dimension "
                        f"is {x.shape[0]} (input {tuple(x.shape)})"
                    )
                xs = x
            else:
                xs = x.unsqueeze(0).expand(samples, *x.shape)
            return self._forward_samples(xs, samples)
        if self.folded_samples is not None:
            s = self.folded_samples
            self._check_input(x, "folded")
            if x.shape[0] % s:
                raise ConfigError(
                    f"{name}: a folded batch of {x.shape[0]} rows is not a multiple of the "
                    f"{s} Monte-Carlo samples"
                )
            xs = x.reshape(s, x.shape[0] // s, *x.shape[1:])
            if self._is_shared_input(x):  # every chunk is the same: compute on one
                xs = xs[:1].expand_as(xs)
            y = self._forward_samples(xs, s)
            return y.reshape(-1, *y.shape[2:])
        self._check_input(x, "plain")
        return self._forward_samples(x.unsqueeze(0), 1).squeeze(0)

    def _is_shared_input(self, x: Tensor) -> bool:
        """Whether ``x`` is (a contiguous view of) the sample-major repeat that
        :func:`forward_samples` built, so that its S chunks are identical."""
        return (
            self._shared_input is not None
            and x.is_contiguous()
            and (x.data_ptr(), x.numel()) == self._shared_input
        )

    def _forward_samples(self, xs: Tensor, samples: int) -> Tensor:
        """xs ``[S, N, ...]`` -> ``[S, N, ...]``."""
        mode = self._mode(xs)
        if mode == "mean":
            return self._shared_op(xs, self.weight_mu, self.bias_mu)
        if mode == "local":
            # Mean and variance of a shared input are the same for every sample: once, [1, ...].
            one = xs[:1] if xs.stride(0) == 0 else xs
            mean = self._shared_op(one, self.weight_mu, self.bias_mu)
            b_var = None if self.bias_rho is None else self.bias_sigma.square()
            var = self._shared_op(one.square(), self.weight_sigma.square(), b_var)
            # The floor keeps sqrt's gradient finite where every σ underflowed to 0.
            std = var.clamp_min(torch.finfo(var.dtype).tiny).sqrt()
            eps = self._normal((samples, *mean.shape[1:]), mean)
            return _compose(mean, std, eps)
        w, b = self._sample_parameters(samples)
        return self._per_sample_op(xs, w, b)


class BayesianLinear(BayesianLayer):
    """Mean-field Gaussian ``nn.Linear``: y = x wᵀ + b with w ~ N(μ_w, σ_w²), b ~ N(μ_b, σ_b²).

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias: a (Bayesian) bias.
        config: prior, initialisation and sampling (:class:`BayesConfig`).
        device: where the parameters and the private generator live (default torch's default
            device); ``.to(device)`` moves them later.

    Inputs ``[..., in_features]`` as ``nn.Linear``; see :meth:`forward` for the sample
    dimension. μ is initialised like ``nn.Linear`` from the private generator, σ to
    ``config.sigma_init``.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True,
        config: BayesConfig | None = None, *, device: torch.device | str | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            require(is_int(value) and value >= 1, f"BayesianLinear.{name}", value, "an int >= 1")
        self.in_features, self.out_features = in_features, out_features
        self._setup((out_features, in_features), out_features, bias, config, device)

    def _feature_dims(self) -> int:
        return 1

    def _local_is_exact(self, xs: Tensor) -> bool:
        # One example's outputs y_j = Σ_i x_i w_ji use disjoint, independent weights, so given x
        # they are independent Gaussians N(x μ_jᵀ + b_j, x² σ_j²ᵀ + σ_bj²) — exactly what local
        # noise draws. Extra dims ([S, N, T, in]) would share weights between rows: not exact.
        return xs.dim() == 3

    def _check_input(self, x: Tensor, kind: str) -> None:
        expected = {"plain": "[..., in]", "samples": "[N, in] or [S, N, in]", "folded": "[S·N, in]"}
        dims_ok = {"plain": x.dim() >= 1, "samples": x.dim() in (2, 3), "folded": x.dim() >= 2}
        if not dims_ok[kind] or x.shape[-1] != self.in_features:
            raise ConfigError(
                f"BayesianLinear expects inputs {expected[kind]} with in={self.in_features}, "
                f"got {tuple(x.shape)}"
            )

    def _shared_op(self, xs: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return F.linear(xs, w, b)

    def _forward_samples(self, xs: Tensor, samples: int) -> Tensor:
        one_shared_row = xs.dim() == 3 and xs.shape[1] == 1 and xs.stride(0) == 0
        if one_shared_row and self._mode(xs) == "weights":
            return self._one_row_weight_samples(xs[0], samples)
        return super()._forward_samples(xs, samples)

    def _one_row_weight_samples(self, x: Tensor, samples: int) -> Tensor:
        """Whole weight samples on one input row x [1, in] shared by the S samples (batch-1
        training): y_s = x μᵀ + Σ_i ε_s,·i (σ·x)_·i, the same draws and the same sum as
        ``x (μ + σ ε_s)ᵀ``, without building the S weight matrices (and their gradient):
        about twice as fast."""
        eps = self._normal((samples, *self.weight_mu.shape), self.weight_mu)  # [S, out, in]
        y = F.linear(x, self.weight_mu) + (eps * (self.weight_sigma * x)).sum(
            -1, keepdim=True
        ).transpose(1, 2)
        if self.bias_mu is not None:
            b_eps = self._normal((samples, *self.bias_mu.shape), self.bias_mu)
            y = y + _compose(self.bias_mu, self.bias_sigma, b_eps).unsqueeze(1)
        return y  # [S, 1, out]

    def _per_sample_op(self, xs: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        # xs [S, N, ..., in] with weights [S, out, in]: one batched matmul over S.
        s = w.shape[0]
        flat = xs.reshape(s, -1, self.in_features)
        y = torch.bmm(flat, w.transpose(1, 2))
        if b is not None:
            y = y + b.unsqueeze(1)
        return y.reshape(*xs.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_mu is not None}, prior=N({c.prior_mu:g}, {c.prior_sigma:g}²), "
            f"estimator={c.estimator}, eval_mode={self.eval_mode}"
        )


class BayesianConv2d(BayesianLayer):
    """Mean-field Gaussian ``nn.Conv2d`` (zero padding; any stride, dilation, groups).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as
            ``nn.Conv2d`` (``padding`` may be ``"same"``/``"valid"``).
        config: prior, initialisation and sampling (:class:`BayesConfig`).
        device: where the parameters and the private generator live (default torch's default
            device); ``.to(device)`` moves them later.

    Inputs ``[N, C, H, W]`` (or ``[C, H, W]``); S weight samples run as one grouped
    convolution with ``S·groups`` groups over the samples stacked along the channels.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
        dilation=1, groups: int = 1, bias: bool = True, config: BayesConfig | None = None, *,
        device: torch.device | str | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        pair = nn.modules.utils._pair
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = (
            pair(kernel_size), pair(stride), pair(dilation)
        )  # fmt: skip
        if isinstance(padding, str):
            require(padding in ("same", "valid"), "BayesianConv2d.padding", padding,
                    "'same', 'valid' or ints >= 0")  # fmt: skip
            if padding == "same":
                require(self.stride == (1, 1), "BayesianConv2d.stride", stride,
                        "1 with padding='same'")  # fmt: skip
            self.padding = padding
        else:
            self.padding = pair(padding)
        checks = [
            ("in_channels", (in_channels,), 1), ("out_channels", (out_channels,), 1),
            ("kernel_size", self.kernel_size, 1), ("stride", self.stride, 1),
            ("dilation", self.dilation, 1), ("groups", (groups,), 1),
        ]  # fmt: skip
        if not isinstance(self.padding, str):
            checks.append(("padding", self.padding, 0))
        for name, values, low in checks:
            require(all(is_int(v) and v >= low for v in values), f"BayesianConv2d.{name}",
                    values if len(values) > 1 else values[0], f"ints >= {low}")  # fmt: skip
        require(
            in_channels % groups == 0 and out_channels % groups == 0,
            "BayesianConv2d.groups",
            groups,
            f"a divisor of in_channels={in_channels} and out_channels={out_channels}",
        )
        self.groups = groups
        kh, kw = self.kernel_size
        self._setup((out_channels, in_channels // groups, kh, kw), out_channels, bias, config,
                    device)  # fmt: skip

    def _feature_dims(self) -> int:
        return 3

    def _check_input(self, x: Tensor, kind: str) -> None:
        expected = {"plain": "[N, C, H, W] or [C, H, W]", "samples": "[N, C, H, W] or "
                    "[S, N, C, H, W]", "folded": "[S·N, C, H, W]"}  # fmt: skip
        dims = {"plain": (3, 4), "samples": (4, 5), "folded": (4,)}[kind]
        if x.dim() not in dims or x.shape[-3] != self.in_channels:
            raise ConfigError(
                f"BayesianConv2d expects inputs {expected[kind]} with C={self.in_channels}, "
                f"got {tuple(x.shape)}"
            )

    def _conv(self, x: Tensor, w: Tensor, b: Tensor | None, groups: int) -> Tensor:
        try:
            return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, groups)
        except RuntimeError as err:  # e.g. an input smaller than the kernel
            raise ConfigError(
                f"BayesianConv2d cannot convolve input {tuple(x.shape[-3:])}: {err}"
            ) from err

    def _shared_op(self, xs: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        lead = xs.shape[:-3]
        y = self._conv(xs.reshape(-1, *xs.shape[-3:]), w, b, self.groups)
        return y.reshape(*lead, *y.shape[1:])

    def _per_sample_op(self, xs: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        # Samples stacked along the channels: [N, S·C, H, W] convolved with [S·O, C/g, kh, kw]
        # in S·groups groups is S independent convolutions in one call.
        s, n = xs.shape[0], xs.shape[1]
        x = xs.transpose(0, 1).reshape(n, s * self.in_channels, *xs.shape[-2:])
        y = self._conv(
            x,
            w.reshape(s * self.out_channels, *w.shape[2:]),
            None if b is None else b.reshape(-1),
            s * self.groups,
        )
        return y.reshape(n, s, self.out_channels, *y.shape[-2:]).transpose(0, 1)

    def forward(self, x: Tensor, samples: int | None = None) -> Tensor:
        if samples is None and self.folded_samples is None and x.dim() == 3:
            self._check_input(x, "plain")
            return super().forward(x.unsqueeze(0)).squeeze(0)  # unbatched [C, H, W]
        return super().forward(x, samples)

    forward.__doc__ = BayesianLayer.forward.__doc__

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
            f"bias={self.bias_mu is not None}, prior=N({c.prior_mu:g}, {c.prior_sigma:g}²), "
            f"estimator={c.estimator}, eval_mode={self.eval_mode}"
        )


# --- model-level helpers ----------------------------------------------------------------------


def bayesian_layers(model: nn.Module) -> list[BayesianLayer]:
    """The Bayesian layers of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, BayesianLayer)]


def model_kl(model: nn.Module) -> Tensor:
    """KL(q‖p) in nats summed over every Bayesian layer of ``model`` (0-d tensor; 0 if none)."""
    total = None
    for layer in bayesian_layers(model):
        total = layer.kl() if total is None else total + layer.kl()
    if total is None:
        p = next(model.parameters(), None)
        return torch.zeros((), dtype=p.dtype if p is not None else None,
                           device=p.device if p is not None else None)  # fmt: skip
    return total


def seed(model: nn.Module, value: int) -> nn.Module:
    """Re-seed every Bayesian layer's private generator (layer i gets ``value + i``)."""
    require(is_int(value) and value >= 0, "seed", value, "an int >= 0")
    for i, layer in enumerate(bayesian_layers(model)):
        layer.reseed(value + i)
    return model


def set_eval_mode(model: nn.Module, mode: EvalMode) -> nn.Module:
    """Set the eval-mode forward of every Bayesian layer: ``"sample"`` or ``"mean"`` (μ)."""
    require(mode in _EVAL_MODES, "mode", mode, f"one of {_EVAL_MODES}")
    for layer in bayesian_layers(model):
        layer.eval_mode = mode
    return model


def _check_draw(draw) -> None:
    if draw is not None:
        require(draw in _DRAWS, "draw", draw, f"None or one of {_DRAWS}")


@contextlib.contextmanager
def mc_sampling(
    model: nn.Module,
    samples: int,
    *,
    generator: torch.Generator | None = None,
    draw: Draw | None = None,
    shared_input: Tensor | None = None,
) -> Iterator[nn.Module]:
    """Within the block, every Bayesian layer treats its input as S folded sample chunks.

    Feed inputs of shape ``[S·N, ...]`` (sample-major, see :func:`forward_samples`); each
    Bayesian layer applies its s-th sample to rows ``s·N .. s·N + N − 1``.

    Args:
        model: the model (its layers are changed only inside the block).
        samples: S >= 1.
        generator: when given, every layer draws from it (in the order the layers run) instead
            of its private generator.
        draw: override the training/eval mode of every layer: ``"weights"`` draws whole weight
            samples (no local reparameterisation, no mean mode); ``"local"`` samples the outputs
            of fully connected layers on ``[S·N, in]`` (exact for each example, see
            :func:`memcim.bayes.predict`) and whole weights elsewhere. ``None``: the layers'
            own modes.
        shared_input: the ``[S·N, ...]`` repeat of one batch fed to the model; a layer whose
            input is this very tensor (or a contiguous view of it) knows its S chunks are equal
            and computes local-noise means and variances once.
    """
    samples = _check_samples(samples)
    _check_draw(draw)
    marker = None if shared_input is None else (shared_input.data_ptr(), shared_input.numel())
    layers = bayesian_layers(model)
    fields = ("folded_samples", "_generator_override", "_draw", "_shared_input")
    saved = [[getattr(m, f) for f in fields] for m in layers]
    try:
        for m in layers:
            for field, value in zip(fields, (samples, generator, draw, marker), strict=True):
                setattr(m, field, value)
        yield model
    finally:
        for m, values in zip(layers, saved, strict=True):
            for field, value in zip(fields, values, strict=True):
                setattr(m, field, value)


def _shared_prefix(model: nn.Module) -> int | None:
    """Index of the first Bayesian layer of an ``nn.Sequential`` whose earlier modules are all in
    eval mode (so row-wise: running them on N rows instead of S·N identical ones changes
    nothing, and the S·N repeat of the inputs need not be built); ``None`` otherwise."""
    if not isinstance(model, nn.Sequential):
        return None
    for i, module in enumerate(model):
        if isinstance(module, BayesianLayer):
            return i
        if any(m.training or isinstance(m, BayesianLayer) for m in module.modules()):
            return None
    return None


def forward_samples(
    model: nn.Module,
    x: Tensor,
    samples: int,
    *,
    generator: torch.Generator | None = None,
    draw: Draw | None = None,
) -> Tensor:
    """Run ``model`` for S Monte-Carlo samples in one batched forward; differentiable.

    The inputs are repeated sample-major to ``[S·N, ...]``, the model runs once inside
    :func:`mc_sampling`, and its output ``[S·N, ...]`` is returned viewed as ``[S, N, ...]``.
    For an ``nn.Sequential`` whose modules before the first Bayesian layer are in eval mode,
    those run on the N inputs and the first Bayesian layer expands them to S samples itself
    (same numbers, without building the repeat).

    Args:
        model: a model containing Bayesian layers (plain modules in between are fine; BatchNorm
            in training mode would pool its batch statistics over all S·N rows).
        x: inputs ``[N, ...]``.
        samples: S >= 1.
        generator: see :func:`mc_sampling`.
        draw: see :func:`mc_sampling`.

    Returns:
        outputs ``[S, N, ...]``.
    """
    samples = _check_samples(samples)
    _check_draw(draw)
    if x.dim() < 1 or x.shape[0] < 1:
        raise ConfigError(f"inputs must be [N, ...] with N >= 1, got {tuple(x.shape)}")
    n = x.shape[0]
    start = _shared_prefix(model)
    with contextlib.ExitStack() as stack:
        if start is None:  # repeat the inputs; layers seeing the repeat itself compute once
            folded = x.unsqueeze(0).expand(samples, *x.shape).reshape(samples * n, *x.shape[1:])
            stack.enter_context(mc_sampling(model, samples, generator=generator, draw=draw,
                                            shared_input=folded))  # fmt: skip
            y = model(folded)
        else:  # deterministic prefix on N rows, first Bayesian layer on one shared batch
            stack.enter_context(mc_sampling(model, samples, generator=generator, draw=draw))
            h = model[start](model[:start](x), samples=samples)
            y = model[start + 1 :](h.reshape(samples * n, *h.shape[2:]))
    if not isinstance(y, Tensor) or y.dim() < 1 or y.shape[0] != samples * n:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ConfigError(
            f"the model's output {shape} does not keep the folded batch of {samples}·{n} rows"
        )
    return y.reshape(samples, n, *y.shape[1:])
