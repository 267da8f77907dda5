"""Permuted and split tasks, and Gaussian input corruption (seeded statistical checks)."""

import math

import pytest
import torch

from memcim import ConfigError
from memcim.data import PermutedTasks, gaussian_corruption, permuted_tasks, split_tasks


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- permuted tasks


def test_permutations_are_permutations_and_differ():
    x = torch.rand(4, 28, 28, generator=_gen(9))
    tasks = permuted_tasks(x, 10, generator=_gen())
    assert isinstance(tasks, PermutedTasks)
    assert tasks.permutations.shape == (10, 784) and tasks.permutations.dtype == torch.int64
    assert tasks.n_tasks == 10 and tasks.sample_shape == (28, 28)
    assert torch.equal(tasks.permutations.sort(dim=1).values, torch.arange(784).expand(10, -1))
    assert torch.equal(tasks.permutations[0], torch.arange(784))  # first_identity default
    assert len({tuple(p.tolist()) for p in tasks.permutations}) == 10
    random = permuted_tasks(x, 3, generator=_gen(), first_identity=False)
    assert not (random.permutations == torch.arange(784)).all(dim=1).any()


def test_apply_matches_the_definition():
    x = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(2, 2, 3)
    tasks = permuted_tasks(x, 4, generator=_gen(1))
    flat = x.reshape(2, -1)
    for t in range(4):
        perm = tasks.permutations[t]
        expected = torch.stack([flat[n][perm] for n in range(2)]).reshape(2, 2, 3)
        assert torch.equal(tasks.apply(x, t), expected)
    assert torch.equal(tasks.apply(x, 0), x)
    everything = tasks.apply_all(x)
    assert everything.shape == (4, 2, 2, 3)
    assert all(torch.equal(everything[t], tasks.apply(x, t)) for t in range(4))
    mixed = tasks.apply(x, torch.tensor([3, 1]))
    assert torch.equal(mixed[0], tasks.apply(x, 3)[0]) and torch.equal(
        mixed[1], tasks.apply(x, 1)[1]
    )


def test_permutations_are_seeded_and_uniform():
    x = torch.zeros(1, 5)
    assert torch.equal(
        permuted_tasks(x, 6, generator=_gen(4)).permutations,
        permuted_tasks(x, 6, generator=_gen(4)).permutations,
    )
    # Uniform permutations: element 0 lands at each of the 5 positions with p = 1/5.
    # Counts over T tasks are Binomial(T, 1/5): SE = sqrt(T * 0.2 * 0.8); allow 5 SE.
    n_tasks = 20_000
    perms = permuted_tasks(x, n_tasks, generator=_gen(5), first_identity=False).permutations
    counts = torch.bincount(perms.argsort(dim=1)[:, 0], minlength=5).double()
    assert (counts - n_tasks / 5).abs().max() < 5 * math.sqrt(n_tasks * 0.2 * 0.8)


def test_permuted_errors_name_the_argument():
    cases = [
        (lambda: permuted_tasks(torch.zeros(5), 2, generator=_gen()), "x"),
        (lambda: permuted_tasks(torch.zeros(2, 5), 0, generator=_gen()), "n_tasks"),
        (lambda: permuted_tasks(torch.zeros(2, 5), 2.0, generator=_gen()), "n_tasks"),
        (lambda: permuted_tasks(torch.zeros(2, 5), 2, generator=0), "generator"),
    ]
    tasks = permuted_tasks(torch.zeros(2, 5), 2, generator=_gen())
    cases += [
        (lambda: tasks.apply(torch.zeros(2, 4), 0), "x"),
        (lambda: tasks.apply_all(torch.zeros(2, 4)), "x"),
        (lambda: tasks.apply(torch.zeros(2, 5), 2), "task"),
        (lambda: tasks.apply(torch.zeros(2, 5), torch.tensor([0, 2])), "task"),
        (lambda: tasks.apply(torch.zeros(2, 5), torch.tensor([0.0, 1.0])), "task"),
    ]
    for call, field in cases:
        with pytest.raises(ConfigError, match=f"^{field}="):
            call()


# ---------------------------------------------------------------- split tasks


def test_split_tasks_partition_by_class():
    y = torch.tensor([0, 1, 2, 3, 4, 5, 1, 0, 3, 5, 2])
    groups = [(0, 1), (2, 3), (4, 5)]
    parts = split_tasks(y, groups)
    assert len(parts) == 3 and all(p.dtype == torch.int64 for p in parts)
    assert parts[0].tolist() == [0, 1, 6, 7]
    for part, group in zip(parts, groups, strict=True):
        assert set(y[part].tolist()) == set(group)
        assert torch.equal(part, part.sort().values)
    assert sorted(torch.cat(parts).tolist()) == list(range(len(y)))
    assert split_tasks(y, [[5]])[0].tolist() == [5, 9]  # a subset of classes is fine


@pytest.mark.parametrize(
    ("y", "groups", "match"),
    [
        (torch.tensor([0, 1, 2]), [(0, 1), (1, 2)], r"class 1 is in groups\[0\] and groups\[1\]"),
        (torch.tensor([0, 1, 2]), [(0, 1), (3,)], "^groups\\[1\\]=.*class 3 has no sample"),
        (torch.tensor([0, 1, 2]), [(0, 1), ()], "^groups\\[1\\]="),
        (torch.tensor([0, 1, 2]), [(0, 1.0)], "^groups\\[0\\]="),
        (torch.tensor([0, 1, 2]), [], "^groups="),
        (torch.tensor([0.0, 1.0]), [(0,)], "^y="),
        (torch.tensor([[0, 1]]), [(0,)], "^y="),
    ],
)  # fmt: skip
def test_split_errors_name_the_argument(y, groups, match):
    with pytest.raises(ConfigError, match=match):
        split_tasks(y, groups)


# ---------------------------------------------------------------- gaussian corruption


def test_noise_mean_and_std_within_5_standard_errors():
    sigma, n = 0.1, 400_000
    x = torch.full((n,), 0.5)
    out = gaussian_corruption(x, sigma, generator=_gen(7))
    noise = (out - x).double()
    # 0.5 +- 5 sigma stays inside [0, 1], so clipping is inactive here (P ~ 6e-7 per element;
    # even then the bias is far below the tolerance). Sample mean SE = sigma / sqrt(n); sample
    # std SE = sigma / sqrt(2 (n - 1)) for Gaussian data.
    assert abs(noise.mean().item()) < 5 * sigma / math.sqrt(n)
    assert abs(noise.std().item() - sigma) < 5 * sigma / math.sqrt(2 * (n - 1))


def test_clipping_is_applied_and_optional():
    sigma, n = 0.2, 200_000
    x = torch.zeros(n)
    clipped = gaussian_corruption(x, sigma, generator=_gen(3))
    assert clipped.min() == 0.0 and clipped.max() <= 1.0
    # With x = 0 half the noise is clipped to 0: the zero fraction is Binomial(n, 1/2) / n,
    # SE = sqrt(0.25 / n); the mean of max(0, e) is sigma / sqrt(2 pi), SE <= sigma / sqrt(n).
    zero_fraction = (clipped == 0).double().mean().item()
    assert abs(zero_fraction - 0.5) < 5 * math.sqrt(0.25 / n)
    assert abs(
        clipped.double().mean().item() - sigma / math.sqrt(2 * math.pi)
    ) < 5 * sigma / math.sqrt(n)
    raw = gaussian_corruption(x, sigma, generator=_gen(3), clip=None)
    assert torch.equal(raw.clamp(0, 1), clipped)  # same draws, clipping the only difference
    assert raw.min() < 0
    wide = gaussian_corruption(x, sigma, generator=_gen(3), clip=(-0.1, 0.1))
    assert wide.min() == -0.1 and wide.max() == 0.1


def test_corruption_is_seeded_and_keeps_shape_and_dtype():
    x = torch.rand(3, 4, 5, dtype=torch.float64, generator=_gen(1))
    a = gaussian_corruption(x, 0.3, generator=_gen(2))
    assert a.shape == x.shape and a.dtype == torch.float64
    assert torch.equal(a, gaussian_corruption(x, 0.3, generator=_gen(2)))
    assert torch.equal(gaussian_corruption(x, 0.0, generator=_gen(2)), x)  # x already in [0, 1]
    assert torch.equal(
        x, torch.rand(3, 4, 5, dtype=torch.float64, generator=_gen(1))
    )  # not in place


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sigma": -0.1}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"sigma": float("inf")}, "sigma"),
        ({"sigma": 0.1, "clip": (1.0, 0.0)}, "clip"),
        ({"sigma": 0.1, "clip": (0.0,)}, "clip"),
        ({"sigma": 0.1, "generator": None}, "generator"),
        ({"sigma": 0.1, "x": torch.zeros(3, dtype=torch.int64)}, "x"),
    ],
)
def test_corruption_errors_name_the_argument(kwargs, field):
    kwargs = {"x": torch.zeros(3), "generator": _gen(), **kwargs}
    with pytest.raises(ConfigError, match=f"^{field}="):
        gaussian_corruption(**kwargs)
