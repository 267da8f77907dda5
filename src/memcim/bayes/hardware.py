"""Put a trained Bayesian network on crossbar tiles: the devices draw its weight samples and the
same tiles compute its products.

:func:`to_hardware` replaces every Bayesian layer by a hardware copy that holds a
:class:`~memcim.bayes.SampledMatrix`: the layer's posterior realised by a
:class:`~memcim.bayes.SamplingScheme` on :class:`~memcim.crossbar.TiledMatrix` tiles, with the
Monte-Carlo samples as tile state. Every sample's product goes through the tiles' data path —
DAC, array, read noise, optional IR drop, drift to ``sampling.t_s`` (with the tile's drift
compensation), ADC with calibrated ranges — and the tiles count reads, conversions and writes
for :func:`memcim.energy.profile`.

**Bias.** A layer's bias is one more word line of the same array, driven by the constant input
1 through the DAC like every input: its devices are placed and sampled by the same scheme, and
its samples are added in the analog column sum. (The DAC scales each input vector by its own
largest magnitude, so this line also sets the DAC range when the activations are below 1.)

A convolution is read as its im2col vectors (one product per output position), weights
[out, C·kh·kw] on the tiles.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcim._errors import ConfigError, require
from memcim._modules import (
    flat_config,
    generator_on,
    moved,
    replace_modules,
    restore_generator,
    under,
)  # fmt: skip
from memcim.bayes.layers import BayesianConv2d, BayesianLayer, BayesianLinear
from memcim.bayes.sampled import SampledMatrix
from memcim.bayes.schemes import HardwareSampling, SchemeTargets
from memcim.crossbar import TileConfig
from memcim.devices.base import check_time


def _with_bias_input(vectors: Tensor) -> Tensor:
    """``vectors`` [S, V, in] with a constant 1 appended; a batch shared over S stays shared."""
    if vectors.stride(0) == 0:
        one = vectors[0]
        return torch.cat([one, one.new_ones(one.shape[0], 1)], dim=-1).expand(
            vectors.shape[0], -1, -1
        )
    return torch.cat([vectors, vectors.new_ones(*vectors.shape[:-1], 1)], dim=-1)


class _OnTiles:
    """Mixin: weight samples drawn and multiplied on crossbar tiles (module docstring)."""

    sampled: SampledMatrix

    def _parameter_matrix(self) -> tuple[Tensor, Tensor]:
        """μ and σ of [weights | bias] as one [out, in_flat (+ 1)] matrix."""
        out = self.weight_mu.shape[0]
        mu, sigma = self.weight_mu.reshape(out, -1), self.weight_sigma.reshape(out, -1)
        if self.bias_mu is not None:
            mu = torch.cat([mu, self.bias_mu.unsqueeze(1)], dim=1)
            sigma = torch.cat([sigma, self.bias_sigma.unsqueeze(1)], dim=1)
        return mu.detach(), sigma.detach()

    def _program(self, sampling: HardwareSampling, tile: TileConfig | None, samples: int,
                 generator: torch.Generator, max_rows: int,
                 max_cols: int) -> dict[str, float]:  # fmt: skip
        mu, sigma = self._parameter_matrix()
        self.sampled = SampledMatrix(mu.shape[0], mu.shape[1], sampling, tile,
                                     max_rows=max_rows, max_cols=max_cols)  # fmt: skip
        with torch.no_grad():
            done = self.sampled.program(mu, sigma, samples, generator=generator)
        weights = done.feasible[:, : self.weight_mu[0].numel()]  # the bias column left out
        return {"writes": float(done.writes), "write_energy_pj": done.write_energy_pj,
                "feasible_fraction": float(weights.float().mean()),
                "clipped": float(done.clipped), "k_us": done.k_us}  # fmt: skip

    def _vectors(self, xs: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        raise NotImplementedError

    def _outputs(self, y: Tensor, xs: Tensor, geometry: tuple[int, ...]) -> Tensor:
        raise NotImplementedError

    def _forward_samples(self, xs: Tensor, samples: int) -> Tensor:
        vectors, geometry = self._vectors(xs)
        if self.bias_mu is not None:
            vectors = _with_bias_input(vectors)
        y = self.sampled.mvm(vectors, generator=self._gen())
        return self._outputs(y, xs, geometry)

    def weight_samples(self, samples: int | None = None, *,
                       generator: torch.Generator | None = None
                       ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """The weight and bias samples the tiles hold, read without converters.

        Args:
            samples: S (default: the copies on the tiles, or 1 for a scheme drawn per read).
            generator: randomness of the reads.

        Returns:
            weights ``[S, *weight_mu.shape]`` and biases ``[S, out]`` (or ``None``).
        """
        if samples is None:
            samples = self.sampled.copies or 1
        require(isinstance(samples, int) and samples >= 1, "samples", samples, "an int >= 1")
        with torch.no_grad():
            w = self.sampled.read_weights(samples, generator=generator)
        n = self.weight_mu[0].numel()
        bias = w[..., n] if self.bias_mu is not None else None
        return w[..., :n].reshape(samples, *self.weight_mu.shape), bias

    @property
    def realised_weight(self) -> Tensor:
        """One read of every copy's weights, [K, *weight_mu.shape] (see :meth:`weight_samples`)."""
        return self.weight_samples()[0]

    @property
    def realised_bias(self) -> Tensor | None:
        """One read of every copy's biases, [K, out] (``None`` without bias)."""
        return self.weight_samples()[1]

    # --- checkpoints (memcim.nn.save_checkpoint) -----------------------------------------------
    def checkpoint_config(self) -> dict[str, object]:
        """Class, sampling scheme, tile periphery, tile size and copies, flattened."""
        s = self.sampled
        return {"class": type(self).__name__, "copies": s.copies, "max_rows": s.max_rows,
                "max_cols": s.max_cols,
                **{f"sampling.{k}": v for k, v in flat_config(s.sampling).items()},
                **{f"tile.{k}": v for k, v in flat_config(s.tile_config).items()}}  # fmt: skip

    def checkpoint_tensors(self) -> dict[str, Tensor]:
        """The generator's state, the sampled tiles' programmed state and cached reads, and
        the scheme's targets."""
        s, t = self.sampled, self.sampled.targets
        out = {"generator": self.generator.get_state()}
        for name, matrix in (("matrix", s.matrix), ("sigma_matrix", s.sigma_matrix)):
            if matrix is not None:
                out.update({f"{name}.state.{k}": v for k, v in matrix.state_tensors().items()})
                out.update({f"{name}.read_cache.{k}": v
                            for k, v in matrix.read_cache_tensors().items()})  # fmt: skip
        scalar = functools.partial(torch.tensor, device="cpu")  # metadata, whatever the device
        out.update({"targets.planes": t.planes, "targets.realised_sigma": t.realised_sigma,
                    "targets.feasible": t.feasible, "targets.clipped": scalar(t.clipped),
                    "targets.k_us": scalar(t.k_us, dtype=torch.float64)})  # fmt: skip
        if t.sigma_planes is not None:
            out["targets.sigma_planes"] = t.sigma_planes
            out["targets.sigma_k_us"] = scalar(t.sigma_k_us, dtype=torch.float64)
        return out

    def load_checkpoint_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore what :meth:`checkpoint_tensors` saved, replacing the tiles' programming."""
        s = self.sampled
        restore_generator(self.generator, tensors["generator"], type(self).__name__)
        on = self.generator.device  # the layer's device
        for name, matrix in (("matrix", s.matrix), ("sigma_matrix", s.sigma_matrix)):
            if matrix is not None:
                matrix.load_state_tensors(moved(under(tensors, f"{name}.state."), on))
                matrix.load_read_caches(moved(under(tensors, f"{name}.read_cache."), on))
        t = moved(under(tensors, "targets."), on)
        s.targets = SchemeTargets(
            planes=t["planes"], k_us=float(t["k_us"]), realised_sigma=t["realised_sigma"],
            feasible=t["feasible"], clipped=int(t["clipped"]), sigma_planes=t.get("sigma_planes"),
            sigma_k_us=float(t["sigma_k_us"]) if "sigma_k_us" in t else None,
        )  # fmt: skip

    def train(self, mode: bool = True):
        if mode:
            raise ConfigError(
                f"{type(self).__name__} holds device-realised weight samples and cannot be "
                "trained; train the Bayesian model, then call to_hardware again"
            )
        return super().train(False)


class HardwareBayesianLinear(_OnTiles, BayesianLinear):
    """A :class:`BayesianLinear` whose samples are drawn and multiplied on tiles."""

    def _vectors(self, xs: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        return xs.reshape(xs.shape[0], -1, xs.shape[-1]), ()

    def _outputs(self, y: Tensor, xs: Tensor, geometry: tuple[int, ...]) -> Tensor:
        return y.reshape(*xs.shape[:-1], y.shape[-1])


class HardwareBayesianConv2d(_OnTiles, BayesianConv2d):
    """A :class:`BayesianConv2d` whose samples are drawn and multiplied on tiles (im2col)."""

    def _padded(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The input with the layer's padding applied, and the unfold padding left to do."""
        if not isinstance(self.padding, str):
            return x, tuple(self.padding)
        if self.padding == "valid":
            return x, (0, 0)
        pads = []  # "same" (stride 1): total dilation·(k − 1), the extra one on the far side
        for k, d in zip(reversed(self.kernel_size), reversed(self.dilation), strict=True):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads), (0, 0)

    def _vectors(self, xs: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        if self.groups != 1:
            raise ConfigError("HardwareBayesianConv2d supports groups=1 only")
        shared = xs.stride(0) == 0
        x = xs[0] if shared else xs.reshape(-1, *xs.shape[2:])
        x, padding = self._padded(x)
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=padding,
                        stride=self.stride)  # fmt: skip
        h = x.shape[-2] + 2 * padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1
        w = x.shape[-1] + 2 * padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1
        size = (h // self.stride[0] + 1, w // self.stride[1] + 1)
        vectors = cols.transpose(1, 2).reshape(1 if shared else xs.shape[0], -1, cols.shape[1])
        if shared:
            vectors = vectors.expand(xs.shape[0], -1, -1)
        return vectors, size

    def _outputs(self, y: Tensor, xs: Tensor, geometry: tuple[int, ...]) -> Tensor:
        s, n = xs.shape[:2]
        y = y.reshape(s, n, -1, y.shape[-1]).transpose(-1, -2)
        return y.reshape(s, n, y.shape[2], *geometry)


def _hardware_copy(layer: BayesianLayer) -> BayesianLayer:
    cls = HardwareBayesianLinear if isinstance(layer, BayesianLinear) else HardwareBayesianConv2d
    new = copy.deepcopy(layer)
    new.__class__ = cls  # same parameters and buffers; samples and products on tiles
    return new


def to_hardware(
    model: nn.Module,
    sampling: HardwareSampling | None = None,
    *,
    tile_config: TileConfig | None = None,
    samples: int = 64,
    generator: torch.Generator | None = None,
    max_rows: int = 512,
    max_cols: int = 512,
) -> tuple[nn.Module, dict[str, dict[str, float]]]:
    """A copy of ``model`` whose Bayesian layers are drawn and computed on crossbar tiles.

    Args:
        model: a model with :class:`BayesianLinear` / :class:`BayesianConv2d` layers (not
            modified).
        sampling: scheme, device and read time (default: differential RRAM pairs at t = 0).
        tile_config: periphery of the tiles (converters, read voltage and time, read-noise
            sampling, IR drop, drift compensation); its device and mapping are set by
            ``sampling`` (the scheme's). ``None``: the tile defaults, 8-bit DAC and ADC.
        samples: S, the Monte-Carlo samples a forward uses: copies programmed (cycle-to-cycle,
            differential), population rows read (device population), or any S for the schemes
            drawn per read (read noise, separate μ/σ). A forward with K copies runs K samples
            or a multiple of K.
        generator: randomness of every programming (default: seed 0, on the model's device).
        max_rows, max_cols: largest tile.

    Returns:
        ``(hardware_model, report)``: the copy, in eval mode, and per layer name the
        programming pulses (``writes``), their energy (``write_energy_pj``), the fraction of
        weights whose σ the scheme can realise (``feasible_fraction``), the device targets
        clamped into the window (``clipped``) and the scale ``k_us``.
    """
    sampling = sampling if sampling is not None else HardwareSampling()
    require(isinstance(samples, int) and samples >= 1, "samples", samples, "an int >= 1")
    names = [n for n, m in model.named_modules() if isinstance(m, BayesianLayer)]
    if not names:
        raise ConfigError("the model has no Bayesian layers: convert it with to_bayesian first")
    if generator is None:  # seed 0 on the device of the (first) Bayesian layer
        generator = generator_on(model.get_submodule(names[0]).weight_mu.device, 0)
    hardware = replace_modules(
        copy.deepcopy(model), {n: _hardware_copy(model.get_submodule(n)) for n in names}
    )
    shape = {"max_rows": max_rows, "max_cols": max_cols}
    report = {
        n: hardware.get_submodule(n)._program(sampling, tile_config, samples, generator, **shape)
        for n in names
    }
    return hardware.eval(), report


def hardware_layers(model: nn.Module) -> dict[str, _OnTiles]:
    """The tile-based Bayesian layers of ``model`` by name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, _OnTiles)}


def read_at(model: nn.Module, t_s: float) -> nn.Module:
    """Read every hardware layer of ``model`` at ``t_s`` seconds after its programming (in
    place): the cells drift and relax as the device model says, the tiles' drift compensation
    (if on) takes its calibration reads at the new time, and the programming stays as it was
    (designed for the original read time). Returns ``model``."""
    check_time(t_s)
    for layer in hardware_layers(model).values():
        old = layer.sampled.sampling
        design = old.t_s if old.design_t_s is None else old.design_t_s
        layer.sampled.sampling = replace(old, t_s=float(t_s), design_t_s=design)
    return model


def resample(model: nn.Module, sampling: HardwareSampling, *, samples: int,
             generator: torch.Generator) -> dict[str, dict[str, float]]:  # fmt: skip
    """Program every hardware layer of ``model`` anew (in place): new device realisations,
    on tiles with the same periphery and size."""
    report = {}
    for name, layer in hardware_layers(model).items():
        old = layer.sampled
        report[name] = layer._program(sampling, old.tile_config, samples, generator,
                                      old.max_rows, old.max_cols)  # fmt: skip
    return report
