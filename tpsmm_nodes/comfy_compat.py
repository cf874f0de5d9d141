"""The one place that talks to a running ComfyUI (``folder_paths``, ``comfy.utils``, ``comfy.model_management``);
the node classes themselves are built on ``comfy_api.latest`` (its ``io`` schema and VIDEO types).

Inside a ComfyUI process (detected by ``folder_paths`` and ``comfy.model_management`` being imported, which
ComfyUI's ``main.py`` does before it loads custom nodes) every function defers to ComfyUI. Where only
``comfy_api`` is importable (a script or test that calls the nodes without a server) plain fallbacks are used:

* models: the folders in ``TPSMM_MODELS_DIR`` (``os.pathsep``-separated, set by the user; ``tpsmm render
  --models-dir`` does not set it: it hands its folder to the ComfyUI it starts through an extra model paths
  file), plus ``./models/tpsmm`` if it exists; a checkpoint name may also be a path to a file;
* devices: ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``; outputs stay on the CPU;
* progress: a no-op bar; interruption: nothing to check (Ctrl+C raises ``KeyboardInterrupt``).

ComfyUI is never imported from here when it is not already running, so a stray ComfyUI checkout on
``sys.path`` cannot initialise CUDA behind the user's back.
"""
from __future__ import annotations

import logging
import os
import sys

import torch

__all__ = ["MODEL_FOLDER", "MODEL_EXTENSIONS", "in_comfyui", "register_model_folder", "list_checkpoints",
           "checkpoint_path", "torch_device", "offload_device", "intermediate_device", "free_memory",
           "soft_empty_cache", "ProgressBar", "check_interrupt", "auto_dtype", "face_model_dirs"]

MODEL_FOLDER = "tpsmm"
MODEL_EXTENSIONS = frozenset({".safetensors", ".pth", ".tar"})   # .tar: official ``*.pth.tar`` files
ENV_MODELS_DIR = "TPSMM_MODELS_DIR"
log = logging.getLogger("tpsmm")


def in_comfyui() -> bool:
    """True when running inside a ComfyUI process (its ``folder_paths`` module is loaded)."""
    return "folder_paths" in sys.modules and "comfy.model_management" in sys.modules


# ---------------------------------------------------------------------------------------- models
def register_model_folder() -> None:
    """Register ``models/tpsmm`` with ComfyUI, keeping folders a user set in ``extra_model_paths.yaml``.

    ``add_model_folder_path`` would create the key with an empty extension set (= every file), so the
    entry is written directly with our extensions; no-op outside ComfyUI.
    """
    if not in_comfyui():
        return
    import folder_paths

    default = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    dirs, _ = folder_paths.folder_names_and_paths.get(MODEL_FOLDER, ([], set()))
    dirs = list(dirs) + ([default] if default not in dirs else [])
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (dirs, set(MODEL_EXTENSIONS))
    os.makedirs(default, exist_ok=True)


def face_model_dirs() -> list[str]:
    """Folders searched for the face detector's ``yunet_final.pth``: ComfyUI's ``models/facedetection``
    (and its ``extra_model_paths.yaml`` entries); outside ComfyUI ``./models/facedetection``."""
    if in_comfyui():
        import folder_paths

        dirs = list(folder_paths.folder_names_and_paths.get("facedetection", ([], set()))[0])
        default = os.path.join(folder_paths.models_dir, "facedetection")
        return dirs + ([default] if default not in dirs else [])
    return [os.path.join("models", "facedetection")]


def _fallback_dirs() -> list[str]:
    dirs = [d for d in os.environ.get(ENV_MODELS_DIR, "").split(os.pathsep) if d]
    local = os.path.join("models", MODEL_FOLDER)
    return dirs + ([local] if os.path.isdir(local) and local not in dirs else [])


def _is_model_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in MODEL_EXTENSIONS


def list_checkpoints() -> list[str]:
    """Checkpoint names for the loader's dropdown (paths relative to the model folders, sorted)."""
    if in_comfyui():
        import folder_paths

        return folder_paths.get_filename_list(MODEL_FOLDER)
    names = set()
    for d in _fallback_dirs():
        for root, subdirs, files in os.walk(d):
            subdirs[:] = [s for s in subdirs if not s.startswith(".")]
            names.update(os.path.relpath(os.path.join(root, f), d).replace(os.sep, "/")
                         for f in files if _is_model_file(f) and not f.startswith("."))
    return sorted(names)


def checkpoint_path(name: str) -> str:
    """Resolve a checkpoint name to a file path; ``FileNotFoundError`` with a user-readable message."""
    if not name or not str(name).strip() or str(name).strip().lower() in ("none", "null"):
        raise FileNotFoundError(f"no checkpoint chosen: put a TPSMM .safetensors file into models/{MODEL_FOLDER} "
                                "and pick it in ckpt_name")
    if in_comfyui():
        import folder_paths

        path = folder_paths.get_full_path(MODEL_FOLDER, name)
        where = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
    else:
        path = next((os.path.join(d, name) for d in _fallback_dirs() if os.path.isfile(os.path.join(d, name))),
                    None)
        if path is None and os.path.isfile(name):
            path = name
        where = ", ".join(_fallback_dirs()) or f"nowhere (set {ENV_MODELS_DIR} or --models-dir)"
    if path is None:
        raise FileNotFoundError(f"checkpoint {name!r} not found in the tpsmm model folder(s): {where}")
    return path


# ---------------------------------------------------------------------------------------- devices
def torch_device() -> torch.device:
    """The device models run on: ComfyUI's choice, else ``cuda:<LOCAL_RANK>`` or ``cpu``."""
    if in_comfyui():
        import comfy.model_management as mm

        return mm.get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


def offload_device() -> torch.device:
    """Where an idle model waits between runs (ComfyUI's ``unet_offload_device``, else the CPU)."""
    if in_comfyui():
        import comfy.model_management as mm

        return mm.unet_offload_device()
    return torch.device("cpu")


def intermediate_device() -> torch.device:
    """Where tensors passed between nodes live (the CPU unless ComfyUI runs ``--gpu-only``)."""
    if in_comfyui():
        import comfy.model_management as mm

        return mm.intermediate_device()
    return torch.device("cpu")


def auto_dtype(device: torch.device) -> torch.dtype:
    """The dtype ``auto`` picks: fp32 on CPU/MPS; bf16 where supported; else fp16 if ComfyUI allows; else fp32."""
    if device.type != "cuda":
        return torch.float32
    if in_comfyui():
        import comfy.model_management as mm

        if mm.should_use_bf16(device):
            return torch.bfloat16
        return torch.float16 if mm.should_use_fp16(device) else torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32


def free_memory(num_bytes: int, device: torch.device) -> None:
    """Ask ComfyUI to evict other models so ``num_bytes`` fit on ``device``; no-op outside ComfyUI/CPU."""
    if in_comfyui() and device.type != "cpu":
        import comfy.model_management as mm

        mm.free_memory(num_bytes, device)


def soft_empty_cache() -> None:
    if in_comfyui():
        import comfy.model_management as mm

        mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------- progress
class ProgressBar:
    """``comfy.utils.ProgressBar`` inside ComfyUI (its hook also checks for interruption); else silent."""

    def __init__(self, total: int):
        self.total, self.current = max(int(total), 1), 0
        self._bar = None
        if in_comfyui():
            import comfy.utils

            self._bar = comfy.utils.ProgressBar(self.total)

    def update(self, n: int = 1) -> None:
        self.current = min(self.current + n, self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.current, self.total)


def check_interrupt() -> None:
    """Raise ComfyUI's ``InterruptProcessingException`` if the user pressed Cancel; no-op outside ComfyUI."""
    if in_comfyui():
        import comfy.model_management as mm

        mm.throw_exception_if_processing_interrupted()
