"""MNIST and Fashion-MNIST from a Keras-style ``.npz`` or the original IDX files (no download).

The ``.npz`` archive holds four ``uint8`` arrays, as ``keras.datasets.mnist`` saves them::

    x_train [N, H, W] pixels 0..255    y_train [N] labels 0..9
    x_test  [M, H, W] pixels 0..255    y_test  [M] labels 0..9

``shared/data/mnist.npz`` and ``shared/data/fashion_mnist.npz`` have this layout (see the README
next to them). A folder without the archive may instead hold the four original IDX files,
raw or gzip (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``), directly (when the folder
is passed explicitly) or in the torchvision layout ``<folder>/MNIST/raw`` /
``<folder>/FashionMNIST/raw``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from memcim._errors import ConfigError
from memcim.data.idx import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx

_KEYS = ("x_train", "y_train", "x_test", "y_test")
_N_CLASSES = 10
_FORMAT = (
    "a Keras-style .npz with uint8 arrays x_train [N, H, W], y_train [N], x_test [M, H, W], "
    "y_test [M] (labels 0..9)"
)
# Official names; Yann LeCun's uncompressed copies use a dot before "idx".
_IDX_NAMES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
_IDX_FORMAT = (
    "the four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each raw or .gz)"
)


class MnistData(NamedTuple):
    """Train and test splits as tensors.

    Attributes:
        x_train: images [N, H, W], float32 in [0, 1].
        y_train: labels [N], int64.
        x_test: images [M, H, W], float32 in [0, 1].
        y_test: labels [M], int64.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def default_data_dir() -> Path:
    """Folder of the shared datasets.

    ``$MEMCIM_DATA_DIR`` when set, otherwise ``../shared/data`` next to the repository root
    (the layout of a source checkout: ``<root>/src/memcim/data/mnist.py`` ->
    ``<root>/../shared/data``). An installed package without that folder needs the variable.
    """
    env = os.environ.get("MEMCIM_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def load_mnist(
    path_or_dir: str | os.PathLike[str] | None = None, *, name: str = "mnist.npz"
) -> MnistData:
    """Load MNIST (or any MNIST-layout set) as float images in [0, 1] and int64 labels.

    Args:
        path_or_dir: the ``.npz`` file, or a folder holding ``name`` or else the four IDX files
            (directly or under ``MNIST/raw``); ``None`` uses :func:`default_data_dir`
            (``$MEMCIM_DATA_DIR``, else the shared data folder), where IDX files are looked up
            only under ``MNIST/raw`` (loose IDX files do not say which data set they hold).
        name: archive name looked up inside a folder (e.g. ``"fashion_mnist.npz"``).

    Returns:
        :class:`MnistData` (unpacks as ``x_train, y_train, x_test, y_test``): images
        ``[N, H, W]`` float32 in [0, 1] (pixel / 255), labels ``[N]`` int64 in 0..9.

    Raises:
        ConfigError: the file is missing or unreadable, a key or IDX file is missing, an array
            has the wrong dtype or shape, or a label is outside 0..9. The message names the
            path and the expected format.
    """
    return _load_family(path_or_dir, name=name, label="MNIST", torchvision_dir="MNIST")


def load_fashion_mnist(
    path_or_dir: str | os.PathLike[str] | None = None, *, name: str = "fashion_mnist.npz"
) -> MnistData:
    """Load Fashion-MNIST (Xiao et al. 2017) as float images in [0, 1] and int64 labels.

    Classes: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
    7 Sneaker, 8 Bag, 9 Ankle boot.

    Args:
        path_or_dir: the ``.npz`` file, or a folder holding ``name`` or else the four IDX files
            (directly or under ``FashionMNIST/raw``); ``None`` uses :func:`default_data_dir`,
            where IDX files are looked up only under ``FashionMNIST/raw``.
        name: archive name looked up inside a folder.

    Returns:
        :class:`MnistData`: images ``[N, 28, 28]`` float32 in [0, 1], labels ``[N]`` int64.

    Raises:
        ConfigError: as :func:`load_mnist`.
    """
    return _load_family(
        path_or_dir, name=name, label="Fashion-MNIST", torchvision_dir="FashionMNIST"
    )


def _load_family(
    path_or_dir: str | os.PathLike[str] | None, *, name: str, label: str, torchvision_dir: str
) -> MnistData:
    explicit = path_or_dir is not None
    path = Path(path_or_dir) if explicit else default_data_dir()
    if path.is_dir():
        folder = path
        path = path / name
        if not path.is_file():
            # MNIST and Fashion-MNIST IDX files share their names, so loose IDX files are only
            # trusted in a folder the caller named for this data set; the implicit data folder
            # needs the unambiguous torchvision layout.
            candidates = [folder] if explicit else []
            candidates.append(folder / torchvision_dir / "raw")
            for candidate in candidates:
                files = _find_idx(candidate, label)
                if files is not None:
                    return _from_idx(files, label)
            where = " or ".join(repr(str(c)) for c in candidates)
            raise ConfigError(
                f"{label} file {str(path)!r} not found and no IDX files in {where}: expected "
                f"{_FORMAT}, or {_IDX_FORMAT} (set MEMCIM_DATA_DIR or pass the file or its "
                f"folder; IDX files directly in {str(folder)!r} are read only when that folder "
                "is passed explicitly, since MNIST and Fashion-MNIST use the same file names)"
            )
    if not path.is_file():
        raise ConfigError(
            f"{label} file {str(path)!r} not found: expected {_FORMAT} (set MEMCIM_DATA_DIR or "
            "pass the file or its folder)"
        )
    return _from_npz(path, label)


def _from_npz(path: Path, label: str) -> MnistData:
    where = f"{label} file {str(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = list(archive.files)
            arrays = {k: archive[k] for k in _KEYS if k in files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ConfigError(f"{where} is unreadable ({err}): expected {_FORMAT}") from err
    missing = [k for k in _KEYS if k not in arrays]
    if missing:
        raise ConfigError(f"{where} lacks keys {missing} (has {files}): expected {_FORMAT}")
    return _to_tensors(arrays, {k: where for k in _KEYS}, _FORMAT)


def _find_idx(folder: Path, label: str) -> dict[str, Path] | None:
    """The four IDX files in ``folder``; ``None`` when there are none at all."""
    found: dict[str, Path] = {}
    for key, stems in _IDX_NAMES.items():
        for stem in stems:
            hits = [p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()]
            if hits:
                found[key] = hits[0]
                break
    if not found:
        return None
    missing = [_IDX_NAMES[k][0] for k in _KEYS if k not in found]
    if missing:
        raise ConfigError(
            f"{label} IDX folder {str(folder)!r} lacks {missing} (raw or .gz): expected "
            f"{_IDX_FORMAT}"
        )
    return found


def _from_idx(files: dict[str, Path], label: str) -> MnistData:
    arrays = {
        k: read_idx(p, expected_magic=IDX_IMAGES_MAGIC if k[0] == "x" else IDX_LABELS_MAGIC)
        for k, p in files.items()
    }
    return _to_tensors(
        arrays, {k: f"{label} IDX file {str(p)!r}" for k, p in files.items()}, _IDX_FORMAT
    )


def _to_tensors(arrays: dict[str, np.ndarray], where: dict[str, str], fmt: str) -> MnistData:
    """Validate dtypes, shapes and label range, then scale pixels to [0, 1]."""
    for split in ("train", "test"):
        xk, yk = f"x_{split}", f"y_{split}"
        x, y = arrays[xk], arrays[yk]
        if x.dtype != np.uint8 or x.ndim != 3:
            raise ConfigError(f"{where[xk]}: {xk} is {x.dtype} {x.shape}; expected {fmt}")
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (x.shape[0],):
            raise ConfigError(
                f"{where[yk]}: {yk} is {y.dtype} {y.shape} for {x.shape[0]} images; expected {fmt}"
            )
        if y.size and (y.min() < 0 or y.max() >= _N_CLASSES):
            raise ConfigError(
                f"{where[yk]}: {yk} has labels {int(y.min())}..{int(y.max())} outside "
                f"0..{_N_CLASSES - 1}; expected {fmt}"
            )
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise ConfigError(
            f"{where['x_test']}: x_test images are {arrays['x_test'].shape[1:]} but x_train "
            f"images are {arrays['x_train'].shape[1:]}; expected {fmt}"
        )
    return MnistData(
        *(
            torch.from_numpy(arrays[k]).float().div_(255.0)
            if k.startswith("x")
            else torch.from_numpy(arrays[k].astype(np.int64))
            for k in _KEYS
        )
    )
