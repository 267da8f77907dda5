"""to_bayesian on a mixed model, predict (shapes, entropy identities, batched vs a loop),
the ELBO and a short ELBO training on scikit-learn's digits."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memcim import ConfigError
from memcim.bayes import (
    BayesConfig,
    BayesianConv2d,
    BayesianLinear,
    bayesian_layers,
    elbo_loss,
    elbo_objective,
    forward_samples,
    mc_sampling,
    model_kl,
    predict,
    to_bayesian,
    train_elbo,
)
from memcim.data import load_digits


def mixed_model(gen) -> nn.Module:
    """Conv2d / BatchNorm / ReLU / pooling / Flatten / Linear, with non-trivial BN statistics."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=1, padding=1, groups=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 16),
        nn.ReLU(),
        nn.Linear(16, 5),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        model.train()
        for _ in range(3):  # BN running statistics away from (0, 1)
            model(torch.randn(8, 1, 8, 8, generator=gen) * 2 + 0.5)
    return model.eval()


def test_to_bayesian_keeps_the_model_and_its_weights(gen):
    plain = mixed_model(gen)
    x = torch.randn(5, 1, 8, 8, generator=gen)
    expected = plain(x)
    model = to_bayesian(copy.deepcopy(plain), config=BayesConfig(sigma_init=1e-3, seed=3))
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["BayesianConv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "BayesianConv2d",
                     "ReLU", "Flatten", "BayesianLinear", "ReLU", "BayesianLinear"]  # fmt: skip
    layers = bayesian_layers(model)
    assert [m.generator.initial_seed() for m in layers] == [3, 4, 5, 6]
    assert layers[1].groups == 2 and not model.training
    for layer in layers:
        torch.testing.assert_close(layer.weight_sigma, torch.full_like(layer.weight_sigma, 1e-3))
    torch.testing.assert_close(model[0].weight_mu, plain[0].weight)
    # μ is the trained network: the mean-mode forward is the original one
    for layer in layers:
        layer.eval_mode = "mean"
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    # and with vanishing σ every prediction sample is the original network
    for layer in layers:
        layer.weight_rho.data.fill_(-200.0)  # softplus underflows to σ = 0 exactly
        layer.bias_rho.data.fill_(-200.0)
    pred = predict(model, x, samples=4, generator=gen)
    probs = F.softmax(expected, -1)
    torch.testing.assert_close(pred.probs, probs.expand(4, -1, -1), rtol=1e-5, atol=1e-6)
    assert pred.epistemic.abs().max() < 1e-6


def test_to_bayesian_layer_selection(gen):
    plain = mixed_model(gen)
    model = to_bayesian(copy.deepcopy(plain), layers="all_but_first_last")
    assert [type(model[i]).__name__ for i in (0, 4, 7, 9)] == [
        "Conv2d", "BayesianConv2d", "BayesianLinear", "Linear"]  # fmt: skip
    # a model mixing Bayesian and plain layers still runs S samples folded into the batch
    pred = predict(model, torch.randn(3, 1, 8, 8, generator=gen), samples=6, generator=gen)
    assert pred.probs.shape == (6, 3, 5)
    model = to_bayesian(copy.deepcopy(plain), layers=["7"])
    assert isinstance(model[7], BayesianLinear) and isinstance(model[0], nn.Conv2d)
    single = to_bayesian(nn.Linear(3, 2))
    assert isinstance(single, BayesianLinear)
    with pytest.raises(ConfigError, match="layers"):
        to_bayesian(copy.deepcopy(plain), layers=["1"])  # BatchNorm is not convertible
    with pytest.raises(ConfigError, match="layers"):
        to_bayesian(copy.deepcopy(plain), layers="first")
    odd = nn.Sequential(nn.Linear(4, 4), nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(ConfigError, match="padding_mode"):
        to_bayesian(odd)
    assert type(odd[0]) is nn.Linear  # nothing replaced


# --- predict -------------------------------------------------------------------------------------


def bayesian_model(gen, sigma=0.2) -> nn.Module:
    model = to_bayesian(mixed_model(gen), config=BayesConfig(sigma_init=sigma))
    return model


def test_predict_shapes_and_decomposition_identities(gen):
    model = bayesian_model(gen)
    x = torch.randn(7, 1, 8, 8, generator=gen)
    pred = predict(model, x, samples=16, generator=gen)
    assert pred.probs.shape == (16, 7, 5) and pred.samples == 16
    assert pred.mean.shape == (7, 5) and pred.label.shape == (7,)
    for name in ("total", "aleatoric", "epistemic"):
        assert getattr(pred, name).shape == (7,)
    torch.testing.assert_close(pred.probs.sum(-1), torch.ones(16, 7))
    torch.testing.assert_close(pred.mean, pred.probs.mean(0))
    # entropies by an independent route: torch.distributions.Categorical, in nats
    cat = torch.distributions.Categorical
    torch.testing.assert_close(pred.total, cat(probs=pred.mean).entropy(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        pred.aleatoric, cat(probs=pred.probs).entropy().mean(0), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(pred.epistemic, pred.total - pred.aleatoric, atol=1e-6, rtol=0)
    assert (pred.epistemic >= 0).all() and pred.epistemic.max() > 1e-3  # σ = 0.2 is felt
    assert (pred.total <= math.log(5) + 1e-5).all()


def test_predict_restores_every_training_flag(gen):
    model = bayesian_model(gen)
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    flags = [m.training for m in model.modules()]
    predict(model, torch.randn(2, 1, 8, 8, generator=gen), samples=3)
    assert [m.training for m in model.modules()] == flags
    assert all(m.folded_samples is None for m in bayesian_layers(model))


def test_predict_draws_weights_even_in_mean_mode_and_local_training(gen):
    model = to_bayesian(
        mixed_model(gen), config=BayesConfig(sigma_init=0.2, eval_mode="mean", estimator="local")
    )
    pred = predict(model, torch.randn(3, 1, 8, 8, generator=gen), samples=8, generator=gen)
    assert pred.epistemic.min() > 0


def test_predict_equals_a_loop_over_weight_samples(gen):
    plain = mixed_model(gen)
    model = to_bayesian(copy.deepcopy(plain), config=BayesConfig(sigma_init=0.1))
    x = torch.randn(4, 1, 8, 8, generator=gen)
    s = 5
    pred = predict(
        model, x, samples=s, generator=torch.Generator().manual_seed(21), method="weights"
    )

    # Loop reference: the same ε, drawn as documented (per layer in execution order, ε_w
    # [S, *weight.shape] then ε_b [S, out] from the shared generator), applied one sample at a
    # time to a copy of the plain network.
    ref_gen = torch.Generator().manual_seed(21)
    draws = [
        (
            torch.randn((s, *layer.weight_mu.shape), generator=ref_gen),
            torch.randn((s, *layer.bias_mu.shape), generator=ref_gen),
        )
        for layer in bayesian_layers(model)
    ]
    names = ["0", "4", "7", "9"]
    for i in range(s):
        net = copy.deepcopy(plain).eval()
        for name, layer, (eps_w, eps_b) in zip(names, bayesian_layers(model), draws, strict=True):
            with torch.no_grad():
                net.get_submodule(name).weight.copy_(
                    layer.weight_mu + layer.weight_sigma * eps_w[i]
                )
                net.get_submodule(name).bias.copy_(layer.bias_mu + layer.bias_sigma * eps_b[i])
        with torch.no_grad():
            probs = F.softmax(net(x), -1)
        torch.testing.assert_close(pred.probs[i], probs, rtol=1e-5, atol=1e-6)


def _mlp_bayes(gen) -> nn.Module:
    model = to_bayesian(
        nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4)),
        config=BayesConfig(sigma_init=0.4),
    )
    with torch.no_grad():
        for layer in bayesian_layers(model):
            layer.weight_mu.copy_(torch.randn(layer.weight_mu.shape, generator=gen) * 0.7)
    return model


def test_local_predict_has_the_per_input_distribution_of_weight_samples(gen):
    from scipy.stats import ks_2samp

    model = _mlp_bayes(gen)
    x = torch.randn(2, 6, generator=gen)
    s = 20_000
    local = predict(model, x, samples=s, generator=torch.Generator().manual_seed(1))
    weights = predict(
        model, x, samples=s, generator=torch.Generator().manual_seed(2), method="weights"
    )
    # Two-sample KS per input and class: with 20k vs 20k draws, D <= 1.95·sqrt(2/s) = 0.0195
    # is the α = 0.001 critical value (fixed seeds, so the test is deterministic; the bound is
    # what a true equality of distributions passes 99.9 % of the time).
    for i in range(2):
        for c in range(4):
            d = ks_2samp(local.probs[:, i, c].numpy(), weights.probs[:, i, c].numpy()).statistic
            assert d <= 1.95 * math.sqrt(2 / s), (i, c, d)
        # And the per-input epistemic part (a functional of the same distribution), 5 SE.
        se = weights.probs[:, i].std(0).max() / math.sqrt(s)
        torch.testing.assert_close(local.mean[i], weights.mean[i], rtol=0, atol=float(5 * se))


def test_local_predict_draws_each_input_independently_weights_share_a_network(gen):
    model = _mlp_bayes(gen)
    x = torch.randn(1, 6, generator=gen).repeat(2, 1)  # the same input twice
    local = predict(model, x, samples=8, generator=gen)
    weights = predict(model, x, samples=8, generator=gen, method="weights")
    assert not torch.allclose(local.probs[:, 0], local.probs[:, 1])
    torch.testing.assert_close(weights.probs[:, 0], weights.probs[:, 1])


def test_shared_first_layer_is_computed_once_with_the_same_draws(gen):
    # The first layer sees the S·N repeat: its mean/variance are computed on one chunk. With the
    # same generator the result equals the unshared computation on a copy of the input.
    layer = BayesianLinear(5, 3, config=BayesConfig(sigma_init=0.3)).eval()
    x = torch.randn(4, 5, generator=gen)
    folded = x.repeat(7, 1)
    outs = []
    for marker in (folded, None):
        with mc_sampling(layer, 7, generator=torch.Generator().manual_seed(3), draw="local",
                         shared_input=marker):  # fmt: skip
            outs.append(layer(folded.clone() if marker is None else folded))
    torch.testing.assert_close(outs[0], outs[1])


def test_predict_rejects_an_unknown_method(gen):
    with pytest.raises(ConfigError, match="method"):
        predict(_mlp_bayes(gen), torch.randn(2, 6), method="exact")


def test_predict_is_reproducible_and_chunks(gen):
    model = bayesian_model(gen)
    x = torch.randn(6, 1, 8, 8, generator=gen)
    a = predict(model, x, samples=4, generator=torch.Generator().manual_seed(1))
    b = predict(model, x, samples=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.probs, b.probs)
    chunked = predict(model, x, samples=4, batch_size=4, generator=gen)
    assert chunked.probs.shape == (4, 6, 5)


def test_forward_samples_and_mc_sampling(gen):
    model = nn.Sequential(BayesianLinear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(5, 3, generator=gen)
    y = forward_samples(model, x, 3)
    assert y.shape == (3, 5, 2) and y.requires_grad
    with mc_sampling(model, 2):
        assert model[0].folded_samples == 2
        with pytest.raises(ConfigError, match="multiple"):
            model(torch.randn(5, 3))
    assert model[0].folded_samples is None


def test_predict_rejects_bad_arguments(gen):
    model = bayesian_model(gen)
    x = torch.randn(2, 1, 8, 8, generator=gen)
    with pytest.raises(ConfigError, match="samples"):
        predict(model, x, samples=0)
    with pytest.raises(ConfigError, match="batch_size"):
        predict(model, x, batch_size=0)
    with pytest.raises(ConfigError, match="NaN"):
        predict(model, x * float("nan"))
    seq = nn.Sequential(BayesianLinear(3, 4), nn.Unflatten(1, (2, 2)))
    with pytest.raises(ConfigError, match=r"logits \[N, C\]"):
        predict(seq, torch.randn(2, 3))


# --- ELBO ----------------------------------------------------------------------------------------


def test_elbo_loss_is_mean_nll_plus_kl_per_example(gen):
    logits = torch.randn(3, 4, 5, generator=gen)
    y = torch.tensor([0, 4, 2, 1])
    kl = torch.tensor(12.5)
    nll = -torch.stack([F.log_softmax(logits[s], -1)[torch.arange(4), y] for s in range(3)]).mean()
    torch.testing.assert_close(elbo_loss(logits, y, kl, 100), nll + 0.125)
    torch.testing.assert_close(
        elbo_loss(logits[0], y, kl, 50, kl_weight=0.5), F.cross_entropy(logits[0], y) + 0.125
    )
    with pytest.raises(ConfigError, match="dataset_size"):
        elbo_loss(logits, y, kl, 0)
    with pytest.raises(ConfigError, match="kl_weight"):
        elbo_loss(logits, y, kl, 10, kl_weight=-1.0)
    with pytest.raises(ConfigError, match="labels"):
        elbo_loss(logits, y[:3], kl, 10)
    model = nn.Sequential(BayesianLinear(5, 3))
    loss = elbo_objective(10, samples=2)(model, torch.randn(4, 5), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert model[0].weight_rho.grad is not None
    with pytest.raises(ConfigError, match="samples"):
        elbo_objective(10, samples=0)


def test_elbo_training_on_digits_reaches_90_percent():
    data = load_digits(seed=0, standardize=True)
    cfg = BayesConfig(estimator="local", sigma_init=1e-2, seed=1)
    model = nn.Sequential(
        BayesianLinear(64, 64, config=cfg), nn.ReLU(), BayesianLinear(64, 10, config=cfg)
    )
    kl_before = model_kl(model).item()
    train_elbo(
        model, data.x_train, data.y_train, epochs=15, lr=1e-2, batch_size=64,
        generator=torch.Generator().manual_seed(0), samples=2, progress=False,
    )  # fmt: skip
    assert model_kl(model).item() < kl_before  # the KL term is being optimised
    pred = predict(model, data.x_test, samples=32, generator=torch.Generator().manual_seed(0))
    accuracy = (pred.label == data.y_test).float().mean().item()
    assert accuracy > 0.9
    assert model.training  # predict left the training flag alone


def test_train_elbo_rejects_bad_arguments():
    model = nn.Sequential(BayesianLinear(3, 2))
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    kw = {"epochs": 1, "lr": 1e-2, "batch_size": 2, "generator": torch.Generator()}
    with pytest.raises(ConfigError, match="epochs"):
        train_elbo(model, x, y, **{**kw, "epochs": 0})
    with pytest.raises(ConfigError, match="lr"):
        train_elbo(model, x, y, **{**kw, "lr": -1.0})
    with pytest.raises(ConfigError, match="must match"):
        train_elbo(model, x, y[:3], **kw)
    train_elbo(model, x, y, **kw, progress=False)


def test_conv_model_trains_with_samples(gen):
    model = nn.Sequential(
        BayesianConv2d(1, 2, 3, config=BayesConfig(sigma_init=0.05)), nn.Flatten(),
        BayesianLinear(2 * 4 * 4, 3),
    )  # fmt: skip
    x = torch.randn(6, 1, 6, 6, generator=gen)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    train_elbo(model, x, y, epochs=2, lr=1e-2, batch_size=3, generator=gen, samples=3,
               progress=False)  # fmt: skip
    assert all(torch.isfinite(p).all() for p in model.parameters())


class _Wrapped(nn.Module):
    """Not a Sequential: forward_samples must repeat the inputs for it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


@pytest.mark.parametrize("draw", ["local", "weights"])
def test_sequential_fast_path_gives_the_numbers_of_the_repeated_inputs(gen, draw):
    # A plain prefix (Flatten, Linear, ReLU) in eval mode runs on N rows and the first Bayesian
    # layer expands to S samples itself; the generic path repeats the inputs S times.
    seq = nn.Sequential(nn.Flatten(), nn.Linear(6, 6), nn.ReLU(), *_mlp_bayes(gen)).eval()
    x = torch.randn(5, 2, 3, generator=gen)
    fast = forward_samples(seq, x, 7, generator=torch.Generator().manual_seed(4), draw=draw)
    slow = forward_samples(_Wrapped(seq), x, 7, generator=torch.Generator().manual_seed(4),
                           draw=draw)  # fmt: skip
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    # A prefix in training mode (dropout draws per row) must not be shared: it falls back, so
    # with σ ≈ 0 the samples still differ (dropout masks per repeated row).
    seq[0] = nn.Dropout(0.5).train()
    with torch.no_grad():
        for layer in bayesian_layers(seq):
            layer.weight_rho.fill_(-30.0)
            layer.bias_rho.fill_(-30.0)
    y = forward_samples(seq, x.flatten(1), 7, generator=torch.Generator().manual_seed(4))
    assert y.shape == (7, 5, 4) and not torch.allclose(y[0], y[1])
