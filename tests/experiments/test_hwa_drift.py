"""The hwa-drift experiment: config validation, the eval path against closed form, a smoke run
on a tiny MNIST subset (seconds), the guard of its claim on a reduced Fashion-MNIST setting
(seconds), and the full reproduction (``--runslow``)."""

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.devices import IdealDevice
from memcim.experiments import hwa_drift
from memcim.experiments.hwa_drift import (
    HwaDriftConfig,
    accuracy_vs_time,
    build_model,
    markdown_table,
    run,
    time_label,
)
from memcim.nn import CIMConfig, convert


@pytest.fixture(scope="module")
def mnist_dir(shared_data) -> Path:
    return shared_data("mnist.npz")


@pytest.fixture(scope="module")
def fashion_dir(shared_data) -> Path:
    return shared_data("fashion_mnist.npz")


def tiny(data_dir: Path, **overrides) -> HwaDriftConfig:
    """A config that trains on 2000 MNIST images and tests on 300, published PCM noise: a few
    seconds on two cores."""
    fields = dict(
        dataset="mnist",
        pcm_prog_noise_scale=1.0,
        epochs=3,
        lr=3e-3,
        hwa_epochs=1,
        hwa_lr=1e-3,
        train_subset=2000,
        test_subset=300,
        times_s=(1.0, 86_400.0),
        eval_repeats=2,
        eval_batch_size=150,
        data_dir=str(data_dir),
    )
    return HwaDriftConfig(**{**fields, **overrides})


# --- config -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("models", ("mlp", "resnet")),
        ("models", ()),
        ("models", ("mlp", "mlp")),
        ("devices", ("sram",)),
        ("times_s", (0.0, 1.0)),
        ("times_s", (1.0, math.nan)),
        ("times_s", (1.0, 1.0)),
        ("epochs", 0),
        ("hwa_epochs", -1),
        ("batch_size", 0),
        ("lr", 0.0),
        ("hwa_lr", math.inf),
        ("train_subset", 0),
        ("test_subset", True),
        ("eval_repeats", 0),
        ("eval_batch_size", 0),
        ("clip_sigma", 0.0),
        ("train_t_s", -1.0),
        ("dataset", "cifar10"),
        ("pcm_prog_noise_scale", -1.0),
        ("pcm_prog_noise_scale", math.nan),
        ("dac_bits", 1),
        ("adc_bits", 4.0),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        HwaDriftConfig(**{field: value})


def test_config_is_frozen_keyword_only_and_normalised():
    config = HwaDriftConfig(models=["mlp"], times_s=[1, 3600])
    assert config.models == ("mlp",) and config.times_s == (1.0, 3600.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3
    with pytest.raises(TypeError):
        HwaDriftConfig(("mlp",))
    assert dataclasses.replace(config, hwa_epochs=0).hwa_epochs == 0
    quick = HwaDriftConfig.quick(models=("cnn",))
    assert quick.models == ("cnn",) and quick.train_subset is not None


def test_the_setting_reaches_the_devices_and_converters():
    config = HwaDriftConfig(pcm_prog_noise_scale=3.0, dac_bits=6, adc_bits=None)
    assert config.device("pcm").prog_noise_scale == 3.0
    assert config.device("rram") == hwa_drift.FilamentaryRRAM()  # RRAM stays as published
    tile = config.cim_config(config.device("pcm")).tile
    assert tile.dac.bits == 6 and tile.adc.ideal and tile.device.prog_noise_scale == 3.0


def test_time_labels():
    assert [time_label(t) for t in HwaDriftConfig().times_s] == ["1s", "1h", "1day", "1year"]
    assert time_label(30) == "30s"


# --- models and the evaluation path ----------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_models_are_seeded_by_their_generator_only(name):
    a = build_model(name, torch.Generator().manual_seed(3))
    torch.manual_seed(0)  # the global RNG must play no part
    b = build_model(name, torch.Generator().manual_seed(3))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert a(torch.rand(4, 28, 28)).shape == (4, 10)


def test_noiseless_crossbars_reproduce_the_software_network():
    """Closed form: ideal devices and converters, no clipping -> the float network's logits."""
    gen = torch.Generator().manual_seed(0)
    software = build_model("cnn", gen).eval()
    x = torch.rand(40, 28, 28, generator=gen)
    y = software(x).argmax(-1)  # labels the float model gets 100 % on
    ideal = ConverterConfig(bits=None)
    config = CIMConfig(tile=TileConfig(device=IdealDevice(), dac=ideal, adc=ideal), clip_sigma=None)
    model = convert(copy.deepcopy(software), config)
    assert accuracy_vs_time(model, x, y, (1.0, 3.15e7), seed=5, batch_size=16) == [1.0, 1.0]
    with torch.no_grad():
        assert torch.allclose(model(x), software(x), atol=1e-5, rtol=1e-4)


# --- runs -------------------------------------------------------------------------------------
def test_smoke_run_writes_results_and_plot(tmp_path, mnist_dir):
    config = tiny(mnist_dir)
    metrics = run(config, seed=1, out_dir=tmp_path, progress=False)

    expected = {f"accuracy_{m}_software" for m in config.models}
    for m in config.models:
        for d in config.devices:
            for v in ("converted", "hwa"):
                for t in ("1s", "1day"):
                    expected |= {f"accuracy_{m}_{d}_{v}_{t}", f"accuracy_{m}_{d}_{v}_{t}_std"}
    assert set(metrics) == expected
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    # 2000 images, 3 epochs reach ~85 %, far above chance (0.1); with 300 test images the
    # standard error of an accuracy is below sqrt(0.25 / 300) = 0.029, so 0.6 is > 8 SE away.
    for m in config.models:
        assert metrics[f"accuracy_{m}_software"] > 0.6
        assert metrics[f"accuracy_{m}_pcm_hwa_1day"] > 0.6

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["experiment"] == "hwa-drift" and saved["seed"] == 1
    assert saved["complete"] is True and saved["wall_s"] > 0
    assert saved["metrics"] == metrics
    assert saved["config"]["times_s"] == [1.0, 86400.0]
    assert saved["test_images"] == 300 and saved["train_images"] == 2000
    assert {"torch", "memcim", "python"} <= set(saved["versions"])
    png = tmp_path / saved["figure"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = markdown_table(metrics, config)
    assert table.count("\n") == 2 + len(config.models) * (1 + 2 * len(config.devices)) - 1


def test_same_seed_same_numbers_and_order_independence(mnist_dir):
    config = tiny(mnist_dir, models=("mlp",), devices=("rram",), eval_repeats=1)
    first = run(config, seed=4, out_dir=None, progress=False)
    again = run(config, seed=4, out_dir=None, progress=False)
    assert first == again
    # Stages have their own seeds: adding a device in front changes nothing for rram.
    both = run(
        dataclasses.replace(config, devices=("pcm", "rram")), seed=4, out_dir=None, progress=False
    )
    assert {k: both[k] for k in first} == first


def test_a_stopped_run_keeps_finished_pairs(tmp_path, mnist_dir, monkeypatch):
    def broken():
        raise RuntimeError("simulated kill")

    monkeypatch.setitem(hwa_drift.DEVICES, "rram", broken)
    config = tiny(mnist_dir, models=("mlp",), eval_repeats=1)
    with pytest.raises(RuntimeError, match="simulated kill"):
        run(config, seed=0, out_dir=tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["complete"] is False
    assert "accuracy_mlp_pcm_hwa_1day" in saved["metrics"]
    assert not any("rram" in k for k in saved["metrics"])
    assert (tmp_path / "accuracy_vs_time.png").is_file()


def test_command_line(tmp_path, mnist_dir, monkeypatch, capsys):
    small = tiny(mnist_dir, models=("mlp",), devices=("pcm",), eval_repeats=1)
    monkeypatch.setattr(HwaDriftConfig, "quick", classmethod(lambda cls: small))
    assert hwa_drift.main(["--out", str(tmp_path), "--quick", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "| mlp | pcm | hwa |" in out
    assert json.loads((tmp_path / "results.json").read_text())["seed"] == 2


def test_missing_data_is_a_config_error(tmp_path):
    for dataset in ("mnist", "fashion_mnist"):
        config = HwaDriftConfig.quick(data_dir=str(tmp_path), dataset=dataset)
        with pytest.raises(ConfigError, match=f"{dataset}.npz"):
            run(config, seed=0, out_dir=None, progress=False)


def guard(data_dir: Path, **overrides) -> HwaDriftConfig:
    """The reduced setting of the claim: an MLP on 4000 Fashion-MNIST images, PCM with 8x the
    published programming noise, 1 s after programming, 6 chips; ~10 s on two cores."""
    fields = dict(
        models=("mlp",),
        devices=("pcm",),
        times_s=(1.0,),
        pcm_prog_noise_scale=8.0,
        epochs=3,
        lr=3e-3,
        hwa_epochs=3,
        hwa_lr=3e-3,
        train_subset=4000,
        test_subset=1000,
        eval_repeats=6,
        eval_batch_size=500,
        data_dir=str(data_dir),
    )
    return HwaDriftConfig(**{**fields, **overrides})


def test_hwa_fine_tuning_recovers_what_plain_conversion_loses(fashion_dir):
    """The experiment's claim where it is large: plain conversion of the noisy-PCM MLP loses
    several points against software, and HWA fine-tuning wins most of them back.

    Tolerance: both accuracies are means over the same 6 chips on the same 1000 test images.
    Test-set sampling gives one chip's paired difference an SE of sqrt(d / n), d the fraction
    of images on which the two models disagree (< 0.2 here): < 0.014 per chip, < 0.006 over 6;
    the chip-to-chip std of the converted accuracy (up to 0.08 seen) adds < 0.033 to the
    6-chip mean. Seed 0 gains 0.053 (software 0.797, converted 0.725, HWA 0.778); seeds 0-2
    with 4 chips gained 0.073, 0.049 and 0.033, so 0.03 is below every one. Without the
    fine-tuning the hwa model *is* the converted one on the same chips: a gain of exactly 0.
    Fine-tuning with ``train_noise=False`` still gains 0.035 at this size (clipping- and
    quantisation-aware fine-tuning of a briefly trained model), so this guards the
    fine-tuning step, not the noise injection alone.
    """
    metrics = run(guard(fashion_dir), seed=0, out_dir=None, progress=False)
    software = metrics["accuracy_mlp_software"]
    converted = metrics["accuracy_mlp_pcm_converted_1s"]
    hwa = metrics["accuracy_mlp_pcm_hwa_1s"]
    assert software - converted > 0.03, (software, converted)  # a setting where it matters
    assert hwa - converted > 0.03, (converted, hwa)


@pytest.mark.slow
def test_full_run_hwa_recovers_what_conversion_loses_on_noisy_pcm(tmp_path, fashion_dir):
    """The acceptance of the experiment, default setting (full Fashion-MNIST, PCM with 6x the
    published programming noise): at 1 day plain conversion of the MLP loses at least 3
    points against software and HWA fine-tuning wins back at least a third of the loss.
    Seed 0 gave software 0.8857, converted 0.8442 (std 0.024 over the 3 chips, so an SE of
    0.014 for the mean) and HWA 0.8690 (std 0.002): the loss bound holds by ~1 SE and the
    recovery bound (0.014 needed, 0.025 seen) by ~1 SE. This reproduces the README's numbers
    at seed 0; it is no guarantee over seeds. ~7 min on two shared cores."""
    config = HwaDriftConfig(data_dir=str(fashion_dir))
    metrics = run(config, seed=0, out_dir=tmp_path, progress=False)
    software = metrics["accuracy_mlp_software"]
    converted = metrics["accuracy_mlp_pcm_converted_1day"]
    hwa = metrics["accuracy_mlp_pcm_hwa_1day"]
    assert software > 0.87
    assert software - converted >= 0.03
    assert hwa - converted >= (software - converted) / 3
    assert json.loads((tmp_path / "results.json").read_text())["complete"] is True
