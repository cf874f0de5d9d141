"""Face detection with kornia's YuNet (:class:`kornia.contrib.FaceDetector`), weights found offline first.

Weights (``yunet_final.pth``, 405,729 bytes, a plain state dict) are looked up in this order:

1. an explicit file (``weights=`` / ``--face-weights FILE``);
2. the torch hub cache, where kornia stores its own download (``<torch hub dir>/checkpoints/yunet_final.pth``);
3. extra folders given by the caller (the ComfyUI nodes pass ``models/facedetection/``);
4. kornia's own download, when ``download=True`` and the internet is reachable.

When none works, :class:`FaceError` says where to put the file. A file that is not YuNet weights is refused
with one line; loading never unpickles code (:func:`~tpsmm.core.media.torch_archive.load_tensors`), and
weights that are not finite numbers are refused.

Boxes are returned in pixels of the image given, as ``[N, 5]`` float rows ``x0, y0, x1, y1, score``
sorted left to right (by the box centre).

A detection counts as a face only when it is plausible (:func:`plausible_faces`): its score reaches
:data:`SCORE_THRESHOLD`; its five landmarks lie in and around the box with both eyes above the mouth
and apart; and the box holds texture (grey-level spread at least :data:`MIN_TEXTURE`). YuNet reports
a confident "face" covering an all-black frame; uniform, black or white frames therefore hold none.
"""
from __future__ import annotations

import os
import threading
from typing import Sequence

import torch
import torch.nn.functional as F

from ..media.images import InputError
from ..media.torch_archive import ArchiveError, load_tensors

__all__ = ["FaceError", "WEIGHTS_NAME", "WEIGHTS_URL", "find_weights", "load_face_detector", "detect_faces",
           "plausible_faces", "check_face_images"]

WEIGHTS_NAME = "yunet_final.pth"
WEIGHTS_URL = "https://github.com/kornia/data/raw/main/yunet_final.pth"
DETECT_SIDE = 640        # images are shrunk so the longer side is at most this before detection (speed)
SCORE_THRESHOLD = 0.75   # detections below this score are ignored
MIN_TEXTURE = 8.0        # grey-level standard deviation (0..255) a face box must hold (real faces: 30 and more)
MIN_SIDE = 32            # pixels: smaller images hold no detectable face (YuNet's coarsest stride)

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
        if os.path.isdir(path):
            raise FaceError(f"--face-weights {path}: is a folder; pass the weights file ({WEIGHTS_NAME})")
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
        state = load_tensors(path)
    except ArchiveError as exc:
        raise FaceError(f"{path}: not YuNet face detector weights (cannot be read as a state dict: "
                        f"{str(exc).removeprefix(path + ': ')})") from None
    model = YuNet("test", pretrained=False)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FaceError(f"{path}: not YuNet face detector weights (not a dict of tensors)")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise FaceError(f"{path}: not usable YuNet face detector weights ({bad} holds NaN or infinite values)")
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


def plausible_faces(dets: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: which YuNet rows (``x0, y0, x1, y1``, 5 landmarks ``x, y``, score) look like a face.

    Args:
        dets: ``[N, 15]`` detections in pixels of ``image``.
        image: ``[3, H, W]`` float 0..255.
    """
    box, marks = dets[:, :4].float(), dets[:, 4:14].float().view(-1, 5, 2)
    size = (box[:, 2:] - box[:, :2]).clamp(min=1e-3)
    rel = (marks - box[:, None, :2]) / size[:, None]
    inside = ((rel > -0.3) & (rel < 1.3)).all(dim=2).all(dim=1)
    eyes_above = rel[:, :2, 1].mean(dim=1) < rel[:, 3:, 1].mean(dim=1)
    apart = (marks[:, 0] - marks[:, 1]).norm(dim=1) >= 0.1 * size.max(dim=1).values
    shape = (size[:, 0] / size[:, 1] > 0.4) & (size[:, 0] / size[:, 1] < 2.5)
    grey = image.mean(dim=0)
    height, width = grey.shape
    texture = []
    for x0, y0, x1, y1 in box.tolist():
        x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(width, int(x1) + 1), min(height, int(y1) + 1)
        patch = grey[y0:y1, x0:x1]
        texture.append(patch.numel() > 1 and float(patch.std()) >= MIN_TEXTURE)
    return inside & eyes_above & apart & shape & torch.tensor(texture, dtype=torch.bool)


def check_face_images(images, *, what: str = "image") -> torch.Tensor:
    """``[B, H, W, 3]`` (or ``[H, W, 3]``) RGB float in ``[0, 1]`` or uint8, torch or numpy -> a batched tensor.

    Raises:
        FaceError: another layout, an empty image, or float values outside ``[0, 1]`` (0..255 floats would
            silently find no face).
    """
    if not isinstance(images, torch.Tensor):
        try:
            import numpy as np

            images = torch.from_numpy(np.ascontiguousarray(images))
        except TypeError:
            raise FaceError(f"{what}: expected an image tensor or array, got {type(images).__name__}") from None
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise FaceError(f"{what}: expected RGB images [H,W,3] or [B,H,W,3], got shape {tuple(images.shape)}")
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise FaceError(f"{what}: the image is empty ({images.shape[2]}x{images.shape[1]} pixels)")
    if images.dtype != torch.uint8:
        if not images.is_floating_point():
            raise FaceError(f"{what}: expected float values in [0, 1] or uint8, got {images.dtype}")
        low, high = float(images.min()), float(images.max())
        if not (low >= -1e-3 and high <= 1 + 1e-3):
            hint = "; divide 0..255 pixel values by 255" if high > 1 else ""
            raise FaceError(f"{what}: expected float pixel values in [0, 1], got {low:g}..{high:g}{hint}")
    return images


def detect_faces(images: torch.Tensor, detector: torch.nn.Module, *, max_side: int = DETECT_SIDE,
                 threshold: float = SCORE_THRESHOLD) -> list[torch.Tensor]:
    """Plausible faces in each image of a batch.

    Args:
        images: ``[B, H, W, 3]`` (or ``[H, W, 3]``) RGB, float in ``[0, 1]`` or uint8 (checked by
            :func:`check_face_images`).
        detector: from :func:`load_face_detector`.
        max_side: the batch is shrunk (antialiased) so its longer side is at most this before detection.
        threshold: minimum detection score.

    Returns:
        One ``[N, 5]`` float32 tensor per image: ``x0, y0, x1, y1, score`` in pixels of ``images``,
        sorted left to right by box centre (none for images under :data:`MIN_SIDE` pixels).
    """
    images = check_face_images(images)
    x = images.permute(0, 3, 1, 2).float()
    x = x if images.dtype == torch.uint8 else x * 255.0
    height, width = x.shape[-2:]
    if min(height, width) < MIN_SIDE:
        return [torch.zeros(0, 5) for _ in range(len(images))]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        x = F.interpolate(x, size=(max(1, round(height * scale)), max(1, round(width * scale))),
                          mode="bilinear", antialias=True, align_corners=False)
    x = x.clamp(0, 255)
    to_pixels = torch.tensor([width / x.shape[-1], height / x.shape[-2]] * 2)
    with torch.inference_mode():
        found = detector(x)
    out = []
    for dets, image in zip(found, x):
        dets = dets[dets[:, 14] >= threshold]
        dets = dets[plausible_faces(dets, image)] if len(dets) else dets
        boxes = torch.cat([dets[:, :4].float() * to_pixels, dets[:, 14:15].float()], dim=1)
        out.append(boxes[((boxes[:, 0] + boxes[:, 2]) / 2).argsort()])
    return out
