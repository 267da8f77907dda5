"""The on-chip learners on every device present: MESU (autograd, fused, baselines, the network
on device tiles, the posterior kept on RRAM), hybrid synapses, in-situ MCMC, metaplastic
networks (and their memristor version) and MAML with on-chip adaptation keep every tensor
on the data's device (on CPU the ``device`` fixture turns a tensor made without a device into a
meta tensor, which fails the step that mixes it in)."""

from __future__ import annotations

import pytest
import torch

from memcim.learning import (
    HybridConfig,
    HybridTrainer,
    InSituMCMC,
    InSituMCMCConfig,
    mesu,
    software_sgd,
)
from memcim.learning.metaplastic.continual import Task


def _data(device, n=24, features=8, classes=3):
    gen = torch.Generator(device).manual_seed(0)
    x = torch.randn(n, features, generator=gen, device=device)
    return x, torch.randint(0, classes, (n,), generator=gen, device=device)


def _bnn(device, sizes=(8, 6, 3)):
    return mesu.bayesian_mlp(sizes, generator=torch.Generator(device).manual_seed(1),
                             sigma_fraction=0.2)  # fmt: skip


@pytest.mark.parametrize("kind", ["weights", "local", "fused"])
def test_mesu_learners_stay_on_the_device(device, kind):
    x, y = _data(device)
    model = _bnn(device)
    gen = torch.Generator(device).manual_seed(2)
    opt = mesu.MESU.from_model(model, memory=400.0)
    learner = (mesu.FusedMESULearner(model, opt, samples=4, generator=gen) if kind == "fused"
               else mesu.MESULearner(model, opt, samples=4, draw=kind, generator=gen))  # fmt: skip
    for i in range(4):
        learner.step(x[i : i + 1], y[i : i + 1])
    assert model[0].weight_mu.device.type == device.type
    assert 0.0 <= mesu.accuracy(learner, x, y) <= 1.0
    scores = mesu.ood_scores(learner, x, 3 * x)
    assert 0.0 <= scores["auroc_epistemic"] <= 1.0


@pytest.mark.parametrize("regulariser", [None, "ewc", "si"])
def test_the_baselines_stay_on_the_device(device, regulariser):
    x, y = _data(device)
    model = mesu.deterministic_mlp((8, 6, 3), generator=torch.Generator(device).manual_seed(3))
    reg = {None: None, "ewc": mesu.OnlineEWC(fisher_samples=8), "si": mesu.SynapticIntelligence()}[
        regulariser
    ]
    learner = mesu.SGDLearner(model, lr=0.01, regulariser=reg)
    for _ in range(2):  # two tasks: the second is pulled toward the first
        learner.start_task()
        for i in range(4):
            learner.step(x[i : i + 1], y[i : i + 1])
        learner.end_task(Task(x, y, x, y))
    assert 0.0 <= mesu.accuracy(learner, x, y) <= 1.0


def test_the_mesu_network_on_device_tiles_stays_on_the_device(device):
    x, y = _data(device)
    model = _bnn(device)
    gen = torch.Generator(device).manual_seed(4)
    hardware, _ = mesu.on_devices(model, samples=4, generator=gen, calibration=x)
    chip = mesu.SampledPredictor(hardware, samples=4, generator=gen)
    assert 0.0 <= mesu.accuracy(chip, x, y) <= 1.0
    posterior = mesu.ProgrammedPosterior(model, levels=16, generator=gen)
    with torch.no_grad():
        model[0].weight_mu.add_(0.1)
    assert posterior.sync() > 0


def test_hybrid_synapses_stay_on_the_device(device):
    x, y = _data(device, n=64, features=16, classes=4)
    cfg = HybridConfig(layers=(16, 8, 4), epochs=1, batch_size=16, transfer_every=32, lr=0.1)
    trainer = HybridTrainer(cfg)
    trainer.fit(x, y, generator=torch.Generator(device).manual_seed(5))
    assert trainer.predict(x).device.type == device.type
    weights = software_sgd(cfg, x, y, generator=torch.Generator(device).manual_seed(5))
    assert weights[0].device.type == device.type


def test_in_situ_mcmc_stays_on_the_device(device):
    x, y = _data(device, n=16, features=2, classes=2)
    cfg = InSituMCMCConfig(layers=(2, 1), chains=4, steps=20, burn_in=5, thin=5)
    sampler = InSituMCMC(cfg)
    sampler.fit(x, y, generator=torch.Generator(device).manual_seed(6))
    assert sampler.predict_proba(x).device.type == device.type


def test_metaplastic_training_and_its_memristor_version_stay_on_the_device(device):
    from memcim.learning.metaplastic import AdamMeta, MetaplasticMLP, run_sequence
    from memcim.learning.metaplastic.memristor import MemristorMetaplastic

    x, y = _data(device, n=40, features=12, classes=4)
    model = MetaplasticMLP((12, 16, 4), levels=4, generator=torch.Generator(device).manual_seed(7))
    tasks = [Task(x[:30], y[:30], x[30:], y[30:])] * 2
    result = run_sequence(model, tasks, lambda m: AdamMeta(m.parameters(), lr=0.01),
                          epochs=1, batch_size=10,
                          generator=torch.Generator(device).manual_seed(8))  # fmt: skip
    assert result.matrix.shape == (2, 2)
    chip = MemristorMetaplastic(model)
    chip.program(generator=torch.Generator(device).manual_seed(9))
    with torch.no_grad():
        model.layers[0].weight.add_(0.7)
    assert chip.sync() > 0
    model.eval()
    assert chip(x).device.type == device.type


def test_maml_and_on_chip_adaptation_stay_on_the_device(device):
    from memcim.data.sinusoid import SinusoidTasks
    from memcim.learning.meta import MetaConfig, MetaLearner, SinusoidMLP
    from memcim.learning.meta.onchip import OnChipAdapter, OnChipConfig

    batch = SinusoidTasks().sample(3, 5, 10, generator=torch.Generator(device).manual_seed(10))
    tasks = (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
    model = SinusoidMLP(hidden=8, generator=torch.Generator(device).manual_seed(11))
    meta = MetaConfig(adapt="all", inner_steps=2, inner_lr=0.02, loss="mse")
    learner = MetaLearner(model, meta)
    learner.meta_train(lambda: tasks, 1)
    assert learner.evaluate(*tasks).loss.device.type == device.type
    adapter = OnChipAdapter(model, meta, OnChipConfig())
    out = adapter.adapt(*tasks, generator=torch.Generator(device).manual_seed(12))
    assert out.evaluation.loss.device.type == device.type
