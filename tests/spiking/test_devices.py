"""The spiking front end on every device present: encoders, the spiking network in software and
on tiles (training, prediction, energy) and the fusion rules keep every tensor on the inputs'
device (on CPU the ``device`` fixture turns a tensor made without a device into a meta tensor,
which fails the step that mixes it in)."""

from __future__ import annotations

import torch

from memcim.spiking import SpikingMLP, latency, on_tiles, rate, saccades, spike_energy
from memcim.spiking.fusion import (
    fit_uncertainty_weighting,
    mean_of_probabilities,
    product_of_experts,
)
from memcim.spiking.train import predict_spiking, train_spiking


def test_encoders_stay_on_the_device(device):
    images = torch.rand(3, 6, 6, device=device)
    gen = torch.Generator(device).manual_seed(0)
    for spikes in (rate(images, 4, generator=gen), latency(images, 4), saccades(images, 4)):
        assert spikes.device.type == device.type


def test_the_spiking_network_trains_predicts_and_counts_on_the_device(device):
    gen = torch.Generator(device).manual_seed(1)
    images = torch.rand(16, 36, device=device)
    labels = torch.randint(0, 3, (16,), generator=gen, device=device)
    model = SpikingMLP((36, 12, 3), device=device)
    train_spiking(model, images, labels, steps=4, epochs=1, lr=1e-2, batch_size=8,
                  generator=gen, progress=False)  # fmt: skip
    chip = on_tiles(model)
    probs = predict_spiking(chip, images, steps=4, draws=2, generator=gen)
    assert probs.device.type == device.type and torch.isfinite(probs).all()
    energy = spike_energy(chip, rate(images, 4, generator=gen))
    assert energy.energy_pj > 0


def test_fusion_rules_stay_on_the_device(device):
    gen = torch.Generator(device).manual_seed(2)
    a = torch.softmax(torch.randn(40, 3, generator=gen, device=device), -1)
    b = torch.softmax(torch.randn(40, 3, generator=gen, device=device), -1)
    labels = torch.randint(0, 3, (40,), generator=gen, device=device)
    u = [torch.rand(40, generator=gen, device=device) for _ in range(2)]
    for pooled in (product_of_experts([a, b]), mean_of_probabilities([a, b])):
        assert pooled.device.type == device.type
    weighting = fit_uncertainty_weighting([a, b], u, labels, window=4, iterations=5)
    assert weighting.pool([a, b], u).device.type == device.type
