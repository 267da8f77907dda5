# %% [markdown]
# # Your PyTorch model on PCM tiles, over a year
#
# Train a small MLP in plain PyTorch, put its linear layers on phase-change-memory tiles with
# `memcim.nn.convert`, program them once and read them from one second to one year after
# programming. PCM conductance drifts as G(t) = G(t0) (t / t0)^-ν, with read noise that grows
# with time: the outputs shrink and get noisier. A global drift compensation (on by default)
# rescales them from a reference read. On this small, well-separated task the argmax survives
# a year either way; what drift takes away shows in the outputs' scale.
#
# Runs in well under a minute on two cores (scikit-learn's 8×8 digits, no download).

# %%
import copy

import matplotlib.pyplot as plt
import torch
from torch import nn

import memcim
from memcim.crossbar import TileConfig
from memcim.data import load_digits
from memcim.devices import PCM
from memcim.nn import CIMConfig, convert, drift_to
from memcim.training import accuracy, init_default_, train

torch.manual_seed(0)
data = load_digits(seed=0, standardize=True)
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
init_default_(model, torch.Generator().manual_seed(0))
train(
    model,
    data.x_train,
    data.y_train,
    epochs=30,
    lr=1e-2,
    batch_size=64,
    generator=torch.Generator().manual_seed(1),
    progress=False,
)
print(f"software accuracy: {accuracy(model, data.x_test, data.y_test):.1%}")

# %% [markdown]
# `convert` swaps the model's `nn.Linear` layers for `CIMLinear` layers on tiles of the device
# you choose, in place, so convert a copy to keep the software
# model. In `eval()` mode the first forward programs the devices (with their
# programming noise); `drift_to(model, t_s)` sets the time of the next reads.

# %%
times = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86_400.0, "1 month": 2.6e6, "1 year": 3.15e7}
accuracies = {}
for compensated in (True, False):
    tile = TileConfig(device=PCM(), drift_compensation=compensated)
    chip = convert(copy.deepcopy(model), CIMConfig(tile=tile, seed=0)).eval()
    accuracies[compensated] = []
    for label, t_s in times.items():
        drift_to(chip, t_s)
        accuracies[compensated].append(accuracy(chip, data.x_test, data.y_test))
        with torch.no_grad():
            scale = chip(data.x_test).abs().mean() / model(data.x_test).abs().mean()
        print(
            f"compensation {'on ' if compensated else 'off'} {label:>8}: accuracy "
            f"{accuracies[compensated][-1]:.1%}, mean |output| {scale:.2f} x software"
        )

# %%
fig, ax = plt.subplots(figsize=(5, 3))
for compensated, values in accuracies.items():
    ax.plot(
        list(times.values()),
        [100 * a for a in values],
        "o-",
        label=f"PCM, drift compensation {'on' if compensated else 'off'}",
    )
ax.axhline(100 * accuracy(model, data.x_test, data.y_test), color="grey", ls=":", label="software")
ax.set_xscale("log")
ax.set_xlabel("time after programming (s)")
ax.set_ylabel("test accuracy (%)")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# Next: hardware-aware training (`model.train()` on the converted model injects the devices'
# noise) and the `hwa-drift` experiment, which does this on Fashion-MNIST over a year.
# memcim version used: see below.

# %%
print(memcim.__version__)
