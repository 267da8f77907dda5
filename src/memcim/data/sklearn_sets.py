"""scikit-learn's embedded digits and breast-cancer sets as split, optionally standardised tensors.

Both sets ship inside scikit-learn (no file, no download). The train/test split is stratified by
class and fixed by ``seed`` (``sklearn.model_selection.train_test_split(..., stratify=y,
random_state=seed)``); standardisation statistics come from the training part only, so no test
information leaks into the features.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from sklearn import datasets
from sklearn.model_selection import train_test_split
from torch import Tensor

from memcim._errors import require


class TabularData(NamedTuple):
    """A stratified train/test split of a feature table.

    Attributes:
        x_train: features [N, D], float32.
        y_train: labels [N], int64.
        x_test: features [M, D], float32.
        y_test: labels [M], int64.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_digits(*, seed: int, test_fraction: float = 0.3, standardize: bool = False) -> TabularData:
    """scikit-learn's 8×8 handwritten digits (1797 samples, 64 features, 10 classes).

    Pixels are integers 0..16 (ink = high). Without standardisation they are returned divided
    by 16, i.e. in [0, 1] like the MNIST loaders; ``x.reshape(-1, 8, 8)`` gives images.

    Args:
        seed: ``random_state`` of the stratified split, 0 <= seed < 2**32.
        test_fraction: share of samples in the test part, in (0, 1).
        standardize: when True, subtract the training mean and divide by the training standard
            deviation per feature (constant features, e.g. always-blank corner pixels, get
            divisor 1 and so become 0).

    Returns:
        :class:`TabularData` with features [N, 64].

    Raises:
        ConfigError: ``seed`` or ``test_fraction`` out of range.
    """
    bunch = datasets.load_digits()
    return _split(bunch.data / 16.0, bunch.target, seed, test_fraction, standardize)


def load_breast_cancer(
    *, seed: int, test_fraction: float = 0.3, standardize: bool = True
) -> TabularData:
    """scikit-learn's Wisconsin diagnostic breast-cancer set (569 samples, 30 features).

    Labels follow scikit-learn: 0 malignant (212 samples), 1 benign (357 samples).

    Args:
        seed: ``random_state`` of the stratified split, 0 <= seed < 2**32.
        test_fraction: share of samples in the test part, in (0, 1).
        standardize: when True (the default; raw features span four orders of magnitude),
            z-score each feature with the training part's mean and standard deviation.

    Returns:
        :class:`TabularData` with features [N, 30].

    Raises:
        ConfigError: ``seed`` or ``test_fraction`` out of range.
    """
    bunch = datasets.load_breast_cancer()
    return _split(bunch.data, bunch.target, seed, test_fraction, standardize)


def _split(
    x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float, standardize: bool
) -> TabularData:
    require(
        isinstance(seed, int | np.integer) and not isinstance(seed, bool) and 0 <= seed < 2**32,
        "seed",
        seed,
        "an integer in [0, 2**32)",
    )
    require(
        isinstance(test_fraction, float | int) and 0.0 < test_fraction < 1.0,
        "test_fraction",
        test_fraction,
        "a number strictly between 0 and 1",
    )
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=float(test_fraction), stratify=y, random_state=int(seed)
    )
    if standardize:
        mean = x_tr.mean(axis=0)
        std = x_tr.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    return TabularData(
        torch.from_numpy(np.ascontiguousarray(x_tr, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y_tr, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(x_te, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y_te, dtype=np.int64)),
    )
