"""Face detection with kornia's YuNet (:class:`kornia.contrib.FaceDetector`), weights found offline first.

Weights (``yunet_final.pth``, 405,729 bytes, a plain state dict) are looked up in this order:

1. an explicit file (``weights=`` / ``--face-weights FILE``);
2. the torch hub cache, where kornia stores its own download (``<torch hub dir>/checkpoints/yunet_final.pth``);
3. extra folders given by the caller (the ComfyUI nodes pass ``models/facedetection/``);
4. kornia's own download, when ``download=True`` and the internet is reachable.

When none works, :class:`FaceError` says where to put the file. A file that is not YuNet weights is refused
with one line; loading never unpickles code (``torch.load(weights_only=True)``).

Boxes are returned in pixels of the image given, as ``[N, 5]`` float rows ``x0, y0, x1, y1, score``
sorted left to right (by the box centre).
"""
from __future__ import annotations

import os
import threading
from typing import Sequence

import torch
import torch.nn.functional as F

from ..media.images import InputError

__all__ = ["FaceError", "WEIGHTS_NAME", "WEIGHTS_URL", "find_weights", "load_face_detector", "detect_faces"]

WEIGHTS_NAME = "yunet_final.pth"
WEIGHTS_URL = "https://github.com/kornia/data/raw/main/yunet_final.pth"
DETECT_SIDE = 640        # images are shrunk so the longer side is at most this before detection (speed)
SCORE_THRESHOLD = 0.75   # detections below this score are ignored

_LOCK = threading.Lock()
_CACHE: dict[str, torch.nn.Module] = {}


class FaceError(InputError):
    """No usable face (none found, too small, index out of range) or no usable detector weights."""


def hub_weights_path() -> str:
    """Where kornia's download of the weights lives: ``<torch hub dir>/checkpoints/yunet_final.pth``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", WEIGHTS_NAME)


def find_weights(weights: str | os.PathLike | None = None, *, search_dirs: Sequence[str] = ()) -> str | None:
    """Path of the YuNet weights (lookup order in the module docstring); ``None`` when none is on disk.

    Raises:
        FaceError: ``weights`` names a file that does not exist (the error names the field ``face_weights``).
    """
    if weights is not None:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FaceError(f"no such file: {path}", field="face_weights")
        return path
    for candidate in [hub_weights_path(), *(os.path.join(d, WEIGHTS_NAME) for d in search_dirs)]:
        if os.path.isfile(candidate):
            return candidate
    return None


def _yunet_from_file(path: str) -> torch.nn.Module:
    from kornia.models.yunet import YuNet

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise FaceError(f"{path}: not YuNet face detector weights (cannot be read as a state dict: "
                        f"{type(exc).__name__})") from None
    model = YuNet("test", pretrained=False)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FaceError(f"{path}: not YuNet face detector weights (not a dict of tensors)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise FaceError(f"{path}: not YuNet face detector weights (its tensors do not match YuNet's; expected "
                        f"{WEIGHTS_NAME} from {WEIGHTS_URL})") from None
    return model


def _detector_with(yunet: torch.nn.Module | None) -> torch.nn.Module:
    """kornia's ``FaceDetector`` around ``yunet`` (``None``: kornia builds YuNet and downloads the weights).

    ``FaceDetector.__init__`` always asks for the pretrained YuNet; to hand it weights loaded from a local
    file, its module's ``YuNet`` name is pointed at the loaded network for the duration of the call.
    """
    import kornia.contrib.face_detection as kfd

    if yunet is None:
        return kfd.FaceDetector().eval()
    with _LOCK:
        original = kfd.YuNet
        kfd.YuNet = lambda *args, **kwargs: yunet
        try:
            return kfd.FaceDetector().eval()
        finally:
            kfd.YuNet = original


def load_face_detector(weights: str | os.PathLike | None = None, *, search_dirs: Sequence[str] = (),
                       download: bool = True) -> torch.nn.Module:
    """kornia's YuNet ``FaceDetector`` in eval mode on the CPU, cached per weights file.

    Args:
        weights: explicit weights file (``--face-weights``), else the lookup in the module docstring.
        search_dirs: extra folders holding ``yunet_final.pth`` (after the torch hub cache).
        download: let kornia download the weights when no file is found (needs the internet).

    Raises:
        FaceError: missing/unreadable/foreign weights file, or no file and the download failed or was off.
    """
    path = find_weights(weights, search_dirs=search_dirs)
    key = path or "<download>"
    if key in _CACHE:
        return _CACHE[key]
    if path is not None:
        detector = _detector_with(_yunet_from_file(path))
    else:
        where = f"put {WEIGHTS_NAME} ({WEIGHTS_URL}) into {os.path.dirname(hub_weights_path())}"
        where += "".join(f" or {d}" for d in search_dirs) + ", or pass --face-weights FILE"
        if not download:
            raise FaceError(f"face detector weights not found: {where}")
        try:
            detector = _detector_with(None)
        except Exception as exc:  # noqa: BLE001 - network errors come in many types
            raise FaceError(f"face detector weights not found and the download failed "
                            f"({type(exc).__name__}): {where}") from None
    _CACHE[key] = detector
    return detector


def detect_faces(images: torch.Tensor, detector: torch.nn.Module, *, max_side: int = DETECT_SIDE,
                 threshold: float = SCORE_THRESHOLD) -> list[torch.Tensor]:
    """Faces in each image of a batch.

    Args:
        images: ``[B, H, W, 3]`` (or ``[H, W, 3]``) RGB, float in ``[0, 1]`` or uint8.
        detector: from :func:`load_face_detector`.
        max_side: the batch is shrunk (antialiased) so its longer side is at most this before detection.
        threshold: minimum detection score.

    Returns:
        One ``[N, 5]`` float32 tensor per image: ``x0, y0, x1, y1, score`` in pixels of ``images``,
        sorted left to right by box centre.
    """
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"detect_faces: expected RGB images [B,H,W,3], got shape {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2).float()
    x = x if images.dtype == torch.uint8 else x * 255.0
    height, width = x.shape[-2:]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        x = F.interpolate(x, size=(max(1, round(height * scale)), max(1, round(width * scale))),
                          mode="bilinear", antialias=True, align_corners=False)
    to_pixels = torch.tensor([width / x.shape[-1], height / x.shape[-2]] * 2)
    with torch.inference_mode():
        found = detector(x.clamp(0, 255))
    out = []
    for dets in found:
        dets = dets[dets[:, 14] >= threshold]
        boxes = torch.cat([dets[:, :4].float() * to_pixels, dets[:, 14:15].float()], dim=1)
        out.append(boxes[((boxes[:, 0] + boxes[:, 2]) / 2).argsort()])
    return out
