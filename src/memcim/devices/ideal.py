"""A noiseless device for closed-form checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from memcim.devices.base import Device, DeviceState


@dataclass(frozen=True, kw_only=True)
class IdealDevice(Device):
    """Programs exactly to its target, never drifts, reads without noise.

    The defaults borrow the 0–25 µS window of :class:`~memcim.devices.PCM` so that ideal and
    physical runs map weights identically; energies are zero so that counters alone show up.
    """

    g_min_us: float = 0.0
    g_max_us: float = 25.0
    e_read_pj: float = 0.0
    e_write_pj: float = 0.0
    t_write_s: float = 0.0
    endurance_cycles: float = math.inf

    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        return self.advance(state, self.check_target(g_target_us).clone())
