"""The crossbar layers on every device present: inference and training keep every tensor on
the inputs' device (on CPU, the ``device`` fixture makes any tensor created without a device a
meta tensor, which fails the step that mixes it in)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from memcim.crossbar import ConverterConfig, CrossbarCircuit, MappingConfig, TileConfig
from memcim.devices import (
    PCM,
    STTMRAM,
    FeCap,
    FilamentaryRRAM,
    GainCell,
    IdealDevice,
    LaplaceRRAM,
    SRAMCell,
    TwoDFET,
)  # fmt: skip
from memcim.nn import CIMConfig, convert, drift_to

DEVICE_MODELS = {"pcm": PCM, "rram": FilamentaryRRAM, "ideal": IdealDevice}

#: Periphery and mapping variants, each on PCM.
VARIANTS = {
    "fixed converters": dict(adc=ConverterConfig(mode="fixed", full_scale=2.0),
                             dac=ConverterConfig(mode="fixed", full_scale=1.0)),
    "percentile ADC": dict(adc=ConverterConfig(mode="percentile")),
    "ideal converters": dict(adc=ConverterConfig(bits=None), dac=ConverterConfig(bits=None)),
    "offset, fixed reference": dict(mapping=MappingConfig(scheme="offset", reference="fixed")),
    "offset, reference cells": dict(mapping=MappingConfig(scheme="offset")),
    "bit slices, w_max": dict(mapping=MappingConfig(weight_bits=4, slices=2, w_max=0.5)),
    "two devices per weight": dict(mapping=MappingConfig(devices_per_weight=2)),
    "oracle drift compensation": dict(drift_compensation_mode="oracle"),
    "no drift compensation": dict(drift_compensation=False),
    # (noise-free reads: a noisy read can dip below 0 µS near g_min, which the wire models refuse)
    "first-order IR drop": dict(ir_drop="first_order", read_noise="off",
                                circuit=CrossbarCircuit(r_wire_row_ohm=1.0, r_wire_col_ohm=1.0)),
    "column-scaled IR drop": dict(ir_drop="first_order", ir_drop_compensation="column_scaling",
                                  read_noise="off",
                                  circuit=CrossbarCircuit(r_wire_row_ohm=1.0)),
}  # fmt: skip

#: Every other cell technology, read through the default periphery.
OTHER_DEVICES = {"mram": STTMRAM, "fecap": FeCap, "laplace": LaplaceRRAM, "2d": TwoDFET,
                 "sram": SRAMCell, "gain cell": GainCell}  # fmt: skip


def _mlp(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(40, 24, device=device), nn.ReLU(),
                         nn.Linear(24, 5, device=device))  # fmt: skip


def _conv(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, device=device), nn.ReLU(),
                         nn.Conv2d(4, 2, 3, device=device))  # fmt: skip


def _chip(module: nn.Module, model: str, read_noise: str = "auto") -> nn.Module:
    tile = TileConfig(device=DEVICE_MODELS[model](), read_noise=read_noise)
    return convert(module, CIMConfig(tile=tile, seed=0, max_rows=16, max_cols=16))


@pytest.mark.parametrize("model", sorted(DEVICE_MODELS))
@pytest.mark.parametrize("read_noise", ["per_time", "per_read"])
@pytest.mark.parametrize("build, shape", [(_mlp, (3, 40)), (_conv, (2, 3, 6, 6))])
def test_inference_stays_on_the_inputs_device(device, model, read_noise, build, shape):
    chip = _chip(build(device), model, read_noise).eval()
    drift_to(chip, 3600.0)
    x = torch.rand(shape, device=device)
    with torch.no_grad():
        y, again = chip(x), chip(x)
    assert y.device.type == device.type and torch.isfinite(y).all()
    if read_noise == "per_time":  # one noise realisation per read time
        assert torch.equal(y, again)


@pytest.mark.parametrize("model", sorted(DEVICE_MODELS))
@pytest.mark.parametrize("build, shape", [(_mlp, (3, 40)), (_conv, (2, 3, 6, 6))])
def test_training_stays_on_the_inputs_device(device, model, build, shape):
    chip = _chip(build(device), model).train()
    opt = torch.optim.SGD(chip.parameters(), lr=0.1)
    x = torch.rand(shape, device=device)
    for _ in range(2):
        opt.zero_grad()
        chip(x).square().mean().backward()
        opt.step()
    assert all(p.grad.device.type == device.type and torch.isfinite(p.grad).all()
               for p in chip.parameters())  # fmt: skip


def test_convert_defaults_and_back_on_the_device(device):
    from memcim.nn import to_digital

    chip = convert(_mlp(device)).eval()
    x = torch.rand(4, 40, device=device)
    with torch.no_grad():
        y = chip(x)
    assert y.device.type == device.type
    digital = to_digital(chip)
    assert digital(x).device.type == device.type


def _train_then_read(chip: nn.Module, device: torch.device, t_s: float) -> None:
    """One training step, then a read at ``t_s``: finite outputs on ``device``."""
    x = torch.rand(3, 40, device=device)
    chip.train()
    chip(x).square().mean().backward()
    chip.eval()
    drift_to(chip, t_s)
    with torch.no_grad():
        y = chip(x)
    assert y.device.type == device.type and torch.isfinite(y).all()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_periphery_variant_stays_on_the_device(device, variant):
    tile = TileConfig(device=PCM(), **VARIANTS[variant])
    chip = convert(_mlp(device), CIMConfig(tile=tile, seed=0, max_rows=16, max_cols=16))
    _train_then_read(chip, device, 3600.0)


@pytest.mark.parametrize("name", sorted(OTHER_DEVICES))
def test_every_cell_technology_stays_on_the_device(device, name):
    chip = convert(_mlp(device), CIMConfig(tile=TileConfig(device=OTHER_DEVICES[name]()), seed=0))
    _train_then_read(chip, device, 60.0)


def test_moving_a_programmed_layer_keeps_its_devices(device):
    """Programmed and read on the CPU, then moved: the same conductances and the same cached
    noise realisation answer on ``device`` (no re-programming), and new draws come from a
    generator there."""
    cpu = torch.device("cpu")
    chip = _chip(_mlp(cpu), "pcm").eval()
    drift_to(chip, 3600.0)
    x = torch.rand(3, 40, device=cpu)
    with torch.no_grad():
        before = chip(x)
    layers = [m for m in chip.modules() if hasattr(m, "tiles_current")]
    programmings = [layer.matrix.counters.program_ops for layer in layers]
    chip.to(device)
    assert all(layer.tiles_current() for layer in layers)
    assert all(layer.generator.device.type == device.type for layer in layers)
    with torch.no_grad():
        after = chip(x.to(device))
    assert [layer.matrix.counters.program_ops for layer in layers] == programmings
    torch.testing.assert_close(after.cpu(), before, rtol=1e-5, atol=1e-6)


def test_a_tile_moves_with_its_state_and_counters(device):
    from memcim.crossbar import Tile

    cpu = torch.device("cpu")
    tile = Tile(8, 4, TileConfig(device=PCM()))
    tile.program(torch.rand(4, 8, device=cpu) - 0.5, generator=torch.Generator().manual_seed(0))
    x = torch.rand(2, 8, device=cpu)
    before = tile.mvm(x, t_s=60.0, generator=torch.Generator().manual_seed(1))
    counts = tile.counters.as_dict()
    tile.to(device)
    assert tile.counters.as_dict() == counts
    assert tile.state.device.type == device.type
    after = tile.mvm(x.to(device), t_s=60.0, generator=torch.Generator(device).manual_seed(1))
    torch.testing.assert_close(after.cpu(), before, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_loads_onto_the_device(device, tmp_path):
    """Written from a programmed model on the CPU, loaded into the same model on ``device``:
    the same devices and cached read answer there (tiles, reads and generator follow the
    layer), so the outputs agree."""
    from memcim.nn import load_checkpoint, save_checkpoint

    cpu = torch.device("cpu")
    source = _chip(_mlp(cpu), "pcm").eval()
    drift_to(source, 3600.0)
    x = torch.rand(3, 40, device=cpu)
    with torch.no_grad():
        before = source(x)
    path, _ = save_checkpoint(source, tmp_path / "chip.safetensors")
    target = load_checkpoint(_chip(_mlp(device), "pcm").eval(), path)
    layers = [m for m in target.modules() if hasattr(m, "tiles_current")]
    assert all(layer.tiles_current() for layer in layers)
    with torch.no_grad():
        after = target(x.to(device))
    torch.testing.assert_close(after.cpu(), before, rtol=1e-5, atol=1e-6)


def test_a_generator_state_from_another_kind_of_device_is_named_not_lost():
    from memcim._modules import restore_generator

    generator = torch.Generator(device="cpu").manual_seed(7)
    foreign = torch.zeros(16, dtype=torch.uint8, device="cpu")  # a CUDA (Philox) state's size
    with pytest.warns(UserWarning, match="seed 7"):
        restore_generator(generator, foreign, "CIMLinear")
    torch.rand(3, generator=generator, device="cpu")  # still draws
