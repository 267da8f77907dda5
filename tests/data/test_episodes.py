"""N-way K-shot episodes: shapes, seeding, class balance, disjointness and rotations."""

import math

import pytest
import torch

from memcim import ConfigError
from memcim.data import Episode, EpisodeSampler, load_omniglot


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _indexed_images(n: int, side: int = 4) -> torch.Tensor:
    """Images whose pixels encode their own row: x[i].flatten() == i * side**2 + arange."""
    return torch.arange(n * side * side, dtype=torch.float64).reshape(n, side, side)


def _rows(images: torch.Tensor, side: int = 4) -> torch.Tensor:
    """Row index of unrotated ``_indexed_images`` (the smallest pixel is i * side**2)."""
    return (images.flatten(-2).min(dim=-1).values // (side * side)).long()


# 12 classes with 8 examples each, plus class 99 with only 3 (never eligible for k + q = 5).
Y = torch.cat([torch.arange(12).repeat_interleave(8), torch.full((3,), 99)])
Y = Y[torch.randperm(Y.numel(), generator=_gen(42))]  # labels need not be grouped
X = _indexed_images(Y.numel())


def test_single_episode_shapes_and_labels():
    sampler = EpisodeSampler(X, Y, 5, 2, 3, generator=_gen())
    assert sampler.n_classes == 12
    ep = sampler.sample()
    assert isinstance(ep, Episode) and ep.rotations is None
    assert ep.support_x.shape == (10, 4, 4) and ep.query_x.shape == (15, 4, 4)
    assert ep.support_x.dtype == X.dtype
    assert ep.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert ep.query_y.tolist() == [c for c in range(5) for _ in range(3)]
    assert ep.classes.shape == (5,) and len(set(ep.classes.tolist())) == 5
    # Every example belongs to the class its episode label names; support and query disjoint.
    rows_s, rows_q = _rows(ep.support_x), _rows(ep.query_x)
    assert torch.equal(Y[rows_s], ep.classes[ep.support_y])
    assert torch.equal(Y[rows_q], ep.classes[ep.query_y])
    assert len(set(rows_s.tolist()) | set(rows_q.tolist())) == 25


def test_batched_episodes_and_seeding():
    a = EpisodeSampler(X, Y, 4, 1, 4, generator=_gen(7)).sample(6)
    b = EpisodeSampler(X, Y, 4, 1, 4, generator=_gen(7)).sample(6)
    assert a.support_x.shape == (6, 4, 4, 4) and a.query_x.shape == (6, 16, 4, 4)
    assert a.support_y.shape == (6, 4) and a.classes.shape == (6, 4)
    for s, t in zip(a, b, strict=True):
        assert (s is None and t is None) or torch.equal(s, t)
    rows = torch.cat([_rows(a.support_x), _rows(a.query_x)], dim=1)  # [6, 20]
    for e in range(6):
        assert len(set(rows[e].tolist())) == 20
        labels = torch.cat([a.support_y[e], a.query_y[e]])
        assert torch.equal(Y[rows[e]], a.classes[e][labels])
    # Later calls continue the generator stream: different episodes.
    sampler = EpisodeSampler(X, Y, 4, 1, 4, generator=_gen(7))
    assert not torch.equal(sampler.sample(6).classes, sampler.sample(6).classes)


def test_class_and_example_frequencies_are_uniform():
    n_way, k, q, episodes = 5, 2, 3, 4000
    ep = EpisodeSampler(X, Y, n_way, k, q, generator=_gen(3)).sample(episodes)
    # Each of the 12 eligible classes is in an episode with p = 5/12: counts are
    # Binomial(B, p), SE = sqrt(B p (1 - p)); allow 5 SE. Class 99 (3 examples) never appears.
    counts = torch.bincount(ep.classes.flatten(), minlength=100).double()
    p = n_way / 12
    assert counts[99] == 0 and counts[12:99].sum() == 0
    assert (counts[:12] - episodes * p).abs().max() < 5 * math.sqrt(episodes * p * (1 - p))
    # Relabelling is random: class c gets episode label 0 with p = 1/12.
    first = torch.bincount(ep.classes[:, 0], minlength=12).double()[:12]
    p0 = 1 / 12
    assert (first - episodes * p0).abs().max() < 5 * math.sqrt(episodes * p0 * (1 - p0))
    # Given its class is drawn, each of its 8 examples is used with p = (k + q) / 8:
    # over B * p_class draws the count per example is Binomial, SE as above.
    rows = torch.cat([_rows(ep.support_x), _rows(ep.query_x)], dim=1).flatten()
    used = torch.bincount(rows, minlength=Y.numel()).double()
    eligible = Y != 99
    expected = counts[Y[eligible]] * (k + q) / 8
    se = torch.sqrt(counts[Y[eligible]] * (k + q) / 8 * (1 - (k + q) / 8))
    assert ((used[eligible] - expected).abs() < 5 * se).all()
    assert (used[~eligible] == 0).all()


def test_rotations_are_per_class_and_uniform():
    episodes = 2000
    ep = EpisodeSampler(X, Y, 3, 2, 2, generator=_gen(5), rotate=True).sample(episodes)
    assert ep.rotations.shape == (episodes, 3)
    # Undo each class's rotation: the image is then exactly the stored one of its class.
    r_support = ep.rotations.repeat_interleave(2, dim=1)  # [B, n*k], class-major
    for r in range(4):
        mask = r_support == r
        back = torch.rot90(ep.support_x[mask], -r, dims=(-2, -1))
        assert torch.equal(back, X[_rows(back)])
        label = ep.support_y[mask]
        assert torch.equal(Y[_rows(back)], ep.classes[mask.nonzero()[:, 0], label])
    # Quarter turns are uniform on 0..3: counts ~ Binomial(3B, 1/4); allow 5 SE.
    counts = torch.bincount(ep.rotations.flatten(), minlength=4).double()
    total = ep.rotations.numel()
    assert (counts - total / 4).abs().max() < 5 * math.sqrt(total * 0.25 * 0.75)


def test_zero_queries_and_flat_features():
    sampler = EpisodeSampler(X.flatten(1), Y, 3, 4, 0, generator=_gen())
    ep = sampler.sample(2)
    assert ep.support_x.shape == (2, 12, 16) and ep.query_x.shape == (2, 0, 16)
    assert ep.query_y.shape == (2, 0)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((X, Y, 0, 1, 1), {}, "n_way"),
        ((X, Y, 14, 1, 1), {}, "n_way"),  # only 13 classes exist
        ((X, Y, 5, 4, 5), {}, "n_way"),  # no class has 9 examples
        ((X, Y, 2, 0, 1), {}, "k_shot"),
        ((X, Y, 2, 1, -1), {}, "q_queries"),
        ((X, Y, 2, True, 1), {}, "k_shot"),
        ((X, Y[:-1], 2, 1, 1), {}, "y"),
        ((X, Y.double(), 2, 1, 1), {}, "y"),
        ((X, Y, 2, 1, 1), {"generator": 1}, "generator"),
        ((X[:, :, :3], Y, 2, 1, 1), {"rotate": True}, "rotate"),
        ((X.flatten(1), Y, 2, 1, 1), {"rotate": True}, "rotate"),
    ],
)
def test_errors_name_the_argument(args, kwargs, field):
    kwargs = {"generator": _gen(), **kwargs}
    with pytest.raises(ConfigError, match=f"^{field}="):
        EpisodeSampler(*args, **kwargs)


def test_bad_episode_count():
    sampler = EpisodeSampler(X, Y, 2, 1, 1, generator=_gen())
    for bad in (0, 2.0):
        with pytest.raises(ConfigError, match="^n_episodes="):
            sampler.sample(bad)


def test_omniglot_20_way_one_shot(shared_data):
    split = load_omniglot(shared_data("omniglot_small.npz")).evaluation
    sampler = EpisodeSampler(split.x, split.y, 20, 1, 19, generator=_gen(), rotate=True)
    ep = sampler.sample(4)
    assert ep.support_x.shape == (4, 20, 28, 28) and ep.query_x.shape == (4, 380, 28, 28)
    assert ep.support_x.dtype == torch.float32
    with pytest.raises(ConfigError, match="^n_way=.*only 0 of 659 classes"):
        EpisodeSampler(split.x, split.y, 5, 1, 20, generator=_gen())  # 20 drawings per class
