"""tpsmm.core: everything inference needs (no ComfyUI import).

Public API::

    from tpsmm.core import load_model
    model = load_model("vox.safetensors", device="cpu", dtype=torch.float32)
    frames = model.animate(source, driving, mode="relative")   # [H,W,3], [T,H,W,3] -> [T,S,S,3]

Steps: ``model.extract_keypoints`` -> :class:`Keypoints`, ``model.estimate_motion`` -> :class:`Motion`,
``model.generate`` -> frames and occlusion masks.
"""
from .model.checkpoint import CheckpointError, convert_official, load_model, save_checkpoint
from .model.config import PRESETS, Config, ConfigError, ModelConfig, get_preset, load_config
from .media.images import InputError
from .model.container import TPSMM, ModelError
from .model.structures import MODES, Keypoints, Motion

__all__ = ["load_model", "convert_official", "save_checkpoint", "CheckpointError", "Config", "ModelConfig",
           "ConfigError", "PRESETS", "get_preset", "load_config", "InputError", "TPSMM", "ModelError",
           "Keypoints", "Motion", "MODES"]
