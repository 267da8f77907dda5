# %% [markdown]
# # A Bayesian network whose weight samples RRAM devices draw
#
# A Bayesian neural network keeps a distribution over each weight, here N(μ, σ²). On a
# crossbar the devices can draw the samples themselves: with the *differential* scheme each
# weight is a pair of RRAM devices whose programming noise, G_a − G_b, realises a sample,
# re-programmed for each of the K samples the tiles hold. `memcim.bayes.to_hardware` does this
# and runs every sample's product through the tiles (DAC, array, read noise, ADC).
#
# We train a Bayesian MLP on scikit-learn's digits, put it on RRAM, and look at its
# uncertainty on test digits and on images of pure noise. Under a minute on two cores.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

from memcim.bayes import (
    BayesConfig,
    HardwareSampling,
    SamplingScheme,
    predict,
    to_bayesian,
    to_hardware,
    train_elbo,
)
from memcim.data import load_digits
from memcim.devices import FilamentaryRRAM
from memcim.metrics import accuracy, ece, ood_auroc
from memcim.training import init_default_, train

data = load_digits(seed=0)  # pixels scaled to [0, 1]
det = init_default_(
    nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)), torch.Generator().manual_seed(0)
)
train(
    det,
    data.x_train,
    data.y_train,
    epochs=30,
    lr=1e-2,
    batch_size=64,
    generator=torch.Generator().manual_seed(1),
    progress=False,
)
bnn = to_bayesian(det, config=BayesConfig(prior_sigma=0.1, sigma_init=0.01, seed=2))
train_elbo(
    bnn,
    data.x_train,
    data.y_train,
    epochs=30,
    lr=1e-2,
    batch_size=64,
    generator=torch.Generator().manual_seed(3),
    kl_weight=0.005,
    progress=False,
)
bnn.eval()

# %% [markdown]
# `to_hardware` programs K = 32 samples of every weight into RRAM tiles. `predict` returns the
# predictive mean and its decomposition (nats): total = aleatoric + epistemic, the epistemic
# part being the disagreement between samples.

# %%
sampling = HardwareSampling(scheme=SamplingScheme.DIFFERENTIAL, device=FilamentaryRRAM())
hw, report = to_hardware(bnn, sampling, samples=32, generator=torch.Generator().manual_seed(4))
noise = torch.rand(len(data.x_test), 64, generator=torch.Generator().manual_seed(5))
digits, ood = predict(hw, data.x_test, samples=32), predict(hw, noise, samples=32)
print(
    f"accuracy on RRAM: {accuracy(digits.mean, data.y_test):.1%}, "
    f"ECE {ece(digits.mean, data.y_test):.3f}"
)
print(
    f"noise images flagged by epistemic uncertainty: AUROC "
    f"{ood_auroc(digits.epistemic, ood.epistemic):.3f}"
)

# %%
fig, ax = plt.subplots(figsize=(5, 3))
bins = torch.linspace(0, float(ood.epistemic.max()), 30)
ax.hist(digits.epistemic, bins=bins, alpha=0.6, label="test digits")
ax.hist(ood.epistemic, bins=bins, alpha=0.6, label="uniform noise")
ax.set_xlabel("epistemic uncertainty (nats)")
ax.set_ylabel("images")
ax.legend()
plt.show()

# %% [markdown]
# The `bayes-ood` experiment does this on MNIST with every sampling scheme, 8-bit converters,
# Fashion-MNIST and Omniglot as out-of-distribution sets, and drift over a year.
