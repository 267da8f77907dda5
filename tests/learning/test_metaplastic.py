"""Metaplastic binarized / multi-level networks: layers, AdamMeta, continual training."""

from __future__ import annotations

import math

import pytest
import torch

from memcim import ConfigError
from memcim.learning.metaplastic import (
    EWC,
    AdamMeta,
    MetaplasticMLP,
    QuantisedLinear,
    Task,
    level_index,
    meta_factor,
    quantise,
    run_sequence,
    sign_activation,
)


def _pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 5, generator=g)
    b = torch.randn(5, generator=g)
    return w, b


def test_adam_meta_with_m0_equals_torch_adam_step_for_step():
    w, b = _pair()
    ours = [w.clone().requires_grad_(True), b.clone().requires_grad_(True)]
    ref = [w.clone().requires_grad_(True), b.clone().requires_grad_(True)]
    opt = AdamMeta(ours, lr=0.01, weight_decay=1e-3, meta=0.0)
    torch_opt = torch.optim.Adam(ref, lr=0.01, weight_decay=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        x = torch.randn(4, 6, generator=g)
        for params, o in ((ours, opt), (ref, torch_opt)):
            o.zero_grad()
            (torch.tanh(x @ params[0] + params[1]) ** 2).sum().backward()
            o.step()
        for a, r in zip(ours, ref, strict=True):
            # Same formula; the two differ only in the order of float32 operations.
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6)


def test_meta_factor_binary_against_a_hand_computation():
    w = torch.tensor([0.5, 0.5, -2.0, -2.0, 0.0])
    step = torch.tensor([-0.1, 0.1, 0.1, -0.1, 0.1])
    f = meta_factor(w, step, meta=1.3)
    # Toward zero (opposite sign to W_h): 1 − tanh²(1.3·|W_h|); away from zero: 1.
    expected = torch.tensor([1 - math.tanh(0.65) ** 2, 1.0, 1 - math.tanh(2.6) ** 2, 1.0, 1.0])
    torch.testing.assert_close(f, expected)


def test_meta_factor_multi_level_uses_the_boundary_ahead():
    # 3 levels −1, 0, 1: boundaries at ±0.5.
    w = torch.tensor([0.2, 0.2, 0.9, 0.9, -0.7])
    step = torch.tensor([0.1, -0.1, 0.1, -0.1, 0.1])
    f = meta_factor(w, step, meta=2.0, levels=3)

    def attenuated(d):
        return 1 - math.tanh(2.0 * d) ** 2

    # 0.2 → +: boundary 0.5 (d 0.3); 0.2 → −: boundary −0.5 (d 0.7); 0.9 → +: none ahead;
    # 0.9 → −: boundary 0.5 (d 0.4); −0.7 → +: boundary −0.5 (d 0.2).
    expected = torch.tensor([attenuated(0.3), attenuated(0.7), 1.0, attenuated(0.4),
                             attenuated(0.2)])  # fmt: skip
    torch.testing.assert_close(f, expected)


def test_adam_meta_attenuates_only_steps_toward_zero():
    w = torch.tensor([[2.0, -2.0]], requires_grad=True)
    w_plain = w.detach().clone().requires_grad_(True)
    meta, plain = AdamMeta([w], lr=0.1, meta=1.0), AdamMeta([w_plain], lr=0.1, meta=0.0)
    for p, o in ((w, meta), (w_plain, plain)):
        o.zero_grad()
        p.grad = torch.tensor([[1.0, 1.0]])  # pushes both down: toward 0 for +2, away for −2
        o.step()
    step, plain_step = (
        w.detach() - torch.tensor([[2.0, -2.0]]),
        w_plain.detach() - torch.tensor([[2.0, -2.0]]),
    )
    assert step[0, 0] == pytest.approx(plain_step[0, 0] * (1 - math.tanh(2.0) ** 2), rel=1e-5)
    assert step[0, 1] == pytest.approx(plain_step[0, 1], rel=1e-6)
    # 1-D parameters (BatchNorm) take plain steps whatever m is.
    b = torch.tensor([2.0], requires_grad=True)
    b_opt = AdamMeta([b], lr=0.1, meta=5.0)
    b.grad = torch.tensor([1.0])
    b_opt.step()
    assert float(b.detach()) == pytest.approx(1.9, rel=1e-5)


def test_straight_through_gradients():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.7, 1.5], requires_grad=True)
    y = sign_activation(x)
    assert y.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # zero where |x| > 1
    layer = QuantisedLinear(3, 2, generator=torch.Generator().manual_seed(0))
    inp = torch.tensor([[1.0, -2.0, 0.5]])
    out = layer(inp)
    torch.testing.assert_close(out, inp @ torch.sign(layer.weight.detach()).T)
    out.sum().backward()
    # The gradient of the binary weights reaches the hidden weights unchanged.
    torch.testing.assert_close(layer.weight.grad, inp.expand(2, 3))


def test_straight_through_gradients_under_torch_func():
    """``torch.func.grad`` and ``vmap`` take the same straight-through gradient as
    ``backward`` (an old-style autograd.Function is refused by both)."""
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.7, 1.5], [0.9, -1.0, 1.0, -3.0, 0.2]])
    weights = torch.linspace(-1, 1, 5)

    def loss(row: torch.Tensor) -> torch.Tensor:
        return (sign_activation(row) * weights).sum()

    per_row = torch.func.vmap(torch.func.grad(loss))(x)
    leaf = x.clone().requires_grad_(True)
    (sign_activation(leaf) * weights).sum().backward()
    assert torch.equal(per_row, leaf.grad)
    assert per_row[0].tolist() == [0.0, -0.5, 0.0, 0.5, 0.0]


def test_quantise_levels():
    w = torch.tensor([-3.0, -0.6, -0.1, 0.0, 0.2, 0.8, 4.0])
    assert quantise(w, 2).tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    assert quantise(w, 3).tolist() == [-1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert level_index(w, 3).tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert torch.unique(quantise(torch.linspace(-2, 2, 1001), 16)).numel() == 16


def test_norm_state_is_kept_per_task():
    model = MetaplasticMLP((8, 6, 3), generator=torch.Generator().manual_seed(0))
    saved = model.norm_state()
    with torch.no_grad():
        model.norms[0].weight.add_(1.0)
    assert not torch.equal(model.norm_state()["0.weight"], saved["0.weight"])
    model.load_norm_state(saved)
    assert torch.equal(model.norm_state()["0.weight"], saved["0.weight"])
    assert not any(n.track_running_stats for n in model.norms)
    with pytest.raises(ConfigError, match="levels"):
        MetaplasticMLP((8, 3), levels=17)


def _two_tasks(seed=0, n=2000):
    """A 4-class teacher problem in 30 dimensions and the same problem with its features
    permuted (a small permuted-MNIST): one network can solve both."""
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(4, 30, generator=g)
    x = torch.randn(n + 1000, 30, generator=g)
    y = (x @ teacher.T).argmax(1)
    perm = torch.randperm(30, generator=g)
    return [Task(x[:n], y[:n], x[n:], y[n:]), Task(x[:n, perm], y[:n], x[n:, perm], y[n:])]


def test_run_sequence_fills_the_gem_matrix():
    tasks = _two_tasks()
    model = MetaplasticMLP((30, 64, 4), generator=torch.Generator().manual_seed(0))
    result = run_sequence(model, tasks, lambda m: AdamMeta(m.parameters(), lr=0.01),
                          epochs=2, batch_size=50, generator=torch.Generator().manual_seed(1),
                          test_batch=250)  # fmt: skip
    assert result.matrix.shape == (2, 2)
    assert result.matrix[0, 0] > 0.6 and result.matrix[1, 1] > 0.6  # chance: 0.25
    assert [epochs for epochs, _ in result.curves] == [1, 2, 3, 4]
    assert set(result.curves[-1][1]) == {0, 1}
    assert result.curves[1][1][0] == pytest.approx(float(result.matrix[0, 0]))


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_away_from_it():
    tasks = _two_tasks()
    model = MetaplasticMLP((30, 8, 4), generator=torch.Generator().manual_seed(0))
    ewc = EWC(strength=10.0)
    ewc.consolidate(model, tasks[0], batch_size=50)
    assert float(ewc(model).detach()) == 0.0
    with torch.no_grad():
        model.layers[0].weight.add_(0.1)
    assert float(ewc(model).detach()) > 0


def test_metaplasticity_protects_the_first_task():
    """The mechanism behind the experiments, on a small permuted problem: after the second
    task the first keeps more of its accuracy with m = 10 than with m = 0 (plain Adam).
    Measured (20 epochs of 40 steps, lr 0.01): task 1 after task 2 0.656 with m = 10, 0.251
    with m = 0 (chance 0.25); task 2 reaches 0.545 and 0.796. Hidden weights only reach
    |W_h| ~ 0.4 in so few steps, hence an m larger than the paper's 1.35 (its 50 epochs of 600
    steps grow them further). Each figure is over 1000 test points (SE <= 0.016); the margin
    of 0.2 is > 10 SE."""
    tasks = _two_tasks()
    after, learned = {}, {}
    for m in (0.0, 10.0):
        model = MetaplasticMLP((30, 64, 4), generator=torch.Generator().manual_seed(0))

        def optimizer(mod, m=m):
            return AdamMeta(mod.parameters(), lr=0.01, meta=m)

        result = run_sequence(
            model,
            tasks,
            optimizer,
            epochs=20,
            batch_size=50,
            generator=torch.Generator().manual_seed(1),
            test_batch=250,
        )
        after[m], learned[m] = float(result.matrix[1, 0]), float(result.matrix[1, 1])
    assert after[10.0] > after[0.0] + 0.2, after
    assert learned[10.0] > 0.45, learned  # still plastic: well above chance (0.25)


def test_memristor_version_writes_exactly_the_devices_whose_level_changed():
    from memcim.learning.metaplastic.memristor import MemristorMetaplastic

    model = MetaplasticMLP((30, 16, 4), levels=4, generator=torch.Generator().manual_seed(0))
    chip = MemristorMetaplastic(model)
    chip.program(generator=torch.Generator().manual_seed(1))
    before = chip.writes_per_device().clone()
    levels_before = [level_index(layer.weight.detach(), 4) for layer in model.layers]
    with torch.no_grad():  # move some hidden weights across a level boundary
        model.layers[0].weight[:3] += 0.7
    written = chip.sync()
    after = chip.writes_per_device()
    pairs = zip(model.layers, levels_before, strict=True)
    changed_weights = sum(int((level_index(la.weight.detach(), 4) != lv).sum()) for la, lv in pairs)
    assert changed_weights > 0
    # Differential pairs: a level change re-programs one or both devices of its pair.
    assert changed_weights <= written <= 2 * changed_weights
    assert int((after != before).sum()) == written
    assert chip.sync() == 0  # nothing changed since: nothing written
    # RRAM read noise flips some of this random network's small logit margins: measured
    # agreement 0.82 with the software network on 200 points (SE 0.03); 0.6 is > 7 SE below.
    x = torch.randn(200, 30, generator=torch.Generator().manual_seed(2))
    model.eval()
    agree = (chip(x).argmax(1) == model(x).argmax(1)).float().mean()
    assert agree > 0.6, agree


def test_memristor_inference_on_ideal_tiles_equals_the_software_network():
    from memcim.crossbar import ConverterConfig, MappingConfig, TileConfig
    from memcim.devices import IdealDevice
    from memcim.learning.metaplastic.memristor import MemristorMetaplastic

    model = MetaplasticMLP((30, 16, 4), levels=3, generator=torch.Generator().manual_seed(0))
    ideal = TileConfig(device=IdealDevice(), mapping=MappingConfig(w_max=1.0),
                       dac=ConverterConfig(bits=None), adc=ConverterConfig(bits=None))  # fmt: skip
    chip = MemristorMetaplastic(model, ideal)
    chip.program(generator=torch.Generator().manual_seed(1))
    x = torch.randn(200, 30, generator=torch.Generator().manual_seed(2))
    model.eval()
    torch.testing.assert_close(chip(x), model(x).detach(), rtol=1e-4, atol=1e-4)
