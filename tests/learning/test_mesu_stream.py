"""MESU's continual-learning loop: the baselines' rules, the stream and its resumption, the
local gradient estimator, the OOD scores and the network on device tiles."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memcim import ConfigError
from memcim.learning.mesu import (
    MESU,
    MESULearner,
    OnlineEWC,
    SGDLearner,
    SynapticIntelligence,
    bayesian_mlp,
    deterministic_mlp,
    empirical_fisher,
    mc_cost,
    ood_scores,
    run_stream,
)
from memcim.learning.metaplastic import Task


def _toy_tasks(count: int, n: int = 120, seed: int = 0, noise: float = 0.2) -> list[Task]:
    """Linearly separable 3-class problems in 8-D, each task its own random feature map."""
    g = torch.Generator().manual_seed(seed)
    centres = 0.6 * torch.randn(3, 8, generator=g)
    tasks = []
    for _ in range(count):
        mix = torch.linalg.qr(torch.randn(8, 8, generator=g))[0]
        y = torch.randint(0, 3, (2 * n,), generator=g)
        x = (centres[y] + noise * torch.randn(2 * n, 8, generator=g)) @ mix
        tasks.append(Task(x[:n], y[:n], x[n:], y[n:]))
    return tasks


def test_sgd_learner_takes_plain_sgd_steps_on_the_summed_nll():
    g = torch.Generator().manual_seed(0)
    model = deterministic_mlp((8, 5, 3), generator=g)
    reference = [p.detach().clone() for p in model.parameters()]
    learner = SGDLearner(model, lr=0.05)
    x, y = torch.randn(2, 8, generator=g), torch.tensor([0, 2])
    ref = deterministic_mlp((8, 5, 3), generator=torch.Generator())
    with torch.no_grad():
        for p, r in zip(ref.parameters(), reference, strict=True):
            p.copy_(r)
    grads = torch.autograd.grad(F.cross_entropy(ref(x), y, reduction="sum"), list(ref.parameters()))
    learner.step(x, y)
    for p, r, gr in zip(model.parameters(), reference, grads, strict=True):
        torch.testing.assert_close(p.detach(), r - 0.05 * gr)


def test_empirical_fisher_is_the_mean_squared_per_image_gradient():
    g = torch.Generator().manual_seed(1)
    model = deterministic_mlp((8, 5, 3), generator=g)
    x, y = torch.randn(6, 8, generator=g), torch.randint(0, 3, (6,), generator=g)
    expected = [torch.zeros_like(p) for p in model.parameters()]
    for i in range(6):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        for e, gr in zip(expected, torch.autograd.grad(loss, list(model.parameters())),
                         strict=True):  # fmt: skip
            e += gr.square() / 6
    for got, want in zip(empirical_fisher(model, x, y), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_online_ewc_decays_the_old_fisher_and_anchors_the_last_task():
    tasks = _toy_tasks(2)
    model = deterministic_mlp((8, 5, 3), generator=torch.Generator().manual_seed(2))
    ewc = OnlineEWC(importance=3.0, decay=0.25, fisher_samples=50)
    ewc.end_task(model, tasks[0].x_train, tasks[0].y_train)
    first = [f.clone() for f in ewc.fisher]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    ewc.end_task(model, tasks[1].x_train, tasks[1].y_train)
    second = empirical_fisher(model, tasks[1].x_train[:50], tasks[1].y_train[:50])
    for f, f1, f2 in zip(ewc.fisher, first, second, strict=True):
        torch.testing.assert_close(f, 0.25 * f1 + f2)
    params = [p + 0.2 for p in model.parameters()]
    expected = 1.5 * sum(float((f * 0.04).sum()) for f in ewc.fisher)
    assert float(ewc.penalty(params).detach()) == pytest.approx(expected, rel=1e-5)


def test_synaptic_intelligence_path_integral_is_the_loss_decrease():
    """On L = ½ Σ (θ − a)² with small steps, ω = −Σ g·Δθ is each weight's loss decrease."""
    theta = nn.Parameter(torch.tensor([2.0, -1.0, 0.5]))
    model = nn.Module()
    model.theta = theta
    a = torch.tensor([0.0, 1.0, 0.5])
    si = SynapticIntelligence(coefficient=1.0, damping=1e-3)
    si.start_task(model)
    for _ in range(2000):
        g = theta.detach() - a
        move = -0.002 * g
        with torch.no_grad():
            theta.add_(move)
        si.observe([g], [move])
    start = torch.tensor([2.0, -1.0, 0.5])
    decrease = 0.5 * (start - a).square() - 0.5 * (theta.detach() - a).square()
    torch.testing.assert_close(si.path[0], decrease, rtol=2e-3, atol=1e-6)
    si.end_task(model, torch.zeros(1), torch.zeros(1))
    moved = (theta.detach() - start).square()
    torch.testing.assert_close(si.omega[0], torch.relu(decrease / (moved + 1e-3)), rtol=2e-3,
                               atol=1e-6)  # fmt: skip


def test_consolidation_keeps_the_first_task_better_than_plain_sgd():
    """The mechanism the baselines add: with the penalty, the weights important for task 1
    move less while task 2 is learnt, so task 1 keeps more of its accuracy."""
    tasks = _toy_tasks(2, n=200, seed=3)
    first_task = {}
    for name, reg in (("sgd", None), ("ewc", OnlineEWC(importance=200.0)),
                      ("si", SynapticIntelligence(coefficient=20.0, damping=0.1))):  # fmt: skip
        model = deterministic_mlp((8, 16, 3), generator=torch.Generator().manual_seed(4))
        result = run_stream(SGDLearner(model, lr=0.01, regulariser=reg), tasks,
                            generator=torch.Generator().manual_seed(5))  # fmt: skip
        first_task[name] = float(result.matrix[1, 0])
    assert first_task["ewc"] > first_task["sgd"] + 0.05, first_task
    assert first_task["si"] > first_task["sgd"] + 0.05, first_task


def test_run_stream_fills_the_gem_matrix_and_resumes_from_its_checkpoint(tmp_path):
    tasks = _toy_tasks(3)

    def learner():
        model = bayesian_mlp((8, 6, 3), generator=torch.Generator().manual_seed(6),
                             sigma_fraction=0.2)  # fmt: skip
        return MESULearner(model, MESU.from_model(model, memory=500.0), samples=4,
                           test_samples=4, generator=torch.Generator().manual_seed(7))  # fmt: skip

    whole = run_stream(learner(), tasks, generator=torch.Generator().manual_seed(8))
    assert whole.matrix.shape == (3, 3) and whole.tasks_done == 3
    assert float(whole.matrix[0, 0]) > 0.8  # the first task is learnt
    ckpt = tmp_path / "stream.pt"

    def stop_after_first(i, result):
        if i == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stream(learner(), tasks, generator=torch.Generator().manual_seed(8), checkpoint=ckpt,
                   on_task=stop_after_first)  # fmt: skip
    resumed = run_stream(learner(), tasks, generator=torch.Generator().manual_seed(99),
                         checkpoint=ckpt)  # fmt: skip
    torch.testing.assert_close(resumed.matrix, whole.matrix)


def test_local_draws_estimate_the_same_gradient_as_whole_weight_samples():
    """At batch 1 both estimators are unbiased for the gradient of the expected cost: their
    means over 1000 draws of 10 samples agree within 4 standard errors of the difference."""
    model = bayesian_mlp((6, 4, 3), generator=torch.Generator().manual_seed(9), sigma_fraction=1.0)
    x, y = torch.randn(1, 6, generator=torch.Generator().manual_seed(10)), torch.tensor([1])
    means = {}
    for draw in ("weights", "local"):
        g = torch.Generator().manual_seed(11)
        grads = []
        for _ in range(1000):
            model.zero_grad()
            mc_cost(model, x, y, 10, generator=g, draw=draw).backward()
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        stack = torch.stack(grads)
        means[draw] = (stack.mean(0), stack.std(0) / 1000**0.5)
    (m_w, se_w), (m_l, se_l) = means["weights"], means["local"]
    z = (m_w - m_l).abs() / (se_w.square() + se_l.square()).sqrt().clamp_min(1e-12)
    assert float(z.max()) < 4.5, float(z.max())  # 64 parameters: max of |z| rarely > 4


def test_mc_cost_rejects_an_unknown_draw():
    model = bayesian_mlp((4, 3), generator=torch.Generator())
    with pytest.raises(ConfigError, match="draw"):
        mc_cost(model, torch.zeros(1, 4), torch.tensor([0]), 2, draw="both")


def test_ood_scores_separate_confident_from_confused_inputs_in_nats():
    class Fixed:
        def probs(self, x):
            # in-distribution (x > 0): samples agree on class 0; OOD: samples disagree.
            agree = torch.tensor([0.9, 0.05, 0.05]).expand(len(x), 3)
            s1, s2 = torch.tensor([0.9, 0.05, 0.05]), torch.tensor([0.05, 0.9, 0.05])
            out = torch.stack([s1.expand(len(x), 3), s2.expand(len(x), 3)])
            inside = (x[:, 0] > 0).view(1, -1, 1)
            return torch.where(inside, agree.expand(2, -1, -1), out)

    scores = ood_scores(Fixed(), torch.ones(5, 2), -torch.ones(4, 2))
    assert scores["auroc_epistemic"] == 1.0
    assert scores["epistemic_in_nats"] == pytest.approx(0.0, abs=1e-6)
    p_bar = torch.tensor([0.475, 0.475, 0.05])
    expected_total = float(-(p_bar * p_bar.log()).sum())  # nats
    assert scores["total_out_nats"] == pytest.approx(expected_total, rel=1e-5)


def test_the_trained_network_on_device_tiles_predicts_and_doubts_like_software():
    """Separate μ/σ arrays on RRAM with 8-bit converters: the accuracy stays within 2 points of
    the software network on 2000 test points, and the devices realise the learned σ (the
    epistemic entropy, which is zero without σ, is within 30 % of software's)."""
    from memcim.learning.mesu import SampledPredictor, on_devices

    task = _toy_tasks(1, n=2000, seed=12, noise=0.6)[0]
    model = bayesian_mlp((8, 16, 3), generator=torch.Generator().manual_seed(13),
                         sigma_fraction=0.2)  # fmt: skip
    learner = MESULearner(model, MESU.from_model(model, memory=400.0), samples=8,
                          test_samples=16, generator=torch.Generator().manual_seed(14))  # fmt: skip
    for i in range(400):
        learner.step(task.x_train[i : i + 1], task.y_train[i : i + 1])
    hardware, report = on_devices(model, samples=16, generator=torch.Generator().manual_seed(15),
                                  calibration=task.x_train[:256])  # fmt: skip
    chip = SampledPredictor(hardware, samples=16, generator=torch.Generator().manual_seed(16))
    from memcim.learning.mesu import accuracy

    soft, hard = (
        accuracy(learner, task.x_test, task.y_test),
        accuracy(chip, task.x_test, task.y_test),
    )
    assert soft > 0.8 and abs(soft - hard) <= 0.02, (soft, hard)
    far = 3 * torch.randn(500, 8, generator=torch.Generator().manual_seed(17))
    s_soft, s_hard = ood_scores(learner, task.x_test, far), ood_scores(chip, task.x_test, far)
    assert s_soft["epistemic_out_nats"] > 0.01
    ratio = s_hard["epistemic_out_nats"] / s_soft["epistemic_out_nats"]
    assert 0.7 < ratio < 1.3, (s_soft, s_hard)
    assert all(v["feasible_fraction"] == 1.0 for v in report.values())


def _half_tasks(seed: int, n: int = 1500) -> list[Task]:
    """Two 3-class tasks in 16-D: task A's labels live in the first 8 inputs, task B's in the
    last 8; the other half is noise, so learning B disturbs the weights A relies on."""
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for half in (0, 1):
        centres = torch.randn(3, 8, generator=g)
        y = torch.randint(0, 3, (2 * n,), generator=g)
        x = torch.randn(2 * n, 16, generator=g)
        x[:, 8 * half : 8 * (half + 1)] = centres[y] + 0.8 * torch.randn(2 * n, 8, generator=g)
        tasks.append(Task(x[:n], y[:n], x[n:], y[n:]))
    return tasks


def test_mesu_consolidates_what_the_first_task_taught():
    """The mechanism behind MESU's continual learning: σ shrinks on the weights task A uses,
    and σ² scales their later moves, so learning task B disturbs them less. With σ frozen
    (lr_sigma = 0, the same network and rates otherwise) task A is forgotten more; plain SGD
    forgets most. All learn B equally well. (Four seeds gave margins of 6-10 points over the
    frozen σ and 19-27 over SGD; the thresholds leave room.)"""
    tasks = _half_tasks(1)
    after = {}
    for name in ("mesu", "frozen_sigma", "sgd"):
        g = torch.Generator().manual_seed(1)
        if name == "sgd":
            learner = SGDLearner(deterministic_mlp((16, 32, 3), generator=g), lr=0.05)
        else:
            model = bayesian_mlp((16, 32, 3), generator=g, init_scale=1.0)
            optimizer = MESU.from_model(model, memory=1e9,
                                        lr_sigma=1.0 if name == "mesu" else 0.0)  # fmt: skip
            learner = MESULearner(model, optimizer, samples=8, test_samples=8, generator=g,
                                  draw="local")  # fmt: skip
        r = run_stream(learner, tasks, generator=torch.Generator().manual_seed(2)).matrix
        after[name] = (float(r[1, 0]), float(r[1, 1]))
    (a_mesu, b_mesu), (a_frozen, b_frozen), (a_sgd, b_sgd) = after.values()
    assert a_mesu >= a_frozen + 0.04 and a_mesu >= a_sgd + 0.10, after
    assert min(b_mesu, b_frozen, b_sgd) > 0.9, after


def test_programmed_posterior_rewrites_only_what_moved_a_programming_step():
    from memcim.learning.mesu import ProgrammedPosterior

    model = bayesian_mlp((8, 6, 3), generator=torch.Generator().manual_seed(18))
    chip = ProgrammedPosterior(model, levels=16, generator=torch.Generator().manual_seed(19))
    first = chip.writes_per_device().sum()
    assert first > 0 and chip.sync() == 0  # nothing moved
    layer = model[0]
    _, mu_max = chip.matrices[0]
    step = mu_max / 16
    with torch.no_grad():
        layer.weight_mu[0, 0] += 0.2 * step  # less than half a step: same rounded target
    assert chip.sync() == 0
    with torch.no_grad():
        layer.weight_mu[0, 1] += 3 * step
        layer.weight_rho[2, 2] += 0.5  # σ grows by a few programming steps
    written = chip.sync()
    assert 2 <= written <= 4  # one or two devices of each of the two pairs
    assert chip.writes_per_device().sum() == first + written
    with torch.no_grad():
        layer.weight_mu[1, 1] = 10 * mu_max  # beyond the window: programmed at w_max, counted
    chip.sync()
    assert chip.clipped == 1  # the one μ beyond; σ stayed inside
