"""The MNIST loader against the shared archive (README facts) and against malformed files."""

from pathlib import Path

import numpy as np
import pytest
import torch

from memcim import ConfigError
from memcim.data import MnistData, default_data_dir, load_fashion_mnist, load_mnist

KEYS = ("x_train", "y_train", "x_test", "y_test")


@pytest.fixture(scope="module")
def mnist_file(shared_data) -> Path:
    return shared_data("mnist.npz") / "mnist.npz"


@pytest.fixture(scope="module")
def mnist(mnist_file: Path) -> MnistData:
    return load_mnist(mnist_file)


def _write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_shapes_dtypes_and_range(mnist):
    x_tr, y_tr, x_te, y_te = mnist
    assert x_tr.shape == (60_000, 28, 28) and x_te.shape == (10_000, 28, 28)
    assert y_tr.shape == (60_000,) and y_te.shape == (10_000,)
    assert x_tr.dtype == x_te.dtype == torch.float32
    assert y_tr.dtype == y_te.dtype == torch.int64
    assert x_tr.min() == 0.0 and x_tr.max() == 1.0


def test_matches_the_shared_readme(mnist):
    # Facts stated in shared/data/README.md, independent of this loader.
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(mnist.y_train).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]  # fmt: skip
    assert torch.bincount(mnist.y_test).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]  # fmt: skip
    # README: mean/255 = 0.130660 (train), 0.1325 (test), i.e. our [0, 1] means.
    assert mnist.x_train.double().mean().item() == pytest.approx(0.130660, abs=5e-6)
    assert mnist.x_test.double().mean().item() == pytest.approx(0.1325, abs=5e-5)


def test_pixels_are_the_raw_bytes_over_255(mnist, mnist_file):
    with np.load(mnist_file) as raw:
        x_te = raw["x_test"]
    assert torch.equal((mnist.x_test * 255).round().to(torch.uint8), torch.from_numpy(x_te))


def test_directory_and_file_give_the_same_data(mnist, mnist_file):
    from_dir = load_mnist(mnist_file.parent)
    assert torch.equal(from_dir.y_test, mnist.y_test)
    assert torch.equal(from_dir.x_test, mnist.x_test)


def test_small_archive_scaling_and_other_names(tmp_path):
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # one 2x2 image
    y = np.array([3], dtype=np.uint8)
    _write_npz(tmp_path / "fashion_mnist.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    data = load_mnist(tmp_path, name="fashion_mnist.npz")
    expected = torch.tensor([[[0.0, 1.0], [0.2, 0.4]]])
    assert torch.allclose(data.x_train, expected, rtol=0, atol=1e-7)
    assert data.x_train.dtype == torch.float32
    assert data.y_test.dtype == torch.int64 and data.y_test.tolist() == [3]


def test_missing_file_names_path_and_format(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(ConfigError, match="nope.npz") as info:
        load_mnist(missing)
    assert "x_train" in str(info.value) and "MEMCIM_DATA_DIR" in str(info.value)
    with pytest.raises(ConfigError, match="mnist.npz"):
        load_mnist(tmp_path)  # a folder without mnist.npz


def test_missing_keys_are_named(tmp_path):
    path = _write_npz(tmp_path / "partial.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ConfigError, match="partial.npz") as info:
        load_mnist(path)
    message = str(info.value)
    assert "y_train" in message and "x_test" in message and "y_test" in message


@pytest.mark.parametrize(
    ("arrays", "bad"),
    [
        ({"x_train": np.zeros((2, 4, 4), np.float32)}, "x_train"),
        ({"x_test": np.zeros((2, 16), np.uint8)}, "x_test"),
        ({"y_train": np.zeros(3, np.uint8)}, "y_train"),
        ({"y_test": np.zeros(2, np.float64)}, "y_test"),
    ],
)
def test_wrong_dtype_or_shape_is_named(tmp_path, arrays, bad):
    good = {
        "x_train": np.zeros((2, 4, 4), np.uint8),
        "y_train": np.zeros(2, np.uint8),
        "x_test": np.zeros((2, 4, 4), np.uint8),
        "y_test": np.zeros(2, np.uint8),
    }
    path = _write_npz(tmp_path / "bad.npz", **{**good, **arrays})
    with pytest.raises(ConfigError, match=bad):
        load_mnist(path)


def test_unreadable_file(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_text("not a zip archive")
    with pytest.raises(ConfigError, match="unreadable"):
        load_mnist(path)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMCIM_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("MEMCIM_DATA_DIR")
    repo = Path(__file__).resolve().parents[2]
    assert default_data_dir() == repo.parent / "shared" / "data"


def test_label_range_is_checked_in_archives(tmp_path):
    x = np.zeros((2, 4, 4), np.uint8)
    path = _write_npz(
        tmp_path / "m.npz", x_train=x, y_train=np.array([0, 12]), x_test=x, y_test=np.zeros(2)
    )
    with pytest.raises(ConfigError, match=r"y_train has labels 0\.\.12"):
        load_mnist(path)
    path = _write_npz(
        tmp_path / "m.npz",
        x_train=x,
        y_train=np.zeros(2, np.uint8),
        x_test=np.zeros((2, 5, 5), np.uint8),
        y_test=np.zeros(2, np.uint8),
    )
    with pytest.raises(ConfigError, match="x_test images"):
        load_mnist(path)


def test_fashion_mnist_matches_the_shared_readme(shared_data):
    path = shared_data("fashion_mnist.npz") / "fashion_mnist.npz"
    data = load_fashion_mnist()
    assert isinstance(data, MnistData)
    assert data.x_train.shape == (60_000, 28, 28) and data.x_test.shape == (10_000, 28, 28)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert data.y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert torch.bincount(data.y_train).tolist() == [6000] * 10
    assert torch.bincount(data.y_test).tolist() == [1000] * 10
    assert data.x_train.double().mean().item() == pytest.approx(0.2860, abs=5e-5)
    assert torch.equal(load_fashion_mnist(path).y_test, data.y_test)


def test_fashion_missing_file_names_path(tmp_path):
    with pytest.raises(ConfigError, match="fashion_mnist.npz") as info:
        load_fashion_mnist(tmp_path)
    message = str(info.value)
    assert "Fashion-MNIST" in message and "x_train" in message and "idx3-ubyte" in message
