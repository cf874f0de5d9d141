"""From the model's output to the frames a user sees: size, crop paste-back, keypoints, panels.

One rendered batch (the model-size prediction and its dense motion) becomes output frames in the
layouts of :data:`~tpsmm.core.animation.options.VIEWS`:

1. **size** — the prediction is brought to the output size: ``flow`` warps the full-resolution
   source with the upsampled motion and uses the prediction only where the source is occluded
   (:func:`~tpsmm.core.animation.hires.render_hires`); ``bicubic`` enlarges it;
2. **keypoints** (``+kp`` views) — the transferred keypoints are drawn on the result;
3. **paste-back** — with a crop box, the result is blended into the whole photo (feathered edge);
4. **panels** (``side-by-side`` views) — source | driving | result, the source and driving panels
   with their own keypoints in ``+kp`` views.

All frames are user layout: float32 ``[b, H, W, 3]`` on the CPU in ``[0, 1]``.
"""
from __future__ import annotations

import torch
from einops import rearrange

from ..media.images import to_user_layout
from ..media.visualize import draw_keypoints, side_by_side
from ..media.crop import CropBox, crop, paste_back, resize_images
from ..media.size import Size
from .hires import render_hires, upscale_frames

__all__ = ["Composer"]


class Composer:
    """Composes output frames for one source (see the module docstring).

    Args:
        photo: ``[H, W, 3]`` the whole source image (user layout, CPU).
        box: the animated region of ``photo`` (``None``: all of it).
        feather: paste-back blend width in pixels.
        out_size: :class:`~tpsmm.core.media.size.Size` of the animated region's output frames.
        upscale: ``flow`` or ``bicubic`` (for outputs larger than the model size).
        model_size: the model's frame size ``S``.
        kp_source: ``[1, N, 2]`` the source keypoints (for ``+kp`` source panels).
        device: where the full-resolution warp runs.
    """

    def __init__(self, *, photo: torch.Tensor, box: CropBox | None, feather: int, out_size: Size,
                 upscale: str, model_size: int, kp_source: torch.Tensor, device: torch.device) -> None:
        self.photo, self.box, self.feather, self.out_size = photo, box, feather, Size.of(out_size)
        self.region = crop(photo, box)[0] if box is not None else photo
        bigger = max(self.out_size) > model_size
        self.hires_source = (rearrange(self.region, "h w c -> 1 c h w").to(device)
                             if bigger and upscale == "flow" else None)
        self.kp_source = kp_source.detach().float().cpu()
        self._stills: dict[bool, torch.Tensor] = {}

    def still(self, with_kp: bool) -> torch.Tensor:
        """The source panel ``[1, H, W, 3]`` of side-by-side layouts (the whole photo when cropping)."""
        if with_kp not in self._stills:
            still = resize_images(self.region[None], self.out_size)
            if with_kp:
                still = draw_keypoints(still, self.kp_source)
            self._stills[with_kp] = paste_back(self.photo, still, self.box, feather=0) if self.box else still
        return self._stills[with_kp]

    def result(self, prediction: torch.Tensor, deformation: torch.Tensor, occlusion: torch.Tensor) -> torch.Tensor:
        """Model output ``[b, 3, S, S]`` (with its deformation and finest occlusion) -> ``[b, h, w, 3]`` at ``out_size``."""
        pred = prediction.clamp(0, 1)
        if self.hires_source is not None:
            frames = render_hires(self.hires_source, pred, deformation, occlusion, size=self.out_size)
        else:
            frames = upscale_frames(pred, self.out_size)
        return to_user_layout(frames)

    def views(self, names: tuple[str, ...], result: torch.Tensor, *, kp_transferred: torch.Tensor,
              driving: torch.Tensor | None, kp_driving: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``result [b, h, w, 3]`` -> ``{view: frames}`` for each name in ``names``."""
        out: dict[str, torch.Tensor] = {}
        for name in names:
            with_kp = name.endswith("+kp")
            frames = draw_keypoints(result, kp_transferred.detach().float().cpu()) if with_kp else result
            if self.box is not None:
                frames = paste_back(self.photo, frames, self.box, feather=self.feather)
            if name.startswith("side-by-side"):
                if driving is None:
                    raise ValueError(f"the {name!r} layout needs the driving frames (none were given)")
                panel = draw_keypoints(driving, kp_driving.detach().float().cpu()) if with_kp else driving
                frames = side_by_side(self.still(with_kp), panel, frames)
            out[name] = frames
        return out
