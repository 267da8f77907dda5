"""MNIST-family images from a Keras-style ``.npz`` archive (no pickle, no download).

The archive holds four ``uint8`` arrays, as ``keras.datasets.mnist`` saves them::

    x_train [N, H, W] pixels 0..255    y_train [N] labels
    x_test  [M, H, W] pixels 0..255    y_test  [M] labels

``shared/data/mnist.npz`` and ``shared/data/fashion_mnist.npz`` have this layout (see the README
next to them).
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

_KEYS = ("x_train", "y_train", "x_test", "y_test")
_FORMAT = (
    "a Keras-style .npz with uint8 arrays x_train [N, H, W], y_train [N], x_test [M, H, W], "
    "y_test [M]"
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
    """Load an MNIST-layout archive as float images in [0, 1] and int64 labels.

    Args:
        path_or_dir: the ``.npz`` file, or a folder holding ``name``; ``None`` uses
            :func:`default_data_dir`.
        name: file name looked up inside a folder (e.g. ``"fashion_mnist.npz"``).

    Returns:
        :class:`MnistData` (unpacks as ``x_train, y_train, x_test, y_test``).

    Raises:
        ConfigError: the file is missing or unreadable, a key is missing, or an array has the
            wrong dtype or shape. The message names the path and the expected format.
    """
    path = Path(path_or_dir) if path_or_dir is not None else default_data_dir()
    if path.is_dir():
        path = path / name
    if not path.is_file():
        raise ConfigError(
            f"MNIST file {str(path)!r} not found: expected {_FORMAT} (set MEMCIM_DATA_DIR or "
            "pass the file or its folder)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = list(archive.files)
            arrays = {k: archive[k] for k in _KEYS if k in files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ConfigError(
            f"MNIST file {str(path)!r} is unreadable ({err}): expected {_FORMAT}"
        ) from err
    missing = [k for k in _KEYS if k not in arrays]
    if missing:
        raise ConfigError(
            f"MNIST file {str(path)!r} lacks keys {missing} (has {files}): expected {_FORMAT}"
        )
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3:
            raise ConfigError(
                f"MNIST file {str(path)!r}: x_{split} is {x.dtype} {x.shape}; expected {_FORMAT}"
            )
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (x.shape[0],):
            raise ConfigError(
                f"MNIST file {str(path)!r}: y_{split} is {y.dtype} {y.shape} for "
                f"{x.shape[0]} images; expected {_FORMAT}"
            )
    return MnistData(
        *(
            torch.from_numpy(arrays[k]).float().div_(255.0)
            if k.startswith("x")
            else torch.from_numpy(arrays[k].astype(np.int64))
            for k in _KEYS
        )
    )
