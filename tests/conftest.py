import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def data_dir() -> Path:
    """The shared real data ($UNETKIT_DATA); tests that need it skip when it is absent."""
    root = os.environ.get("UNETKIT_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("real data not available: set UNETKIT_DATA to the shared data folder")
    return Path(root)


@pytest.fixture
def tiny_model():
    from unetkit import UNet

    return UNet(1, 2, base_features=4, dropout=0.0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def example_script():
    """Import a script of the project by its path from the repository root, e.g. ``examples/isbi2012/x.py``."""

    def load(relative_path: str):
        path = Path(__file__).resolve().parents[1] / relative_path
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
