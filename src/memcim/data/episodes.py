"""N-way K-shot episodes for few-shot and meta-learning (Omniglot / MAML style).

An episode draws ``n_way`` distinct classes, each with at least ``k_shot + q_queries`` examples,
then ``k_shot + q_queries`` distinct examples of each class; the classes are relabelled
``0..n_way-1`` in random order. Optionally each episode class is rotated by a random multiple
of 90° (the class-augmentation convention of Santoro et al. 2016 and Finn et al. 2017's MAML
code, used for on-chip MAML by Ortner et al.). Several episodes are drawn at once as a leading
batch dimension, without Python loops over episodes, classes or samples.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from memcim._errors import ConfigError, check_count, check_generator, require


class Episode(NamedTuple):
    """One episode, or a batch of ``B`` episodes (leading dimension) from ``sample(B)``.

    Support and query sets are class-major: rows ``c*k_shot .. (c+1)*k_shot-1`` of the support
    set (and ``c*q_queries ..`` of the query set) belong to episode class ``c``.

    Attributes:
        support_x: [(B,) n_way*k_shot, *sample_shape], same dtype as the sampler's ``x``.
        support_y: [(B,) n_way*k_shot] int64 episode labels 0..n_way-1.
        query_x: [(B,) n_way*q_queries, *sample_shape].
        query_y: [(B,) n_way*q_queries] int64 episode labels.
        classes: [(B,) n_way] int64 original label of each episode class.
        rotations: [(B,) n_way] int64 quarter turns (counter-clockwise, ``torch.rot90``) applied
            to each episode class, or ``None`` when the sampler does not rotate.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    classes: Tensor
    rotations: Tensor | None


class EpisodeSampler:
    """Sampler of N-way K-shot episodes from a labelled set.

    The class-to-sample table is built once (vectorised); each :meth:`sample` call draws from
    ``generator``, so a sampler built with a freshly seeded generator replays the same episodes.
    Drawing ``B`` episodes takes ``O(B * n_way * largest class size)`` random keys (8 bytes
    each): trivial for Omniglot (20 per class), about 50 MB for 100 10-way MNIST episodes.

    Args:
        x: samples [N, *sample_shape] (e.g. Omniglot images [N, 28, 28]).
        y: labels [N], integer; need not be contiguous.
        n_way: classes per episode, >= 1.
        k_shot: support examples per class, >= 1.
        q_queries: query examples per class, >= 0 (distinct from the support examples).
        generator: source of randomness, used by every :meth:`sample` call.
        rotate: rotate every example of an episode class by the same random multiple of 90°;
            needs square images (last two dimensions equal).

    Raises:
        ConfigError: a shape or count is invalid, fewer than ``n_way`` classes have
            ``k_shot + q_queries`` examples, or ``generator`` is not a ``torch.Generator``.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        n_way: int,
        k_shot: int,
        q_queries: int,
        *,
        generator: torch.Generator,
        rotate: bool = False,
    ) -> None:
        require(
            isinstance(x, Tensor) and x.ndim >= 1,
            "x",
            tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__,
            "a tensor [N, *sample_shape]",
        )
        require(
            isinstance(y, Tensor)
            and y.shape == (x.shape[0],)
            and not y.is_floating_point()
            and y.dtype != torch.bool,
            "y",
            f"{tuple(y.shape)} {y.dtype}" if isinstance(y, Tensor) else type(y).__name__,
            f"an integer label tensor [{x.shape[0]}] (one label per sample of x)",
        )
        self.n_way = check_count(n_way, "n_way", 1)
        self.k_shot = check_count(k_shot, "k_shot", 1)
        self.q_queries = check_count(q_queries, "q_queries", 0)
        self.generator = check_generator(generator)
        require(isinstance(rotate, bool), "rotate", rotate, "True or False")
        if rotate:
            require(
                x.ndim >= 3 and x.shape[-1] == x.shape[-2],
                "rotate",
                rotate,
                f"square images [N, ..., H, H] to rotate; x is {tuple(x.shape)}",
            )
        self.rotate = rotate
        self.x = x

        per_class = self.k_shot + self.q_queries
        labels, inverse, counts = torch.unique(
            y.cpu(), sorted=True, return_inverse=True, return_counts=True
        )
        eligible = counts >= per_class
        n_eligible = int(eligible.sum())
        if n_eligible < self.n_way:
            raise ConfigError(
                f"n_way={n_way!r} is invalid: only {n_eligible} of {labels.numel()} classes have "
                f"k_shot + q_queries = {per_class} examples or more"
            )
        # Padded table [C, M]: row c lists the sample indices of class c (-1 = padding).
        order = torch.argsort(inverse, stable=True)
        starts = counts.cumsum(0) - counts
        rank = torch.arange(order.numel()) - starts[inverse[order]]
        table = torch.full((labels.numel(), int(counts.max())), -1, dtype=torch.int64)
        table[inverse[order], rank] = order
        self._labels = labels[eligible]
        self._counts = counts[eligible]
        self._table = table[eligible]

    @property
    def n_classes(self) -> int:
        """Number of classes with at least ``k_shot + q_queries`` examples."""
        return self._labels.numel()

    def sample(self, n_episodes: int | None = None) -> Episode:
        """Draw one episode, or ``n_episodes`` independent episodes stacked on dimension 0.

        Args:
            n_episodes: ``None`` for a single episode without a batch dimension, else ``B >= 1``.

        Returns:
            :class:`Episode`; with ``n_episodes=B`` every field has a leading dimension ``B``.

        Raises:
            ConfigError: ``n_episodes`` is not ``None`` or an integer >= 1.
        """
        batch = 1 if n_episodes is None else check_count(n_episodes, "n_episodes", 1)
        n, k, m = self.n_way, self.k_shot, self.k_shot + self.q_queries
        gen, dev = self.generator, self.generator.device
        # Top-n of i.i.d. uniform keys: a uniformly random n-subset in uniformly random order,
        # so the relabelling 0..n-1 is random too. float64 keys make ties negligible.
        keys = torch.rand(batch, self.n_classes, generator=gen, dtype=torch.float64, device=dev)
        cls = keys.topk(n, dim=1).indices.cpu()  # [B, n] rows of the table
        width = self._table.shape[1]
        keys = torch.rand(batch, n, width, generator=gen, dtype=torch.float64, device=dev).cpu()
        valid = torch.arange(width) < self._counts[cls].unsqueeze(-1)
        rank = keys.masked_fill(~valid, -1.0).topk(m, dim=2).indices  # [B, n, m] distinct
        index = self._table[cls.unsqueeze(-1), rank]  # [B, n, m] sample indices
        items = self.x[index.to(self.x.device)]  # [B, n, m, *sample_shape]
        rotations = None
        if self.rotate:
            rotations = torch.randint(0, 4, (batch, n), generator=gen, device=dev).cpu()
            turned = torch.stack([torch.rot90(items, r, dims=(-2, -1)) for r in range(4)])
            b_idx = torch.arange(batch, device=items.device).unsqueeze(1)
            n_idx = torch.arange(n, device=items.device).unsqueeze(0)
            items = turned[rotations.to(items.device), b_idx, n_idx]
        shape = items.shape[3:]
        labels = torch.arange(n, device=items.device)
        episode = Episode(
            support_x=items[:, :, :k].reshape(batch, n * k, *shape),
            support_y=labels.repeat_interleave(k).expand(batch, -1).clone(),
            query_x=items[:, :, k:].reshape(batch, n * self.q_queries, *shape),
            query_y=labels.repeat_interleave(self.q_queries).expand(batch, -1).clone(),
            classes=self._labels[cls],
            rotations=rotations,
        )
        if n_episodes is None:
            return Episode(*(None if t is None else t[0] for t in episode))
        return episode
