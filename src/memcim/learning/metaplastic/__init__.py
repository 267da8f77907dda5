"""Synaptic metaplasticity against catastrophic forgetting (Laborieux et al. [22];
D'Agostino et al. [21]).

- :mod:`~memcim.learning.metaplastic.layers`: binarized / multi-level quantised layers with
  hidden weights, :class:`MetaplasticMLP`.
- :mod:`~memcim.learning.metaplastic.optim`: :class:`AdamMeta`.
- :mod:`~memcim.learning.metaplastic.continual`: sequential training with per-task BatchNorm
  state, EWC, the GEM accuracy matrix.
- :mod:`~memcim.learning.metaplastic.memristor`: :class:`MemristorMetaplastic`, the quantised
  weights on multi-level RRAM tiles, re-programmed only where a level changes.
"""

from memcim.learning.metaplastic.continual import (
    EWC,
    SequenceResult,
    Task,
    evaluate,
    run_sequence,
    train_task,
)
from memcim.learning.metaplastic.layers import (
    FloatMLP,
    MetaplasticMLP,
    QuantisedLinear,
    level_index,
    level_values,
    quantise,
    sign_activation,
)
from memcim.learning.metaplastic.memristor import MemristorMetaplastic
from memcim.learning.metaplastic.optim import AdamMeta, meta_factor

__all__ = [
    "EWC",
    "AdamMeta",
    "FloatMLP",
    "MemristorMetaplastic",
    "MetaplasticMLP",
    "QuantisedLinear",
    "SequenceResult",
    "Task",
    "evaluate",
    "level_index",
    "level_values",
    "meta_factor",
    "quantise",
    "run_sequence",
    "sign_activation",
    "train_task",
]
