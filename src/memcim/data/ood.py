"""In-distribution / out-of-distribution test sets for uncertainty and OOD-detection studies.

A model trained on the in-distribution set's training split is evaluated on
``x_in`` (its test split, with labels) and on ``x_out`` (another data set, or noise, of the same
sample shape); an uncertainty score should separate the two (e.g. AUROC of predictive entropy).
Common pairs: ``("mnist", "fashion_mnist")``, ``("fashion_mnist", "mnist")``,
``("mnist", "omniglot")``, ``("mnist", "noise")``, ``("digits", "noise")``.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
from torch import Tensor

from memcim._errors import ConfigError, check_count, check_generator, require
from memcim.data.mnist import load_fashion_mnist, load_mnist
from memcim.data.omniglot import load_omniglot
from memcim.data.sklearn_sets import load_digits

DATASETS = ("mnist", "fashion_mnist", "omniglot", "digits")
OOD_SOURCES = (*DATASETS, "noise")


class OodPair(NamedTuple):
    """In- and out-of-distribution test inputs of one sample shape.

    Attributes:
        x_in: in-distribution inputs [N, *S], float32 in [0, 1].
        y_in: their labels [N], int64.
        x_out: out-of-distribution inputs [M, *S], float32 in [0, 1].
    """

    x_in: Tensor
    y_in: Tensor
    x_out: Tensor


def _load(name: str, data_dir: str | os.PathLike[str] | None, seed: int) -> tuple[Tensor, Tensor]:
    """Test images [N, H, W] in [0, 1] and labels of a named data set."""
    if name == "mnist":
        data = load_mnist(data_dir)
        return data.x_test, data.y_test
    if name == "fashion_mnist":
        data = load_fashion_mnist(data_dir)
        return data.x_test, data.y_test
    if name == "omniglot":
        split = load_omniglot(data_dir).evaluation
        return split.x, split.y
    digits = load_digits(seed=seed, standardize=False)
    return digits.x_test.reshape(-1, 8, 8), digits.y_test


def ood_pair(
    name_in: str,
    name_out: str,
    *,
    n: int | None = None,
    generator: torch.Generator | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> OodPair:
    """Build an in-distribution / out-of-distribution pair of test sets.

    Sources (all images in [0, 1], ink = high):

    - ``"mnist"``, ``"fashion_mnist"``: the 10 000 test images [28, 28] with labels.
    - ``"omniglot"``: the 13 180 evaluation-split images [28, 28] (character labels).
    - ``"digits"``: scikit-learn digits, the test part of :func:`load_digits` with ``seed``,
      reshaped to [8, 8] and scaled by 1/16.
    - ``"noise"`` (only as ``name_out``): i.i.d. uniform U(0, 1) pixels with the sample shape of
      ``x_in``, as many as ``x_in`` has samples (or ``n``); needs ``generator``.

    Args:
        name_in: in-distribution source, one of ``mnist, fashion_mnist, omniglot, digits``.
        name_out: out-of-distribution source, one of those or ``noise``; differs from
            ``name_in`` and has the same image size.
        n: when given, draw ``n`` samples without replacement from each set (needs
            ``generator``); ``None`` keeps the whole test sets.
        generator: source of randomness for subsets and noise.
        data_dir: folder of the ``.npz`` files (or IDX files), passed to the loaders; ``None``
            uses :func:`memcim.data.default_data_dir`.
        seed: split seed for ``"digits"``; use the one the model was trained with.

    Returns:
        :class:`OodPair` ``(x_in, y_in, x_out)``.

    Raises:
        ConfigError: an unknown or equal name, mismatched image sizes, ``n`` larger than a set,
            a missing generator, or (from the loaders) a missing data file.
    """
    require(name_in in DATASETS, "name_in", name_in, f"one of {list(DATASETS)}")
    require(name_out in OOD_SOURCES, "name_out", name_out, f"one of {list(OOD_SOURCES)}")
    require(name_out != name_in, "name_out", name_out, f"a source other than name_in={name_in!r}")
    if n is not None:
        check_count(n, "n", 1)
    if n is not None or name_out == "noise":
        check_generator(generator)
    x_in, y_in = _load(name_in, data_dir, seed)
    if n is not None:
        require(n <= x_in.shape[0], "n", n, f"at most {x_in.shape[0]} ({name_in} test samples)")
        keep = torch.randperm(x_in.shape[0], generator=generator, device=generator.device)[:n]
        x_in, y_in = x_in[keep.cpu()], y_in[keep.cpu()]
    if name_out == "noise":
        size = (x_in.shape[0] if n is None else n, *x_in.shape[1:])
        return OodPair(
            x_in, y_in, torch.rand(size, generator=generator, device=generator.device).cpu()
        )
    x_out, _ = _load(name_out, data_dir, seed)
    if x_out.shape[1:] != x_in.shape[1:]:
        raise ConfigError(
            f"name_out={name_out!r} is invalid: its images are {tuple(x_out.shape[1:])} but "
            f"{name_in!r} images are {tuple(x_in.shape[1:])}; pick sources of one size"
        )
    if n is not None:
        require(n <= x_out.shape[0], "n", n, f"at most {x_out.shape[0]} ({name_out} samples)")
        pick = torch.randperm(x_out.shape[0], generator=generator, device=generator.device)[:n]
        x_out = x_out[pick.cpu()]
    return OodPair(x_in, y_in, x_out)
