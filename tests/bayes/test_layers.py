"""BayesianLinear / BayesianConv2d: KL against the closed form, σ → 0 limits, the output
distribution of both estimators against its analytic moments, the batched sample dimension
against a loop, and config/shape errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from memcim import ConfigError
from memcim.bayes import (
    BayesConfig,
    BayesianConv2d,
    BayesianLinear,
    bayesian_layers,
    inverse_softplus,
    model_kl,
    seed,
    set_eval_mode,
)


def set_sigma(layer, weight_sigma, bias_sigma=None) -> None:
    """Set σ (a float or a tensor of the parameter's shape) through ρ = softplus⁻¹(σ)."""
    with torch.no_grad():
        layer.weight_rho.copy_(inverse_softplus(torch.as_tensor(weight_sigma)))
        if layer.bias_rho is not None:
            b = weight_sigma if bias_sigma is None else bias_sigma
            layer.bias_rho.copy_(inverse_softplus(torch.as_tensor(b)))


def randomise(layer, gen, sigma_lo=0.05, sigma_hi=0.4) -> None:
    """Random μ and per-weight σ in [sigma_lo, sigma_hi]."""
    with torch.no_grad():
        layer.weight_mu.normal_(0, 0.5, generator=gen)
        span = sigma_hi - sigma_lo
        w_sigma = sigma_lo + span * torch.rand(layer.weight_mu.shape, generator=gen)
        b_sigma = None
        if layer.bias_mu is not None:
            layer.bias_mu.normal_(0, 0.5, generator=gen)
            b_sigma = sigma_lo + span * torch.rand(layer.bias_mu.shape, generator=gen)
        set_sigma(layer, w_sigma, b_sigma)


# --- KL -----------------------------------------------------------------------------------------


def kl_closed_form(mu_q, sigma_q, mu_p, sigma_p):
    """KL(N(μq, σq²) ‖ N(μp, σp²)) = log(σp/σq) + (σq² + (μq − μp)²) / (2σp²) − 1/2."""
    return (
        math.log(sigma_p)
        - torch.log(sigma_q)
        + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2)
        - 0.5
    )


@pytest.mark.parametrize(("prior_mu", "prior_sigma"), [(0.0, 1.0), (0.3, 0.1)])
def test_kl_matches_the_gaussian_closed_form(prior_mu, prior_sigma, gen):
    cfg = BayesConfig(prior_mu=prior_mu, prior_sigma=prior_sigma)
    lin = BayesianLinear(7, 5, config=cfg)
    conv = BayesianConv2d(4, 6, 3, groups=2, config=cfg)
    for layer in (lin, conv):
        randomise(layer, gen, 0.01, 2.0)
        expected = (
            kl_closed_form(layer.weight_mu, layer.weight_sigma, prior_mu, prior_sigma).sum()
            + kl_closed_form(layer.bias_mu, layer.bias_sigma, prior_mu, prior_sigma).sum()
        )
        torch.testing.assert_close(layer.kl(), expected, rtol=1e-5, atol=1e-4)
    no_bias = BayesianLinear(7, 5, bias=False, config=cfg)
    randomise(no_bias, gen)
    expected = kl_closed_form(no_bias.weight_mu, no_bias.weight_sigma, prior_mu, prior_sigma)
    torch.testing.assert_close(no_bias.kl(), expected.sum(), rtol=1e-5, atol=1e-4)
    model = torch.nn.Sequential(lin, torch.nn.ReLU(), torch.nn.Flatten(), no_bias)
    torch.testing.assert_close(model_kl(model), lin.kl() + no_bias.kl())
    assert float(model_kl(torch.nn.Sequential(torch.nn.Linear(2, 2)))) == 0.0


def test_kl_is_zero_at_the_prior_and_differentiable():
    layer = BayesianLinear(3, 2, config=BayesConfig(prior_mu=0.2, prior_sigma=0.5))
    with torch.no_grad():
        layer.weight_mu.fill_(0.2)
        layer.bias_mu.fill_(0.2)
    set_sigma(layer, 0.5)
    assert abs(layer.kl().item()) < 1e-5
    layer.weight_mu.data.add_(0.1)
    layer.kl().backward()
    assert layer.weight_mu.grad.abs().min() > 0 and layer.weight_rho.grad is not None


# --- σ → 0: the plain layers ---------------------------------------------------------------------

TINY = BayesConfig(sigma_init=1e-30)


@pytest.mark.parametrize("estimator", ["reparam", "local"])
@pytest.mark.parametrize("training", [True, False])
def test_linear_with_vanishing_sigma_is_f_linear(estimator, training, gen):
    layer = BayesianLinear(9, 4, config=BayesConfig(sigma_init=1e-30, estimator=estimator))
    layer.train(training)
    x = torch.randn(6, 9, generator=gen)
    expected = F.linear(x, layer.weight_mu, layer.bias_mu)
    torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(layer(x, samples=3), expected.expand(3, 6, 4), rtol=1e-6, atol=1e-6)
    x3 = torch.randn(2, 5, 9, generator=gen)  # extra leading dims, as nn.Linear
    torch.testing.assert_close(layer(x3), F.linear(x3, layer.weight_mu, layer.bias_mu))
    torch.testing.assert_close(layer(x[0]), expected[0])


@pytest.mark.parametrize("estimator", ["reparam", "local"])
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation", "groups"),
    [(3, 1, 0, 1, 1), ((3, 2), 2, 1, 1, 2), (3, 1, "same", 2, 1), ((2, 3), (2, 1), (1, 2), 1, 3)],
)
def test_conv_with_vanishing_sigma_is_f_conv2d(
    estimator, kernel, stride, padding, dilation, groups, gen
):
    cfg = BayesConfig(sigma_init=1e-30, estimator=estimator)
    layer = BayesianConv2d(6, 12, kernel, stride, padding, dilation, groups, config=cfg)
    x = torch.randn(2, 6, 8, 9, generator=gen)
    expected = F.conv2d(x, layer.weight_mu, layer.bias_mu, stride, padding, dilation, groups)
    for training in (True, False):
        layer.train(training)
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
        y = layer(x, samples=3)
        torch.testing.assert_close(y, expected.expand(3, *expected.shape), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer(x[1]), expected[1], rtol=1e-5, atol=1e-5)


def test_mean_eval_mode_uses_mu(gen):
    layer = BayesianLinear(5, 3, config=BayesConfig(eval_mode="mean", sigma_init=0.5)).eval()
    x = torch.randn(4, 5, generator=gen)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu))
    set_eval_mode(layer, "sample")
    assert not torch.allclose(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu), atol=0.1)
    with pytest.raises(ConfigError, match="mode"):
        set_eval_mode(layer, "median")


# --- output distribution -------------------------------------------------------------------------
#
# With independent w_ji ~ N(μ_ji, σ_ji²) and b_j ~ N(μ_bj, σ_bj²), an output y_nj = Σ_i x_ni w_ji
# + b_j is Gaussian with mean Σ_i x_ni μ_ji + μ_bj = (x μᵀ + μ_b)_nj and variance
# Σ_i x_ni² σ_ji² + σ_bj² = (x² σ²ᵀ + σ_b²)_nj (for a convolution the same sums run over each
# output pixel's receptive field: conv(x, μ) and conv(x², σ²)). Over S independent samples the
# sample mean has standard error sqrt(v / S), and the unbiased sample variance of a Gaussian has
# Var = 2 v² / (S − 1), i.e. standard error v · sqrt(2 / (S − 1)). We allow 5 standard errors per
# element (two-sided false-alarm rate 6e-7 each; a few hundred elements are checked, and the
# seeded generator makes the outcome fixed anyway).

S_STAT = 20_000


def moments(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = y.double()
    return y.mean(0), y.var(0, unbiased=True)


def assert_moments(y, mean, var, s=S_STAT):
    emp_mean, emp_var = moments(y)
    mean, var = mean.double(), var.double()
    assert ((emp_mean - mean).abs() <= 5 * (var / s).sqrt()).all()
    assert ((emp_var - var).abs() <= 5 * var * math.sqrt(2 / (s - 1))).all()


def linear_case(gen):
    layer = BayesianLinear(6, 4, config=BayesConfig(seed=11))
    randomise(layer, gen)
    x = torch.randn(3, 6, generator=gen)
    mean = F.linear(x, layer.weight_mu, layer.bias_mu)
    var = F.linear(x**2, layer.weight_sigma**2, layer.bias_sigma**2)
    return layer, x, mean.detach(), var.detach()


def conv_case(gen):
    layer = BayesianConv2d(4, 4, 3, padding=1, groups=2, config=BayesConfig(seed=12))
    randomise(layer, gen)
    x = torch.randn(2, 4, 4, 4, generator=gen)
    mean = F.conv2d(x, layer.weight_mu, layer.bias_mu, padding=1, groups=2)
    var = F.conv2d(x**2, layer.weight_sigma**2, layer.bias_sigma**2, padding=1, groups=2)
    return layer, x, mean.detach(), var.detach()


@pytest.mark.parametrize("case", [linear_case, conv_case])
@pytest.mark.parametrize(("estimator", "training"), [("reparam", True), ("local", True),
                                                     ("reparam", False)])  # fmt: skip
def test_output_moments_match_the_analytic_ones(case, estimator, training, gen):
    layer, x, mean, var = case(gen)
    layer.config = BayesConfig(estimator=estimator)
    layer.train(training)
    with torch.no_grad():
        y = layer(x, samples=S_STAT)
    assert y.shape == (S_STAT, *mean.shape)
    assert_moments(y, mean, var)


@pytest.mark.parametrize("case", [linear_case, conv_case])
def test_local_and_full_reparameterisation_agree(case, gen):
    layer, x, _, _ = case(gen)
    with torch.no_grad():
        layer.config = BayesConfig(estimator="local")
        y_local = layer(x, samples=S_STAT)
        layer.config = BayesConfig(estimator="reparam")
        y_full = layer(x, samples=S_STAT)
    (m1, v1), (m2, v2) = moments(y_local), moments(y_full)
    # Two independent estimates: the SE of a difference is the root sum of squares.
    assert ((m1 - m2).abs() <= 5 * ((v1 + v2) / S_STAT).sqrt()).all()
    se_var = (v1**2 + v2**2).sqrt() * math.sqrt(2 / (S_STAT - 1))
    assert ((v1 - v2).abs() <= 5 * se_var).all()


def test_folded_training_forward_matches_the_analytic_moments(gen):
    # One call on [S·N, in] folded rows (what forward_samples feeds a layer) with local noise.
    from memcim.bayes import forward_samples

    layer, x, mean, var = linear_case(gen)
    with torch.no_grad():
        y = forward_samples(layer, x, S_STAT)
    assert_moments(y, mean, var)


# --- the sample dimension against a loop ---------------------------------------------------------


def test_linear_samples_match_a_loop_over_weight_draws(gen):
    layer, x, _, _ = linear_case(gen)
    layer.eval()
    s = 5
    layer.reseed(3)
    y = layer(x, samples=s)
    # the layer draws ε_w [S, out, in], then ε_b [S, out], from its generator
    ref_gen = torch.Generator().manual_seed(3)
    eps_w = torch.randn((s, 4, 6), generator=ref_gen)
    eps_b = torch.randn((s, 4), generator=ref_gen)
    for i in range(s):
        w = layer.weight_mu + layer.weight_sigma * eps_w[i]
        b = layer.bias_mu + layer.bias_sigma * eps_b[i]
        torch.testing.assert_close(y[i], F.linear(x, w, b), rtol=1e-5, atol=1e-6)
    # an explicit [S, N, in] input: sample i sees its own rows
    xs = torch.randn(s, 3, 6, generator=gen)
    w, b = layer.sample_parameters(s, generator=torch.Generator().manual_seed(9))
    layer.reseed(9)
    y = layer(xs, samples=s)
    for i in range(s):
        torch.testing.assert_close(y[i], F.linear(xs[i], w[i], b[i]), rtol=1e-5, atol=1e-6)


def test_one_shared_input_row_takes_the_same_draws_and_gradients_as_whole_weights(gen):
    """Batch-1 training computes y_s = x μᵀ + Σ ε_s (σ x) without forming the S weight
    matrices: same outputs and gradients as x (μ + σ ε_s)ᵀ with the same draws."""
    layer = BayesianLinear(6, 4, config=BayesConfig(seed=11, estimator="reparam"))
    randomise(layer, gen)
    layer.train()
    x = torch.randn(1, 6, generator=gen)
    layer.reseed(4)
    y = layer(x, samples=5)
    y.square().sum().backward()
    fast = [p.grad.clone() for p in (layer.weight_mu, layer.weight_rho, layer.bias_mu)]
    layer.zero_grad()
    w, b = layer.sample_parameters(5, generator=torch.Generator().manual_seed(4))
    expected = torch.stack([F.linear(x, w[i], b[i]) for i in range(5)])
    expected.square().sum().backward()
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    for got, p in zip(fast, (layer.weight_mu, layer.weight_rho, layer.bias_mu), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-5, atol=1e-6)


def test_conv_samples_match_a_loop_over_weight_draws(gen):
    layer, x, _, _ = conv_case(gen)
    layer.eval()
    s = 4
    w, b = layer.sample_parameters(s, generator=torch.Generator().manual_seed(5))
    layer.reseed(5)
    y = layer(x, samples=s)
    for i in range(s):
        expected = F.conv2d(x, w[i], b[i], padding=1, groups=2)
        torch.testing.assert_close(y[i], expected, rtol=1e-5, atol=1e-5)


def test_gradients_reach_mu_and_rho(gen):
    for estimator in ("reparam", "local"):
        for layer in (
            BayesianLinear(5, 3, config=BayesConfig(estimator=estimator, sigma_init=0.1)),
            BayesianConv2d(2, 3, 3, config=BayesConfig(estimator=estimator, sigma_init=0.1)),
        ):
            x = torch.randn(4, 5, generator=gen) if layer.weight_mu.dim() == 2 else (
                torch.randn(4, 2, 5, 5, generator=gen)
            )  # fmt: skip
            (layer(x).square().sum() + layer(x, samples=2).sum()).backward()
            for p in (layer.weight_mu, layer.weight_rho, layer.bias_mu, layer.bias_rho):
                assert p.grad is not None and torch.isfinite(p.grad).all()
                assert p.grad.abs().sum() > 0


def test_same_seed_same_numbers(gen):
    x = torch.randn(3, 5, generator=gen)
    a = BayesianLinear(5, 2, config=BayesConfig(sigma_init=0.3, seed=4)).train()
    b = BayesianLinear(5, 2, config=BayesConfig(sigma_init=0.3, seed=4)).train()
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), a(x))  # fresh noise every forward
    model = torch.nn.Sequential(a, b.__class__(2, 2, config=BayesConfig(seed=4)))
    seed(model, 10)
    assert [m.generator.initial_seed() for m in bayesian_layers(model)] == [10, 11]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prior_mu", float("nan")),
        ("prior_mu", "0"),
        ("prior_sigma", 0.0),
        ("prior_sigma", -1.0),
        ("prior_sigma", float("inf")),
        ("sigma_init", 0.0),
        ("sigma_init", True),
        ("estimator", "score"),
        ("eval_mode", "median"),
        ("seed", -1),
        ("seed", 1.5),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=f"BayesConfig.{field}"):
        BayesConfig(**{field: value})


def test_bad_layer_arguments_name_the_field():
    with pytest.raises(ConfigError, match="BayesianLinear.in_features"):
        BayesianLinear(0, 3)
    with pytest.raises(ConfigError, match="BayesianLinear.out_features"):
        BayesianLinear(3, 2.0)
    with pytest.raises(ConfigError, match="BayesianConv2d.kernel_size"):
        BayesianConv2d(3, 4, 0)
    with pytest.raises(ConfigError, match="BayesianConv2d.groups"):
        BayesianConv2d(3, 4, 3, groups=2)
    with pytest.raises(ConfigError, match="BayesianConv2d.padding"):
        BayesianConv2d(3, 4, 3, padding="full")
    with pytest.raises(ConfigError, match="config"):
        BayesianLinear(3, 4, config={"prior_sigma": 1.0})


def test_bad_inputs_raise(gen):
    lin = BayesianLinear(4, 2)
    conv = BayesianConv2d(3, 2, 3)
    with pytest.raises(ConfigError, match=r"\[..., in\]"):
        lin(torch.randn(2, 5))
    with pytest.raises(ConfigError, match="samples=3"):
        lin(torch.randn(2, 2, 4), samples=3)
    with pytest.raises(ConfigError, match="samples"):
        lin(torch.randn(2, 4), samples=0)
    with pytest.raises(ConfigError, match="C=3"):
        conv(torch.randn(2, 4, 5, 5))
    with pytest.raises(ConfigError, match="cannot convolve"):
        conv(torch.randn(2, 3, 2, 2))
    with pytest.raises(ConfigError, match=r"\[N, C, H, W\] or \[S, N, C, H, W\]"):
        conv(torch.randn(3, 5, 5), samples=2)
