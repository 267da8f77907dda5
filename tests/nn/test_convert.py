"""convert / to_digital / seed / state_dict: layer selection, weights kept, errors that name the
valid layers, ideal CIM model == digital model, bit-identical save and load of the devices."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.devices import IdealDevice
from memcim.nn import (
    CIMConfig,
    CIMConv2d,
    CIMLinear,
    cim_layers,
    convert,
    drift_to,
    program,
    seed,
    to_digital,
)

IDEAL_IO = {"dac": ConverterConfig(bits=None), "adc": ConverterConfig(bits=None)}
LAYER_NAMES = ["features.0", "features.3", "head.1", "head.3"]


def ideal_config(**kw) -> CIMConfig:
    kw.setdefault("clip_sigma", None)
    return CIMConfig(tile=TileConfig(device=IdealDevice(), **IDEAL_IO), **kw)


class Net(nn.Module):
    """Conv2d, BatchNorm2d, ReLU, Conv2d (non-square kernel, stride 2), Flatten, two Linear."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 6, (3, 2), stride=2),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(72, 10), nn.ReLU(), nn.Linear(10, 3))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            bn = self.features[1]
            bn.running_mean.copy_(0.1 * torch.randn(4, generator=gen))
            bn.running_var.copy_(0.5 + torch.rand(4, generator=gen))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture
def x(gen) -> torch.Tensor:
    return torch.randn(3, 1, 8, 9, generator=gen)


def roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# --- convert and to_digital -----------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_convert_replaces_linear_and_conv2d_and_keeps_everything_else(training):
    net = Net().train(training)
    digital = {name: net.get_submodule(name) for name in LAYER_NAMES}
    before = {k: v.clone() for k, v in net.state_dict().items()}
    bn, relu, flatten = net.features[1], net.features[2], net.head[0]

    assert convert(net, CIMConfig(seed=10)) is net

    expected_types = [CIMConv2d, CIMConv2d, CIMLinear, CIMLinear]
    for name, cls in zip(LAYER_NAMES, expected_types, strict=True):
        layer = net.get_submodule(name)
        assert type(layer) is cls, name
        assert torch.equal(layer.weight, before[f"{name}.weight"])
        assert torch.equal(layer.bias, before[f"{name}.bias"])
        assert layer.training is training
        if cls is CIMConv2d:
            for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding"):
                assert getattr(layer, attr) == getattr(digital[name], attr), (name, attr)
            assert layer.dilation == digital[name].dilation
    assert net.features[1] is bn and net.features[2] is relu and net.head[0] is flatten
    for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(bn, key), before[f"features.1.{key}"])
    # layer i, in module order, gets a private generator seeded config.seed + i
    assert [m.generator.initial_seed() for m in cim_layers(net)] == [10, 11, 12, 13]


def test_layer_selection_all_but_first_last_and_by_name():
    net = convert(Net(), CIMConfig(seed=4), layers="all_but_first_last")
    assert type(net.features[0]) is nn.Conv2d and type(net.head[3]) is nn.Linear
    assert type(net.features[3]) is CIMConv2d and type(net.head[1]) is CIMLinear
    assert [m.generator.initial_seed() for m in cim_layers(net)] == [4, 5]

    net = convert(Net(), CIMConfig(seed=4), layers=["head.1"])
    assert [type(net.get_submodule(n)) for n in LAYER_NAMES] == [
        nn.Conv2d,
        nn.Conv2d,
        CIMLinear,
        nn.Linear,
    ]
    assert net.head[1].generator.initial_seed() == 4


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        (["head.1", "nope"], "nope"),
        (["features.1"], "features.1"),  # a BatchNorm2d is not convertible
        ("first", "first"),
        ("head.1", "head.1"),  # a bare name is not a list of names
    ],
)
def test_bad_selection_raises_config_error_listing_the_valid_names(layers, match):
    net = Net()
    with pytest.raises(ConfigError, match=match) as info:
        convert(net, layers=layers)
    message = str(info.value)
    assert all(name in message for name in LAYER_NAMES), message
    # nothing was converted before the error
    assert not cim_layers(net)


@pytest.mark.parametrize(
    ("conv", "match"),
    [
        (nn.Conv2d(4, 4, 3, groups=2), "groups=2"),
        (nn.Conv2d(4, 4, 3, padding="same"), "padding='same'"),
        (nn.Conv2d(4, 4, 3, padding_mode="reflect"), "padding_mode='reflect'"),
    ],
)
def test_unsupported_conv2d_raises_config_error(conv, match):
    with pytest.raises(ConfigError, match=match):
        convert(nn.Sequential(conv))


def test_ideal_cim_model_is_the_digital_model(x):
    reference = Net().eval()
    expected = reference(x)
    net = convert(Net().eval(), ideal_config())
    assert len(cim_layers(net)) == 4
    torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)


def test_to_digital_gives_back_plain_layers_with_the_clipped_weights(x):
    original = Net().eval()
    net = convert(Net().eval(), ideal_config(clip_sigma=1.5))
    y_cim = net(x)
    mapped = {n: net.get_submodule(n).mapped_weight().detach().clone() for n in LAYER_NAMES}
    clipped = sum(
        int((mapped[n].reshape(original.get_submodule(n).weight.shape) != w).sum())
        for n, w in ((n, original.get_submodule(n).weight) for n in LAYER_NAMES)
    )
    assert clipped > 0  # clip_sigma = 1.5 does clip some weights of a Gaussian init

    assert to_digital(net) is net
    assert not cim_layers(net)
    for name in LAYER_NAMES:
        layer, ref = net.get_submodule(name), original.get_submodule(name)
        assert type(layer) is type(ref), name
        assert torch.equal(layer.weight, mapped[name].reshape(ref.weight.shape))
        assert torch.equal(layer.bias, ref.bias)
        assert layer.training is False
        if isinstance(ref, nn.Conv2d):
            assert (layer.kernel_size, layer.stride, layer.padding, layer.dilation) == (
                ref.kernel_size,
                ref.stride,
                ref.padding,
                ref.dilation,
            )
    torch.testing.assert_close(net(x), y_cim, rtol=1e-5, atol=1e-5)


def test_convert_of_a_bare_layer_returns_a_cim_layer(gen):
    lin = nn.Linear(4, 2)
    out = convert(lin, ideal_config())
    assert isinstance(out, CIMLinear)
    x = torch.randn(3, 4, generator=gen)
    torch.testing.assert_close(out.eval()(x), F.linear(x, lin.weight, lin.bias))


def test_explicit_layer_lists_are_seeded_in_module_order():
    net = convert(Net(), CIMConfig(seed=10), layers=["head.1", "features.3"])
    assert [m.generator.initial_seed() for m in cim_layers(net)] == [10, 11]


def test_a_name_listed_twice_is_converted_once():
    net = convert(Net(), layers=["head.1", "head.1"])
    assert type(net.head[1]) is CIMLinear


# --- seeds and determinism ------------------------------------------------------------------------


def test_same_seed_gives_bit_identical_outputs_and_seed_redraws_reads(x):
    cfg = CIMConfig(seed=3)  # PCM, 8-bit converters
    a, b = convert(Net().eval(), cfg), convert(Net().eval(), cfg)
    drift_to(a, 60.0)
    drift_to(b, 60.0)
    assert torch.equal(a(x), b(x))
    assert seed(a, 5) is a
    assert [m.generator.initial_seed() for m in cim_layers(a)] == [5, 6, 7, 8]
    first = a(x)
    seed(a, 5)  # cached reads are dropped: the same draws again
    assert torch.equal(a(x), first)


def test_seed_makes_training_forwards_reproducible(gen):
    digital = nn.Sequential(nn.Linear(6, 5))
    a, b = (convert(copy.deepcopy(digital)).train() for _ in range(2))
    x = torch.randn(4, 6, generator=gen)
    a(x)  # a has trained one step (its noise table exists), b has not
    seed(a, 4)
    seed(b, 4)
    assert torch.equal(a(x), b(x))


def test_program_puts_every_layer_on_its_tiles_now(x):
    net = convert(Net().eval(), CIMConfig())
    assert all(not m.get_extra_state()["tiles"] for m in cim_layers(net))  # lazily programmed
    assert program(net) is net
    assert all("0.0.cells.g_us" in m.get_extra_state()["tiles"] for m in cim_layers(net))
    net(x)  # already programmed: the forward only reads
    assert [m.matrix.counters.program_ops for m in cim_layers(net)] == [1, 1, 1, 1]


# --- state_dict round trip ------------------------------------------------------------------------


def test_state_dict_round_trip_restores_the_devices_bit_for_bit(x):
    """PCM, 8-bit converters, several tiles per layer: the loaded model reads the saved devices
    (no re-programming) at the saved time and gives bit-identical outputs."""
    cfg = CIMConfig(max_rows=16, max_cols=8)
    a = convert(Net(seed=0), cfg).eval()
    drift_to(a, 3600.0)
    a(x)
    state = roundtrip(a.state_dict())
    b = convert(Net(seed=1), cfg).eval()  # different weights, never programmed
    b.load_state_dict(state)
    for la, lb in zip(cim_layers(a), cim_layers(b), strict=True):
        assert lb.t_s == 3600.0
        assert torch.equal(la.weight, lb.weight)
        sa, sb = la.matrix.state_tensors(), lb.matrix.state_tensors()
        assert {"0.0.cells.g_us", "0.0.cells.param.nu", "0.0.adc_range"} <= sa.keys()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), la
    assert cim_layers(a)[2].matrix.grid == (5, 2)  # 72 inputs / 16 rows, 10 outputs / 8 cols
    seed(a, 7)
    seed(b, 7)
    y = a(x)
    assert torch.equal(b(x), y)
    assert all(lb.matrix.counters.program_ops == 0 for lb in cim_layers(b))


def test_unprogrammed_model_round_trips(x):
    cfg = CIMConfig(max_rows=16, max_cols=8)
    a = convert(Net(seed=0), cfg).eval()  # never run in eval mode: no devices yet
    state = roundtrip(a.state_dict())
    b = convert(Net(seed=1), cfg).eval()
    b(x)  # b holds programmed devices, which the load must drop
    b.load_state_dict(state)
    seed(a, 2)
    seed(b, 2)
    assert torch.equal(a(x), b(x))
    for la, lb in zip(cim_layers(a), cim_layers(b), strict=True):
        sa, sb = la.matrix.state_tensors(), lb.matrix.state_tensors()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)  # write counts included: fresh cells
        assert lb.matrix.counters.program_ops == la.matrix.counters.program_ops


def test_state_saved_after_a_weight_update_is_not_stale(gen):
    def make():
        return convert(nn.Sequential(nn.Linear(6, 4)), ideal_config()).eval()

    a = make()
    x = torch.randn(5, 6, generator=gen)
    a(x)  # programs the tiles
    a.train()
    opt = torch.optim.SGD(a.parameters(), lr=0.5)
    a(x).square().sum().backward()
    opt.step()
    a.eval()
    b = make()
    b.load_state_dict(roundtrip(a.state_dict()))
    expected = F.linear(x, a[0].weight, a[0].bias)
    torch.testing.assert_close(a(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b(x), expected, rtol=1e-5, atol=1e-5)
