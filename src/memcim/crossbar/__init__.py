"""Crossbar arrays: weight <-> conductance mapping, DAC/ADC, tiles, tiled matrices and the exact
circuit solve (IR drop, sneak paths)."""

from memcim.crossbar.circuit import (
    CircuitConvergenceError,
    CrossbarCircuit,
    CrossbarSolution,
    CrossbarSolver,
    first_order_currents,
    first_order_transfer,
    solve_crossbar,
)
from memcim.crossbar.converters import ConverterConfig, quantize
from memcim.crossbar.mapping import MappingConfig
from memcim.crossbar.tile import Tile, TileConfig, TileCounters
from memcim.crossbar.tiled import TiledMatrix

__all__ = [
    "CircuitConvergenceError",
    "ConverterConfig",
    "CrossbarCircuit",
    "CrossbarSolution",
    "CrossbarSolver",
    "MappingConfig",
    "Tile",
    "TileConfig",
    "TileCounters",
    "TiledMatrix",
    "first_order_currents",
    "first_order_transfer",
    "quantize",
    "solve_crossbar",
]
