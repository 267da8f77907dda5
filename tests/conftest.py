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
