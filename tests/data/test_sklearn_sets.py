"""Digits and breast cancer: split and scaling cross-checked against scikit-learn itself."""

import numpy as np
import pytest
import torch
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from memcim import ConfigError
from memcim.data import TabularData, load_breast_cancer, load_digits


@pytest.mark.parametrize(
    ("loader", "n", "d", "classes"),
    [(load_digits, 1797, 64, 10), (load_breast_cancer, 569, 30, 2)],
)
def test_shapes_dtypes_and_stratification(loader, n, d, classes):
    data = loader(seed=3, test_fraction=0.25)
    assert isinstance(data, TabularData)
    x_tr, y_tr, x_te, y_te = data
    assert x_tr.dtype == x_te.dtype == torch.float32
    assert y_tr.dtype == y_te.dtype == torch.int64
    assert x_tr.shape[1] == x_te.shape[1] == d
    assert x_tr.shape[0] + x_te.shape[0] == n and y_te.shape == (x_te.shape[0],)
    assert x_te.shape[0] == int(np.ceil(0.25 * n))  # sklearn rounds the test size up
    # Stratified: every class's test count is within one of its share of the test set.
    total = torch.bincount(torch.cat([y_tr, y_te]), minlength=classes).double()
    expected = total * x_te.shape[0] / n
    assert (torch.bincount(y_te, minlength=classes) - expected).abs().max() <= 1.0


def test_breast_cancer_equals_sklearn_split_and_scaler():
    bunch = datasets.load_breast_cancer()
    x_tr, x_te, y_tr, y_te = train_test_split(
        bunch.data, bunch.target, test_size=0.3, stratify=bunch.target, random_state=11
    )
    scaler = StandardScaler().fit(x_tr)
    data = load_breast_cancer(seed=11)
    np.testing.assert_allclose(data.x_train.numpy(), scaler.transform(x_tr), rtol=0, atol=1e-5)
    np.testing.assert_allclose(data.x_test.numpy(), scaler.transform(x_te), rtol=0, atol=1e-5)
    assert data.y_train.tolist() == y_tr.tolist() and data.y_test.tolist() == y_te.tolist()
    # Fitted on the training part only: train is exactly standardised, test only roughly.
    assert data.x_train.double().mean(0).abs().max() < 1e-6
    assert data.x_train.double().std(0, unbiased=False).sub(1).abs().max() < 1e-5
    assert data.x_test.double().mean(0).abs().max() > 1e-3


def test_digits_raw_scale_and_standardised_constant_pixels():
    raw = load_digits(seed=0)
    bunch = datasets.load_digits()
    assert raw.x_train.min() == 0.0 and raw.x_train.max() == 1.0
    # Pixels are the embedded 0..16 integers over 16, split exactly as sklearn splits them.
    x_tr, _, _, y_te = train_test_split(
        bunch.data, bunch.target, test_size=0.3, stratify=bunch.target, random_state=0
    )
    np.testing.assert_array_equal((raw.x_train * 16).numpy(), x_tr)
    assert raw.y_test.tolist() == y_te.tolist()
    z = load_digits(seed=0, standardize=True)
    assert torch.isfinite(z.x_train).all() and torch.isfinite(z.x_test).all()
    constant = raw.x_train.std(0) == 0  # e.g. the always-blank corner pixel
    assert constant.any() and (z.x_train[:, constant] == 0).all()


def test_seed_determinism():
    a, b, c = load_digits(seed=5), load_digits(seed=5), load_digits(seed=6)
    assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    assert not torch.equal(a.y_test, c.y_test)


@pytest.mark.parametrize("loader", [load_digits, load_breast_cancer])
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 0, "test_fraction": 0.0}, "test_fraction"),
        ({"seed": 0, "test_fraction": 1.0}, "test_fraction"),
        ({"seed": 0, "test_fraction": "0.3"}, "test_fraction"),
    ],
)
def test_bad_arguments_are_named(loader, kwargs, field):
    with pytest.raises(ConfigError, match=field):
        loader(**kwargs)


def test_seed_is_required():
    with pytest.raises(TypeError):
        load_breast_cancer()  # type: ignore[call-arg]
