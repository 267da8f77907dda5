"""The Bayesian layers and their hardware sampling on every device present: software sampling,
prediction, ELBO training and each sampling scheme on tiles keep every tensor on the inputs'
device (on CPU the ``device`` fixture turns a tensor made without a device into a meta tensor,
which fails the step that mixes it in)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import memcim.bayes as mb


def _bnn(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 6, device=device), nn.ReLU(), nn.Linear(6, 3, device=device))
    return mb.to_bayesian(net, config=mb.BayesConfig(sigma_init=0.05))


def test_software_sampling_prediction_and_training_stay_on_the_device(device):
    model = _bnn(device)
    x = torch.randn(5, 8, device=device)
    y = torch.randint(0, 3, (5,), device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    logits = mb.forward_samples(model, x, 4)
    mb.elbo_loss(logits, y, mb.model_kl(model), dataset_size=100).backward()
    opt.step()
    pred = mb.predict(model, x, samples=4)
    assert all(t.device.type == device.type for t in (pred.probs, pred.epistemic))


@pytest.mark.parametrize("scheme", list(mb.SamplingScheme))
def test_every_sampling_scheme_on_tiles_stays_on_the_device(device, scheme):
    model = _bnn(device).eval()
    hw, _ = mb.to_hardware(model, mb.HardwareSampling(scheme=scheme), samples=4)
    with torch.no_grad():
        out = mb.predict(hw, torch.randn(5, 8, device=device), samples=4)
    assert out.probs.device.type == device.type and torch.isfinite(out.probs).all()
