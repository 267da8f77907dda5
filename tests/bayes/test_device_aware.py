"""Device-aware training: realisable σ intervals against ``realise``, the technological loss,
the projection, and a short device-aware ELBO training on digits."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import memcim.bayes as mb
from memcim import ConfigError
from memcim.bayes import device_aware as da
from memcim.bayes import realise
from memcim.data import load_digits
from memcim.devices import FilamentaryRRAM
from memcim.training import train

S = 400
C2C = mb.SamplingScheme.CYCLE_TO_CYCLE


def means(gen, shape=(16, 32)):
    return (torch.rand(shape, generator=gen) * 2 - 1) * 0.2


def mlp(sigma_init: float = 0.02, seed: int = 0, hidden: int = 32) -> nn.Sequential:
    cfg = mb.BayesConfig(sigma_init=sigma_init, seed=seed)
    return nn.Sequential(mb.BayesianLinear(64, hidden, config=cfg), nn.ReLU(),
                         mb.BayesianLinear(hidden, 10, config=cfg))  # fmt: skip


def spread_sigma_(model: nn.Module, gen: torch.Generator) -> None:
    """σ log-uniform over 1e-4 … 1: most far outside any device's interval."""
    with torch.no_grad():
        for layer in mb.bayesian_layers(model):
            for rho in (layer.weight_rho, layer.bias_rho):
                sigma = torch.exp(torch.empty(rho.shape).uniform_(-9.2, 0.0, generator=gen))
                rho.copy_(mb.inverse_softplus(sigma))


@pytest.mark.parametrize(("scheme", "per_weight_tol"), [
    (mb.SamplingScheme.CYCLE_TO_CYCLE, 0.18), (mb.SamplingScheme.READ_NOISE, 0.25),
])  # fmt: skip
def test_coupled_range_is_the_sigma_that_realise_draws(scheme, per_weight_tol, gen):
    """low == high == the σ of the realised samples.

    One weight's sample std over S = 400 has an SE of σ/√(2S) = 3.5 % (Gaussian; 4.3 % for a
    sum of three Laplace reads, kurtosis 4): 5 SE is 18 % (25 % with Laplace tails). The
    median over 512 weights of the ratio has an SE of ~0.2 %; the device table's own
    Monte-Carlo error (≈1.1 % per grid point) and its linear interpolation dominate, so 3 %.
    Device-to-device spread is off: re-programming the same cell does not redraw it. READ_NOISE
    reads Lin et al.'s devices (its default), programmed exactly.
    """
    mu = means(gen)
    device = FilamentaryRRAM(d2d_sigma=0.0) if scheme is mb.SamplingScheme.CYCLE_TO_CYCLE else None
    cfg = mb.HardwareSampling(scheme=scheme, device=device)
    r = mb.realisable_sigma(mu, cfg)
    assert torch.equal(r.low, r.high) and r.low.shape == mu.shape
    real = realise(mu, r.low, cfg, S, generator=gen)
    assert r.k_us == real.k_us
    ratio = real.samples.std(0) / r.low
    assert ((ratio - 1).abs() < per_weight_tol).all()
    assert abs(ratio.median().item() - 1) < 0.03
    assert real.feasible.all()  # realise agrees that σ = low is realisable ...
    assert not realise(mu, 1.5 * r.low, cfg, 1, generator=gen).feasible.any()  # ... and 1.5σ not


@pytest.mark.parametrize("scheme", [mb.SamplingScheme.DIFFERENTIAL,
                                    mb.SamplingScheme.DEVICE_POPULATION])  # fmt: skip
def test_paired_range_is_exactly_where_realise_is_feasible(scheme, gen):
    """Targets σ over 2.5 decades: realise flags exactly those inside [low, high] feasible."""
    mu = means(gen)
    sigma = torch.exp(torch.empty(mu.shape).uniform_(-6.0, -1.0, generator=gen))
    cfg = mb.HardwareSampling(scheme=scheme, population=2)
    r = mb.realisable_sigma(mu, cfg, sigma=sigma)
    real = realise(mu, sigma, cfg, 1, generator=gen)
    inside = (r.low <= sigma) & (sigma <= r.high)
    assert r.k_us == real.k_us
    assert 0.2 < inside.float().mean() < 0.8  # both kinds of target are tested
    assert torch.equal(real.feasible, inside)
    assert (r.low < r.high).all()  # a genuine interval: μ and σ are decoupled


def test_separate_mu_sigma_is_unconstrained(gen):
    model = mlp()
    spread_sigma_(model, gen)
    cfg = mb.HardwareSampling(scheme=mb.SamplingScheme.SEPARATE_MU_SIGMA)
    mu = model[0].weight_mu.detach()
    r = mb.realisable_sigma(mu, cfg)
    assert (r.low == 0).all() and (r.high == math.inf).all()
    assert r.k_us == realise(mu, torch.ones_like(mu), cfg, 1, generator=gen).k_us
    assert mb.technological_loss(model, cfg).item() == 0.0
    assert mb.project_sigma_(model, cfg) == 0.0
    assert mb.feasible_fraction(model, cfg) == 1.0


def test_technological_loss_closed_form_and_gradient():
    """σ inside [0.01, 0.04] costs 0; σ = low/4 or 4·high costs (ln 4)² each; the gradient
    pushes each σ toward its interval and equals the closed form 2d·(∓1)·σ'(ρ)/σ / N."""
    model = nn.Sequential(mb.BayesianLinear(4, 3))
    box = da.SigmaRange(torch.full((3, 4), 0.01), torch.full((3, 4), 0.04), 1.0)
    ranges = {
        "0.weight_rho": box,
        "0.bias_rho": da.SigmaRange(torch.full((3,), 0.01), torch.full((3,), 0.04), 1.0),
    }
    cfg = mb.HardwareSampling(scheme=C2C)
    with torch.no_grad():
        model[0].weight_rho.copy_(
            mb.inverse_softplus(torch.tensor([0.02, 0.0025, 0.16]).repeat_interleave(4).view(3, 4))
        )
        model[0].bias_rho.copy_(mb.inverse_softplus(torch.full((3,), 0.02)))
    loss = mb.technological_loss(model, cfg, ranges=ranges)
    rho = model[0].weight_rho
    sigma = F.softplus(rho.detach())
    d = (torch.log(torch.tensor(0.01)) - sigma.log()).clamp_min(0) + (
        sigma.log() - torch.log(torch.tensor(0.04))).clamp_min(0)  # fmt: skip
    assert loss.item() == pytest.approx(float(d.square().sum() / 15), rel=1e-6)
    assert loss.item() == pytest.approx(8 * math.log(4) ** 2 / 15, rel=1e-5)
    loss.backward()
    sign = torch.tensor([0.0, -1.0, 1.0]).view(3, 1)  # inside, below (σ must grow), above
    expected = sign * 2 * d * torch.sigmoid(rho.detach()) / sigma / 15
    torch.testing.assert_close(rho.grad, expected)
    assert (model[0].bias_rho.grad == 0).all()
    with torch.no_grad():  # one gradient step lowers the loss
        rho -= 0.1 * rho.grad
    assert mb.technological_loss(model, cfg, ranges=ranges) < loss
    with torch.no_grad():
        rho.copy_(mb.inverse_softplus(torch.full((3, 4), 0.02)))
    assert mb.technological_loss(model, cfg, ranges=ranges).item() == 0.0


@pytest.mark.parametrize("scheme", [mb.SamplingScheme.CYCLE_TO_CYCLE,
                                    mb.SamplingScheme.READ_NOISE,
                                    mb.SamplingScheme.DIFFERENTIAL])  # fmt: skip
def test_projection_puts_every_sigma_in_its_interval(scheme, gen):
    model = mlp()
    spread_sigma_(model, gen)
    cfg = mb.HardwareSampling(scheme=scheme)
    mu_before = [p.detach().clone() for n, p in model.named_parameters() if "mu" in n]
    assert mb.feasible_fraction(model, cfg) < 0.5
    ranges = da.realisable_ranges(model, cfg)
    changed = mb.project_sigma_(model, cfg, ranges=ranges)
    assert changed > 0.5
    assert mb.technological_loss(model, cfg, ranges=ranges).item() < 1e-10
    # Fresh intervals (the differential scale is re-chosen for the new σ) hold them too.
    assert mb.feasible_fraction(model, cfg) == 1.0
    assert mb.project_sigma_(model, cfg) == 0.0  # idempotent: nothing left to change
    mu_after = [p.detach() for n, p in model.named_parameters() if "mu" in n]
    assert all(torch.equal(a, b) for a, b in zip(mu_before, mu_after, strict=True))
    _, report = mb.to_hardware(model, cfg, samples=1, generator=gen)
    assert all(r["feasible_fraction"] == 1.0 for r in report.values())  # realise agrees


def test_cached_penalty_follows_mu_between_refreshes(gen, monkeypatch):
    """The costly choice (the differential scale search) runs only every refresh_steps calls;
    in between the intervals still follow the current μ, so for a coupled scheme the cached
    penalty equals a fresh one even after max|μ| doubles."""
    model = mlp()
    spread_sigma_(model, gen)
    cfg = mb.HardwareSampling(scheme=C2C)
    aware = mb.DeviceAware(sampling=cfg, weight=2.0, refresh_steps=100)
    penalty = da.technological_penalty(aware, dataset_size=50)
    penalty(model)
    with torch.no_grad():
        model[0].weight_mu.mul_(2.0)
    n = sum(p.numel() for name, p in model.named_parameters() if name.endswith("_rho"))
    torch.testing.assert_close(penalty(model), 2.0 * n / 50 * mb.technological_loss(model, cfg))

    calls = []
    search = da._best_differential_scale
    monkeypatch.setattr(da, "_best_differential_scale", lambda *a: calls.append(1) or search(*a))
    diff = mb.DeviceAware(sampling=mb.HardwareSampling(), refresh_steps=3)
    penalty = da.technological_penalty(diff, dataset_size=50)
    for _ in range(7):
        penalty(model)
    assert len(calls) == 3 * 4  # calls 0, 3 and 6; four tensors (two weights, two biases)


def test_after_step_hook_and_the_penalty_in_the_objective(gen):
    """train(after_step=None) is unchanged; a hook runs once per optimizer step; the
    objective's penalty mode adds exactly weight · N · technological_loss / D (= Σ d² / D)."""
    x, y = torch.randn(10, 64, generator=gen), torch.randint(0, 10, (10,), generator=gen)
    models = [mlp(), mlp(), mlp()]
    steps = []
    for model, hook in zip(models, [None, lambda m: None, steps.append], strict=True):
        train(model, x, y, epochs=3, lr=1e-2, batch_size=4, progress=False,
              generator=torch.Generator().manual_seed(0), loss_fn=mb.elbo_objective(10),
              after_step=hook)  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(),
                                                 models[1].parameters(), strict=True))  # fmt: skip
    assert len(steps) == 3 * 3 and all(m is models[2] for m in steps)

    cfg = mb.HardwareSampling(scheme=C2C)
    aware = mb.DeviceAware(sampling=cfg, weight=3.0)
    model = models[0]
    plain = mb.elbo_objective(10)(mb.seed(model, 0), x, y)
    with_penalty = mb.elbo_objective(10, device_aware=aware)(mb.seed(model, 0), x, y)
    n = sum(p.numel() for name, p in model.named_parameters() if name.endswith("_rho"))
    torch.testing.assert_close(
        with_penalty, plain + 3.0 * n / 10 * mb.technological_loss(model, cfg)
    )
    projecting = mb.elbo_objective(10, device_aware=mb.DeviceAware(sampling=cfg, mode="project"))
    assert torch.equal(projecting(mb.seed(model, 0), x, y), plain)  # acts after the step


def test_device_aware_training_on_digits_makes_the_posterior_programmable():
    """64-32-10 BNN, 10 epochs, one device per weight (CYCLE_TO_CYCLE, σ fixed by μ).

    Plain ELBO training leaves ~1 % of σ within 10 % of what the device realises; with the
    penalty (the default weight 10) > 90 %, with the projection 100 %. The penalty scales like
    KL/D, so at equilibrium σ sits d ≈ 1/(2·weight) ≈ 0.05 (log units) outside its interval,
    inside the 10 % tolerance. Accuracy on the 540 test images (one
    image = 0.19 points) moved by 0 … +0.7 points over those seeds, so −2 points (~10 images)
    is the bound a real regression, not sampling, would break.
    """
    d = load_digits(seed=0)
    cfg = mb.HardwareSampling(scheme=C2C)
    kw = {"epochs": 10, "lr": 3e-2, "batch_size": 64, "progress": False}
    results = {}
    for name, aware in [("plain", None),
                        ("penalty", mb.DeviceAware(sampling=cfg)),
                        ("project", mb.DeviceAware(sampling=cfg, mode="project"))]:  # fmt: skip
        model = mlp()
        mb.train_elbo(model, d.x_train, d.y_train, generator=torch.Generator().manual_seed(0),
                      device_aware=aware, **kw)  # fmt: skip
        pred = mb.predict(model, d.x_test, samples=32, generator=torch.Generator().manual_seed(0))
        accuracy = (pred.label == d.y_test).float().mean().item()
        results[name] = (mb.feasible_fraction(model, cfg), accuracy)
    assert results["plain"][0] < 0.1
    assert results["penalty"][0] > 0.9
    assert results["project"][0] == 1.0
    assert results["plain"][1] > 0.93
    for name in ("penalty", "project"):
        assert results[name][1] >= results["plain"][1] - 0.02


def test_bad_configuration_is_rejected_naming_the_field(gen):
    cfg = mb.HardwareSampling(scheme=C2C)
    for kwargs, field in [
        ({"sampling": "c2c"}, "DeviceAware.sampling"),
        ({"sampling": cfg, "weight": -1.0}, "DeviceAware.weight"),
        ({"sampling": cfg, "weight": math.nan}, "DeviceAware.weight"),
        ({"sampling": cfg, "mode": "soft"}, "DeviceAware.mode"),
        ({"sampling": cfg, "refresh_steps": 0}, "DeviceAware.refresh_steps"),
        ({"sampling": cfg, "refresh_steps": True}, "DeviceAware.refresh_steps"),
    ]:
        with pytest.raises(ConfigError, match=field):
            mb.DeviceAware(**kwargs)
    model = mlp()
    x, y = torch.randn(4, 64), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ConfigError, match="device_aware"):
        mb.train_elbo(model, x, y, epochs=1, lr=1e-2, batch_size=2, generator=gen,
                      device_aware="penalty")  # fmt: skip
    with pytest.raises(ConfigError, match="sigma"):
        mb.realisable_sigma(torch.zeros(3), mb.HardwareSampling())  # differential needs σ
    with pytest.raises(ConfigError, match="sampling"):
        mb.realisable_sigma(torch.zeros(3), "c2c")
    with pytest.raises(ConfigError, match="no Bayesian layers"):
        mb.technological_loss(nn.Linear(2, 2), cfg)
    with pytest.raises(ConfigError, match="rtol"):
        mb.feasible_fraction(model, cfg, rtol=1.5)
    with pytest.raises(ConfigError, match="0.bias_rho"):
        mb.project_sigma_(model, cfg, ranges={"0.weight_rho": da.realisable_ranges(model, cfg)[
            "0.weight_rho"]})  # fmt: skip
