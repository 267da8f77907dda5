"""The Omniglot loader against the shared archive (README facts) and malformed files."""

from pathlib import Path

import numpy as np
import pytest
import torch

from memcim import ConfigError
from memcim.data import OmniglotData, load_omniglot


@pytest.fixture(scope="module")
def omniglot_file(shared_data) -> Path:
    return shared_data("omniglot_small.npz") / "omniglot_small.npz"


@pytest.fixture(scope="module")
def omniglot(omniglot_file: Path) -> OmniglotData:
    return load_omniglot(omniglot_file)


def test_matches_the_shared_readme(omniglot):
    bg, ev = omniglot.background, omniglot.evaluation
    assert bg.x.shape == (19_280, 28, 28) and ev.x.shape == (13_180, 28, 28)
    assert bg.x.dtype == torch.float32 and bg.y.dtype == torch.int64
    assert bg.x.min() >= 0.0 and bg.x.max() <= 1.0
    # README: row i is class i // 20; every class has exactly 20 drawings.
    assert torch.equal(bg.y, torch.arange(19_280) // 20)
    assert torch.bincount(ev.y).tolist() == [20] * 659
    assert bg.x.double().mean().item() == pytest.approx(0.0815, abs=5e-5)
    assert ev.x.double().mean().item() == pytest.approx(0.0878, abs=5e-5)
    assert len(bg.alphabet_names) == 30 and len(ev.alphabet_names) == 20
    assert len(bg.character_names) == 964 and bg.character_names[0].startswith("Alphabet_of")
    assert int(bg.alphabet.max()) == 29 and int(ev.alphabet.max()) == 19
    train_index, test_index, test_label = omniglot.oneshot
    assert train_index.shape == test_index.shape == test_label.shape == (20, 20)
    assert int(test_label.min()) >= 0 and int(test_label.max()) <= 19


def test_pixels_are_the_raw_bytes_over_255(omniglot, omniglot_file):
    with np.load(omniglot_file) as raw:
        x = raw["x_evaluation"]
    assert torch.equal((omniglot.evaluation.x * 255).round().to(torch.uint8), torch.from_numpy(x))


def test_folder_and_minimal_archive(tmp_path):
    x = np.array([[[0, 255], [51, 0]]] * 3, dtype=np.uint8)
    y = np.array([0, 0, 1], dtype=np.int16)
    arrays = {"x_background": x, "y_background": y, "x_evaluation": x, "y_evaluation": y}
    np.savez(tmp_path / "omniglot_small.npz", **arrays)
    data = load_omniglot(tmp_path)
    assert torch.allclose(data.background.x[0], torch.tensor([[0.0, 1.0], [0.2, 0.0]]))
    assert data.evaluation.y.tolist() == [0, 0, 1]
    assert data.oneshot is None and data.background.alphabet is None
    assert data.background.alphabet_names == ()


def test_errors_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match="omniglot_small.npz") as info:
        load_omniglot(tmp_path)
    assert "MEMCIM_DATA_DIR" in str(info.value) and "x_background" in str(info.value)
    path = tmp_path / "o.npz"
    np.savez(path, x_background=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ConfigError, match="lacks keys") as info:
        load_omniglot(path)
    assert "y_evaluation" in str(info.value) and str(path) in str(info.value)
    good = {"x_background": np.zeros((2, 4, 4), np.uint8), "y_background": np.zeros(2, np.int16)}
    bad_x = np.zeros((2, 4, 4), np.float32)
    np.savez(path, **good, x_evaluation=bad_x, y_evaluation=good["y_background"])
    with pytest.raises(ConfigError, match="x_evaluation"):
        load_omniglot(path)
    np.savez(path, **good, x_evaluation=good["x_background"], y_evaluation=np.array([0, -1]))
    with pytest.raises(ConfigError, match="y_evaluation"):
        load_omniglot(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="unreadable"):
        load_omniglot(path)
