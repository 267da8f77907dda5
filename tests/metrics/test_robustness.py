"""Accuracy under Gaussian input noise: closed form, reuse of gaussian_corruption, errors."""

import math

import pytest
import torch

from memcim import ConfigError
from memcim.data import gaussian_corruption
from memcim.metrics import accuracy_under_noise


def _threshold(x):
    """Class 1 iff the (single) feature exceeds 0.5, as one-hot probabilities [N, 2]."""
    return torch.nn.functional.one_hot((x[:, 0] > 0.5).long(), 2).float()


def _phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_closed_form_threshold_classifier(gen):
    # Inputs at 0.25 (class 0) and 0.75 (class 1), threshold 0.5: a sample stays correct iff its
    # noise does not cross 0.25, so accuracy = Φ(0.25 / σ). Clipping to [0, 1] is monotone and
    # keeps each sample on its side of 0.5, so the formula holds with the default clip too.
    n = 20_000
    y = torch.arange(n) % 2
    x = (0.25 + 0.5 * y.float())[:, None]
    sigmas = [0.0, 0.1, 0.25, 0.5, 1.0]
    result = accuracy_under_noise(_threshold, x, y, sigmas, generator=gen)
    assert result.shape == (5,) and result.dtype == torch.float64
    assert result[0].item() == 1.0
    for sigma, got in zip(sigmas[1:], result[1:].tolist(), strict=True):
        p = _phi(0.25 / sigma)
        # Binomial standard error of a mean over n samples; 5 SE (+1/n) bounds a false failure
        # at well under 1e-5 per point.
        se = math.sqrt(p * (1 - p) / n)
        assert got == pytest.approx(p, abs=5 * se + 1 / n)


def test_uses_gaussian_corruption_with_common_random_numbers():
    x = torch.rand(50, 3, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (50,), generator=torch.Generator().manual_seed(2))
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(3))

    def predict(inputs):
        return torch.softmax(inputs @ w, -1)

    gen = torch.Generator().manual_seed(7)
    result = accuracy_under_noise(predict, x, y, [0.2, 0.6], generator=gen)
    for i, sigma in enumerate([0.2, 0.6]):
        noisy = gaussian_corruption(x, sigma, generator=torch.Generator().manual_seed(7))
        expected = (predict(noisy).argmax(1) == y).double().mean().item()
        assert result[i].item() == expected
    # The generator moved on by exactly one draw, whatever the number of σ.
    reference = torch.Generator().manual_seed(7)
    torch.randn(x.shape, generator=reference)
    assert torch.equal(gen.get_state(), reference.get_state())
    # Same seed, same result; a σ's value does not depend on the other σ in the list.
    again = accuracy_under_noise(
        predict, x, y, torch.tensor([0.6]), generator=torch.Generator().manual_seed(7)
    )
    assert again.item() == result[1].item()


def test_clip_none_and_no_grad():
    x = torch.full((4, 1), 0.75, requires_grad=True)
    y = torch.ones(4, dtype=torch.long)
    seen = []

    def predict(inputs):
        seen.append((inputs.min().item(), torch.is_grad_enabled()))
        return _threshold(inputs)

    for clip in (None, (0.0, 1.0)):
        gen = torch.Generator().manual_seed(0)
        accuracy_under_noise(predict, x, y, [5.0], generator=gen, clip=clip)
    assert seen[0][0] < 0 <= seen[1][0]  # unclipped noise leaves [0, 1]; clipped does not
    assert not seen[0][1] and not seen[1][1]


X = torch.rand(6, 2, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1, 0, 1, 0, 1])
GEN = torch.Generator().manual_seed(0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"predict_fn": lambda x: x @ torch.ones(2, 2)}, r"predict_fn\(x\)=.*softmax"),
        ({"predict_fn": lambda x: torch.full((5, 2), 0.5)}, r"predict_fn\(x\)=.*\[6, C\]"),
        ({"predict_fn": lambda x: torch.full((6, 3), 1 / 3)}, None),
        ({"predict_fn": "model"}, "predict_fn="),
        ({"x": torch.ones(6, 2, dtype=torch.long)}, r"x=.*floating-point"),
        ({"y": torch.tensor([0, 1, 0])}, r"y=.*\[6\]"),
        ({"y": Y + 1}, r"y=.*out of range"),
        ({"sigmas": [0.1, -0.1]}, r"sigmas=.*\[0, inf\]"),
        ({"sigmas": [float("inf")]}, "sigmas="),
        ({"sigmas": []}, "sigmas="),
        ({"generator": 0}, "generator="),
        ({"clip": (1.0, 0.0)}, "clip="),
    ],
)
def test_bad_input_is_rejected(kwargs, match):
    args = {
        "predict_fn": lambda x: _threshold(x),
        "x": X,
        "y": Y,
        "sigmas": [0.1],
        "generator": GEN,
    } | kwargs
    if match is None:  # three classes from predict_fn: labels 0/1 are still in range
        assert accuracy_under_noise(**args).shape == (1,)
        return
    with pytest.raises(ConfigError, match=match):
        accuracy_under_noise(**args)
