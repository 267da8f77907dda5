"""Omniglot (Lake et al. 2015) at 28×28 from ``omniglot_small.npz``, for few-shot learning.

The archive (see ``shared/data/README.md``) holds, per split ``s`` in ``background`` (964
characters of 30 alphabets) and ``evaluation`` (659 characters of 20 alphabets)::

    x_s          [N, 28, 28] uint8, ink = 255 on a 0 background
    y_s          [N] character class 0..C-1 (20 drawings per class)
    alphabet_s   [N] alphabet id            (optional here)
    alphabet_names_s, character_names_s     (optional here)

plus ``oneshot_train_index``/``oneshot_test_index``/``oneshot_test_label`` [20, 20], the 20
one-shot runs of Lake et al. indexing ``x_evaluation`` (optional here).
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
from memcim.data.mnist import default_data_dir

_SPLITS = ("background", "evaluation")
_ONESHOT = ("oneshot_train_index", "oneshot_test_index", "oneshot_test_label")
_FORMAT = (
    "an .npz with uint8 x_background [N, H, W], integer y_background [N] and the same "
    "x_evaluation / y_evaluation (as shared/data/omniglot_small.npz)"
)


class OmniglotSplit(NamedTuple):
    """One Omniglot split.

    Attributes:
        x: images [N, H, W], float32 in [0, 1], ink = 1 on a 0 background.
        y: character class [N], int64, 0..C-1 within the split.
        alphabet: alphabet id [N], int64, or ``None`` when the archive lacks it.
        alphabet_names: alphabet folder names, indexed by ``alphabet`` (empty when absent).
        character_names: ``"<Alphabet>/characterNN"`` indexed by ``y`` (empty when absent).
    """

    x: Tensor
    y: Tensor
    alphabet: Tensor | None
    alphabet_names: tuple[str, ...]
    character_names: tuple[str, ...]


class OmniglotData(NamedTuple):
    """Both Omniglot splits and the one-shot runs.

    Attributes:
        background: the training split (964 classes in the shared archive).
        evaluation: the held-out split (659 classes).
        oneshot: ``(train_index, test_index, test_label)``, each [20, 20] int64, Lake et al.'s
            20 one-shot runs as rows of ``evaluation.x``; ``None`` when the archive lacks them.
    """

    background: OmniglotSplit
    evaluation: OmniglotSplit
    oneshot: tuple[Tensor, Tensor, Tensor] | None


def load_omniglot(
    path_or_dir: str | os.PathLike[str] | None = None, *, name: str = "omniglot_small.npz"
) -> OmniglotData:
    """Load Omniglot as float images in [0, 1] and int64 labels per split.

    Args:
        path_or_dir: the ``.npz`` file or a folder holding ``name``; ``None`` uses
            :func:`memcim.data.default_data_dir` (``$MEMCIM_DATA_DIR``, else the shared folder).
        name: file name looked up inside a folder.

    Returns:
        :class:`OmniglotData`; ``data.background.x`` is [19280, 28, 28] for the shared archive.

    Raises:
        ConfigError: the file is missing or unreadable, a required key is missing, or an array
            has the wrong dtype, shape or a negative label. The message names the path and the
            expected format.
    """
    path = Path(path_or_dir) if path_or_dir is not None else default_data_dir()
    if path.is_dir():
        path = path / name
    where = f"Omniglot file {str(path)!r}"
    if not path.is_file():
        raise ConfigError(
            f"{where} not found: expected {_FORMAT} (set MEMCIM_DATA_DIR or pass the file or "
            "its folder)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ConfigError(f"{where} is unreadable ({err}): expected {_FORMAT}") from err
    required = [f"{v}_{s}" for s in _SPLITS for v in ("x", "y")]
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ConfigError(
            f"{where} lacks keys {missing} (has {sorted(arrays)}): expected {_FORMAT}"
        )
    splits = [_split(arrays, s, where) for s in _SPLITS]
    oneshot = None
    if all(k in arrays for k in _ONESHOT):
        oneshot = tuple(torch.from_numpy(arrays[k].astype(np.int64)) for k in _ONESHOT)
    return OmniglotData(*splits, oneshot)


def _split(arrays: dict[str, np.ndarray], split: str, where: str) -> OmniglotSplit:
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if x.dtype != np.uint8 or x.ndim != 3:
        raise ConfigError(f"{where}: x_{split} is {x.dtype} {x.shape}; expected {_FORMAT}")
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (x.shape[0],) or (y < 0).any():
        raise ConfigError(
            f"{where}: y_{split} is {y.dtype} {y.shape} (non-negative labels needed) for "
            f"{x.shape[0]} images; expected {_FORMAT}"
        )
    alphabet = arrays.get(f"alphabet_{split}")
    if alphabet is not None and alphabet.shape != y.shape:
        raise ConfigError(
            f"{where}: alphabet_{split} has shape {alphabet.shape}, expected {y.shape}"
        )
    names = {
        kind: tuple(str(s) for s in arrays.get(f"{kind}_names_{split}", ()))
        for kind in ("alphabet", "character")
    }
    return OmniglotSplit(
        x=torch.from_numpy(x).float().div_(255.0),
        y=torch.from_numpy(y.astype(np.int64)),
        alphabet=None if alphabet is None else torch.from_numpy(alphabet.astype(np.int64)),
        alphabet_names=names["alphabet"],
        character_names=names["character"],
    )
