"""Matrices larger than one tile: split over a grid of tiles, partial sums added digitally."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from memcim._errors import ConfigError, require
from memcim._modules import under
from memcim.crossbar._stacked import MAX_BATCH, StackedColumn, read_column
from memcim.crossbar.tile import Tile, TileConfig, TileCounters
from memcim.devices.base import all_finite, check_time


class TiledMatrix:
    """An ``out_features`` × ``in_features`` weight matrix spread over tiles of at most
    ``max_rows`` × ``max_cols``.

    Inputs are split along the rows (word lines) of a column of tiles; each tile's outputs go
    through its own ADC and the partial sums are added digitally. Every tile calibrates its own
    weight scale and ADC range.

    The tiles of a column block are read together, as stacked tensors, where the read allows
    it (a batch [B, in], per-time or no read noise, max-abs DACs, calibrated ADCs: see
    ``memcim.crossbar._stacked``): the same per-tile converters, scaling and counters in fewer,
    larger tensor operations, equal to the tile-by-tile read to float tolerance. Set
    ``stacked_reads = False`` to read tile by tile.

    Args:
        out_features, in_features: the matrix shape, PyTorch [out, in] layout.
        config: configuration shared by every tile.
        max_rows: word lines per tile (inputs), aihwkit's default 512.
        max_cols: logical output columns per tile, default 512.
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        config: TileConfig | None = None,
        *,
        max_rows: int = 512,
        max_cols: int = 512,
    ) -> None:
        for name, value in (
            ("out_features", out_features),
            ("in_features", in_features),
            ("max_rows", max_rows),
            ("max_cols", max_cols),
        ):
            require(isinstance(value, int) and value >= 1, name, value, "must be an int >= 1")
        self.out_features, self.in_features = out_features, in_features
        self.config = config if config is not None else TileConfig()
        self.row_splits = split_sizes(in_features, max_rows)
        self.col_splits = split_sizes(out_features, max_cols)
        # tiles[r][c] handles inputs in row block r and outputs in column block c.
        self.tiles = [
            [Tile(rows, cols, self.config) for cols in self.col_splits] for rows in self.row_splits
        ]
        self.stacked_reads = True
        self._stacked: dict[int, StackedColumn] = {}  # column block -> its stacked state

    @property
    def grid(self) -> tuple[int, int]:
        """(row blocks, column blocks)."""
        return len(self.row_splits), len(self.col_splits)

    def _blocks(self, weights: Tensor):
        rows = torch.split(weights, self.row_splits, dim=-1)
        for r, row_block in enumerate(rows):
            for c, block in enumerate(torch.split(row_block, self.col_splits, dim=-2)):
                yield self.tiles[r][c], block

    def program(
        self,
        weights: Tensor,
        *,
        generator: torch.Generator | None = None,
        samples: int | None = None,
    ) -> TiledMatrix:
        """Program ``weights`` [..., out, in] onto the tiles (see :meth:`Tile.program`)."""
        if (
            not isinstance(weights, Tensor)
            or weights.dim() < 2
            or tuple(weights.shape[-2:]) != (self.out_features, self.in_features)
        ):
            shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
            raise ConfigError(
                f"weights have shape {shape}; expected [..., {self.out_features}, "
                f"{self.in_features}]"
            )
        for tile, block in self._blocks(weights):
            tile.program(block, generator=generator, samples=samples)
        return self

    def program_conductances(
        self,
        planes_us: Tensor,
        *,
        w_max: float,
        generator: torch.Generator | None = None,
        repeats: int | None = None,
    ) -> TiledMatrix:
        """Program explicit targets [..., planes, in, out] (µS) onto the tiles, each tile its
        block of rows (inputs) and columns (outputs); see :meth:`Tile.program_conductances`."""
        if (
            not isinstance(planes_us, Tensor)
            or planes_us.dim() < 3
            or tuple(planes_us.shape[-2:]) != (self.in_features, self.out_features)
        ):
            shape = tuple(planes_us.shape) if isinstance(planes_us, Tensor) else planes_us
            raise ConfigError(f"planes_us has shape {shape}; expected [..., planes, "
                              f"{self.in_features}, {self.out_features}]")  # fmt: skip
        # _blocks splits the [out, in] layout; the targets are in the tiles' [in, out] one.
        for tile, block in self._blocks(planes_us.transpose(-1, -2)):
            tile.program_conductances(block.transpose(-1, -2), w_max=w_max, generator=generator,
                                      repeats=repeats)  # fmt: skip
        return self

    def reprogram(
        self,
        old_weights: Tensor,
        new_weights: Tensor,
        *,
        generator: torch.Generator | None = None,
        only_moved: bool = False,
    ) -> int:
        """Re-program, tile by tile, the cells whose targets differ between ``old_weights``
        and ``new_weights`` ([..., out, in]); see :meth:`Tile.reprogram`. Returns the cells
        written."""
        return sum(
            tile.reprogram(old, new, generator=generator, only_moved=only_moved)
            for (tile, old), (_, new) in zip(
                self._blocks(old_weights), self._blocks(new_weights), strict=True
            )
        )

    def writes_per_device(self) -> Tensor:
        """Programming pulses every device of every tile has taken so far, flattened tile by
        tile (row of tiles, then column)."""
        return torch.cat([tile.state.writes.flatten() for row in self.tiles for tile in row])

    def select_copies(self, index: Tensor) -> TiledMatrix:
        """Keep the Monte-Carlo copies ``index`` on every tile (:meth:`Tile.select_copies`)."""
        for row in self.tiles:
            for tile in row:
                tile.select_copies(index)
        return self

    def mvm(
        self, x: Tensor, *, t_s: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """``x @ W.T`` over all tiles: x [..., B, in] -> [..., B, out]."""
        if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[-1] != self.in_features:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(
                f"x has shape {shape}; its last dimension must be in_features={self.in_features}"
            )
        chunks = torch.split(x, self.row_splits, dim=-1)
        stackable = self._stackable_input(x)
        outputs = []
        for c in range(len(self.col_splits)):
            total = self._stacked_read(c, chunks, t_s, generator) if stackable else None
            if total is not None:
                outputs.append(total)
                continue
            total = self.tiles[0][c].mvm(chunks[0], t_s=t_s, generator=generator)
            for r in range(1, len(chunks)):  # digital accumulation of the partial sums
                total += self.tiles[r][c].mvm(chunks[r], t_s=t_s, generator=generator)
            outputs.append(total)
        return torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]

    def _stackable_input(self, x: Tensor) -> bool:
        """Whether ``x`` may be read stacked: finite floats [B, in], 1 <= B <= MAX_BATCH.
        Anything else goes tile by tile, which also reports bad inputs."""
        return (
            self.stacked_reads
            and x.dim() == 2
            and 0 < x.shape[0] <= MAX_BATCH
            and x.is_floating_point()
            and all_finite(x)
        )

    def _stacked_read(
        self, c: int, chunks: tuple[Tensor, ...], t_s: float, generator: torch.Generator | None
    ) -> Tensor | None:
        """Column block ``c`` read as stacked tensors, or ``None`` for the tile-by-tile path."""
        column = [row[c] for row in self.tiles]
        out = read_column(column, list(chunks), check_time(t_s), generator, self._stacked.get(c))
        if out is None:
            return None
        y, self._stacked[c] = out
        return y

    def read_weights(
        self, t_s: float = 0.0, *, generator: torch.Generator | None = None,
        noisy: bool = False, draws: int | None = None,
    ) -> Tensor:  # fmt: skip
        """The weights held at ``t_s`` (drifted mean, compensation applied), [..., out, in].

        ``generator`` serves the drift-calibration reads a tile may take first and, with
        ``noisy``, the read noise; ``draws``: that many noisy reads along a new leading dim
        (see :meth:`Tile.read_weights`).
        """
        kw = {"generator": generator, "noisy": noisy, "draws": draws}
        rows = [torch.cat([tile.read_weights(t_s, **kw) for tile in row], dim=-2)
                for row in self.tiles]  # fmt: skip
        return torch.cat(rows, dim=-1)

    def calibrate(
        self, x: Tensor, *, t_s: float = 0.0, generator: torch.Generator | None = None
    ) -> None:
        """Calibrate every tile's ADC on inputs ``x`` [..., B, in]."""
        chunks = torch.split(x, self.row_splits, dim=-1)
        for r, chunk in enumerate(chunks):
            for tile in self.tiles[r]:
                tile.calibrate(chunk, t_s=t_s, generator=generator)

    def _gather(self, tensors_of: Callable[[Tile], dict[str, Tensor]]) -> dict[str, Tensor]:
        """``tensors_of(tile)`` of every tile, keys prefixed ``"r.c."`` by grid position."""
        return {
            f"{r}.{c}.{key}": value
            for r, row in enumerate(self.tiles)
            for c, tile in enumerate(row)
            for key, value in tensors_of(tile).items()
        }

    def _scatter(self, tensors: dict[str, Tensor],
                 load: Callable[[Tile, dict[str, Tensor]], None]) -> None:  # fmt: skip
        """``load(tile, its entries)`` for every tile, the inverse of :meth:`_gather`."""
        for r, row in enumerate(self.tiles):
            for c, tile in enumerate(row):
                load(tile, under(tensors, f"{r}.{c}."))

    def state_tensors(self) -> dict[str, Tensor]:
        """The programmed state of every tile, keys prefixed ``"r.c."`` by grid position."""
        return self._gather(Tile.state_tensors)

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore a state saved by :meth:`state_tensors`."""
        self._scatter(tensors, Tile.load_state_tensors)

    def read_cache_tensors(self) -> dict[str, Tensor]:
        """Every tile's cached read (:meth:`Tile.read_cache_tensors`), keys prefixed ``"r.c."``."""
        return self._gather(Tile.read_cache_tensors)

    def load_read_caches(self, tensors: dict[str, Tensor]) -> None:
        """Restore the reads saved by :meth:`read_cache_tensors` (a tile with none: none)."""
        self._scatter(tensors, Tile.load_read_cache)

    def to(self, device: torch.device | str) -> TiledMatrix:
        """Move every tile to ``device`` (:meth:`Tile.to`), in place; returns ``self``."""
        for row in self.tiles:
            for tile in row:
                tile.to(device)
        return self

    def reset_read_cache(self) -> None:
        """See :meth:`Tile.reset_read_cache`."""
        for row in self.tiles:
            for tile in row:
                tile.reset_read_cache()

    @property
    def programmed(self) -> bool:
        """Whether every tile holds programmed cells."""
        return all(tile.state is not None for row in self.tiles for tile in row)

    @property
    def counters(self) -> TileCounters:
        """Counters summed over tiles (a fresh object; reset tiles with :meth:`reset_counters`)."""
        total = TileCounters()
        for row in self.tiles:
            for tile in row:
                for name, value in tile.counters.as_dict().items():
                    setattr(total, name, getattr(total, name) + value)
        return total

    def reset_counters(self) -> None:
        """Zero the counters of every tile."""
        for row in self.tiles:
            for tile in row:
                tile.counters.reset()

    @property
    def mvm_latency_s(self) -> float:
        """Latency of one MVM with all tiles working in parallel (digital accumulation excluded)."""
        return max(tile.mvm_latency_s for row in self.tiles for tile in row)


def split_sizes(total: int, limit: int) -> list[int]:
    """Split ``total`` into the fewest near-equal blocks of at most ``limit``."""
    n = math.ceil(total / limit)
    base, extra = divmod(total, n)
    return [base + 1] * extra + [base] * (n - extra)
