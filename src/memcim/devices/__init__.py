"""Device models: the physics and statistics of one memory cell.

Every model is a frozen, validated dataclass implementing :class:`Device`: ``program`` returns a
:class:`DeviceState`, ``drift`` and ``read`` give the conductance (µS) at a time since
programming. Defaults cite their source; see ``docs/references.md``.
"""

from memcim.devices.base import Device, DeviceState
from memcim.devices.digital import GainCell, SRAMCell
from memcim.devices.fecap import FeCap, LevelUpdate
from memcim.devices.ideal import IdealDevice
from memcim.devices.laplace import LaplaceRRAM
from memcim.devices.mram import STTMRAM
from memcim.devices.pcm import PCM
from memcim.devices.rram import FilamentaryRRAM
from memcim.devices.twod import TwoDFET

__all__ = [
    "PCM",
    "STTMRAM",
    "Device",
    "DeviceState",
    "FeCap",
    "FilamentaryRRAM",
    "GainCell",
    "IdealDevice",
    "LaplaceRRAM",
    "LevelUpdate",
    "SRAMCell",
    "TwoDFET",
]
