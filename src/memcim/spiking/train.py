"""Training a spiking network on rate-coded images, and its class probabilities.

The network is trained on the cross-entropy of its output spike counts (snnTorch's
``ce_count_loss``: a softmax over the counts of the T steps), backpropagating through time
with the neurons' surrogate gradients. Its class probabilities are that same softmax, so what
it was trained on is what it reports; several draws of the rate code give a Monte-Carlo
sample dimension [S, N, C], from which :func:`memcim.metrics.decompose` takes the spread.
"""

from __future__ import annotations

import torch
from torch import Tensor

from memcim._errors import check_count, check_generator, require
from memcim.spiking.encoding import rate
from memcim.spiking.network import SpikingMLP
from memcim.training import train


def _flat(images: Tensor, inputs: int) -> Tensor:
    require(isinstance(images, Tensor) and images[0].numel() == inputs, "images",
            tuple(getattr(images, "shape", ())), f"[N, ...] with {inputs} pixels each")  # fmt: skip
    return images.reshape(len(images), inputs)


def train_spiking(
    model: SpikingMLP,
    images: Tensor,
    labels: Tensor,
    *,
    steps: int,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    progress: bool = True,
) -> SpikingMLP:
    """Train ``model`` in place on ``images`` [N, ...] (pixels in [0, 1]) rate-coded over
    ``steps`` time steps, fresh spikes for every batch; Adam with cosine decay
    (:func:`memcim.training.train`). ``generator`` shuffles and draws the spikes."""
    from snntorch import functional as SF

    check_count(steps, "steps", 1)
    check_generator(generator)
    x = _flat(images, model.sizes[0])
    count_loss = SF.ce_count_loss()

    def loss(net: SpikingMLP, xb: Tensor, yb: Tensor) -> Tensor:
        out_spikes, _ = net(rate(xb, steps, generator=generator))
        return count_loss(out_spikes, yb)

    return train(model, x, labels, epochs=epochs, lr=lr, batch_size=batch_size,
                 generator=generator, loss_fn=loss, desc="spiking network",
                 progress=progress)  # fmt: skip


def count_probabilities(out_spikes: Tensor) -> Tensor:
    """Class probabilities [N, C]: the softmax of the output spike counts of ``out_spikes``
    [T, N, C] (the quantity ``ce_count_loss`` trains)."""
    return torch.softmax(out_spikes.sum(0), dim=-1)


@torch.no_grad()
def predict_spiking(
    model: SpikingMLP,
    images: Tensor,
    *,
    steps: int,
    draws: int,
    generator: torch.Generator,
    batch_size: int = 1000,
) -> Tensor:
    """Class probabilities [draws, N, C] of ``draws`` independent rate codes of ``images``
    (each a fresh spike train, and on tiles fresh read noise), in eval mode."""
    check_count(steps, "steps", 1)
    check_count(draws, "draws", 1)
    check_count(batch_size, "batch_size", 1)
    check_generator(generator)
    x = _flat(images, model.sizes[0])
    model.eval()
    out = []
    for _ in range(draws):
        chunks = [count_probabilities(model(rate(x[i : i + batch_size], steps,
                                                 generator=generator))[0])
                  for i in range(0, len(x), batch_size)]  # fmt: skip
        out.append(torch.cat(chunks))
    return torch.stack(out)
