"""Linear and convolution layers whose weights live on simulated crossbar tiles.

Two modes, switched by ``module.train()`` / ``module.eval()``:

* **Training (hardware-aware).** Each forward maps the float weights onto conductances, draws
  the device's programming and read noise for every cell (a Gaussian with the device's own
  moments, see :mod:`memcim.nn.noise`), decodes the noisy weights, and passes inputs and partial
  sums through the DAC and ADC quantisers — tile by tile, as the hardware would. Gradients flow
  to the ideal float weights with straight-through estimators (the noise and the rounding are
  treated as constants). Weights beyond the mappable range are clipped; the clipped weights and
  the conversions that saturated are counted in ``layer.training_counters``
  (:class:`TrainingCounters`), and a fixed ADC full scale means what it means on the tiles
  (:func:`adc_full_scale`).
* **Inference.** The weights are programmed once onto a :class:`~memcim.crossbar.TiledMatrix`
  (re-programmed automatically if they change) and every forward reads the devices at the
  layer's inference time ``t_s`` (see :func:`memcim.nn.drift_to`); the tiles count their
  conversions in ``layer.matrix.counters`` and ``layer.clipped_at_programming`` the weights
  clipped to the mappable range when they were programmed.

Biases stay digital (added after the ADC in float).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcim._errors import ConfigError, is_int, require
from memcim._modules import flat_config, follow, generator_on, moved, restore_generator, under
from memcim._scratch import scratch
from memcim.crossbar import ConverterConfig, TileConfig, TiledMatrix
from memcim.crossbar.converters import quantize, range_of_extremes, rounded_codes
from memcim.crossbar.tile import Counters
from memcim.crossbar.tiled import split_sizes
from memcim.devices.base import all_finite, check_time
from memcim.nn.noise import ConductanceNoiseTable, WeightNoiseTable


@dataclass(frozen=True, kw_only=True)
class CIMConfig:
    """How layers are put on crossbars.

    Attributes:
        tile: technology and periphery of every tile (device, mapping, DAC/ADC, read noise,
            drift compensation — on by default).
        max_rows, max_cols: largest tile (word lines × output columns).
        train_noise: inject device noise in training mode (hardware-aware training).
        train_t_s: read time whose noise statistics training injects (s); 0 = programming and
            read noise right after programming.
        clip_sigma: clip weights to ± clip_sigma · std(W) per layer (the mappable range) when
            ``tile.mapping.w_max`` is not set (not for a layer of one weight, whose std is
            undefined); ``None`` disables clipping.
        seed: seed of the layers' private generators (layer i gets ``seed + i``).
        compile: run the training forward's per-weight noise (the table interpolation and
            the noisy weights; the random numbers stay eager, so they are the same) through
            ``torch.compile``: about 1.1x faster per tile on one CPU thread and 1.3x on two
            (392 × 256 weights). The noisy weights equal the eager path's within float32
            rounding, so a converter code may, rarely, round the other way. Needs a C++
            compiler; the first training forward of each tile shape compiles, a few seconds.
            Analog differential mappings with drift-free training noise only (the default
            ``train_t_s = 0``); other settings run eagerly. An execution setting: checkpoints
            neither record nor compare it.
    """

    tile: TileConfig = field(default_factory=TileConfig)
    max_rows: int = 512
    max_cols: int = 512
    train_noise: bool = True
    train_t_s: float = 0.0
    clip_sigma: float | None = 2.5
    seed: int = 0
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_cols"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"CIMConfig.{name}", value, ">= 1")
        check_time(self.train_t_s, "CIMConfig.train_t_s")
        if self.clip_sigma is not None:
            require(self.clip_sigma > 0, "CIMConfig.clip_sigma", self.clip_sigma, "> 0 or None")
        require(is_int(self.seed) and 0 <= self.seed < 2**63, "CIMConfig.seed", self.seed,
                "an int in [0, 2**63)")  # fmt: skip
        require(isinstance(self.compile, bool), "CIMConfig.compile", self.compile, "a bool")


@dataclass
class TrainingCounters(Counters):
    """What the hardware-aware training forwards of one layer converted and clipped.

    The training-mode counterpart of :class:`~memcim.crossbar.TileCounters`, so that the
    saturation a converter setting causes can be compared between training and inference.

    Attributes:
        forwards: training forwards run.
        dac_conversions, dac_clipped: input conversions, and those that saturated.
        adc_conversions, adc_clipped: output conversions (one per output, per tile row
            block), and those that saturated.
        weights_seen: weights mapped (one per weight per forward).
        weights_clipped: weights beyond the mappable range (``CIMConfig.clip_sigma`` or
            ``MappingConfig.w_max``) that were clipped to it.
    """

    forwards: int = 0
    dac_conversions: int = 0
    dac_clipped: int = 0
    adc_conversions: int = 0
    adc_clipped: int = 0
    weights_seen: int = 0
    weights_clipped: int = 0


def _same_values(a: Tensor, b: Tensor) -> bool:
    """``torch.equal(a, b)``, faster on CPU, where this runs on every forward to notice
    weights changed in place (through ``.data`` too, which no version counter sees).

    Dense CPU tensors of one float dtype are compared as bytes (``memcmp``, ~6x faster than
    ``torch.equal``): the same answer except that 0.0 against -0.0 counts as a change (the
    tiles are then re-programmed with equal values) and NaN against the same NaN as none.
    """
    if (
        a.dtype == b.dtype
        and a.dtype in (torch.float32, torch.float64)
        and a.shape == b.shape
        and a.device.type == "cpu"
        and b.device.type == "cpu"
    ):
        if _memcmp is not None and a.is_contiguous() and b.is_contiguous():
            return _memcmp(a.data_ptr(), b.data_ptr(), a.numel() * a.element_size()) == 0
        return bool(np.array_equal(a.detach().numpy(), b.detach().numpy()))
    return a.device == b.device and torch.equal(a, b)


def _libc_memcmp():
    """The C library's ``memcmp`` through ctypes, or ``None`` where it cannot be loaded."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        fn = libc.memcmp
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return fn


_memcmp = _libc_memcmp()


def _std(w: Tensor) -> Tensor:
    """``w.std()`` (0-d) in two passes, the mean and then one dot product of the deviations:
    about 3x faster on CPU than ``Tensor.std`` (Welford), which the clipping limit computes at
    every training forward; equal to it within float32 rounding (relative ~1e-6)."""
    flat = w.reshape(-1)  # two or more weights (weight_limit returns None for one)
    dev = torch.sub(flat, flat.mean(), out=scratch("std.deviations", flat))
    return torch.dot(dev, dev).div_(flat.numel() - 1).sqrt_()


def _converted(x: Tensor, full_scale: Tensor | float, converter: ConverterConfig, *,
               saturates: bool = True) -> tuple[Tensor, int]:  # fmt: skip
    """``x`` converted to the converter's codes and back to its units (in place: ``x`` is a
    temporary of the caller's), and the number of values that saturated.

    ``saturates=False``: ``full_scale`` is the max-abs range of ``x`` itself (or ``x`` is
    already divided by it), so no code can exceed the largest one and the saturation count
    (two reductions) is skipped.
    """
    if saturates:
        codes, clipped = quantize(x, full_scale, converter.max_code, inplace=True)
    else:
        codes, clipped = rounded_codes(x, full_scale, converter.max_code, inplace=True), 0
    return codes.mul_(full_scale / converter.max_code), clipped


def adc_full_scale(tile: TileConfig, w_max: Tensor) -> Tensor | None:
    """A fixed ADC full scale in the units of the training forward, or ``None`` if not fixed.

    ``ConverterConfig.full_scale`` of an ADC is µA of bit-line current per volt of full-scale
    row drive (µS), as :class:`~memcim.crossbar.Tile` applies it. A training forward computes
    y = x̃ · w with the DAC-normalised input x̃ (±1 = full-scale drive), and one slice's current
    is I = v_read · x̃ · w / w_max · unit · N (N devices per weight), so the same full scale in
    weight units is ``full_scale · w_max / (unit · N)``: a setting saturates the same
    conversions in both modes. With bit slicing the recombined output Σ_s k_s I_s spans
    Σ_s k_s of it, and training quantises that sum over the summed range (an approximation:
    inference quantises each slice over its own).
    """
    adc, mapping = tile.adc, tile.mapping
    if adc.ideal or adc.mode != "fixed":
        return None
    dev = tile.device
    unit = mapping.unit_us(dev.g_min_us, dev.g_max_us) * mapping.devices_per_weight
    return float(adc.full_scale) * float(mapping.slice_weights("cpu").sum()) * w_max / unit


def _clipped_to(w: Tensor, bound: float, top: Tensor, bottom: Tensor) -> tuple[Tensor, int]:
    """``w`` clipped to ±``bound`` and the number of weights beyond it, given its largest
    (``top``) and smallest (``bottom``) value."""
    if bool(top <= bound) and bool(bottom >= -bound):
        # Nothing to clip (the common case): clamping would change neither the values nor the
        # gradient, so skip it and the count.
        return w, 0
    clipped = int(torch.count_nonzero(w.detach().abs() > bound))
    # A scalar bound clamps ~6x faster than a 0-d tensor, with the same values.
    return w.clamp(-bound, bound), clipped


def _blocks(total: int, limit: int) -> list[slice]:
    """The index ranges of the tile blocks along one dimension (see ``split_sizes``)."""
    ends = list(itertools.accumulate(split_sizes(total, limit)))
    return [slice(start, end) for start, end in zip([0, *ends[:-1]], ends, strict=True)]


class _StraightThrough(torch.autograd.Function):
    """A crossbar layer's training forward (:meth:`CIMLayer._hwa_forward`) with straight-through
    gradients.

    The noise and the converters' rounding and saturation are constants to the backward, so
    the tiles' outputs y = Σ_tiles x̂ Wᵀ (x̂: the converted inputs in their own units, W: the
    noisy weights) give ∂L/∂x = g W and ∂L/∂w = gᵀ x̂, one product each over all the tiles:
    the gradients of differentiating the forward tile by tile, up to float rounding, without
    assembling the tiles' pieces.

    Higher derivatives (``create_graph=True``, ``torch.func.grad`` of a gradient) see W and x̂
    as w and x plus constant offsets, as the straight-through forward defines them.
    """

    @staticmethod
    def forward(x: Tensor, w: Tensor, layer: CIMLayer, *blocks_and_scales
                ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        y, x_hat, w_noisy = layer._hwa_forward(x, w, *blocks_and_scales)
        # Views, since behind ideal DACs or without noise they are the inputs themselves,
        # which an autograd.Function may not return and save as they are.
        return y, x_hat.view_as(x_hat), w_noisy.view_as(w_noisy)

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: tuple[Tensor, Tensor, Tensor]) -> None:
        _, x_hat, w_noisy = output
        ctx.mark_non_differentiable(x_hat, w_noisy)
        ctx.set_materialize_grads(False)  # no zero gradients made for those two
        ctx.save_for_backward(*inputs[:2], x_hat, w_noisy)

    @staticmethod
    def backward(ctx, grad: Tensor, *_: Tensor) -> tuple[Tensor | None, ...]:
        x, w, x_hat, w_noisy = ctx.saved_tensors
        if torch.is_grad_enabled():  # differentiated again: keep the offsets' dependence
            x_hat, w_noisy = _plus_zero_of(x_hat, x), _plus_zero_of(w_noisy, w)
        grad_x = grad @ w_noisy if ctx.needs_input_grad[0] else None
        grad_w = grad.T @ x_hat if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None, None, None, None


def _plus_zero_of(value: Tensor, source: Tensor) -> Tensor:
    """``value`` (the same numbers) with the derivative of ``source``: value + (s − s)."""
    return value.detach() + (source - source.detach())


class CIMLayer(nn.Module):
    """Base of the crossbar layers: weights [out, in_flat] on a TiledMatrix, train/eval behaviour.

    ``isinstance(m, CIMLayer)`` finds every crossbar layer (:func:`memcim.nn.cim_layers`).
    """

    weight: nn.Parameter
    bias: nn.Parameter | None

    def _setup(self, out_features: int, in_flat: int, config: CIMConfig | None) -> None:
        self.cim_config = config if config is not None else CIMConfig()
        self.out_features_flat, self.in_flat = out_features, in_flat
        self.t_s = 0.0
        self.generator = generator_on(self.weight.device, self.cim_config.seed)
        self._matrix: TiledMatrix | None = None
        self._programmed_weight: Tensor | None = None  # the float weights the tiles hold
        self._noise_table: ConductanceNoiseTable | None = None
        self._weight_table: WeightNoiseTable | None = None
        self._weight_table_source: ConductanceNoiseTable | None = None
        #: Conversions and clipping of the training forwards (inference: the tiles' counters).
        self.training_counters = TrainingCounters()
        #: Weights clipped to the mappable range at the latest :meth:`program`.
        self.clipped_at_programming = 0

    # --- weights ------------------------------------------------------------------------------
    def flat_weight(self) -> Tensor:
        """The weight as the 2-D matrix the tiles hold, [outputs, inputs]."""
        return self.weight.reshape(self.out_features_flat, self.in_flat)

    def weight_limit(self) -> Tensor | None:
        """Largest mappable |weight| (a 0-d tensor), or ``None`` when nothing is clipped."""
        w_max = self.cim_config.tile.mapping.w_max
        if w_max is not None:
            return self.weight.new_tensor(w_max)
        if self.cim_config.clip_sigma is None or self.weight.numel() < 2:  # std(one weight): NaN
            return None
        return self.cim_config.clip_sigma * _std(self.weight.detach())

    def mapped_weight(self) -> Tensor:
        """The weights as the hardware holds them: clipped to the mappable range, [out, in]."""
        return self._mapped_and_clipped()[0]

    def clipped_weights(self) -> int:
        """How many of the present weights lie beyond the mappable range (and are clipped)."""
        return self._mapped_and_clipped()[1]

    def _mapped_and_clipped(self) -> tuple[Tensor, int]:
        """:meth:`mapped_weight` and :meth:`clipped_weights` from one limit (one std)."""
        w = self.flat_weight()
        limit = self.weight_limit()
        if limit is None:
            return w, 0
        values = w.detach()
        return _clipped_to(w, float(limit), values.amax(), values.amin())

    def _training_weights(self, blocks: list[tuple[slice, slice]], scaled: bool,
                          ) -> tuple[Tensor, int, list[Tensor] | None]:  # fmt: skip
        """The weights a training forward maps (clipped as :meth:`mapped_weight`), how many
        were clipped, and with ``scaled`` each tile's weight scale w_max (0-d, in ``blocks``
        order, as :meth:`Tile.program` takes it: the mapping's w_max if set, else max |w| of
        the clipped tile). One max and one min per tile serve both the clipping check and the
        scales."""
        w_max = self.cim_config.tile.mapping.w_max  # MappingConfig requires a set one > 0
        if not scaled or w_max is not None:
            w, clipped = self._mapped_and_clipped()
            return w, clipped, [w.new_tensor(w_max)] * len(blocks) if scaled else None
        w = self.flat_weight()
        values = w.detach()
        tops = [values[block].amax() for block in blocks]
        bottoms = [values[block].amin() for block in blocks]
        limit, clipped = self.weight_limit(), 0
        if limit is not None:
            bound = float(limit)
            top = tops[0] if len(blocks) == 1 else torch.stack(tops).amax()
            bottom = bottoms[0] if len(blocks) == 1 else torch.stack(bottoms).amin()
            w, clipped = _clipped_to(w, bound, top, bottom)
            if clipped:  # the tiles' extremes as clamping leaves them
                tops = [t.clamp(max=bound) for t in tops]
                bottoms = [b.clamp(min=-bound) for b in bottoms]
        return w, clipped, [range_of_extremes(t, b) for t, b in zip(tops, bottoms, strict=True)]

    def _apply(self, fn, recurse: bool = True):
        """``.to(device)``, ``.cuda()``, ``.double()`` …: the programmed tiles, their cached
        reads and the copy of the weights they hold follow the parameters. On another device the
        layer draws from a new generator there, seeded with the present generator's seed."""
        before = self.weight.device
        super()._apply(fn, recurse)
        if self._programmed_weight is not None:
            self._programmed_weight = fn(self._programmed_weight)
        after = self.weight.device
        if after != before:
            self.generator = follow(self.generator, after)
            self._noise_table = self._weight_table = self._weight_table_source = None
            if self._matrix is not None:
                self._matrix.to(after)
        return self

    # --- inference ----------------------------------------------------------------------------
    def reseed(self, value: int) -> None:
        """Re-seed the generator and drop everything drawn from the old one that is reused
        (a cached read's noise realisation, the training-noise tables)."""
        self.generator.manual_seed(value)
        self._noise_table = self._weight_table = self._weight_table_source = None
        if self._matrix is not None:
            self._matrix.reset_read_cache()

    def tiles_current(self) -> bool:
        """True when the tiles hold the present weights (changes via ``.data`` included)."""
        return (
            self._matrix is not None
            and self._matrix.programmed
            and self._programmed_weight is not None
            and _same_values(self._programmed_weight, self.weight)
        )

    @property
    def matrix(self) -> TiledMatrix:
        """The tiles, programmed with the current weights (programs them if needed)."""
        if not self.tiles_current():
            self.program()
        return self._matrix

    def _new_matrix(self) -> TiledMatrix:
        cfg = self.cim_config
        return TiledMatrix(
            self.out_features_flat, self.in_flat, cfg.tile,
            max_rows=cfg.max_rows, max_cols=cfg.max_cols,
        )  # fmt: skip

    def program(self) -> None:
        """Program the current (clipped) weights onto the tiles now."""
        if self._matrix is None:
            self._matrix = self._new_matrix()
        with torch.no_grad():
            w, self.clipped_at_programming = self._mapped_and_clipped()
            self._matrix.program(w, generator=self.generator)
        self._programmed_weight = self.weight.detach().clone()

    def _analog_matmul(self, x2d: Tensor) -> Tensor:
        return self.matrix.mvm(x2d, t_s=self.t_s, generator=self.generator)

    # --- hardware-aware training --------------------------------------------------------------
    def noise_table(self) -> ConductanceNoiseTable:
        """The device's conductance statistics at ``train_t_s``, which hardware-aware training
        samples from (built once, rebuilt when the time changes)."""
        cfg = self.cim_config
        if self._noise_table is None or self._noise_table.t_s != cfg.train_t_s:
            self._noise_table = ConductanceNoiseTable(
                cfg.tile.device, cfg.train_t_s, generator=self.generator
            )
        return self._noise_table

    def _weight_noise_table(self) -> WeightNoiseTable | None:
        """Weight-domain noise for analog differential mappings (``None`` otherwise)."""
        mapping = self.cim_config.tile.mapping
        if mapping.scheme != "differential" or mapping.weight_bits is not None:
            return None
        table = self.noise_table()
        if self._weight_table is None or self._weight_table_source is not table:
            self._weight_table = WeightNoiseTable(table, mapping)
            self._weight_table_source = table
        return self._weight_table

    def _noisy_block(self, w: Tensor, w_max: Tensor, out: Tensor | None = None) -> Tensor:
        """One tile's weights [out, in] after programming and reading, as a noisy copy (written
        into ``out`` if given)."""
        noisy = self._draw_noisy(w, w_max, out)
        return noisy if out is None or noisy is out else out.copy_(noisy)

    def _draw_noisy(self, w: Tensor, w_max: Tensor, out: Tensor | None) -> Tensor:
        """:meth:`_noisy_block`, in ``out`` where the noise is drawn in the weight domain."""
        cfg = self.cim_config.tile
        dev, mapping = cfg.device, cfg.mapping
        with torch.no_grad():
            fast = self._weight_noise_table()
            if fast is not None:
                if not cfg.drift_compensation or self.noise_table().drift_free:
                    return fast.sample(w, w_max, generator=self.generator,
                                       compiled=self.cim_config.compile, out=out)  # fmt: skip
                noisy, mean0, mean_t = fast.sample_and_drift_means(
                    w, w_max, generator=self.generator
                )
            else:
                planes, ref = mapping.targets(w.T / w_max, dev.g_min_us, dev.g_max_us)
                table = self.noise_table()

                def decode(p: Tensor, r: Tensor | None) -> Tensor:
                    g = mapping.slice_conductance(p, r)
                    return mapping.decode(g, w_max, dev.g_min_us, dev.g_max_us).T

                noisy = decode(
                    table.sample(planes, generator=self.generator),
                    None if ref is None else table.sample(ref, generator=self.generator),
                )
                if not cfg.drift_compensation or table.drift_free:
                    return noisy
                p0, pt = table.drift_shifts(planes)
                r0, rt = (None, None) if ref is None else table.drift_shifts(ref)
                mean0 = decode(planes + p0, None if ref is None else ref + r0)
                mean_t = decode(planes + pt, None if ref is None else ref + rt)
            # Global drift compensation rescales inference outputs by a factor near
            # Σ|W(0)| / Σ|W(t)|: the tiles measure it with calibration reads (default, with read
            # noise and converters) or take it noise-free ("oracle"). Training at train_t_s
            # applies its expected value, the noise-free factor, in either mode.
            now = mean_t.abs().sum()
            factor = torch.where(now > 0, mean0.abs().sum() / now, torch.ones_like(now))
            return noisy * factor

    def _hwa_matmul(self, x2d: Tensor) -> Tensor:
        """Training forward: tile by tile, noisy weights, DAC and ADC with straight-through."""
        cfg, counts = self.cim_config, self.training_counters
        counts.forwards += 1
        counts.weights_seen += self.flat_weight().numel()
        rows = _blocks(self.in_flat, cfg.max_rows)
        cols = _blocks(self.out_features_flat, cfg.max_cols)
        adc = cfg.tile.adc
        # The weight scale is needed only by the noise and by a fixed ADC full scale.
        scaled = cfg.train_noise or (not adc.ideal and adc.mode == "fixed")
        w, clipped, scales = self._training_weights([(c, r) for c in cols for r in rows], scaled)
        counts.weights_clipped += clipped
        return _StraightThrough.apply(x2d, w, self, rows, cols, scales)[0]

    def _hwa_forward(self, x: Tensor, w: Tensor, rows: list[slice], cols: list[slice],
                     scales: list[Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """The training forward without autograd, x [B, in] and w [out, in] (clipped), over
        the tiles' row and column blocks with their weight scales (column by column).

        Returns the outputs [B, out] and, for the straight-through backward, the inputs as the
        DACs converted them, in the units of ``x`` [B, in], and the noisy weights [out, in].
        """
        cfg = self.cim_config
        drives = [self._drive(x[:, r], times=len(cols)) for r in rows]
        if cfg.tile.dac.ideal:
            x_hat = x
        else:
            converted = [x_r * scale for x_r, scale in drives]
            x_hat = converted[0] if len(converted) == 1 else torch.cat(converted, dim=-1)
        w_noisy = torch.empty_like(w) if cfg.train_noise else w
        w_maxes = iter(scales if scales is not None else [None] * (len(rows) * len(cols)))
        partials = []
        for c in cols:
            partial = None
            for r, (x_r, scale) in zip(rows, drives, strict=True):
                y = self._hwa_tile(x_r, scale, w[c, r], w_noisy[c, r], next(w_maxes))
                partial = y if partial is None else partial.add_(y)
            partials.append(partial)
        y = partials[0] if len(partials) == 1 else torch.cat(partials, dim=-1)
        return y, x_hat, w_noisy

    def _drive(self, x: Tensor, times: int) -> tuple[Tensor, Tensor | None]:
        """One row block's inputs through the DACs of the ``times`` tiles it drives: the
        converted values in units of the DAC's full scale (±1 at full drive) and that scale
        per input vector [B, 1] (``None`` for ideal DACs, which pass ``x`` on)."""
        dac, counts = self.cim_config.tile.dac, self.training_counters
        if dac.ideal:
            return x, None
        scale = dac.calibrate(x, dim=-1)
        x, clipped = _converted(x / scale, 1.0, dac, saturates=dac.mode != "max_abs")
        counts.dac_conversions += x.numel() * times
        counts.dac_clipped += clipped * times
        return x, scale

    def _hwa_tile(self, x: Tensor, scale: Tensor | None, w: Tensor, noisy: Tensor,
                  w_max: Tensor | None) -> Tensor:  # fmt: skip
        """One tile: converted inputs x [B, rows] and their scale, weights w [cols, rows] (its
        noisy copy written into ``noisy``) with scale ``w_max`` -> outputs [B, cols] in the
        units of the inputs."""
        cfg, counts = self.cim_config, self.training_counters
        adc = cfg.tile.adc
        if cfg.train_noise:
            w = self._noisy_block(w, w_max, out=noisy)
        y = F.linear(x, w)
        if not adc.ideal:
            # A fixed ADC's scale is always given (see _hwa_matmul); other modes calibrate.
            fixed = None if w_max is None else adc_full_scale(cfg.tile, w_max)
            full_scale = adc.calibrate(y) if fixed is None else fixed
            saturates = fixed is not None or adc.mode != "max_abs"
            y, clipped = _converted(y, full_scale, adc, saturates=saturates)
            counts.adc_conversions += y.numel()
            counts.adc_clipped += clipped
        return y if scale is None else y.mul_(scale)

    def _check_input(self, x: Tensor) -> Tensor:
        """Inputs as the tiles take them in both modes: finite floats, computed in float32."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(f"x must be a floating-point torch.Tensor, got {got}")
        if self.training and not all_finite(x):  # in eval the tiles check it
            raise ConfigError("x contains NaN or infinite values")
        return x if x.dtype == torch.float32 else x.float()

    def _matmul(self, x2d: Tensor) -> Tensor:
        if self.training:
            return self._hwa_matmul(x2d)
        if not torch.is_grad_enabled():  # already without autograd (the usual inference)
            return self._analog_matmul(x2d)
        with torch.no_grad():
            return self._analog_matmul(x2d)

    # --- checkpoints (memcim.nn.save_checkpoint): what state_dict does not carry ---------------
    def checkpoint_config(self) -> dict[str, object]:
        """This layer's class and flattened :class:`CIMConfig`, as a checkpoint records it."""
        config = flat_config(self.cim_config)
        del config["compile"]  # how training runs, not what the tiles hold
        return {"class": type(self).__name__, **config}

    def checkpoint_tensors(self) -> dict[str, Tensor]:
        """The generator's state and the tiles' cached read at the current time."""
        out = {"generator": self.generator.get_state()}
        if self.tiles_current():
            out.update({f"read_cache.{k}": v for k, v in self._matrix.read_cache_tensors().items()})
        return out

    def load_checkpoint_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore what :meth:`checkpoint_tensors` saved (after ``load_state_dict``), on the
        layer's device."""
        restore_generator(self.generator, tensors["generator"], type(self).__name__)
        if self.tiles_current():
            self._matrix.load_read_caches(moved(under(tensors, "read_cache."), self.weight.device))

    # --- state_dict: the programmed devices travel with the weights ---------------------------
    def get_extra_state(self) -> dict:
        # Tiles that no longer hold the weights would be stale after loading: save none.
        tensors = self._matrix.state_tensors() if self.tiles_current() else {}
        return {"t_s": self.t_s, "tiles": tensors}

    def set_extra_state(self, state: dict) -> None:
        self.t_s = float(state["t_s"])
        tensors = state["tiles"]
        self._matrix, self._programmed_weight = None, None
        if tensors:
            self._matrix = self._new_matrix()
            self._matrix.load_state_tensors(moved(tensors, self.weight.device))
            # load_state_dict copies the parameters before the extra state: they are current.
            self._programmed_weight = self.weight.detach().clone()


class CIMLinear(CIMLayer):
    """``nn.Linear`` on crossbar tiles: y = x Wᵀ (analog) + b (digital).

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias: learnable digital bias.
        config: tiles and training behaviour (:class:`CIMConfig`).
        device: where the weights, the tiles and the layer's generator live (as ``nn.Linear``'s
            ``device``; default torch's default device). ``.to(device)`` moves them later.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 config: CIMConfig | None = None, *,
                 device: torch.device | str | None = None) -> None:  # fmt: skip
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            require(is_int(value) and value >= 1, f"CIMLinear.{name}", value, "an int >= 1")
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device))
        self.bias = nn.Parameter(torch.empty(out_features, device=device)) if bias else None
        self._setup(out_features, in_features, config)
        with torch.no_grad():  # nn.Linear's default init, from the layer's own generator
            bound = 1 / math.sqrt(in_features)
            self.weight.uniform_(-bound, bound, generator=self.generator)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound, generator=self.generator)

    def forward(self, x: Tensor) -> Tensor:
        x = self._check_input(x)
        if x.shape[-1] != self.in_features:
            raise ConfigError(
                f"CIMLinear expects inputs [..., {self.in_features}], got {tuple(x.shape)}"
            )
        if x.dim() == 2:  # [B, in], the usual case: no reshapes
            y = self._matmul(x)
        else:
            lead = x.shape[:-1]
            y = self._matmul(x.reshape(-1, self.in_features)).reshape(*lead, self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        dev = type(self.cim_config.tile.device).__name__
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, device={dev}, t_s={self.t_s:g}"
        )


class CIMConv2d(CIMLayer):
    """``nn.Conv2d`` on crossbar tiles, as an exact im2col product (``F.unfold``).

    Each output pixel is one MVM of the C·kh·kw input patch with the [out, C·kh·kw] kernel
    matrix; biases are digital. ``groups`` must be 1 and ``padding_mode`` ``"zeros"``.
    ``device``: as :class:`CIMLinear`'s.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
        dilation=1, bias: bool = True, config: CIMConfig | None = None, *,
        device: torch.device | str | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        pair = nn.modules.utils._pair
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = pair(kernel_size), pair(stride)
        self.padding, self.dilation = pair(padding), pair(dilation)
        for name, values, low in (
            ("in_channels", (in_channels,), 1), ("out_channels", (out_channels,), 1),
            ("kernel_size", self.kernel_size, 1), ("stride", self.stride, 1),
            ("dilation", self.dilation, 1), ("padding", self.padding, 0),
        ):  # fmt: skip
            require(all(is_int(v) and v >= low for v in values), f"CIMConv2d.{name}",
                    values if len(values) > 1 else values[0], f"ints >= {low}")  # fmt: skip
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw, device=device))
        self.bias = nn.Parameter(torch.empty(out_channels, device=device)) if bias else None
        self._setup(out_channels, in_channels * kh * kw, config)
        with torch.no_grad():  # nn.Conv2d's default init, from the layer's own generator
            bound = 1 / math.sqrt(in_channels * kh * kw)
            self.weight.uniform_(-bound, bound, generator=self.generator)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound, generator=self.generator)

    def forward(self, x: Tensor) -> Tensor:
        x = self._check_input(x)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"CIMConv2d expects inputs [N, {self.in_channels}, H, W], got {tuple(x.shape)}"
            )
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        h_out = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        w_out = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        if h_out < 1 or w_out < 1:
            raise ConfigError(
                f"CIMConv2d input {h}x{w} is smaller than the kernel {kh}x{kw} "
                f"(padding {self.padding}, dilation {self.dilation})"
            )
        patches = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        y = self._matmul(patches.transpose(1, 2).reshape(-1, self.in_flat))
        y = y.reshape(n, h_out * w_out, self.out_channels).transpose(1, 2)
        y = y.reshape(n, self.out_channels, h_out, w_out)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        dev = type(self.cim_config.tile.device).__name__
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, device={dev}, t_s={self.t_s:g}"
        )
