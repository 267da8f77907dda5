"""On-chip learning rules that run on simulated memory arrays.

- :mod:`memcim.learning.mcmc`: :class:`InSituMCMC`, Bayesian learning by Metropolis–Hastings
  whose proposals are RRAM programming draws (Dalgaty [7]).
- :mod:`memcim.learning.reference`: software references for it: Gaussian random-walk MH and
  NUTS (Pyro, optional).
- :mod:`memcim.learning.network`: the small fully connected models they share.
"""

from memcim.learning.mcmc import InSituMCMC, InSituMCMCConfig, MCMCStats

__all__ = ["InSituMCMC", "InSituMCMCConfig", "MCMCStats"]
