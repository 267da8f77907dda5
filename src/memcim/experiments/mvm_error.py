"""Experiment ``mvm-error``: relative error of an analog matrix-vector product.

A random matrix (weights ~ N(0, 1/rows)) is programmed once onto tiles of the chosen device,
and inputs ~ U[0, 1] are read at time ``t_s`` after programming through the DAC/ADC; the metric
is the mean over vectors of ‖y − x Wᵀ‖₂ / ‖x Wᵀ‖₂. Fast (well under a second), so it also serves
as the smallest sweepable experiment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from memcim._errors import require
from memcim.crossbar import ConverterConfig, TileConfig, TiledMatrix
from memcim.devices import PCM, Device, FilamentaryRRAM, IdealDevice
from memcim.experiments.registry import Result, register

DEVICES = {"pcm": PCM, "rram": FilamentaryRRAM, "ideal": IdealDevice}


@dataclass(frozen=True, kw_only=True)
class MvmErrorConfig:
    """Attributes:
    device: ``"pcm"``, ``"rram"`` or ``"ideal"`` (default presets).
    t_s: read time after programming (s).
    compensation: global drift compensation.
    compensation_mode: ``"read"`` (calibration reads through read noise and converters, as
        a chip does; the tile default) or ``"oracle"`` (noise-free factor); see
        :class:`~memcim.crossbar.TileConfig`.
    rows, cols: matrix size (inputs × outputs).
    batch: input vectors.
    bits: DAC and ADC resolution; 0 for ideal converters.
    """

    device: Literal["pcm", "rram", "ideal"] = "pcm"
    t_s: float = 3600.0
    compensation: bool = True
    compensation_mode: Literal["read", "oracle"] = "read"
    rows: int = 784
    cols: int = 256
    batch: int = 256
    bits: int = 8

    def __post_init__(self) -> None:
        require(self.device in DEVICES, "MvmErrorConfig.device", self.device,
                f"must be one of {sorted(DEVICES)}")  # fmt: skip
        require(self.compensation_mode in ("read", "oracle"), "MvmErrorConfig.compensation_mode",
                self.compensation_mode, "must be 'read' or 'oracle'")  # fmt: skip
        require(math.isfinite(self.t_s) and self.t_s >= 0, "MvmErrorConfig.t_s", self.t_s,
                "must be a finite time >= 0 s")  # fmt: skip
        for name in ("rows", "cols", "batch"):
            require(getattr(self, name) >= 1, f"MvmErrorConfig.{name}", getattr(self, name),
                    "must be >= 1")  # fmt: skip
        require(self.bits == 0 or self.bits >= 2, "MvmErrorConfig.bits", self.bits,
                "must be 0 (ideal) or >= 2")  # fmt: skip


def relative_mvm_error(
    device: Device, t_s: float, *, compensation: bool, seed: int,
    rows: int = 784, cols: int = 256, batch: int = 256, bits: int | None = 8,
    compensation_mode: Literal["read", "oracle"] = "read",
) -> float:  # fmt: skip
    """Mean over input vectors of ‖y_analog − x Wᵀ‖₂ / ‖x Wᵀ‖₂ for a random matrix.

    Weights ~ N(0, 1/rows), inputs ~ U[0, 1] (like image pixels), DAC and ADC of ``bits``
    (``None``: ideal), differential pairs. One programming and one read per vector; the same
    ``seed`` gives the same matrix, inputs, programming and noise, so runs that differ in one
    setting compare. ``compensation_mode`` is :class:`~memcim.crossbar.TileConfig`'s
    ``drift_compensation_mode`` (its calibration reads draw from the same generator, so the
    read noise of the vectors differs between modes).
    """
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(cols, rows, generator=generator) / rows**0.5
    x = torch.rand(batch, rows, generator=generator)
    converter = ConverterConfig(bits=bits)
    config = TileConfig(device=device, drift_compensation=compensation, dac=converter,
                        adc=converter, drift_compensation_mode=compensation_mode)  # fmt: skip
    matrix = TiledMatrix(cols, rows, config).program(w, generator=generator)
    y = matrix.mvm(x, t_s=t_s, generator=generator)
    exact = x @ w.T
    return ((y - exact).norm(dim=-1) / exact.norm(dim=-1)).mean().item()


@register("mvm-error", MvmErrorConfig, "relative error of one analog MVM at a read time")
def run(config: MvmErrorConfig, *, seed: int, out_dir: Path, progress: bool) -> Result:
    error = relative_mvm_error(
        DEVICES[config.device](), config.t_s, compensation=config.compensation, seed=seed,
        rows=config.rows, cols=config.cols, batch=config.batch, bits=config.bits or None,
        compensation_mode=config.compensation_mode,
    )  # fmt: skip
    return Result(metrics={"mvm_error": error})
