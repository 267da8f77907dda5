"""Meta-learning: MAML / ANIL meta-training in software, adaptation in software and on tiles.

- :mod:`memcim.learning.meta.maml`: :class:`MetaLearner` (``torch.func``, second order by
  default), :class:`MetaConfig`.
- :mod:`memcim.learning.meta.models`: :class:`OrtnerCNN` (Omniglot), :class:`SinusoidMLP`.
- :mod:`memcim.learning.meta.onchip`: :class:`OnChipAdapter` deploys a meta-trained network on
  tiles and runs the inner loop on chip (hardware forward, rounded updates, sparse writes).
"""

from memcim.learning.meta.maml import Evaluation, MetaConfig, MetaLearner, task_loss
from memcim.learning.meta.models import OrtnerCNN, SinusoidMLP, task_batch_norm
from memcim.learning.meta.onchip import Adaptation, OnChipAdapter, OnChipConfig

__all__ = [
    "Adaptation",
    "Evaluation",
    "MetaConfig",
    "MetaLearner",
    "OnChipAdapter",
    "OnChipConfig",
    "OrtnerCNN",
    "SinusoidMLP",
    "task_batch_norm",
    "task_loss",
]
