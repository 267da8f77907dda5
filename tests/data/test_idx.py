"""The IDX reader/writer against hand-packed bytes, the official MNIST bytes and corrupt files."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from memcim import ConfigError
from memcim.data import load_fashion_mnist, load_mnist, read_idx, write_idx

# sha256 of the official uncompressed train-images-idx3-ubyte (shared/data/README.md).
TRAIN_IMAGES_SHA256 = "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"


def _pack(array: np.ndarray, code: int = 0x08) -> bytes:
    """IDX bytes packed by hand with struct, independently of write_idx."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_set(folder: Path, arrays: dict, *, gz: bool, dotted: bool = False) -> None:
    """The four MNIST IDX files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    sep = "." if dotted else "-"
    names = {
        "x_train": f"train-images{sep}idx3-ubyte",
        "y_train": f"train-labels{sep}idx1-ubyte",
        "x_test": f"t10k-images{sep}idx3-ubyte",
        "y_test": f"t10k-labels{sep}idx1-ubyte",
    }
    for key, stem in names.items():
        payload = _pack(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)


@pytest.fixture
def small_set() -> dict:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (7, 5, 4), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 7, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 5, 4), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }


@pytest.mark.parametrize("gz", [False, True])
def test_reads_hand_packed_files(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    for name, array in (("img", images), ("lab", labels)):
        payload = _pack(array)
        path = tmp_path / (f"{name}.gz" if gz else name)
        path.write_bytes(gzip.compress(payload) if gz else payload)
    suffix = ".gz" if gz else ""
    got = read_idx(tmp_path / f"img{suffix}", expected_magic=2051)
    assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx(tmp_path / f"lab{suffix}", expected_magic=2049), labels)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_write_read_round_trip(tmp_path, dtype, name):
    array = (np.arange(24) - 5).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / name, array)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)
    raw = path.read_bytes()
    if name.endswith(".gz"):
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    # The header matches the IDX spec, independently of read_idx.
    code = {np.uint8: 8, np.int8: 9, np.int16: 11, np.int32: 12, np.float32: 13, np.float64: 14}
    assert raw[:4] == bytes([0, 0, code[dtype], 3])
    assert struct.unpack(">3I", raw[4:16]) == (2, 3, 4)


def test_magic_numbers_of_mnist(tmp_path):
    write_idx(tmp_path / "i", np.zeros((1, 2, 2), np.uint8))
    write_idx(tmp_path / "l", np.zeros(1, np.uint8))
    assert int.from_bytes((tmp_path / "i").read_bytes()[:4], "big") == 2051
    assert int.from_bytes((tmp_path / "l").read_bytes()[:4], "big") == 2049
    with pytest.raises(ConfigError, match="magic number 2049, expected 2051"):
        read_idx(tmp_path / "l", expected_magic=2051)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b"\x01" + b[1:], "bad magic"),
        (lambda b: b[:2] + b"\x07" + b[3:], "bad magic"),  # unknown type code
        (lambda b: b[:3] + b"\x00" + b[4:], "bad magic"),  # zero dimensions
        (lambda b: b[:2], "truncated"),
        (lambda b: b[:9], "truncated inside"),
        (lambda b: b[:-1], "truncated or corrupt"),
        (lambda b: b + b"\x00", "truncated or corrupt"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_files_name_path_and_format(tmp_path, mangle, message, gz):
    payload = mangle(_pack(np.zeros((2, 3, 3), np.uint8)))
    path = tmp_path / ("bad.gz" if gz else "bad")
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(ConfigError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "IDX" in str(info.value)


def test_broken_gzip_and_missing_file(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_pack(np.zeros((2, 3, 3), np.uint8)))[:20])
    with pytest.raises(ConfigError, match="unreadable") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        read_idx(tmp_path / "nope")


def test_write_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(ConfigError, match="array"):
        write_idx(tmp_path / "a", np.zeros(3, np.uint64))
    with pytest.raises(ConfigError, match="array"):
        write_idx(tmp_path / "a", np.array(3, np.uint8))


@pytest.mark.parametrize(("gz", "dotted"), [(True, False), (False, False), (False, True)])
def test_loaders_read_an_idx_folder(tmp_path, small_set, gz, dotted):
    _write_set(tmp_path, small_set, gz=gz, dotted=dotted)
    for loader in (load_mnist, load_fashion_mnist):
        data = loader(tmp_path)
        for key, tensor in zip(("x_train", "y_train", "x_test", "y_test"), data, strict=True):
            expected = torch.from_numpy(small_set[key].astype(np.int64))
            if key.startswith("x"):
                assert tensor.dtype == torch.float32
                tensor = (tensor * 255).round().long()
            assert torch.equal(tensor, expected), key


def test_torchvision_layout(tmp_path, small_set):
    _write_set(tmp_path / "FashionMNIST" / "raw", small_set, gz=True)
    data = load_fashion_mnist(tmp_path)
    assert data.y_test.tolist() == small_set["y_test"].tolist()
    with pytest.raises(ConfigError, match="mnist.npz"):
        load_mnist(tmp_path)  # MNIST looks in MNIST/raw, not FashionMNIST/raw


def test_npz_takes_precedence_over_idx(tmp_path, small_set):
    _write_set(tmp_path, small_set, gz=False)
    other = {k: v[:1] for k, v in small_set.items()}
    np.savez(tmp_path / "mnist.npz", **other)
    assert load_mnist(tmp_path).x_train.shape[0] == 1
    assert load_fashion_mnist(tmp_path).x_train.shape[0] == 7


def test_incomplete_or_invalid_idx_sets(tmp_path, small_set):
    _write_set(tmp_path, small_set, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte") as info:
        load_mnist(tmp_path)
    assert str(tmp_path) in str(info.value)

    bad = {**small_set, "y_test": np.array([1, 10, 2], np.uint8)}  # label 10 is out of range
    _write_set(tmp_path, bad, gz=True)
    with pytest.raises(ConfigError, match=r"y_test has labels 1\.\.10 outside 0\.\.9"):
        load_mnist(tmp_path)

    swapped = {**small_set, "y_train": small_set["y_train"][:5]}  # 7 images, 5 labels
    _write_set(tmp_path, swapped, gz=True)
    with pytest.raises(ConfigError, match="train-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path)

    labels_as_images = {**small_set, "x_test": small_set["y_test"]}  # magic 2049, not 2051
    _write_set(tmp_path, labels_as_images, gz=True)
    with pytest.raises(ConfigError, match="t10k-images-idx3-ubyte.gz.*magic number 2049"):
        load_mnist(tmp_path)


def test_real_mnist_slice_through_idx(tmp_path, shared_data):
    path = shared_data("mnist.npz") / "mnist.npz"
    with np.load(path) as raw:
        arrays = {"x_train": raw["x_train"], "y_train": raw["y_train"]}
        arrays |= {"x_test": raw["x_test"][:500], "y_test": raw["y_test"][:500]}
    # write_idx reproduces the official uncompressed file byte for byte (README sha256).
    official = write_idx(tmp_path / "official", arrays["x_train"])
    assert hashlib.sha256(official.read_bytes()).hexdigest() == TRAIN_IMAGES_SHA256
    small = {k: (v[:500] if k.endswith("train") else v) for k, v in arrays.items()}
    _write_set(tmp_path / "idx", small, gz=True)
    from_idx = load_mnist(tmp_path / "idx")
    np.savez(tmp_path / "slice.npz", **small)
    from_npz = load_mnist(tmp_path / "slice.npz")
    for a, b in zip(from_idx, from_npz, strict=True):
        assert torch.equal(a, b)
    assert from_idx.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_implicit_folder_reads_only_the_torchvision_layout(tmp_path, small_set, monkeypatch):
    monkeypatch.setenv("MEMCIM_DATA_DIR", str(tmp_path))
    _write_set(tmp_path, small_set, gz=True)  # loose files: MNIST or Fashion-MNIST?
    for loader in (load_mnist, load_fashion_mnist):
        with pytest.raises(ConfigError, match="passed explicitly"):
            loader()
        assert loader(tmp_path).x_train.shape == (7, 5, 4)  # explicit folder: trusted
    _write_set(tmp_path / "MNIST" / "raw", small_set, gz=False)
    assert load_mnist().y_train.tolist() == small_set["y_train"].tolist()
    with pytest.raises(ConfigError, match="FashionMNIST"):
        load_fashion_mnist()
