"""Checkpoints of models on tiles: a round trip into a fresh process, and configs that differ."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.nn import CIMConfig, convert, drift_to, load_checkpoint, save_checkpoint

BUILD = textwrap.dedent("""
    import torch
    from torch import nn
    from memcim.crossbar import ConverterConfig, TileConfig
    from memcim.devices import PCM
    from memcim.nn import CIMConfig, convert

    def build(adc_bits=8, weight_seed=1):
        torch.manual_seed(weight_seed)
        net = nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 10))
        tile = TileConfig(device=PCM(), adc=ConverterConfig(bits=adc_bits))
        return convert(net, CIMConfig(tile=tile, max_rows=16, max_cols=16, seed=3)).eval()
""")
namespace: dict = {}
exec(BUILD, namespace)  # the same builder here and in the fresh process
build = namespace["build"]


def test_round_trip_into_a_fresh_process_is_bit_identical(tmp_path):
    """PCM read an hour after programming (cached per-time noise, drift compensation), 8-bit
    converters, several tiles per layer; the fresh process builds the model from other
    weights and never programs it: everything it computes comes from the files."""
    x = torch.rand(32, 40, generator=torch.Generator().manual_seed(0))
    model = build(weight_seed=0)
    drift_to(model, 3600.0)
    model(x)  # programs the devices and reads them at 1 h
    path, meta = save_checkpoint(model, tmp_path / "chip.safetensors")
    expected = model(x)
    torch.save(x, tmp_path / "x.pt")
    script = BUILD + textwrap.dedent(f"""
        from memcim.nn import load_checkpoint
        model = load_checkpoint(build(weight_seed=1), {str(path)!r})
        x = torch.load({str(tmp_path / "x.pt")!r}, weights_only=True)
        torch.save(model(x), {str(tmp_path / "y.pt")!r})
        print(sum(m.matrix.counters.program_ops for m in model if hasattr(m, "matrix")))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip() == "0"  # the loaded devices were read, never re-programmed
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    assert torch.equal(got, expected)
    configs = json.loads(meta.read_text())["layers"]
    assert configs["0"]["tile.device"] == "PCM" and configs["0"]["tile.adc.bits"] == 8


def test_a_different_config_is_an_error_naming_the_field(tmp_path):
    model = build()
    model(torch.rand(4, 40))
    path, _ = save_checkpoint(model, tmp_path / "chip.safetensors")
    with pytest.raises(ConfigError, match=r"0\.tile\.adc\.bits: .*saved with 8.* has 6"):
        load_checkpoint(build(adc_bits=6), path)


def test_a_different_architecture_or_a_missing_file_is_an_error(tmp_path):
    model = build()
    path, _ = save_checkpoint(model, tmp_path / "chip.safetensors")
    other = convert(nn.Sequential(nn.Linear(40, 10)),
                    CIMConfig(tile=TileConfig(adc=ConverterConfig(bits=8))))  # fmt: skip
    with pytest.raises(ConfigError, match="layers on tiles"):
        load_checkpoint(other, path)
    with pytest.raises(ConfigError, match="path"):
        load_checkpoint(build(), tmp_path / "missing.safetensors")


HW_BUILD = textwrap.dedent("""
    import torch
    from torch import nn
    from memcim.bayes import (BayesConfig, HardwareSampling, SamplingScheme, to_bayesian,
                              to_hardware)
    from memcim.devices import FilamentaryRRAM

    def build_hw(scheme, program_seed):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
        bnn = to_bayesian(net, config=BayesConfig(sigma_init=0.05, seed=1)).eval()
        sampling = HardwareSampling(scheme=SamplingScheme(scheme), device=FilamentaryRRAM())
        hw, _ = to_hardware(bnn, sampling, samples=4,
                            generator=torch.Generator().manual_seed(program_seed))
        return hw
""")
exec(HW_BUILD, namespace)
build_hw = namespace["build_hw"]


@pytest.mark.parametrize("scheme", ["differential", "separate_mu_sigma", "device_population"])
def test_hardware_bayesian_model_round_trips_into_a_fresh_process(tmp_path, scheme):
    """Device-drawn weight samples on RRAM tiles: the fresh process programs its own (other)
    samples with to_hardware, then loads the saved ones over them; the Monte-Carlo predictions
    (read noise and, for separate μ/σ, the stochastic bits included) are bit-identical."""
    from memcim.bayes import predict

    x = torch.rand(16, 12, generator=torch.Generator().manual_seed(0))
    hw = build_hw(scheme, program_seed=5)
    predict(hw, x, samples=4)  # the first read sets the ADC ranges
    path, meta = save_checkpoint(hw, tmp_path / "bnn.safetensors")
    expected = predict(hw, x, samples=4)
    torch.save(x, tmp_path / "x.pt")
    script = HW_BUILD + textwrap.dedent(f"""
        from memcim.bayes import predict
        from memcim.nn import load_checkpoint
        hw = load_checkpoint(build_hw({scheme!r}, program_seed=6), {str(path)!r})
        x = torch.load({str(tmp_path / "x.pt")!r}, weights_only=True)
        p = predict(hw, x, samples=4)
        torch.save(torch.stack([p.mean, p.epistemic[:, None].expand_as(p.mean)]),
                   {str(tmp_path / "y.pt")!r})
    """)
    subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    assert torch.equal(got[0], expected.mean)
    assert torch.equal(got[1][:, 0], expected.epistemic)
    assert json.loads(meta.read_text())["layers"]["0"]["sampling.scheme"] == scheme
    other = build_hw(scheme, program_seed=6)
    assert not torch.equal(predict(other, x, samples=4).mean, expected.mean)  # not trivial


def test_a_hardware_model_with_other_samples_is_an_error(tmp_path):
    hw = build_hw("differential", program_seed=5)
    path, _ = save_checkpoint(hw, tmp_path / "bnn.safetensors")
    with pytest.raises(ConfigError, match=r"sampling\.scheme: .*'differential'"):
        load_checkpoint(build_hw("device_population", program_seed=5), path)


def test_compiling_the_training_noise_is_not_part_of_the_checkpoint(tmp_path):
    """CIMConfig.compile says how training runs, not what the tiles hold: a checkpoint saved
    without it loads into a model built with it (other fields still must match)."""
    model = build()
    model(torch.rand(4, 40))
    path, meta = save_checkpoint(model, tmp_path / "chip.safetensors")
    assert "compile" not in json.loads(meta.read_text())["layers"]["0"]
    with_compile = build()
    for layer in with_compile:
        if hasattr(layer, "cim_config"):
            layer.cim_config = dataclasses.replace(layer.cim_config, compile=True)
    load_checkpoint(with_compile, path)
    assert torch.equal(with_compile[0].weight, model[0].weight)
