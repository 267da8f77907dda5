"""The fused batch-1 MESU step: the same trajectory as the autograd step, resumable, and
clear errors for what it does not take."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from memcim import ConfigError
from memcim._compile import compiler_available
from memcim.bayes import BayesConfig, BayesianLinear
from memcim.experiments.mesu import MesuOodConfig
from memcim.learning.mesu import MESU, MESULearner, bayesian_mlp
from memcim.learning.mesu.fused import FusedMESULearner

# Different operation order (hand-written chain rule, σ kept as σ rather than ρ) rounds
# differently, and 100 steps of a nonlinear update carry that along: measured differences
# are below 2e-6 (μ) and 1e-5 (ρ) after 300 steps; the tolerances leave a few times that.
TOLERANCE = {"rtol": 1e-4, "atol": 2e-5}

CASES = {
    "pmnist-sized, finite N, clipped": ((784, 50, 10), {"prior_sigma": 0.06, "clamp_grad": 0.1,
                                                       "memory": 180_000.0}),
    "three layers, N = inf": ((20, 8, 6, 3), {"memory": math.inf, "clamp_grad": 0.1}),
    "three layers, tight clip": ((20, 8, 6, 3), {"prior_sigma": 0.5, "clamp_grad": 0.01,
                                                 "memory": 50.0}),
}  # fmt: skip


def _learners(sizes, settings, **fused):
    """An autograd learner with local draws and a fused one, same network and generator."""
    nets = [bayesian_mlp(sizes, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    auto = MESULearner(nets[0], MESU.from_model(nets[0], **settings), draw="local",
                       generator=torch.Generator().manual_seed(1))  # fmt: skip
    fast = FusedMESULearner(nets[1], MESU.from_model(nets[1], **settings),
                            generator=torch.Generator().manual_seed(1), **fused)  # fmt: skip
    return auto, fast


def _stream(sizes, steps):
    g = torch.Generator().manual_seed(2)
    return (torch.randn(steps, sizes[0], generator=g),
            torch.randint(0, sizes[-1], (steps,), generator=g))  # fmt: skip


def _train(learner, x, y):
    return [learner.step(x[i : i + 1], y[i : i + 1]) for i in range(len(y))]


def _assert_same_network(auto, fast):
    fast.sync()
    for (name, a), (_, b) in zip(auto.model.named_parameters(), fast.model.named_parameters(),
                                 strict=True):  # fmt: skip
        torch.testing.assert_close(b, a, **TOLERANCE, msg=name)


@pytest.mark.parametrize("case", CASES)
def test_fused_steps_follow_the_autograd_steps(case):
    sizes, settings = CASES[case]
    auto, fast = _learners(sizes, settings)
    x, y = _stream(sizes, 100)
    costs_auto, costs_fast = _train(auto, x, y), _train(fast, x, y)
    torch.testing.assert_close(torch.tensor(costs_fast), torch.tensor(costs_auto), **TOLERANCE)
    _assert_same_network(auto, fast)


def test_the_tight_clip_is_in_force():
    """Guard for the case above: with a clip 100 times looser the same steps end elsewhere."""
    sizes, settings = CASES["three layers, tight clip"]
    clipped, _ = _learners(sizes, settings)
    _, unclipped = _learners(sizes, settings | {"clamp_grad": 1.0})
    x, y = _stream(sizes, 100)
    _train(clipped, x, y)
    _train(unclipped, x, y)
    unclipped.sync()
    pairs = zip(clipped.model.parameters(), unclipped.model.parameters(), strict=True)
    moved = [float((a - b).abs().max()) for a, b in pairs]
    assert max(moved) > 100 * TOLERANCE["atol"]


@pytest.mark.skipif(not compiler_available(),
                    reason="torch.compile on CPU needs a C++ compiler")  # fmt: skip
def test_the_compiled_step_follows_the_autograd_steps():
    sizes, settings = CASES["pmnist-sized, finite N, clipped"]
    auto, fast = _learners(sizes, settings, compile=True)
    x, y = _stream(sizes, 100)
    _train(auto, x, y)
    _train(fast, x, y)
    _assert_same_network(auto, fast)


def test_a_reloaded_learner_continues_exactly():
    sizes, settings = CASES["three layers, tight clip"]
    _, whole = _learners(sizes, settings)
    _, first = _learners(sizes, settings)
    _, second = _learners(sizes, settings)
    x, y = _stream(sizes, 60)
    _train(whole, x, y)
    _train(first, x[:25], y[:25])
    second.load_state_dict(first.state_dict())
    _train(second, x[25:], y[25:])
    whole.sync()
    second.sync()
    for a, b in zip(whole.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_what_the_fused_step_does_not_take_is_named():
    config = BayesConfig(estimator="reparam")
    with_bias = nn.Sequential(BayesianLinear(4, 3, config=config))
    with pytest.raises(ConfigError, match="bias-free"):
        FusedMESULearner(with_bias, MESU.from_model(with_bias), generator=torch.Generator())
    tanh = nn.Sequential(BayesianLinear(4, 3, bias=False, config=config), nn.Tanh(),
                         BayesianLinear(3, 2, bias=False, config=config))  # fmt: skip
    with pytest.raises(ConfigError, match="ReLU"):
        FusedMESULearner(tanh, MESU.from_model(tanh), generator=torch.Generator())
    net = bayesian_mlp((4, 3, 2), generator=torch.Generator().manual_seed(0))
    other = bayesian_mlp((4, 3, 2), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="optimizer"):
        FusedMESULearner(net, MESU.from_model(other), generator=torch.Generator())
    learner = FusedMESULearner(net, MESU.from_model(net), generator=torch.Generator())
    with pytest.raises(ConfigError, match="one example"):
        learner.step(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    reckless = FusedMESULearner(net, MESU.from_model(net, lr_sigma=1e6, memory=1.0),
                                generator=torch.Generator())  # fmt: skip
    with pytest.raises(ConfigError, match="σ <= 0"):
        reckless.step(torch.ones(1, 4), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ConfigError, match="draw"):
        MesuOodConfig(engine="fused", draw="weights")


def test_a_failed_compile_names_the_compiler(monkeypatch):
    def broken(fn):
        def run(*args):
            raise RuntimeError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    net = bayesian_mlp((4, 3, 2), generator=torch.Generator().manual_seed(0))
    learner = FusedMESULearner(net, MESU.from_model(net), generator=torch.Generator(),
                               compile=True)  # fmt: skip
    with pytest.raises(ConfigError, match="C\\+\\+ compiler.*compile=False"):
        learner.step(torch.ones(1, 4), torch.zeros(1, dtype=torch.long))
