"""Shared test fixtures: a tiny model configuration, tiny checkpoints, the parity fixture folder and the external
assets (ComfyUI, faces; found by tests/assets.py)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import assets
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


@pytest.fixture(scope="session")
def comfyui_dir(tmp_path_factory) -> Path:
    """A real ComfyUI folder (with ``main.py``): ``TPSMM_COMFYUI``, else ``../shared/comfyui``, a snapshot unpacked
    once per session; skips (fails in CI) when there is none (tests/assets.py)."""
    return assets.comfyui_folder(tmp_path_factory.mktemp("comfyui"))


@pytest.fixture(scope="session")
def faces() -> Path:
    """The folder of real faces and YuNet weights (``assets.FACE_FILES``): ``TPSMM_FACES``, else ``../shared/faces``;
    skips (fails in CI) when there is none (tests/assets.py)."""
    return assets.FACES.require()


@pytest.fixture(scope="session")
def talking(faces) -> Path:
    """The talking clip with sound of the face assets (``talking.mp4``, 25 fps, AAC)."""
    return faces / "talking.mp4"


@pytest.fixture(scope="session")
def detector(faces):
    """The YuNet face detector with the weights of the faces folder (nothing is downloaded)."""
    from tpsmm.core.face.detect import WEIGHTS_NAME, load_face_detector

    return load_face_detector(faces / WEIGHTS_NAME, download=False)


@pytest.fixture(scope="session")
def photo(faces):
    """``photo(name) -> [H,W,3]`` float tensor: an image of the faces folder."""
    from tpsmm.core.media.image_io import load_image

    return lambda name: torch.from_numpy(load_image(faces / name))


@pytest.fixture(scope="session")
def render_media(tmp_path_factory) -> Path:
    """Inputs for render tests: face.png (80x80), drive.mp4 (6 frames, 10 fps), long.mp4 (40 frames),
    models/tpsmm/tiny.safetensors and models/tpsmm/no_avd.safetensors (random tiny checkpoints)."""
    import numpy as np

    from tpsmm.core.media.image_io import save_image
    from tpsmm.core.media.video import VideoWriter
    from tpsmm.core.model.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("render-media")
    (d / "models" / "tpsmm").mkdir(parents=True)
    save_checkpoint(make_tiny_model(), str(d / "models" / "tpsmm" / "tiny.safetensors"))
    torch.manual_seed(0)
    save_checkpoint(TPSMM(tiny_model_config(), with_avd=False).eval(), str(d / "models" / "tpsmm" / "no_avd.safetensors"))
    rng = np.random.default_rng(0)
    save_image(str(d / "face.png"), rng.random((80, 80, 3), dtype=np.float32))
    for name, n in (("drive.mp4", 6), ("long.mp4", 40)):
        with VideoWriter(str(d / name), fps=10) as w:
            w.write(rng.random((n, 48, 48, 3), dtype=np.float32))
    return d


def bf16_fallback():
    """Context for code that asks for bfloat16 on the CPU: expects the one fallback warning where this CPU has no
    native bfloat16 (AVX2 only), and no warning where it has."""
    import contextlib

    from tpsmm.core.device import cpu_has_native_bf16

    if cpu_has_native_bf16():
        return contextlib.nullcontext()
    return pytest.warns(RuntimeWarning, match="no native bfloat16")


@pytest.fixture(scope="session", autouse=True)
def _graph_backends(tmp_path_factory):
    """The suite runs on the torch backend unless a test names another (``auto`` would export graphs for
    every tiny model), and any graph a test exports is cached in a temporary folder, not the user's cache."""
    from tpsmm.core.backends.cache import CACHE_ENV
    from tpsmm.core.backends.choice import BACKEND_ENV

    saved = {k: os.environ.get(k) for k in (BACKEND_ENV, CACHE_ENV)}
    os.environ.setdefault(BACKEND_ENV, "torch")
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("graph-cache"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _sigchld_as_it_was():
    """Give each test back the SIGCHLD disposition it started with.

    torch's DataLoader installs a process-wide SIGCHLD handler the first time it starts workers and never removes it.
    With the graph runtimes' thread pools (OpenVINO, ONNX Runtime) loaded in the same process, the exit of any later
    child process then crashed the whole test process with SIGSEGV (seen: test_data's worker test, test_backends, then
    any test that runs a subprocess). A test process is not a training process: restoring the handler keeps the
    suite's tests independent of each other's order."""
    before = signal.getsignal(signal.SIGCHLD)
    yield
    if signal.getsignal(signal.SIGCHLD) is not before:
        signal.signal(signal.SIGCHLD, before)


GRAPH_RUNTIME_TESTS = ("test_backends.py", "test_backend_presets.py", "test_backend_errors.py", "test_nodes_backend.py",
                       "test_backend_precision.py")
"""Test files that load the graph runtimes (OpenVINO, ONNX Runtime) into the test process."""


def pytest_collection_modifyitems(session, config, items):
    """Run the graph-runtime tests last (otherwise in the usual order).

    Once OpenVINO / ONNX Runtime have started their thread pools in a process, a DataLoader that forks workers later
    in that process crashed it with SIGSEGV (seen in the whole suite: test_backends, then test_train's loaders).
    tpsmm's own commands never do both in one process; the test process did, because it runs everything."""
    items.sort(key=lambda item: Path(str(item.fspath)).name in GRAPH_RUNTIME_TESTS)
