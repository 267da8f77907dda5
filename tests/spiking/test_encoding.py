"""Event encoders: rate, latency and saccade (delta) codes of images."""

from __future__ import annotations

import pytest
import torch

from memcim import ConfigError
from memcim.spiking import SACCADE_PATH, latency, rate, saccades


def _ramp() -> torch.Tensor:
    """Two 4 × 4 images: a left-to-right ramp 0 … 1 and its mirror."""
    row = torch.linspace(0, 1, 4)
    one = row.expand(4, 4)
    return torch.stack([one, one.flip(-1)])


def test_rate_code_fires_in_proportion_to_intensity():
    """T = 4000 steps: the firing rate of a pixel of intensity p has sd √(p(1−p)/T) ≤ 0.008;
    0.03 is about 4 sd."""
    images = _ramp()
    spikes = rate(images, 4000, generator=torch.Generator().manual_seed(0))
    assert spikes.shape == (4000, 2, 4, 4)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(spikes.mean(0), images, atol=0.03, rtol=0)
    half = rate(images, 4000, generator=torch.Generator().manual_seed(0), gain=0.5)
    torch.testing.assert_close(half.mean(0), 0.5 * images, atol=0.03, rtol=0)


def test_latency_code_one_spike_brighter_earlier():
    images = _ramp()
    spikes = latency(images, 10)
    assert spikes.shape == (10, 2, 4, 4)
    counts = spikes.sum(0)
    assert torch.equal(counts[images > 0.01], torch.ones_like(counts[images > 0.01]))
    assert float(counts[images <= 0.01].sum()) == 0  # the dark pixels stay silent
    first = spikes.argmax(0).float()  # the step of each pixel's one spike
    lit = images > 0.01
    order = images[lit].argsort(descending=True)
    assert torch.all(first[lit][order].diff() >= 0)  # brighter fires no later
    assert float(first[images == 1].max()) == 0  # full intensity fires at once


def test_saccades_see_edges_not_surfaces_and_a_still_image_is_silent():
    """A bright square moved one pixel right: ON events on its new right edge, OFF on the
    left edge it left; its inside and the dark background give none."""
    image = torch.zeros(1, 6, 6)
    image[0, 2:4, 2:4] = 1.0
    events = saccades(image, 2, path=((0, 0), (0, 1)))
    assert events.shape == (2, 1, 6, 6)
    assert float(events[0].abs().sum()) == 0  # step 0 compares with itself
    on = (events[1, 0] == 1).nonzero().tolist()
    off = (events[1, 0] == -1).nonzero().tolist()
    assert on == [[2, 4], [3, 4]] and off == [[2, 2], [3, 2]]
    still = saccades(image, 5, path=((0, 0),))
    assert float(still.abs().sum()) == 0


def test_a_closed_saccade_cycle_balances_on_and_off():
    """Over whole cycles of the closed path the image returns where it started. In a binary
    image every change is a full step of 1, so every change is an event and each pixel's
    events sum to its net change: 0."""
    image = (torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    image[:, 0, :] = image[:, -1, :] = image[:, :, 0] = image[:, :, -1] = 0  # nothing leaves
    events = saccades(image, 4 * len(SACCADE_PATH) + 1)
    assert torch.equal(events.sum(0), torch.zeros_like(image))
    assert float(events.abs().sum()) > 0


def test_bad_inputs_are_named():
    with pytest.raises(ConfigError, match="pixels in"):
        rate(torch.full((1, 2, 2), 255.0), 3, generator=torch.Generator())
    with pytest.raises(ConfigError, match="steps"):
        latency(_ramp(), 1)
    with pytest.raises(ConfigError, match="path"):
        saccades(_ramp(), 3, path=((0.5, 0),))
    with pytest.raises(ConfigError, match="gain"):
        rate(_ramp(), 3, generator=torch.Generator(), gain=2.0)
