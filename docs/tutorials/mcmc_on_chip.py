# %% [markdown]
# # On-chip learning: Metropolis–Hastings with the devices' programming noise
#
# Programming an RRAM device to a target lands somewhere near it (cycle-to-cycle noise). An
# in-situ Markov chain uses that as its proposal: re-program a row of the array, read the
# model's likelihood through the tiles, keep or restore. The chain's samples form a Bayesian
# posterior, learned entirely inside the array. `memcim.learning.InSituMCMC` runs several
# chains at once on one set of tiles and counts every programming pulse.
#
# Logistic regression on scikit-learn's breast-cancer set (30 features). Under a minute.

# %%
import matplotlib.pyplot as plt
import torch

from memcim.data import load_breast_cancer
from memcim.learning.mcmc import InSituMCMC, InSituMCMCConfig
from memcim.metrics import accuracy

data = load_breast_cancer(seed=0)  # standardised on the training split
sampler = InSituMCMC(InSituMCMCConfig(chains=8, steps=1500, burn_in=500, thin=10))
stats = sampler.fit(data.x_train, data.y_train, generator=torch.Generator().manual_seed(0))
probs = sampler.predict_proba(data.x_test)  # [N, 2], averaged over the kept samples
print(f"test accuracy {accuracy(probs, data.y_test):.1%}, acceptance {stats.acceptance_rate:.1%}")
print(f"programming pulses: {stats.cell_writes}, most on one device: {stats.writes_per_device_max}")
print("training energy (pJ):", {k: round(v) for k, v in stats.energy_pj.items()})

# %% [markdown]
# The log-likelihood of every chain over the steps: the chains climb from their random start
# and then wander around the posterior's bulk.

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(stats.log_likelihood.numpy(), lw=0.8)
ax.axvline(500, color="grey", ls=":", label="end of burn-in")
ax.set_xlabel("step")
ax.set_ylabel("log p(D | θ)")
ax.legend()
plt.show()

# %% [markdown]
# `memcim run mcmc-cancer` compares this posterior with NUTS (Pyro) and with a
# software chain of the same proposals; hybrid synapses (`memcim.learning.hybrid`) are the
# other on-chip learner, trained by gradients into a training memory beside the RRAM.
