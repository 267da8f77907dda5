"""CIMLinear and CIMConv2d: closed forms with ideal parts, straight-through gradients, training
noise against the published PCM formulas, programming once, drift and shape errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memcim import ConfigError
from memcim._compile import compiler_available
from memcim.crossbar import ConverterConfig, MappingConfig, TileConfig
from memcim.devices import PCM, IdealDevice
from memcim.nn import CIMConfig, CIMConv2d, CIMLinear, drift_to, noise

IDEAL_IO = {"dac": ConverterConfig(bits=None), "adc": ConverterConfig(bits=None)}


def ideal_config(**kw) -> CIMConfig:
    """IdealDevice, ideal DAC and ADC, no clipping: the layer must be the digital one."""
    return CIMConfig(tile=TileConfig(device=IdealDevice(), **IDEAL_IO), clip_sigma=None, **kw)


# --- eval mode with ideal parts is the digital layer ----------------------------------------------


@pytest.mark.parametrize(("max_rows", "max_cols", "grid"), [(512, 512, (1, 1)), (7, 5, (4, 3))])
@pytest.mark.parametrize("bias", [True, False])
def test_eval_linear_with_ideal_parts_is_f_linear(max_rows, max_cols, grid, bias, gen):
    layer = CIMLinear(23, 11, bias=bias, config=ideal_config(max_rows=max_rows, max_cols=max_cols))
    layer.eval()
    x = torch.randn(6, 23, generator=gen)
    expected = F.linear(x, layer.weight, layer.bias)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    assert layer.matrix.grid == grid  # 23 inputs over 7-row tiles, 11 outputs over 5-col tiles
    # leading dimensions and a single vector
    x3 = torch.randn(2, 3, 23, generator=gen)
    torch.testing.assert_close(layer(x3), F.linear(x3, layer.weight, layer.bias), atol=1e-5, rtol=0)
    torch.testing.assert_close(layer(x[0]), expected[0], atol=1e-5, rtol=1e-5)


CONV_CASES = [
    # kernel, stride, padding, dilation
    ((3, 3), 1, 0, 1),
    ((3, 2), 2, 1, 1),
    ((2, 3), (2, 1), (1, 2), (2, 1)),
    ((1, 3), (1, 3), (0, 1), (1, 2)),
    (3, (3, 2), 2, 2),
]


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), CONV_CASES)
def test_eval_conv2d_with_ideal_parts_is_f_conv2d(kernel, stride, padding, dilation, gen):
    layer = CIMConv2d(3, 5, kernel, stride, padding, dilation, config=ideal_config()).eval()
    x = torch.randn(2, 3, 9, 11, generator=gen)
    expected = F.conv2d(x, layer.weight, layer.bias, stride, padding, dilation)
    y = layer(x)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_eval_conv2d_split_over_tiles_is_f_conv2d(gen):
    """27 = 3·3·3 patch rows over 10-row tiles, 7 output channels over 3-column tiles."""
    layer = CIMConv2d(3, 7, 3, padding=1, bias=False, config=ideal_config(max_rows=10, max_cols=3))
    layer.eval()
    x = torch.randn(2, 3, 6, 5, generator=gen)
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.weight, padding=1), rtol=1e-5, atol=1e-5)
    assert layer.matrix.grid == (3, 3)


# --- training mode: straight-through gradients ----------------------------------------------------


def check_same_forward_and_gradients(cim: nn.Module, ref: nn.Module, x: torch.Tensor, gen):
    with torch.no_grad():
        ref.weight.copy_(cim.weight)
        ref.bias.copy_(cim.bias)
    xc, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    y, y_ref = cim(xc), ref(xr)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    r = torch.randn(y.shape, generator=gen)
    (y * r).sum().backward()
    (y_ref * r).sum().backward()
    torch.testing.assert_close(cim.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cim.bias.grad, ref.bias.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xc.grad, xr.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("max_rows", "max_cols"), [(512, 512), (6, 4)])
def test_training_with_ideal_parts_has_the_digital_forward_and_gradients(max_rows, max_cols, gen):
    cfg = ideal_config(max_rows=max_rows, max_cols=max_cols, train_noise=True)
    cim = CIMLinear(17, 9, config=cfg).train()
    check_same_forward_and_gradients(cim, nn.Linear(17, 9), torch.randn(5, 17, generator=gen), gen)
    conv = CIMConv2d(2, 5, (3, 2), stride=(2, 1), padding=1, config=cfg).train()
    ref = nn.Conv2d(2, 5, (3, 2), stride=(2, 1), padding=1)
    check_same_forward_and_gradients(conv, ref, torch.randn(2, 2, 7, 6, generator=gen), gen)


def test_pcm_training_forward_is_fresh_noise_with_exact_straight_through_gradients(gen):
    """PCM noise, 8-bit DAC, ideal ADC: y = F.linear(x_q, W_noisy) + b with a fresh W_noisy per
    call. Exact straight-through properties, whatever the noise draw:

    * d(Σy)/dW[j, i] = Σ_b x_q[b, i] (the DAC-quantised input, x_q = s·round(127 x/s)/127 with
      s = max|x_b| per vector) for every output j;
    * d(Σy)/dx[b] = Σ_j W_noisy[j, :], the same for every b, and consistent with the forward:
      Σ_j (y[b, j] − b_j) = x_q[b] · d(Σy)/dx[b].
    """
    cfg = CIMConfig(tile=TileConfig(device=PCM(), adc=ConverterConfig(bits=None)))
    layer = CIMLinear(16, 8, config=cfg).train()
    x = torch.randn(5, 16, generator=gen)
    s = x.abs().amax(-1, keepdim=True)
    x_q = torch.round(x / s * 127) / 127 * s
    assert not torch.equal(x_q, x)  # the DAC does quantise
    outputs = []
    for _ in range(2):
        layer.zero_grad()
        xg = x.clone().requires_grad_()
        y = layer(xg)
        y.sum().backward()
        outputs.append(y.detach())
        torch.testing.assert_close(
            layer.weight.grad, x_q.sum(0).expand(8, 16), rtol=1e-6, atol=1e-6
        )
        torch.testing.assert_close(layer.bias.grad, torch.full((8,), 5.0))
        col_sums = xg.grad[0]
        # (x/s)·s: equal up to rounding
        torch.testing.assert_close(xg.grad, col_sums.expand(5, 16), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(
            (y - layer.bias).sum(1).detach(), x_q @ col_sums, rtol=1e-5, atol=1e-5
        )
    assert not torch.equal(outputs[0], outputs[1])  # fresh noise at every step


def _converted_straight_through(v: torch.Tensor, full_scale: torch.Tensor) -> torch.Tensor:
    """An 8-bit max-abs converter as autograd sees it: v plus the constant q − v."""
    q = torch.round(v.detach() * (full_scale.reciprocal() * 127)) * (full_scale / 127)
    return v + (q - v.detach())


def _tile_by_tile(layer: CIMLinear, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The training forward of ``layer`` (16 → 12 on 3 × 3 tiles of at most 7 rows and 5
    columns, PCM, 8-bit max-abs DACs and ADCs) written tile by tile with autograd: the noisy
    weights from the layer's generator as it stands, the converters' rounding as constants."""
    columns = []
    for c in (slice(0, 4), slice(4, 8), slice(8, 12)):
        partial = 0
        for rows in (slice(0, 6), slice(6, 11), slice(11, 16)):
            w_rc = w[c, rows]
            with torch.no_grad():
                noisy = layer._noisy_block(w_rc.detach(), w_rc.detach().abs().amax())
            x_r = x[:, rows]
            scale = x_r.detach().abs().amax(-1, keepdim=True)
            y = F.linear(_converted_straight_through(x_r / scale, torch.tensor(1.0)),
                         w_rc + (noisy - w_rc.detach()))  # fmt: skip
            partial = partial + _converted_straight_through(y, y.detach().abs().amax()) * scale
        columns.append(partial)
    return torch.cat(columns, dim=-1) + layer.bias.detach()


@pytest.fixture
def tiled_pcm(gen):
    """A 16 → 12 PCM layer in training on 3 × 3 tiles (8-bit DACs and ADCs), inputs, output
    weights for a loss, and the generator state its next forward draws from."""
    cfg = CIMConfig(tile=TileConfig(device=PCM()), max_rows=7, max_cols=5, seed=3)
    layer = CIMLinear(16, 12, config=cfg).train()
    x = torch.randn(6, 16, generator=gen, requires_grad=True)
    r = torch.randn(6, 12, generator=gen)
    with torch.no_grad():
        layer(x)  # tabulates the noise, from the same generator
    return layer, x, r, layer.generator.get_state()


def _leaf_copies(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.detach().clone().requires_grad_() for t in tensors]


def test_tiled_training_backward_is_the_tile_by_tile_straight_through_gradient(tiled_pcm):
    """The layer's backward (one product for all tiles) equals autograd through the forward
    written tile by tile, with the same noisy weights (the generator replayed): forward and
    gradients within float32 rounding (1e-5)."""
    layer, x, r, state = tiled_pcm
    layer.generator.set_state(state)
    (layer(x) * r).sum().backward()

    layer.generator.set_state(state)  # the reference draws the same noise, tile by tile
    x_ref, w_ref = _leaf_copies(x, layer.weight)
    y_ref = _tile_by_tile(layer, x_ref, w_ref)
    (y_ref * r).sum().backward()

    layer.generator.set_state(state)
    torch.testing.assert_close(layer(x).detach(), y_ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.weight.grad, w_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)


def _second_derivatives(y: torch.Tensor, r: torch.Tensor, wrt: list[torch.Tensor]) -> list:
    """∂/∂wrt of ‖∂L/∂wrt‖² for L = Σ y·r² (curved in y, so that second derivatives exist)."""
    grads = torch.autograd.grad((y.square() * r).sum(), wrt, create_graph=True)
    return list(torch.autograd.grad(sum(g.square().sum() for g in grads), wrt))


def test_tiled_training_second_derivatives_are_the_tile_by_tile_ones(tiled_pcm):
    """Differentiated twice (``create_graph=True``), the layer's backward keeps the dependence
    of its saved noisy weights and converted inputs on w and x (constant offsets), as autograd
    through the tile-by-tile forward does: both derivatives within 1e-4 (float32 rounding of
    two chained products). Saving the offsets' results without that dependence loses the
    cross terms (every entry off, by up to 5x here)."""
    layer, x, r, state = tiled_pcm
    layer.generator.set_state(state)
    got = _second_derivatives(layer(x), r, [layer.weight, x])
    layer.generator.set_state(state)
    x_ref, w_ref = _leaf_copies(x, layer.weight)
    expected = _second_derivatives(_tile_by_tile(layer, x_ref, w_ref), r, [w_ref, x_ref])
    for g, e in zip(got, expected, strict=True):
        assert float(e.abs().max()) > 0.1  # the cross terms are not negligible here
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


def test_training_second_derivatives_on_ideal_noise_free_tiles_are_nn_linear_ones(gen):
    """Ideal converters, no noise, no clipping, 3 × 3 tiles: the saved x̂ and W are x and w
    themselves, and derivatives of derivatives equal nn.Linear's within 1e-4 (float32 rounding
    of two chained products summed tile by tile; without the offsets' dependence they are off
    by up to 28 here)."""
    config = ideal_config(max_rows=7, max_cols=5, train_noise=False)
    layer = CIMLinear(16, 12, config=config).train()
    digital = nn.Linear(16, 12)
    with torch.no_grad():
        digital.weight.copy_(layer.weight)
        digital.bias.copy_(layer.bias)
    x = torch.randn(6, 16, generator=gen, requires_grad=True)
    r = torch.randn(6, 12, generator=gen)
    got = _second_derivatives(layer(x), r, [layer.weight, x])
    expected = _second_derivatives(digital(x), r, [digital.weight, x])
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


def test_torch_func_grad_through_a_training_layer_is_autograd_gradient(tiled_pcm):
    """``torch.func.grad`` (as MAML-style meta-learning takes it) through a layer in training
    equals ``backward`` from the same generator state, and a gradient of a gradient runs."""
    layer, x, r, state = tiled_pcm
    params = {name: p.detach() for name, p in layer.named_parameters()}

    def loss(p: dict, inputs: torch.Tensor) -> torch.Tensor:
        return (torch.func.functional_call(layer, p, (inputs,)).square() * r).sum()

    layer.generator.set_state(state)
    got = torch.func.grad(loss)(params, x.detach())
    layer.generator.set_state(state)
    (layer(x).square() * r).sum().backward()
    torch.testing.assert_close(got["weight"], layer.weight.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got["bias"], layer.bias.grad, rtol=1e-6, atol=1e-6)

    def grad_norm(p: dict) -> torch.Tensor:
        return sum(g.square().sum() for g in torch.func.grad(loss)(p, x.detach()).values())

    layer.generator.set_state(state)
    second = torch.func.grad(grad_norm)(params)
    layer.generator.set_state(state)
    expected = _second_derivatives(layer(x.detach()), r, [layer.weight, layer.bias])
    torch.testing.assert_close(second["weight"], expected[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("clip_sigma", [None, 2.5, 0.5])
def test_training_tile_scales_are_those_of_the_clipped_tiles(clip_sigma, gen):
    """The tiles' weight scales of a training forward (from one max and min per tile, then
    clamped where clipping applies) equal max |w| of each clipped tile, on a 3 × 2 grid; at
    0.5 σ most of the 192 Gaussian weights are clipped, at 2.5 σ a few."""
    cfg = CIMConfig(tile=TileConfig(device=PCM()), max_rows=7, max_cols=6, clip_sigma=clip_sigma)
    layer = CIMLinear(16, 12, config=cfg).train()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(12, 16, generator=gen))
    rows = [slice(0, 6), slice(6, 11), slice(11, 16)]
    blocks = [(c, r) for c in (slice(0, 6), slice(6, 12)) for r in rows]
    w, clipped, scales = layer._training_weights(blocks, scaled=True)
    assert torch.equal(w, layer.mapped_weight()) and clipped == layer.clipped_weights()
    assert clipped == 0 if clip_sigma is None else clipped > (50 if clip_sigma == 0.5 else 0)
    expected = [w.detach()[block].abs().amax() for block in blocks]
    assert all(torch.equal(s, e) for s, e in zip(scales, expected, strict=True))


@pytest.mark.skipif(not compiler_available(),
                    reason="torch.compile on CPU needs a C++ compiler")  # fmt: skip
def test_compiled_training_noise_gives_the_eager_forward_and_gradients(gen):
    """CIMConfig(compile=True) on PCM with 8-bit converters, two tiles: from the same seed, the
    training outputs and weight gradients of three steps equal the eager layer's within
    float32 rounding (1e-5; the steps' fresh noise moves outputs by ~1e-2, so a different draw
    would fail), and the eager path is the default."""
    assert CIMConfig().compile is False
    tile = TileConfig(device=PCM())
    layers = [CIMLinear(20, 6, config=CIMConfig(tile=tile, max_rows=12, compile=c)).train()
              for c in (False, True)]  # fmt: skip
    layers[1].load_state_dict(layers[0].state_dict())
    x = torch.randn(7, 20, generator=gen)
    calls = _compiled_noise_calls()
    outputs = []
    for _ in range(3):
        step = []
        for layer in layers:
            layer.zero_grad()
            y = layer(x)
            y.square().sum().backward()
            step.append((y.detach(), layer.weight.grad.clone()))
        (y0, g0), (y1, g1) = step
        torch.testing.assert_close(y1, y0, rtol=0, atol=1e-5)
        torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-5)
        outputs.append(y0)
    assert not torch.equal(outputs[0], outputs[1])  # fresh noise at every step
    assert _compiled_noise_calls() == calls + 6  # 3 steps x 2 tiles went the compiled way
    with pytest.raises(ConfigError, match="CIMConfig.compile"):
        CIMConfig(compile="yes")


def _compiled_noise_calls() -> int:
    info = noise._compiled_noisy_weights.cache_info()
    return info.hits + info.misses


@pytest.mark.parametrize(
    ("clip_sigma", "w_max"), [(1.0, None), (None, 0.3)], ids=["clip_sigma", "mapping_w_max"]
)
def test_weights_beyond_the_mappable_range_are_clipped_with_zero_gradient(clip_sigma, w_max, gen):
    tile = TileConfig(device=IdealDevice(), mapping=MappingConfig(w_max=w_max), **IDEAL_IO)
    layer = CIMLinear(10, 4, config=CIMConfig(tile=tile, clip_sigma=clip_sigma))
    with torch.no_grad():
        layer.weight.copy_(0.2 * torch.randn(4, 10, generator=gen))
        layer.weight[0, :3] = torch.tensor([1.5, -2.0, 0.9])
    w = layer.weight.detach().clone()
    limit = w_max if w_max is not None else clip_sigma * w.double().std().item()
    clipped = w.abs() > limit
    assert 3 <= int(clipped.sum()) < w.numel()
    expected_w = w.clamp(-limit, limit)
    # The layer's std is a float32 estimate: equal to float64's within float32 rounding.
    torch.testing.assert_close(layer.mapped_weight(), expected_w, rtol=1e-6, atol=0)

    x = torch.rand(6, 10, generator=gen)
    layer.train()
    y = layer(x)
    torch.testing.assert_close(y, F.linear(x, expected_w, layer.bias), rtol=1e-5, atol=1e-5)
    y.sum().backward()
    grad = layer.weight.grad
    assert torch.equal(grad[clipped], torch.zeros(int(clipped.sum())))
    torch.testing.assert_close(grad[~clipped], x.sum(0).expand(4, 10)[~clipped])
    layer.eval()
    torch.testing.assert_close(layer(x), F.linear(x, expected_w, layer.bias), rtol=1e-5, atol=1e-5)
    # The clipping is counted, in training forwards and at programming.
    n_clipped = int(clipped.sum())
    assert layer.training_counters.weights_clipped == n_clipped
    assert layer.training_counters.weights_seen == w.numel()
    assert layer.clipped_at_programming == n_clipped


# --- one meaning of a fixed ADC full scale in training and inference ------------------------------


@pytest.mark.parametrize("mapping", [MappingConfig(), MappingConfig(scheme="offset",
                                                                    devices_per_weight=2)],
                         ids=["differential", "offset_x2"])  # fmt: skip
def test_a_fixed_adc_full_scale_saturates_the_same_fraction_in_training_and_inference(mapping):
    # Ideal devices and no training noise: both modes see the same weights, so the only
    # difference left is where the full scale is applied (µA per volt in the tile, weight units
    # in training). Full scales from "most conversions saturate" to "a few do".
    x = torch.rand(64, 96, generator=torch.Generator().manual_seed(1))
    for full_scale in (1.0, 5.0, 20.0, 60.0):
        adc = ConverterConfig(bits=8, mode="fixed", full_scale=full_scale)
        tile = TileConfig(device=IdealDevice(), mapping=mapping, adc=adc, read_noise="off")
        layer = CIMLinear(96, 8, bias=False, config=CIMConfig(tile=tile, train_noise=False))
        layer.eval()
        layer(x)
        inference = layer.matrix.counters
        layer.train()
        layer(x)
        training = layer.training_counters
        assert training.adc_conversions == inference.adc_conversions == 64 * 8
        # Outputs within a rounding of the full scale can fall either side in the two float
        # paths; 1 % of 512 conversions is 5 of them.
        frac_inf = inference.adc_clipped / inference.adc_conversions
        frac_train = training.adc_clipped / training.adc_conversions
        assert abs(frac_inf - frac_train) <= 0.01, (full_scale, frac_inf, frac_train)


# --- training noise has the device's statistics ---------------------------------------------------

G_MAX, T0, T_READ = 25.0, 20.0, 250e-9
Z = torch.linspace(-8.0, 8.0, 4001, dtype=torch.float64)
PDF = torch.exp(-0.5 * Z**2) / math.sqrt(2 * math.pi)


def published_read_moments(g_us: float, t_s: float) -> tuple[float, float]:
    """(mean, variance) of one PCM read at t_s (drift off) of a cell programmed to g_us (µS).

    Published model (REFERENCES.md, PCM): g_p = max(g + σ_prog(ĝ) z, 0) with
    σ_prog(ĝ) = max(−1.1731 ĝ² + 1.9650 ĝ + 0.2635, 0); the read adds zero-mean noise of std
    σ_read = g_p · Q_s(ĝ_p) · sqrt(ln((t + t0 + t_read)/(2 t_read))),
    Q_s = min(0.0088 / ĝ_p^0.65, 0.2). So Var = Var(g_p) + E[σ_read(g_p)²], by quadrature over
    z. Away from 0 µS this is σ_prog² + σ_read² (the quadrature only adds the clip at 0 µS,
    which matters for the device at g_min = 0 of every differential pair).
    """
    g_hat = g_us / G_MAX
    sp = max(-1.1731 * g_hat**2 + 1.9650 * g_hat + 0.2635, 0.0)
    gp = (g_us + sp * Z).clamp_min(0.0)
    qs = (0.0088 / (gp / G_MAX).clamp(1e-3, 1.0) ** 0.65).clamp_max(0.2)
    sr = gp * qs * math.sqrt(math.log((t_s + T0 + T_READ) / (2 * T_READ)))

    def expect(v):
        return torch.trapezoid(v * PDF, Z).item()

    mean = expect(gp)
    return mean, expect(gp**2) - mean**2 + expect(sr**2)


@pytest.mark.parametrize(
    ("device", "t_s", "weight_bits"),
    [
        (PCM(), 0.0, None),
        (PCM(g_min_us=2.0, drift_scale=0.0), 1e7, None),
        (PCM(), 0.0, 8),
    ],
    ids=["pcm_t0", "pcm_gmin2_nodrift_1e7s", "pcm_t0_8bit_weights"],
)
def test_training_noise_has_the_published_pcm_statistics(device, t_s, weight_bits):
    """The weights a training forward uses: noisy − w has, per weight, the mean and std of the
    differential pair G⁺ − G⁻ in weight units, (w_max / span)·(δG⁺ − δG⁻).

    With w_max = 1 and w̃ ∈ {1, −1/2, 1/4, 0} every target is a grid point of the noise table
    (span · k/64 above g_min), so no interpolation enters. With 8-bit weights (the per-device
    path rather than the weight-domain table) the targets are |w̃| rounded to k/255, and the
    mean also carries that rounding. Read out exactly with one-hot inputs (ideal
    converters): y[i, j] = W_noisy[j, i].

    Standard errors (relative to σ): the table's std at each grid point comes from 4096 draws,
    1/√(2·4096) = 1.1 %; our n = 20 000 draws add 1/√(2n) = 0.5 %. Tolerance 5 SE:
    5·sqrt(1.1² + 0.5²) % ≈ 6 % of σ for the std, and 5 σ·sqrt(1/4096 + 1/n) for the mean. With
    g_min = 0 the device at 0 µS is a rectified Gaussian (kurtosis 5.4 instead of 3), whose
    sample std has a √((κ−1)/2) = 1.49× larger SE: 9 % there. Omitting read noise (−25 % at
    ĝ = 1), one device of the pair (−29 % at w = 0) or train_t_s (−13 % at 1e7 s) exceeds it.
    """
    n = 20_000
    mags = [1.0, -0.5, 0.25, 0.0]
    cfg = CIMConfig(
        tile=TileConfig(device=device, mapping=MappingConfig(weight_bits=weight_bits), **IDEAL_IO),
        clip_sigma=None,
        train_t_s=t_s,
        max_cols=4096,
        seed=3,
    )
    layer = CIMLinear(4, n, bias=False, config=cfg).train()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(mags).expand(n, 4))
        noisy = layer(torch.eye(4)).T.double()  # [n, 4]
    span = device.g_max_us - device.g_min_us
    to_weight = 1.0 / span  # w_max = 1 (every tile holds a weight of magnitude 1)
    for i, w in enumerate(mags):
        w_q = w if weight_bits is None else round(w * 255) / 255
        g_on = device.g_min_us + span * abs(w_q)
        m_on, v_on = published_read_moments(g_on, t_s)
        m_off, v_off = published_read_moments(device.g_min_us, t_s)
        sigma = math.sqrt(v_on + v_off) * to_weight
        shift = ((m_on - g_on) - (m_off - device.g_min_us)) * to_weight * math.copysign(1.0, w)
        shift += w_q - w
        err = noisy[:, i] - w
        kurtosis_factor = 1.49 if device.g_min_us == 0 else 1.0
        tol_std = 5 * kurtosis_factor * sigma * math.sqrt(1 / (2 * 4096) + 1 / (2 * n))
        assert abs(err.std().item() - sigma) < tol_std, (w, err.std().item(), sigma)
        assert abs(err.mean().item() - shift) < 5 * sigma * math.sqrt(1 / 4096 + 1 / n), w


# --- drift: inference time and consistency of training at train_t_s -------------------------------


def test_drift_to_moves_pcm_outputs_by_the_published_power_law(gen):
    """Drift only (no programming or read noise, no compensation), positive weights and inputs:
    y(t) = Σ_k c_k r^(−ν_k) with r = (t + t0)/t0, c_k = x_i w_ji and per-device ν_k ~
    |N(μ_ν(ĝ_k), σ_ν(ĝ_k))| (published fit; the G⁻ devices sit at 0 µS and stay there). So
    Σy(t)/Σy(0) has mean Σ c_k E[r^−ν_k] / Σ c_k and SE sqrt(Σ c_k² Var[r^−ν_k]) / Σ c_k, with
    the moments by quadrature over ν; 5 SE."""
    dev = PCM(prog_noise_scale=0.0, read_noise_scale=0.0)
    tile = TileConfig(device=dev, drift_compensation=False, **IDEAL_IO)
    cfg = CIMConfig(tile=tile, clip_sigma=None)
    model = nn.Sequential(CIMLinear(32, 16, bias=False, config=cfg)).eval()
    w = torch.rand(16, 32, generator=gen)
    with torch.no_grad():
        model[0].weight.copy_(w)
    x = torch.rand(8, 32, generator=gen)
    y0 = model(x)
    torch.testing.assert_close(y0, F.linear(x, w), rtol=1e-4, atol=1e-5)
    day = 86_400.0
    assert drift_to(model, day) is model
    assert model[0].t_s == day
    ratio = (model(x).sum() / y0.sum()).item()

    g_hat = (w / w.max()).double().clamp_min(1e-3).flatten()  # [k]
    mu = (-0.0155 * g_hat.log() + 0.0244).clamp(0.049, 0.1)
    sigma = (-0.0125 * g_hat.log() - 0.0059).clamp(0.008, 0.045)
    nu = (mu[:, None] + sigma[:, None] * Z).abs()  # [k, nodes]
    d = torch.exp(-nu * math.log((day + T0) / T0))
    e1 = torch.trapezoid(d * PDF, Z, dim=-1)
    var = torch.trapezoid(d.square() * PDF, Z, dim=-1) - e1.square()
    c = (x.sum(0).double() * w.double()).flatten()
    expected = (c * e1).sum() / c.sum()
    se = (c.square() * var).sum().sqrt() / c.sum()
    assert abs(ratio - expected.item()) < 5 * se.item(), (ratio, expected.item(), se.item())
    drift_to(model, 0.0)
    torch.testing.assert_close(model(x), y0)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_drift_to_rejects_bad_times(bad):
    model = nn.Sequential(CIMLinear(4, 2))
    with pytest.raises(ConfigError, match="t_s"):
        drift_to(model, bad)
    assert model[0].t_s == 0.0


def test_training_at_train_t_s_sees_the_drift_compensated_weights_of_inference(gen):
    """Drift only, compensation on (the default): the mean output of a training forward at
    train_t_s must match that of inference at the same time. Inference restores the mean to
    within ~1 % (the ν spread a global factor cannot fix); 3 % tolerance."""
    day = 86_400.0
    dev = PCM(prog_noise_scale=0.0, read_noise_scale=0.0)
    cfg = CIMConfig(tile=TileConfig(device=dev, **IDEAL_IO), train_t_s=day, clip_sigma=None)
    layer = CIMLinear(64, 32, bias=False, config=cfg)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(32, 64, generator=gen))
    x = torch.rand(64, 64, generator=gen)
    digital = F.linear(x, layer.weight).sum().item()
    with torch.no_grad():
        train_ratio = layer.train()(x).sum().item() / digital
        layer.eval().t_s = day
        eval_ratio = layer(x).sum().item() / digital
    assert abs(eval_ratio - 1) < 0.03
    assert abs(train_ratio - eval_ratio) < 0.03


# --- inference programs once ----------------------------------------------------------------------


def test_inference_programs_once_and_reprograms_after_an_optimizer_step(gen):
    layer = CIMLinear(12, 6, config=CIMConfig(max_rows=8)).eval()  # PCM, 8-bit DAC/ADC, 2 tiles
    x = torch.rand(4, 12, generator=gen)
    y = layer(x)
    for _ in range(3):  # same weights, same read time: no re-programming, the same read
        assert torch.equal(layer(x), y)
    matrix = layer.matrix  # the same object is re-programmed; its counters don't program
    assert matrix.counters.program_ops == 2  # one per tile
    assert matrix.counters.mvms == 4 * 4 * 2

    layer.train()
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).square().sum().backward()
    opt.step()
    assert matrix.counters.program_ops == 2  # neither training forwards nor the step program
    layer.eval()
    y_new = layer(x)
    assert layer.matrix is matrix
    assert matrix.counters.program_ops == 4  # re-programmed once, at the next eval forward
    assert torch.equal(layer(x), y_new)
    assert matrix.counters.program_ops == 4


def test_reprogrammed_tiles_hold_the_updated_weights(gen):
    layer = CIMLinear(12, 6, config=ideal_config()).eval()
    x = torch.rand(4, 12, generator=gen)
    layer(x)
    layer.train()
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).square().sum().backward()
    opt.step()
    layer.eval()
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=0)


def test_weights_changed_through_data_are_reprogrammed(gen):
    layer = CIMLinear(12, 6, config=ideal_config()).eval()
    x = torch.rand(4, 12, generator=gen)
    layer(x)
    layer.weight.data.mul_(2.0)  # e.g. a hand-written update or weight clipping
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=0)


# --- shape errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_shape_errors_are_clear(mode):
    lin = CIMLinear(8, 3)
    conv = CIMConv2d(3, 4, (3, 5))
    lin.train(mode == "train")
    conv.train(mode == "train")
    with pytest.raises(ConfigError, match=r"CIMLinear expects inputs \[\.\.\., 8\], got \(2, 7\)"):
        lin(torch.rand(2, 7))
    with pytest.raises(ConfigError, match=r"\[N, 3, H, W\], got \(2, 2, 8, 8\)"):
        conv(torch.rand(2, 2, 8, 8))
    with pytest.raises(ConfigError, match=r"\[N, 3, H, W\], got \(3, 8, 8\)"):
        conv(torch.rand(3, 8, 8))
    with pytest.raises(ConfigError, match=r"input 8x4 is smaller than the kernel 3x5"):
        conv(torch.rand(1, 3, 8, 4))


@pytest.mark.parametrize(
    "make",
    [
        lambda: CIMLinear(0, 3),
        lambda: CIMConv2d(3, 4, 0),
        lambda: CIMConv2d(3, 4, 3, stride=0),
        lambda: CIMConv2d(3, 4, 3, padding=-1),
    ],
    ids=["in_features_0", "kernel_0", "stride_0", "padding_negative"],
)
def test_constructors_reject_bad_sizes_with_config_error(make):
    with pytest.raises(ConfigError):
        make()


def test_cim_config_validation():
    with pytest.raises(ConfigError, match="CIMConfig.max_rows"):
        CIMConfig(max_rows=0)
    with pytest.raises(ConfigError, match="CIMConfig.train_t_s"):
        CIMConfig(train_t_s=-1.0)
    with pytest.raises(ConfigError, match="CIMConfig.clip_sigma"):
        CIMConfig(clip_sigma=0.0)
