"""Quantiser properties of the DAC/ADC model."""

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, Tile, TileConfig, quantize
from memcim.crossbar.converters import rounded_codes


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_codes_are_integers_within_range_and_error_at_most_half_a_step(bits, gen):
    cfg = ConverterConfig(bits=bits)
    x = (torch.rand(10_000, generator=gen) * 2 - 1) * 3.0
    codes, clipped = quantize(x, torch.tensor(3.0), cfg.max_code)
    assert clipped == 0
    assert torch.equal(codes, codes.round())
    assert codes.abs().max() <= cfg.max_code
    step = 3.0 / cfg.max_code
    assert ((codes * step - x).abs() <= step / 2 + 1e-6).all()


def test_quantiser_is_idempotent_symmetric_and_zero_exact(gen):
    x = torch.randn(1000, generator=gen)
    codes, _ = quantize(x, torch.tensor(4.0), 127)
    again, _ = quantize(codes * 4.0 / 127, torch.tensor(4.0), 127)
    assert torch.equal(codes, again)
    neg, _ = quantize(-x, torch.tensor(4.0), 127)
    assert torch.equal(neg, -codes)
    zero, _ = quantize(torch.zeros(3), torch.tensor(4.0), 127)
    assert torch.equal(zero, torch.zeros(3))


def test_saturation_is_counted_not_hidden():
    x = torch.tensor([-5.0, -1.0, 0.0, 0.5, 2.0, 9.0])
    codes, clipped = quantize(x, torch.tensor(1.0), 7)
    assert clipped == 3  # -5, 2 and 9 are beyond ±1
    assert codes.tolist() == [-7.0, -7.0, 0.0, 4.0, 7.0, 7.0]


def test_in_place_quantisation_gives_the_same_codes_in_the_given_buffer(gen):
    x = torch.randn(3, 50, generator=gen) * 2
    scale = torch.tensor([[1.0], [2.0], [0.5]])
    codes, clipped = quantize(x, scale, 15)
    buffer = x.clone()
    again, clipped_again = quantize(buffer, scale, 15, inplace=True)
    assert again.data_ptr() == buffer.data_ptr()
    assert torch.equal(again, codes) and clipped_again == clipped > 0


def test_calibration_modes(gen):
    x = torch.randn(1000, generator=gen)
    x[0] = 100.0  # an outlier
    assert ConverterConfig(mode="max_abs").calibrate(x).item() == pytest.approx(100.0)
    p99 = ConverterConfig(mode="percentile", percentile=99.0).calibrate(x).item()
    assert p99 == pytest.approx(torch.sort(x.abs()).values[989].item())
    fixed = ConverterConfig(mode="fixed", full_scale=2.5).calibrate(x).item()
    assert fixed == 2.5
    per_row = ConverterConfig(mode="max_abs").calibrate(x.view(10, 100), dim=-1)
    assert torch.equal(per_row.squeeze(), x.view(10, 100).abs().amax(-1))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bits": 0}, "ConverterConfig.bits"),
        ({"bits": 1}, "ConverterConfig.bits"),
        ({"mode": "fixed"}, "ConverterConfig.full_scale"),
        ({"mode": "median"}, "ConverterConfig.mode"),
        ({"percentile": 0.0}, "ConverterConfig.percentile"),
    ],
)
def test_bad_converter_config(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        ConverterConfig(**kwargs)


def test_subnormal_inputs_convert_to_zero_not_nan():
    """A batch whose largest value is subnormal in float32 (here 1e-40) sets a full scale whose
    code step overflows to inf, and 0 · inf would be NaN; such inputs lie below every code
    step and convert to 0 (found by the property tests)."""
    cfg = TileConfig(dac=ConverterConfig(bits=4), adc=ConverterConfig(bits=None))
    tile = Tile(2, 1, cfg)
    tile.program(torch.tensor([[0.5, -0.25]]), generator=torch.Generator().manual_seed(0))
    y = tile.mvm(torch.tensor([[1e-40, 0.0]]), generator=torch.Generator().manual_seed(1))
    assert torch.equal(y, torch.zeros(1, 1))


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_a_max_abs_range_of_the_values_themselves_never_saturates(bits, gen):
    """The DAC skips its saturation check for per-vector max-abs ranges: x · L/|x|max must
    round to at most L in float32, whatever the magnitudes (here 1e-30 to 1e30)."""
    dac = ConverterConfig(bits=bits, mode="max_abs")
    x = torch.randn(512, 97, generator=gen) * torch.logspace(-30, 30, 512).unsqueeze(1)
    x[::7] = x[::7].sign() * x[::7].abs().amax(-1, keepdim=True)  # ties at the range
    scale = dac.calibrate(x, dim=-1)
    checked, clipped = quantize(x, scale, dac.max_code)
    skipped = rounded_codes(x, scale, dac.max_code)
    assert clipped == 0
    assert torch.equal(checked, skipped)
    assert checked.abs().amax() == dac.max_code
