"""Spiking networks whose synapses are crossbar tiles.

:class:`SpikingMLP` is a stack of ``nn.Linear`` synapses and snnTorch leaky integrate-and-
fire neurons (``snntorch.Leaky``, surrogate gradients for training): at every time step the
input spikes drive the first synapses, each layer's membrane integrates its synaptic current
and fires on crossing its threshold, and its spikes drive the next synapses.
:func:`on_tiles` puts the synapses on crossbar tiles (:func:`memcim.nn.convert`): the spikes
drive the word lines and the bit-line currents feed the membranes; the neurons stay as they
are.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from memcim._errors import is_real, require
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.nn import CIMConfig, convert


class SpikingMLP(nn.Module):
    """Synapses ``nn.Linear(sizes[i], sizes[i + 1])`` (no bias: a spike-driven crossbar has no
    bias line) each followed by ``snntorch.Leaky(beta, threshold)``.

    ``forward(spikes [T, N, sizes[0]])`` returns the last layer's spikes and membrane
    potentials, both ``[T, N, sizes[-1]]``; every membrane starts at 0. ``beta``: membrane
    decay per step; ``threshold``: firing threshold (reset by subtraction, snnTorch's default);
    ``device``: where synapses and neurons live (default torch's default device).
    """

    def __init__(self, sizes: tuple[int, ...], *, beta: float = 0.9, threshold: float = 1.0,
                 device: torch.device | str | None = None) -> None:  # fmt: skip
        import snntorch

        super().__init__()
        require(len(sizes) >= 2 and all(isinstance(s, int) and s >= 1 for s in sizes), "sizes",
                sizes, "two or more layer widths, each an int >= 1")  # fmt: skip
        require(is_real(beta) and 0 <= beta <= 1, "beta", beta, "in [0, 1]")
        require(is_real(threshold) and threshold > 0, "threshold", threshold, "> 0")
        self.synapses = nn.ModuleList(
            nn.Linear(a, b, bias=False, device=device) for a, b in itertools.pairwise(sizes)
        )
        # snnTorch's neurons take no device: their buffers (β, threshold, membrane) are made on
        # the default device, which this context sets for their construction.
        with torch.device(self.synapses[0].weight.device):
            self.neurons = nn.ModuleList(
                snntorch.Leaky(beta=beta, threshold=threshold) for _ in self.synapses
            )
        self.sizes, self.beta, self.threshold = tuple(sizes), float(beta), float(threshold)

    def forward(self, spikes: Tensor) -> tuple[Tensor, Tensor]:
        require(spikes.dim() == 3 and spikes.shape[-1] == self.sizes[0], "spikes",
                tuple(spikes.shape), f"[T, N, {self.sizes[0]}]")  # fmt: skip
        membranes = [neuron.init_leaky() for neuron in self.neurons]
        out_spikes, out_membranes = [], []
        for x in spikes:  # time steps: each depends on the membranes the last one left
            for i, (synapse, neuron) in enumerate(zip(self.synapses, self.neurons, strict=True)):
                x, membranes[i] = neuron(synapse(x), membranes[i])
            out_spikes.append(x)
            out_membranes.append(membranes[-1])
        return torch.stack(out_spikes), torch.stack(out_membranes)


def _run_watching_synapses(model: SpikingMLP, spikes: Tensor, watch) -> None:
    """Run ``model`` on ``spikes``, calling ``watch(i, inputs, currents)`` after synapse ``i``
    at every time step."""
    hooks = [synapse.register_forward_hook(lambda _, args, out, i=i: watch(i, args[0], out))
             for i, synapse in enumerate(model.synapses)]  # fmt: skip
    try:
        model(spikes)
    finally:
        for hook in hooks:
            hook.remove()


def synapse_inputs(model: SpikingMLP, spikes: Tensor) -> list[Tensor]:
    """The spike trains each synapse of ``model`` receives when it runs on ``spikes``
    [T, N, sizes[0]]: one [T, N, sizes[i]] per synapse, the first being ``spikes`` itself."""
    seen: list[list[Tensor]] = [[] for _ in model.synapses]
    _run_watching_synapses(model, spikes, lambda i, inputs, _: seen[i].append(inputs))
    return [torch.stack(steps) for steps in seen]


def current_error(model: SpikingMLP, twin: SpikingMLP, spikes: Tensor) -> tuple[float, float]:
    """How far ``twin``'s synaptic currents (e.g. on tiles) are from ``model``'s when both
    synapses receive the same spikes, ``model``'s own on ``spikes`` [T, N, sizes[0]]:
    (largest |difference|, largest |current| of ``model``), in the membranes' units. Fed the
    same inputs, the comparison is free of the cascade that one spike moved by rounding starts
    downstream. Compared step by step as ``model`` runs (nothing stored); ``twin``'s synapses
    are read once per step, and tiles count those reads."""
    sizes = getattr(twin, "sizes", type(twin).__name__)
    require(isinstance(twin, SpikingMLP) and twin.sizes == model.sizes, "twin", sizes,
            f"a SpikingMLP of sizes {model.sizes}")  # fmt: skip
    worst = [0.0, 0.0]  # largest |difference|, largest |current|

    def compare(i: int, inputs: Tensor, currents: Tensor) -> None:
        worst[0] = max(worst[0], float((twin.synapses[i](inputs) - currents).abs().max()))
        worst[1] = max(worst[1], float(currents.abs().max()))

    with torch.no_grad():
        _run_watching_synapses(model, spikes, compare)
    return worst[0], worst[1]


#: Spikes are 0 or 1: they switch the word lines on and off, with no DAC.
SPIKE_DRIVE = ConverterConfig(bits=None)


def on_tiles(model: SpikingMLP, config: CIMConfig | None = None) -> SpikingMLP:
    """A copy of ``model`` whose synapses are crossbar layers (:func:`memcim.nn.convert` with
    ``config``; default :class:`~memcim.nn.CIMConfig` with the DAC left out); the model is not
    modified. The spikes drive the word lines directly (1-bit, at the read voltage), so
    ``config.tile.dac`` must be :data:`SPIKE_DRIVE` (no DAC: no conversion is counted);
    the ADC reads the bit-line currents into the membranes."""
    require(isinstance(model, SpikingMLP), "model", type(model).__name__, "a SpikingMLP")
    config = config if config is not None else CIMConfig(tile=TileConfig(dac=SPIKE_DRIVE))
    require(config.tile.dac.bits is None, "config.tile.dac.bits", config.tile.dac.bits,
            "None: spikes drive the word lines without a DAC (use SPIKE_DRIVE)")  # fmt: skip
    # A fresh copy rather than a deep copy: snnTorch neurons keep their last membrane, a
    # tensor in the autograd graph that cannot be deep-copied.
    twin = SpikingMLP(model.sizes, beta=model.beta, threshold=model.threshold,
                      device=model.synapses[0].weight.device)  # fmt: skip
    twin.load_state_dict(model.state_dict())
    return convert(twin.train(model.training), config)
