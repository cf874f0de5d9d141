"""tpsmm.core: everything inference needs (no ComfyUI import).

Public API::

    from tpsmm.core import load_model
    model = load_model("vox.safetensors", device="cpu", dtype=torch.float32)
    frames = model.animate(source, driving, mode="relative")   # [H,W,3], [T,H,W,3] -> [T,S,S,3]

Steps: ``model.extract_keypoints`` -> :class:`Keypoints`, ``model.estimate_motion`` -> :class:`Motion`,
``model.generate`` -> frames and occlusion masks. Everything renders through :class:`AnimationPipeline`
(options in :class:`AnimationOptions`), which streams a :class:`DrivingFrames` clip batch by batch.

Faces: ``find_face(photo)`` -> the training-style square :class:`~tpsmm.core.media.crop.CropBox` around a face,
``driving_box(frames)`` -> one still box for a whole driving clip (see :mod:`tpsmm.core.face.framing`).

Layers (imports point down only): ``geometry``, ``media`` -> ``networks`` -> ``model`` -> ``backends`` -> ``animation`` -> ``cli``.

Backends: ``load_model(path, backend="auto")`` with one of :data:`BACKENDS` (``auto``, ``torch``, ``onnxruntime``,
``openvino``); a runtime that cannot be used raises :class:`BackendError` (see :mod:`tpsmm.core.backends`).
"""
from .animation.driving import DrivingFrames
from .backends import BACKENDS, BackendError
from .face.framing import find_face
from .face.detect import FaceError
from .face.track import driving_box
from .animation.animator import TPSMM, load_model
from .animation.options import AnimationOptions
from .animation.pipeline import AnimationPipeline, Hooks, RenderedFrames
from .media.images import InputError
from .model.checkpoint import CheckpointError, convert_official, save_checkpoint
from .model.config import PRESETS, Config, ConfigError, ModelConfig, get_preset, load_config
from .model.container import ModelError, TPSMMNetworks
from .model.structures import MODES, Keypoints, Motion

__all__ = ["load_model", "convert_official", "save_checkpoint", "CheckpointError", "Config", "ModelConfig",
           "ConfigError", "PRESETS", "get_preset", "load_config", "InputError", "TPSMM", "TPSMMNetworks",
           "ModelError", "Keypoints", "Motion", "MODES", "AnimationOptions", "AnimationPipeline", "DrivingFrames",
           "Hooks", "RenderedFrames", "find_face", "driving_box", "FaceError",
           "BACKENDS", "BackendError"]
