"""In-/out-of-distribution pairs from the shared data sets and noise."""

from pathlib import Path

import numpy as np
import pytest
import torch

from memcim import ConfigError
from memcim.data import OodPair, load_digits, ood_pair


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def shared(shared_data) -> Path:
    return shared_data("mnist.npz", "fashion_mnist.npz", "omniglot_small.npz")


def test_mnist_vs_fashion_mnist_full_test_sets(shared):
    pair = ood_pair("mnist", "fashion_mnist", data_dir=shared)
    assert isinstance(pair, OodPair)
    assert pair.x_in.shape == pair.x_out.shape == (10_000, 28, 28)
    assert pair.y_in[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # MNIST test (README)
    # README pixel means: MNIST test 0.1325, Fashion-MNIST test 0.2868.
    assert pair.x_in.double().mean().item() == pytest.approx(0.1325, abs=5e-5)
    assert pair.x_out.double().mean().item() == pytest.approx(0.2868, abs=5e-5)


def test_subsets_are_seeded_and_come_from_the_sets(shared):
    a = ood_pair("fashion_mnist", "omniglot", n=50, generator=_gen(1), data_dir=shared)
    b = ood_pair("fashion_mnist", "omniglot", n=50, generator=_gen(1), data_dir=shared)
    assert a.x_in.shape == a.x_out.shape == (50, 28, 28) and a.y_in.shape == (50,)
    assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    full = ood_pair("fashion_mnist", "omniglot", data_dir=shared)
    assert full.x_out.shape == (13_180, 28, 28)
    # Every drawn in-distribution (image, label) pair is one of the full test set.
    full_pairs = {(img.numpy().tobytes(), int(lab)) for img, lab in zip(*full[:2], strict=True)}
    drawn = {(img.numpy().tobytes(), int(lab)) for img, lab in zip(*a[:2], strict=True)}
    assert drawn <= full_pairs and len(drawn) == 50


def test_digits_vs_noise():
    pair = ood_pair("digits", "noise", generator=_gen(2), seed=4)
    digits = load_digits(seed=4)
    assert torch.equal(pair.x_in, digits.x_test.reshape(-1, 8, 8))
    assert torch.equal(pair.y_in, digits.y_test)
    assert pair.x_out.shape == pair.x_in.shape and pair.x_out.dtype == torch.float32
    # U(0, 1): mean 1/2, SE = sqrt(1/12 / N); allow 5 SE.
    n = pair.x_out.numel()
    assert pair.x_out.min() >= 0.0 and pair.x_out.max() < 1.0
    assert abs(pair.x_out.double().mean().item() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    small = ood_pair("digits", "noise", n=7, generator=_gen(2))
    assert small.x_in.shape == small.x_out.shape == (7, 8, 8)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("cifar", "noise"), {"generator": _gen()}, "name_in"),
        (("noise", "digits"), {}, "name_in"),
        (("digits", "svhn"), {}, "name_out"),
        (("digits", "digits"), {}, "name_out"),
        (("digits", "noise"), {}, "generator"),
        (("digits", "noise"), {"n": 5}, "generator"),
        (("digits", "noise"), {"n": 0, "generator": _gen()}, "n"),
        (("digits", "noise"), {"n": 10_000, "generator": _gen()}, "n"),
    ],
)
def test_errors_name_the_argument(args, kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}="):
        ood_pair(*args, **kwargs)


def test_mismatched_image_sizes(shared):
    with pytest.raises(ConfigError, match=r"^name_out='mnist'.*\(28, 28\).*\(8, 8\)"):
        ood_pair("digits", "mnist", data_dir=shared)


def test_missing_data_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="fashion_mnist.npz"):
        ood_pair("fashion_mnist", "noise", generator=_gen(), data_dir=tmp_path)
