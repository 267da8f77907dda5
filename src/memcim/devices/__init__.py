"""Device models: the physics and statistics of one memory cell.

Every model is a frozen, validated dataclass implementing :class:`Device`: ``program`` returns a
:class:`DeviceState`, ``drift`` and ``read`` give the conductance (µS) at a time since
programming. Defaults cite their source; see ``REFERENCES.md``.
"""

from memcim.devices.base import Device, DeviceState
from memcim.devices.ideal import IdealDevice
from memcim.devices.pcm import PCM

__all__ = ["Device", "DeviceState", "IdealDevice", "PCM"]
