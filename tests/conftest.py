"""Shared fixtures: seeded generators, one torch thread, the shared data folder and the
``--runslow`` flag."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run @pytest.mark.slow tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow reproduction run: use --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def one_thread():
    """One torch thread for tests on tiny matrices: thread start-up costs more than it saves,
    badly so on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder with the shared .npz datasets (``MEMCIM_DATA_DIR``, default ../shared/data)."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("MEMCIM_DATA_DIR", default))


@pytest.fixture(scope="session")
def shared_data(data_dir: Path):
    """``shared_data(*names)``: the shared data folder, skipping the calling test (with the
    missing names in the reason) unless every named file is there."""

    def need(*names: str) -> Path:
        missing = [n for n in names if not (data_dir / n).is_file()]
        if missing:
            pytest.skip(f"shared data {missing} not found in {data_dir} (set MEMCIM_DATA_DIR)")
        return data_dir

    return need


def _devices_present() -> list[str]:
    present = ["cpu"]
    if torch.cuda.is_available():
        present.append("cuda")
    if torch.backends.mps.is_available():
        present.append("mps")
    return present


@pytest.fixture(params=_devices_present())
def device(request) -> torch.device:
    """Each torch device present here (CPU always; CUDA and MPS where available).

    A test taking it builds its inputs and models on ``device``. On CPU the test runs with
    ``meta`` as torch's default device: a tensor made without a device (``torch.zeros(n)``) is
    then a meta tensor, and the first operation that mixes it with the inputs' CPU tensors fails,
    as it would fail on a GPU. So a CPU-only machine checks that every tensor follows its inputs'
    device.
    """
    if request.param != "cpu":
        yield torch.device(request.param)
        return
    with torch.device("meta"):
        yield torch.device("cpu")
