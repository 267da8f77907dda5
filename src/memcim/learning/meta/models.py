"""The networks of the meta-learning experiments.

Both split into ``features`` (shared, fixed during adaptation in ANIL) and ``head`` (adapted in
the inner loop): ``model(x) == model.head(model.features(x))``. Inputs may carry leading task
dimensions, ``[..., N, *sample_shape]``; the features of each task are computed together.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcim._errors import ConfigError, check_count
from memcim._modules import device_of


def _init_like_torch(module: nn.Module, generator: torch.Generator | None) -> None:
    """PyTorch's default Conv/Linear initialisation, drawn from ``generator``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                bound = 1 / math.sqrt(m.weight[0].numel())
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def task_batch_norm(h: Tensor, n: int, eps: float = 1e-5) -> Tensor:
    """Non-affine batch normalisation with each task's own batch statistics.

    Args:
        h: activations [T·n, C, H, W] of T tasks of n images each, task-major.
        n: images per task.
        eps: added to the variance, as ``nn.BatchNorm2d``.

    Normalising with the statistics of the images evaluated together makes the query
    predictions of a task depend on each other (a transductive test), as in MAML's and Ortner
    et al.'s code.
    """
    grouped = h.reshape(-1, n, *h.shape[1:])
    mean = grouped.mean(dim=(1, 3, 4), keepdim=True)
    var = grouped.var(dim=(1, 3, 4), unbiased=False, keepdim=True)
    return ((grouped - mean) * torch.rsqrt(var + eps)).reshape(h.shape)


class OrtnerCNN(nn.Module):
    """Ortner et al.'s few-shot CNN for 28×28 Omniglot (after Finn et al.'s MAML network).

    ``layers`` × [conv 3×3, stride 2, padding 1, no bias → ReLU → non-affine batch norm with the
    task's batch statistics], 28→14→7→4→2, global max-pool, readout ``channels -> n_way``
    without bias. The batch norm has neither parameters nor running statistics: every forward
    normalises a task's images with their own statistics (transductive, see
    :func:`task_batch_norm`).

    Args:
        n_way: classes per task (readout outputs).
        channels: convolution channels (Ortner et al.: 56).
        layers: convolution layers.
        generator: initialisation (PyTorch's default scheme).

    Shapes: ``features`` maps images [..., N, 1, 28, 28] to [..., N, channels].
    """

    def __init__(self, n_way: int = 5, channels: int = 56, layers: int = 4, *,
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        check_count(n_way, "n_way", 2)
        check_count(channels, "channels", 1)
        check_count(layers, "layers", 1)
        on = device_of(generator)
        self.body = nn.Sequential(*(
            nn.Conv2d(1 if i == 0 else channels, channels, 3, stride=2, padding=1, bias=False,
                      device=on)
            for i in range(layers)
        ))  # fmt: skip
        self.head = nn.Linear(channels, n_way, bias=False, device=on)
        _init_like_torch(self, generator)

    def features(self, x: Tensor) -> Tensor:
        if x.dim() < 4 or x.shape[-3] != 1:
            raise ConfigError(f"OrtnerCNN expects images [..., N, 1, H, W], got {tuple(x.shape)}")
        lead, n = x.shape[:-4], x.shape[-4]
        h = x.reshape(-1, *x.shape[-3:])
        for conv in self.body:
            h = task_batch_norm(F.relu(conv(h)), n)
        return h.amax(dim=(-2, -1)).reshape(*lead, n, -1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class SinusoidMLP(nn.Module):
    """Finn et al.'s regression network: 1 → hidden → hidden → 1 with ReLU, biases on.

    ``features`` is the identity: in MAML the whole network is the adapted ``head``.
    """

    def __init__(self, hidden: int = 40, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_count(hidden, "hidden", 1)
        on = device_of(generator)
        self.head = nn.Sequential(
            nn.Linear(1, hidden, device=on), nn.ReLU(), nn.Linear(hidden, hidden, device=on),
            nn.ReLU(), nn.Linear(hidden, 1, device=on),
        )  # fmt: skip
        _init_like_torch(self, generator)

    def features(self, x: Tensor) -> Tensor:
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.head(x)
