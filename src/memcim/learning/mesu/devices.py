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
from memcim.learning.mesu.stream import Predictor


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


class DevicePredictor(Predictor):
    """Predictions of a network from :func:`on_devices` (inference only)."""

    def __init__(self, hardware: nn.Module, *, samples: int = 10,
                 generator: torch.Generator) -> None:  # fmt: skip
        self.model = hardware
        self.samples = check_count(samples, "samples", 1)
        self.generator = check_generator(generator)

    def probs(self, x: Tensor) -> Tensor:
        return predict(self.model, x, samples=self.samples, generator=self.generator).probs
