# %% [markdown]
# # Energy of a model on tiles against a digital processor
#
# `memcim.energy.profile` runs one forward pass and prices every layer. For layers on tiles it
# reads the counters the tiles kept: Σ V² G t of every read, DAC and ADC conversions,
# accumulations, buffers. With `processor=` it prices the same layers on a digital processor
# instead: multiply-accumulates at Horowitz's 45 nm energies plus the weights fetched from
# memory, once per batch. Seconds on two cores.

# %%
import copy

import matplotlib.pyplot as plt
import torch
from torch import nn

import memcim.energy
from memcim.crossbar import TileConfig
from memcim.devices import FilamentaryRRAM
from memcim.nn import CIMConfig, convert

torch.manual_seed(0)
model = nn.Sequential(
    nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
).eval()
x = torch.rand(64, 784)  # a batch of 64 MNIST-sized inputs
chip = convert(copy.deepcopy(model), CIMConfig(tile=TileConfig(device=FilamentaryRRAM()))).eval()
report = memcim.energy.profile(chip, x)
print(report.table())

# %% [markdown]
# The same network on three digital processors, once with a batch of 64 sharing one fetch of
# the weights and once at batch 1, where every input pays for the weights (the edge case).

# %%
rows = {"RRAM tiles": report.energy_pj}
for processor in (memcim.energy.EDGE_CPU, memcim.energy.MCU, memcim.energy.EDGE_NPU):
    for batch in (64, 1):
        digital = memcim.energy.profile(model, x, processor=processor, batch=batch)
        rows[f"{processor.name}, batch {batch}"] = digital.energy_pj
for name, pj in rows.items():
    print(f"{name:<42} {pj / 1e3:10.1f} nJ per inference")

# %%
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.barh(list(rows), [pj / 1e3 for pj in rows.values()])
ax.set_xscale("log")
ax.set_xlabel("energy per inference (nJ)")
plt.show()

# %% [markdown]
# The `energy-batch` experiment sweeps the batch size; `energy-bayes` prices Monte-Carlo
# sampling, and `sensor-fusion` a whole pipeline of chiplets from their counters.
