"""On-chip learning rules that run on simulated memory arrays.

- :mod:`memcim.learning.mcmc`: :class:`InSituMCMC`, Bayesian learning by Metropolis–Hastings
  whose proposals are RRAM programming draws (Dalgaty [7]).
- :mod:`memcim.learning.reference`: software references for it: Gaussian random-walk MH and
  NUTS (Pyro, optional).
- :mod:`memcim.learning.hybrid`: :class:`HybridTrainer`, hybrid synapses: updates accumulate
  in a training memory (:mod:`memcim.learning.memories`: FeCAP, SRAM, gain cell) and move to
  multi-level RRAM every k samples; direct RRAM SGD and float SGD as baselines.
- :mod:`memcim.learning.meta`: MAML / ANIL meta-training with ``torch.func``
  (:class:`~memcim.learning.meta.MetaLearner`) and on-chip adaptation of the meta-trained
  network on tiles (:class:`~memcim.learning.meta.onchip.OnChipAdapter`).
- :mod:`memcim.learning.metaplastic`: metaplastic binarized / multi-level networks
  (:class:`~memcim.learning.metaplastic.AdamMeta`) in software and on RRAM tiles.
- :mod:`memcim.learning.mesu`: the MESU update of (μ, σ) with a memory window
  (:class:`~memcim.learning.mesu.MESU`).
- :mod:`memcim.learning.network`: the small fully connected models they share.
"""

from memcim.learning.hybrid import HybridConfig, HybridStats, HybridTrainer, software_sgd
from memcim.learning.mcmc import InSituMCMC, InSituMCMCConfig, MCMCStats

__all__ = [
    "HybridConfig",
    "HybridStats",
    "HybridTrainer",
    "InSituMCMC",
    "InSituMCMCConfig",
    "MCMCStats",
    "software_sgd",
]
