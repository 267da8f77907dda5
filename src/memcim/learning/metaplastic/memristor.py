"""The metaplastic network with its quantised weights on multi-level RRAM tiles.

After D'Agostino et al. [21]: the hidden weights stay in digital memory (they are the
:class:`MetaplasticMLP`'s parameters, moved by :class:`AdamMeta`); each quantised weight
(``levels`` values in [−1, 1]) is a differential pair of multi-level RRAM on
:class:`~memcim.crossbar.TiledMatrix` tiles. :meth:`MemristorMetaplastic.sync` re-programs only
the devices whose target changes because their weight's level changed (just those devices,
with the device's programming noise, as :meth:`Device.program_where` would) and counts the
writes. Program-and-verify is the device's option (``FilamentaryRRAM(verify_tolerance_us=...)``).
Training forwards use the quantised weights in software (the hidden weights live off the
array); :meth:`MemristorMetaplastic.forward` infers
through the tiles: DAC, array, read noise, ADC, then the digital BatchNorm and sign.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from memcim._errors import ConfigError
from memcim.crossbar import MappingConfig, TileConfig, TiledMatrix
from memcim.devices import FilamentaryRRAM
from memcim.learning.metaplastic.layers import MetaplasticMLP, quantise, sign_activation


def default_tile_config() -> TileConfig:
    """Filamentary RRAM pairs, 8-bit DAC and ADC, weights ±1 on the full window."""
    return TileConfig(device=FilamentaryRRAM(), mapping=MappingConfig(w_max=1.0))


class MemristorMetaplastic:
    """A :class:`MetaplasticMLP` whose quantised weights are programmed on RRAM tiles.

    Args:
        model: the network (its hidden weights, BatchNorm and ``levels``).
        tile_config: the tiles; the mapping's ``w_max`` is set to 1 (the quantised range).
        max_rows, max_cols: largest tile.
    """

    def __init__(self, model: MetaplasticMLP, tile_config: TileConfig | None = None, *,
                 max_rows: int = 512, max_cols: int = 512) -> None:  # fmt: skip
        self.model = model
        cfg = tile_config if tile_config is not None else default_tile_config()
        cfg = replace(cfg, mapping=replace(cfg.mapping, w_max=1.0))
        self.matrices = [
            TiledMatrix(
                layer.weight.shape[0],
                layer.weight.shape[1],
                cfg,
                max_rows=max_rows,
                max_cols=max_cols,
            )
            for layer in model.layers
        ]
        self._programmed: list[Tensor] | None = None  # the quantised weights the tiles hold
        self.generator: torch.Generator | None = None

    def _quantised(self) -> list[Tensor]:
        return [quantise(layer.weight.detach(), self.model.levels) for layer in self.model.layers]

    def program(self, *, generator: torch.Generator) -> None:
        """Program every device with the present quantised weights (deployment)."""
        self.generator = generator
        self._programmed = self._quantised()
        for matrix, w in zip(self.matrices, self._programmed, strict=True):
            matrix.program(w, generator=generator)

    def sync(self) -> int:
        """Re-program the devices whose target changed since the last sync (levels changed);
        returns how many devices were written."""
        if self._programmed is None:
            raise ConfigError("call program() before sync()")
        written = 0
        now = self._quantised()
        for matrix, old, new in zip(self.matrices, self._programmed, now, strict=True):
            if not torch.equal(old, new):  # only the moved devices: a few of a large array
                written += matrix.reprogram(old, new, generator=self.generator, only_moved=True)
        self._programmed = now
        return written

    def writes_per_device(self) -> Tensor:
        """Programming pulses of every device so far (deployment included), flattened."""
        return torch.cat([m.writes_per_device() for m in self.matrices])

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Inference through the tiles (read noise and converters), digital BatchNorm (batch
        statistics) and sign activations."""
        h = x.reshape(x.shape[0], -1)
        last = len(self.matrices) - 1
        for i, (matrix, norm) in enumerate(zip(self.matrices, self.model.norms, strict=True)):
            h = norm(matrix.mvm(h, generator=self.generator))
            if i < last:
                h = sign_activation(h)
        return h

    __call__ = forward
