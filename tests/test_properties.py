"""Property-based tests of the public boundaries: configs, Tile / TiledMatrix MVMs, nn.convert.

The property everywhere: an input either works (a finite result of the right shape) or raises a
``ConfigError`` / ``ValueError`` / ``TypeError`` whose message names the offending argument.
Nothing returns NaN silently, nothing crashes with an unrelated exception (an IndexError, a
RuntimeError from torch internals, a ZeroDivisionError). Hypothesis draws random shapes, dtypes
(float16, bfloat16, float64, integers, bool), NaN / ±inf and empty tensors.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import memcim.devices as devices
from memcim import ConfigError
from memcim.bayes import BayesConfig
from memcim.crossbar import ConverterConfig, MappingConfig, Tile, TileConfig, TiledMatrix
from memcim.experiments import registry
from memcim.nn import CIMConfig, convert

# Few examples per property: the whole file must stay well under 30 s on two shared cores.
FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

ERRORS = (ConfigError, ValueError, TypeError)

DEVICE_TYPES = [getattr(devices, n) for n in devices.__all__]
DEVICE_TYPES = [
    c
    for c in DEVICE_TYPES
    if dataclasses.is_dataclass(c) and issubclass(c, devices.Device) and not inspect.isabstract(c)
]


def _names(message: str, name: str) -> bool:
    """Whether ``message`` names ``name`` as a word (``x`` in "x has shape", not in "expects")."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None


# --- configs: every numeric field gets NaN, ±inf, negatives, zero, huge and random values ------


def _numeric_fields(cls: type) -> list[str]:
    """Fields annotated int / float (optionally ``| None``), bools excluded."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        hint = hints.get(f.name)
        args = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
        if args & {int, float} and bool not in args:
            out.append(f.name)
    return out


def _experiment_configs() -> list[type]:
    return [registry.get(name).config_type for name in registry.names()]


CONFIG_TYPES = [
    TileConfig,
    MappingConfig,
    ConverterConfig,
    CIMConfig,
    BayesConfig,
    *DEVICE_TYPES,
    *_experiment_configs(),
]
CONFIG_FIELDS = [(cls, name) for cls in CONFIG_TYPES for name in _numeric_fields(cls)]
SPECIAL = [math.nan, math.inf, -math.inf, -1.0, -1, 0, 0.0, 0.5, 3, 1e-9]
# Accepted devices must also program and read finite values. Finite magnitudes far from the
# fitted defaults (an exponent of 1e9 in σ = a·g^b) overflow float32 without being invalid
# input, so device fields get random values within ±10× their default, or ±1e3 where the
# default is None, 0 or inf (and the specials).
DEVICE_SCALE = 10.0


def _check_device_works(device: devices.Device) -> None:
    """An accepted device programs and reads finite conductances across its window."""
    gen = torch.Generator().manual_seed(0)
    targets = torch.linspace(device.g_min_us, device.g_max_us, 5)
    state = device.program(targets, generator=gen)
    for t_s in (0.0, 3600.0):
        g = device.read(state, t_s=t_s, generator=gen)
        assert torch.isfinite(g).all(), (device, t_s, g)


def _check_field(cls: type, name: str, value: object) -> None:
    try:
        obj = cls(**{name: value})
    except ERRORS as err:
        assert _names(str(err), name), f"{cls.__name__}({name}={value!r}): {err}"
        return
    held = getattr(obj, name)
    assert not (isinstance(held, float) and math.isnan(held)), f"{cls.__name__} accepted NaN"
    if isinstance(obj, devices.Device):
        _check_device_works(obj)


@pytest.mark.parametrize(
    ("cls", "name"), CONFIG_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in CONFIG_FIELDS]
)
def test_config_field_special_values(cls, name):
    for value in SPECIAL:
        _check_field(cls, name, value)


@pytest.mark.parametrize(
    ("cls", "name"), CONFIG_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in CONFIG_FIELDS]
)
@settings(FAST, max_examples=10)
@given(data=st.data())
def test_config_field_random_values(cls, name, data):
    default = getattr(cls(), name)
    if issubclass(cls, devices.Device):
        numeric = isinstance(default, int | float) and 0 < abs(default) < math.inf
        bound = DEVICE_SCALE * abs(default) if numeric else 1e3  # None / 0 / inf defaults
        values = st.floats(-bound, bound) | st.integers(-int(bound), int(bound))
    else:
        values = st.floats() | st.integers(-(2**70), 2**70)
    _check_field(cls, name, data.draw(values | st.sampled_from(SPECIAL), label=name))


# --- Tile.mvm / TiledMatrix.mvm --------------------------------------------------------------

FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
ANY_DTYPES = [*FLOAT_DTYPES, torch.int32, torch.int64, torch.bool]


@st.composite
def tile_configs(draw) -> TileConfig:
    device = draw(st.sampled_from(DEVICE_TYPES))()
    bits = draw(st.sampled_from([None, 4, 8]))
    scheme = draw(st.sampled_from(["differential", "offset"]))
    weight_bits, slices = draw(st.sampled_from([(None, 1), (4, 1), (4, 2)]))
    mapping = MappingConfig(scheme=scheme, weight_bits=weight_bits, slices=slices)
    return TileConfig(
        device=device,
        mapping=mapping,
        dac=ConverterConfig(bits=draw(st.sampled_from([None, 4, 8]))),
        adc=ConverterConfig(bits=bits),
        read_noise=draw(st.sampled_from(["auto", "per_read", "per_time", "off"])),
    )


@st.composite
def tensors(draw, last: int, *, dtypes=ANY_DTYPES, max_lead: int = 2) -> torch.Tensor:
    """A tensor [..., last'] with last' = last (mostly) or last ± 1, any dtype, maybe empty,
    maybe with a NaN / ±inf, values up to ±1e6 (±inf in float16 beyond 65504)."""
    lead = draw(st.lists(st.integers(0, 3), max_size=max_lead))
    width = draw(st.sampled_from([last, last, last, last + 1, max(last - 1, 0)]))
    shape = (*lead, width)
    numel = math.prod(shape)
    values = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=numel, max_size=numel))
    x = torch.tensor(values, dtype=torch.float64).reshape(shape)
    if numel and draw(st.booleans()) and draw(st.booleans()):
        x.view(-1)[draw(st.integers(0, numel - 1))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf])
        )
    dtype = draw(st.sampled_from(dtypes))
    if dtype.is_floating_point:
        return x.to(dtype)
    return x.nan_to_num(0.0, 0.0, 0.0).clamp(-100, 100).to(dtype)


def _valid(x: torch.Tensor, width: int) -> bool:
    return (
        x.is_floating_point()
        and x.dim() >= 1
        and x.shape[-1] == width
        and bool(torch.isfinite(x).all())
    )


def _expect_mvm(matrix, x: torch.Tensor, rows: int, cols: int, t_s: float) -> None:
    gen = torch.Generator().manual_seed(1)
    time_ok = math.isfinite(t_s) and t_s >= 0
    if _valid(x, rows) and time_ok:
        y = matrix.mvm(x, t_s=t_s, generator=gen)
        assert y.shape == (*x.shape[:-1], cols), (tuple(x.shape), tuple(y.shape))
        assert torch.isfinite(y).all(), y
        return
    with pytest.raises(ERRORS) as info:
        matrix.mvm(x, t_s=t_s, generator=gen)
    # Either bad argument may be reported first (a TiledMatrix checks tile by tile).
    bad = [name for name, ok in (("x", _valid(x, rows)), ("t_s", time_ok)) if not ok]
    assert any(_names(str(info.value), name) for name in bad), (bad, str(info.value))


T_S = st.sampled_from([0.0, 0.0, 1.0, 3600.0, -1.0, math.nan, math.inf])


@settings(FAST, max_examples=40)
@given(
    config=tile_configs(),
    rows=st.integers(1, 6),
    cols=st.integers(1, 6),
    data=st.data(),
    t_s=T_S,
)
def test_tile_program_and_mvm(config, rows, cols, data, t_s):
    tile = Tile(rows, cols, config)
    weights = data.draw(tensors(cols, dtypes=ANY_DTYPES, max_lead=0), label="weights_rows")
    # weights [cols', rows'] from a [cols] draw turned around: shape errors on either side.
    weights = weights.reshape(-1, 1).expand(-1, rows) if weights.dim() == 1 else weights
    gen = torch.Generator().manual_seed(0)
    ok = weights.is_floating_point() and weights.shape == (cols, rows)
    ok = ok and bool(torch.isfinite(weights).all())
    if not ok:
        with pytest.raises(ERRORS) as info:
            tile.program(weights, generator=gen)
        assert _names(str(info.value), "weights"), str(info.value)
        return
    tile.program(weights, generator=gen)
    x = data.draw(tensors(rows), label="x")
    _expect_mvm(tile, x, rows, cols, t_s)


@settings(FAST, max_examples=25)
@given(
    config=tile_configs(),
    out_features=st.integers(1, 7),
    in_features=st.integers(1, 7),
    max_rows=st.integers(1, 4),
    max_cols=st.integers(1, 4),
    data=st.data(),
    t_s=T_S,
)
def test_tiled_matrix_mvm(config, out_features, in_features, max_rows, max_cols, data, t_s):
    matrix = TiledMatrix(out_features, in_features, config, max_rows=max_rows, max_cols=max_cols)
    weights = torch.randn(out_features, in_features, generator=torch.Generator().manual_seed(2))
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES), label="weights dtype")
    matrix.program(weights.to(dtype), generator=torch.Generator().manual_seed(0))
    x = data.draw(tensors(in_features), label="x")
    _expect_mvm(matrix, x, in_features, out_features, t_s)


def test_an_empty_batch_reads_nothing():
    """An empty batch returns an empty output and leaves the tile as it was: in particular its
    ADC range, calibrated on the first read, must not be fitted to no data (range 1)."""
    gen = torch.Generator().manual_seed(4)
    config = TileConfig(device=devices.IdealDevice(), adc=ConverterConfig(bits=8))
    w, x = 5 * torch.randn(2, 3, generator=gen), 3 * torch.rand(4, 3, generator=gen)
    expected = Tile(3, 2, config).program(w).mvm(x)
    tile = Tile(3, 2, config).program(w)
    assert tile.mvm(torch.empty(0, 3)).shape == (0, 2)
    assert tile.mvm(torch.empty(2, 0, 3)).shape == (2, 0, 2)
    assert tile.counters.mvms == 0 and tile.counters.adc_conversions == 0
    assert torch.equal(tile.mvm(x), expected)


# --- memcim.nn.convert -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_noise_tables():
    """One noise table per (device, read time) for the whole module.

    Tabulating a device's noise (4096 × 65 programmings) takes ~1 s and every converted layer
    builds its own on its first training forward; the property under test does not depend on
    the table's random draw, so the layers here share one to keep the file fast.
    """
    import memcim.nn.layers as layers

    original, cache = layers.ConductanceNoiseTable, {}

    def cached(device, t_s=0.0, **kwargs):
        if (device, t_s) not in cache:
            cache[device, t_s] = original(device, t_s, **kwargs)
        return cache[device, t_s]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layers, "ConductanceNoiseTable", cached)
        yield


@st.composite
def models(draw) -> tuple[nn.Module, tuple[int, ...]]:
    """A small MLP or CNN in a random float dtype, and the shape of one input sample."""
    torch.manual_seed(draw(st.integers(0, 2**16)))  # test-side model init only
    if draw(st.booleans()):
        d_in, d_hidden, d_out = (draw(st.integers(1, 6)) for _ in range(3))
        model = nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))
        sample = (d_in,)
    else:
        c_in, c_out, k = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        size = draw(st.integers(k, k + 3))
        model = nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=draw(st.integers(0, 1))))
        sample = (c_in, size, size)
    return model.to(draw(st.sampled_from(FLOAT_DTYPES))), sample


@settings(FAST, max_examples=30)
@given(
    spec=models(),
    config=tile_configs(),
    training=st.booleans(),
    batch=st.integers(0, 3),
    dtype=st.sampled_from(ANY_DTYPES),
    poison=st.sampled_from([None, None, math.nan, math.inf]),
)
def test_converted_model_forward(shared_noise_tables, spec, config, training, batch, dtype, poison):
    model, sample = spec
    model = convert(model, CIMConfig(tile=config, max_rows=4, max_cols=4))
    model.train(training)
    x = torch.rand(batch, *sample, generator=torch.Generator().manual_seed(3))
    if poison is not None and x.numel():
        x.view(-1)[0] = poison
    x = x.to(dtype)
    valid = x.is_floating_point() and bool(torch.isfinite(x).all())
    if not valid:
        with pytest.raises(ERRORS) as info:
            model(x)
        assert _names(str(info.value), "x"), str(info.value)
        return
    y = model(x)
    assert y.shape[0] == batch
    assert torch.isfinite(y).all(), y
