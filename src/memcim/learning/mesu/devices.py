"""The MESU network deployed with its σ held by devices: weight samples drawn on crossbar
tiles by the device physics, not by a software random generator.

:func:`on_devices` programs a trained Bayesian network with :func:`memcim.bayes.to_hardware`.
The default scheme is ``SEPARATE_MU_SIGMA`` (Bonnet et al.'s proposal for MESU's learned σ):
μ on one array of differential RRAM pairs and σ² on another, read with x and x², and one
ε per output and sample from stochastic STT-MRAM bits, so that every learned σ is realised
whatever its μ. ``DIFFERENTIAL`` pairs realise σ only within what the device window allows at
each μ (the report's ``feasible_fraction``). Every product goes through the tiles' DAC, array,
read noise and ADC.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memcim._errors import check_count, check_generator
from memcim.bayes import HardwareSampling, SamplingScheme, predict, to_hardware
from memcim.crossbar import TileConfig


def on_devices(model: nn.Module, *, sampling: HardwareSampling | None = None,
               tile_config: TileConfig | None = None, samples: int = 10,
               generator: torch.Generator, calibration: Tensor | None = None,
               ) -> tuple[nn.Module, dict[str, dict[str, float]]]:  # fmt: skip
    """A copy of the trained Bayesian ``model`` whose weight samples are drawn by devices on
    tiles (see the module docstring); returns it and ``to_hardware``'s programming report.

    Args:
        sampling: scheme and device (default: separate μ/σ arrays on filamentary RRAM).
        tile_config: converters and periphery (default: 8-bit DAC and ADC).
        samples: Monte-Carlo samples per prediction.
        generator: randomness of the programming.
        calibration: inputs whose first prediction sets the ADC ranges (recommended: training
            images); ``None`` leaves the ranges to the first inputs predicted.
    """
    check_generator(generator)
    check_count(samples, "samples", 1)
    if sampling is None:
        sampling = HardwareSampling(scheme=SamplingScheme.SEPARATE_MU_SIGMA)
    hardware, report = to_hardware(model, sampling, tile_config=tile_config, samples=samples,
                                   generator=generator)  # fmt: skip
    if calibration is not None:
        predict(hardware, calibration, samples=samples, generator=generator)
    return hardware, report


class ProgrammedPosterior:
    """μ and σ of a Bayesian network held on RRAM tiles *while it learns*, with the writes
    that costs counted.

    Every :class:`~memcim.bayes.BayesianLinear` layer's μ sits on one
    :class:`~memcim.crossbar.TiledMatrix` of differential pairs and its σ on another (the two
    arrays of the separate μ/σ scheme). A device is programmed to a multiple of one programming
    step, ``w_max / levels``; after training steps :meth:`sync` re-programs only the devices
    whose μ or σ moved a programming step or more away from the value they hold (to the
    nearest step), with the device's programming noise
    (:meth:`~memcim.crossbar.TiledMatrix.reprogram`), and counts them. ``w_max`` is
    ``headroom`` times the largest |μ| (largest σ) at construction; values that later grow
    beyond it are programmed at ±w_max, and :attr:`clipped` says how many are at the last
    sync.

    The training itself reads μ and σ from the digital copy (the optimiser's); what this class
    measures is the write traffic and endurance of keeping the posterior on devices. Inference
    on devices programs the final μ and σ with :func:`on_devices`.
    """

    def __init__(self, model: nn.Module, *, tile_config: TileConfig | None = None,
                 levels: int = 64, headroom: float = 2.0, generator: torch.Generator,
                 max_rows: int = 512, max_cols: int = 512) -> None:  # fmt: skip
        from dataclasses import replace

        from memcim._errors import is_real, require
        from memcim.bayes import BayesianLinear
        from memcim.crossbar import MappingConfig, TiledMatrix
        from memcim.devices import FilamentaryRRAM

        self.levels = check_count(levels, "levels", 1)
        require(is_real(headroom) and headroom >= 1, "headroom", headroom, "a number >= 1")
        self.generator = check_generator(generator)
        self.layers = [m for m in model.modules() if isinstance(m, BayesianLinear)]
        require(len(self.layers) >= 1, "model", type(model).__name__,
                "a model with BayesianLinear layers")  # fmt: skip
        base = tile_config if tile_config is not None else TileConfig(device=FilamentaryRRAM())
        self.clipped = 0
        self.matrices: list[tuple[TiledMatrix, float]] = []
        for layer in self.layers:
            for value in (layer.weight_mu, layer.weight_sigma):
                w_max = headroom * float(value.detach().abs().max().clamp_min(1e-12))
                cfg = replace(base, mapping=MappingConfig(w_max=w_max))
                matrix = TiledMatrix(layer.out_features, layer.in_features, cfg,
                                     max_rows=max_rows, max_cols=max_cols)  # fmt: skip
                self.matrices.append((matrix, w_max))
        self._programmed = self._rounded(self._values())
        for (matrix, _), target in zip(self.matrices, self._programmed, strict=True):
            matrix.program(target, generator=generator)

    def _values(self) -> list[Tensor]:
        """μ and σ of every layer, clamped into ±w_max (:attr:`clipped` says how many were
        beyond)."""
        values = [v for layer in self.layers for v in (layer.weight_mu, layer.weight_sigma)]
        out, self.clipped = [], 0
        for (_, w_max), value in zip(self.matrices, values, strict=True):
            v = value.detach()
            self.clipped += int((v.abs() > w_max).sum())
            out.append(v.clamp(-w_max, w_max))
        return out

    def _rounded(self, values: list[Tensor]) -> list[Tensor]:
        return [(v / (w_max / self.levels)).round() * (w_max / self.levels)
                for (_, w_max), v in zip(self.matrices, values, strict=True)]  # fmt: skip

    def sync(self) -> int:
        """Re-program the devices whose μ or σ moved a programming step or more away from
        what they hold (to the nearest step); returns how many devices were written."""
        written = 0
        now = self._values()
        targets = []
        rounded_now = self._rounded(now)
        for (matrix, w_max), old, value, rounded in zip(self.matrices, self._programmed, now,
                                                        rounded_now, strict=True):  # fmt: skip
            moved = (value - old).abs() >= w_max / self.levels
            new = torch.where(moved, rounded, old)
            if bool(moved.any()):
                written += matrix.reprogram(old, new, generator=self.generator, only_moved=True)
            targets.append(new)
        self._programmed = targets
        return written

    def writes_per_device(self) -> Tensor:
        """Programming pulses of every device so far (the first programming included)."""
        return torch.cat([matrix.writes_per_device() for matrix, _ in self.matrices])
