"""The metrics on every device present: each takes probabilities, labels and scores where they
are (on CPU the ``device`` fixture turns a tensor made without a device into a meta tensor,
which fails the step that mixes it in)."""

from __future__ import annotations

import torch

from memcim import metrics


def test_every_metric_takes_tensors_on_the_device(device):
    gen = torch.Generator(device).manual_seed(0)
    probs = torch.softmax(torch.randn(4, 30, 3, generator=gen, device=device), -1)
    labels = torch.randint(0, 3, (30,), generator=gen, device=device)
    mean = probs.mean(0)
    parts = metrics.decompose(probs)
    values = [metrics.accuracy(mean, labels), metrics.nll(mean, labels),
              metrics.brier(mean, labels), metrics.ece(mean, labels),
              metrics.ood_auroc(parts.epistemic[:15], parts.epistemic[15:]),
              metrics.accuracy_at_coverage(mean, labels, parts.total, 0.5)]  # fmt: skip
    assert all(v >= 0.0 for v in values)
    curve = metrics.reliability_curve(mean, labels)
    rejection = metrics.accuracy_rejection_curve(mean, labels, parts.total)
    assert len(curve.confidence) > 0 and len(rejection.accuracy) > 0
    model = torch.nn.Linear(5, 3, device=device)
    x = torch.randn(30, 5, generator=gen, device=device)
    robust = metrics.accuracy_under_noise(lambda v: model(v).softmax(-1), x, labels, [0.0, 0.5],
                                          generator=gen)  # fmt: skip
    assert len(robust) == 2
