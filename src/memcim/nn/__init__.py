"""PyTorch layers on simulated crossbars, model conversion and hardware-aware training.

``convert(model, CIMConfig(...))`` swaps ``nn.Linear``/``nn.Conv2d`` for :class:`CIMLinear` /
:class:`CIMConv2d`; ``model.train()`` trains them hardware-aware, ``model.eval()`` programs them
once and reads the devices at the time set by :func:`drift_to`. :func:`save_checkpoint` /
:func:`load_checkpoint` write and read a model on tiles (safetensors plus a JSON of configs).
"""

from memcim.nn.checkpoint import load_checkpoint, save_checkpoint
from memcim.nn.convert import cim_layers, convert, drift_to, program, seed, to_digital
from memcim.nn.layers import CIMConfig, CIMConv2d, CIMLayer, CIMLinear, TrainingCounters
from memcim.nn.noise import ConductanceNoiseTable

__all__ = [
    "CIMConfig",
    "CIMConv2d",
    "CIMLayer",
    "CIMLinear",
    "ConductanceNoiseTable",
    "TrainingCounters",
    "cim_layers",
    "convert",
    "drift_to",
    "load_checkpoint",
    "program",
    "save_checkpoint",
    "seed",
    "to_digital",
]
