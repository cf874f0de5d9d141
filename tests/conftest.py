"""Shared test fixtures: a tiny model configuration, tiny checkpoints and the parity fixture folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tpsmm.core.model.config import ModelConfig
from tpsmm.core import TPSMM

FIXTURES = Path(__file__).parent / "fixtures"


def tiny_model_config(**changes) -> ModelConfig:
    """A small but complete architecture (64x64 frames, 2 TPS) for fast CPU tests."""
    base = dict(num_tps=2, gen_block_expansion=8, gen_max_features=32, dm_block_expansion=8, dm_max_features=32,
                dm_num_blocks=3, avd_id_bottle_size=16, avd_pose_bottle_size=16, image_size=64)
    base.update(changes)
    return ModelConfig(**base)


def make_tiny_model(seed: int = 0, **changes) -> TPSMM:
    torch.manual_seed(seed)
    return TPSMM(tiny_model_config(**changes)).eval()


@pytest.fixture
def tiny_config() -> ModelConfig:
    return tiny_model_config()


@pytest.fixture
def tiny_model() -> TPSMM:
    return make_tiny_model()


@pytest.fixture
def tiny_checkpoint(tmp_path) -> str:
    """Path of a saved tiny tpsmm .safetensors checkpoint (random weights, AVD and bg included)."""
    from tpsmm.core.model.checkpoint import save_checkpoint

    path = tmp_path / "tiny.safetensors"
    save_checkpoint(make_tiny_model(), str(path))
    return str(path)


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """The vox-256 parity fixture (``TPSMM_PARITY_DIR`` overrides; else the copy in tests/fixtures)."""
    env = os.environ.get("TPSMM_PARITY_DIR")
    path = Path(env) if env else FIXTURES / "parity"
    assert (path / "vox-256" / "expected.safetensors").is_file(), f"parity fixtures missing under {path}"
    return path


@pytest.fixture
def one_thread():
    """One torch thread for the test: CI has 2 shared cores, and oversubscribed OpenMP threads make training
    steps ~10x slower. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
