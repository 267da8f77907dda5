"""Ready experiments: each module holds a frozen config dataclass and ``run(config, ...)``.

* :mod:`memcim.experiments.hwa_drift` — MNIST accuracy of software, converted and
  hardware-aware-trained networks on PCM and filamentary RRAM from 1 s to 1 year.

Every run writes ``results.json`` (config, seed, versions, metrics) and PNG plots to its output
folder.
"""
