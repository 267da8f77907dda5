"""Crossbar arrays: weight <-> conductance mapping, DAC/ADC, tiles and tiled matrices."""

from memcim.crossbar.converters import ConverterConfig, quantize
from memcim.crossbar.mapping import MappingConfig
from memcim.crossbar.tile import Tile, TileConfig, TileCounters
from memcim.crossbar.tiled import TiledMatrix

__all__ = [
    "ConverterConfig",
    "MappingConfig",
    "Tile",
    "TileConfig",
    "TileCounters",
    "TiledMatrix",
    "quantize",
]
