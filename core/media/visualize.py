"""Pictures of what the model does: keypoint overlays, coloured motion, occlusion masks, panels.

All functions take and return user-layout images: float ``[B, H, W, 3]`` in ``[0, 1]`` (ComfyUI IMAGE),
on the device of their input. They never modify their inputs.

Conventions: keypoints are ``(x, y)`` in ``[-1, 1]`` with ``align_corners=True`` (``-1``/``+1`` = centres
of the first/last pixel), so pixel column ``= (x + 1) / 2 * (W - 1)``. A deformation holds absolute
source coordinates for each output pixel (a backward warp); its *displacement* is ``deformation -
identity grid``, i.e. where each output pixel fetches its colour from, relative to itself.
"""
from __future__ import annotations

import colorsys

import torch
import torch.nn.functional as F
from einops import rearrange
from kornia.geometry import create_meshgrid
from torchvision.utils import flow_to_image

from .images import check_user_images
from .resize import resize
from .size import Size

__all__ = ["group_colours", "draw_keypoints", "flow_to_rgb", "occlusion_to_rgb", "side_by_side"]


def group_colours(groups: int, *, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[groups, 3]`` rainbow colours in ``[0,1]`` (hue evenly spaced, full saturation and value)."""
    rgb = [colorsys.hsv_to_rgb(g / max(groups, 1), 1.0, 1.0) for g in range(groups)]
    return torch.tensor(rgb, device=device, dtype=dtype).reshape(groups, 3)


def draw_keypoints(images: torch.Tensor, kp: torch.Tensor, *, radius: int | None = None,
                   group_size: int = 5, outline: bool = True) -> torch.Tensor:
    """Draw keypoints as filled discs, one rainbow colour per TPS group.

    Args:
        images: ``[B, H, W, 3]`` (or ``[H, W, 3]``) float in ``[0, 1]``.
        kp: ``[B, N, 2]`` or ``[1, N, 2]`` (broadcast) keypoints ``(x, y)`` in ``[-1, 1]``.
        radius: disc radius in pixels (default ``max(1, min(H, W) // 85)``: 3 px at 256²).
        group_size: keypoints per colour (5 = one TPS).
        outline: surround each disc with a 1-pixel black ring so it shows on any background.

    Returns:
        New ``[B, H, W, 3]`` tensor (same dtype/device as ``images``). Keypoints off the image are skipped.
    """
    # Not torchvision's draw_keypoints: it draws one colour per call through PIL on the CPU, one image at a
    # time, and round-trips a float image through uint8 (every pixel moves by up to 1/510); here all frames
    # and groups are drawn in one indexed write on the frames' device, leaving other pixels untouched.
    images = check_user_images(images, name="images", channels=(3,), values=False)
    if not isinstance(kp, torch.Tensor) or kp.ndim != 3 or kp.shape[-1] != 2:
        raise ValueError(f"kp: expected [B,N,2] keypoints, got {getattr(kp, 'shape', type(kp).__name__)}")
    b, h, w, _ = images.shape
    if kp.shape[0] not in (1, b):
        raise ValueError(f"kp: batch {kp.shape[0]} does not match the {b} images (use 1 or {b})")
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    r = max(1, min(h, w) // 85) if radius is None else int(radius)
    if r < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    n = kp.shape[1]
    dev = images.device
    kp = kp.to(device=dev, dtype=torch.float32).expand(b, -1, -1)
    colours = group_colours((n + group_size - 1) // group_size, device=dev)
    colours = colours.repeat_interleave(group_size, dim=0)[:n]                     # [N,3]
    cx = torch.round((kp[..., 0] + 1) / 2 * (w - 1)).long()                        # [B,N]
    cy = torch.round((kp[..., 1] + 1) / 2 * (h - 1)).long()
    out = images.clone()
    flat = rearrange(out, "b h w c -> (b h w) c")
    for ring, colour_of in ((r + 1, None), (r, colours)) if outline else ((r, colours),):
        offs = torch.arange(-ring, ring + 1, device=dev)
        oy, ox = torch.meshgrid(offs, offs, indexing="ij")
        disc = (ox ** 2 + oy ** 2) <= ring ** 2 + ring * 0.5                         # [P,P]
        oy, ox = oy[disc], ox[disc]                                                # [M]
        py = cy[..., None] + oy                                                    # [B,N,M]
        px = cx[..., None] + ox
        ok = (py >= 0) & (py < h) & (px >= 0) & (px < w)
        bi = torch.arange(b, device=dev)[:, None, None].expand_as(py)
        index = (bi * h + py.clamp(0, h - 1)) * w + px.clamp(0, w - 1)
        if colour_of is None:
            value = torch.zeros(*py.shape, 3, device=dev)
        else:
            value = colour_of[None, :, None, :].expand(b, n, py.shape[-1], 3)
        flat[index[ok]] = value[ok].to(flat.dtype)
    return out


def flow_to_rgb(deformation: torch.Tensor, *, size: int | tuple[int, int] | None = None,
                max_magnitude: float | None = None) -> torch.Tensor:
    """Colour a dense motion field with torchvision's ``flow_to_image`` (hue = direction, saturation = speed).

    Args:
        deformation: ``[B, h, w, 2]`` absolute source coordinates ``(x, y)`` in ``[-1, 1]``
            (``DenseMotion.deformation``); the displacement ``deformation - identity`` is coloured.
        size: output ``(H, W)`` (int = square); ``None`` keeps ``h x w``. Resized bilinearly.
        max_magnitude: displacement (normalised units; 2 = the image width) that maps to full
            saturation, the same for every frame so colours do not flicker across a video; larger
            motion is clipped. ``None``: normalise by the largest displacement in this batch.

    Returns:
        ``[B, H, W, 3]`` float32 in ``[0, 1]``; zero motion is white.
    """
    if not isinstance(deformation, torch.Tensor) or deformation.ndim != 4 or deformation.shape[-1] != 2:
        raise ValueError(f"deformation: expected [B,h,w,2], got {getattr(deformation, 'shape', deformation)}")
    b, h, w, _ = deformation.shape
    d = deformation.float()
    flow = d - create_meshgrid(h, w, normalized_coordinates=True, device=d.device)   # identity, (x, y)
    flow = rearrange(flow, "b h w c -> b c h w")
    if max_magnitude is not None:
        if max_magnitude <= 0:
            raise ValueError(f"max_magnitude must be positive, got {max_magnitude}")
        norm = flow.norm(dim=1, keepdim=True)
        flow = flow * (max_magnitude / norm.clamp_min(max_magnitude))   # clip to the fixed scale
        # flow_to_image divides by the largest norm; one extra row holding a vector of exactly
        # max_magnitude pins that divisor, so the scale is the same for every call.
        pin = flow.new_zeros(b, 2, 1, w)
        pin[:, 0, 0, 0] = max_magnitude
        rgb = flow_to_image(torch.cat([flow, pin], dim=2))[:, :, :h]
    else:
        rgb = flow_to_image(flow)
    rgb = rgb.float() / 255
    hw = Size(h, w) if size is None else Size.of(size)
    if hw != (h, w):
        rgb = F.interpolate(rgb, size=hw, mode="bilinear", align_corners=False).clamp(0, 1)
    return rearrange(rgb, "b c h w -> b h w c").contiguous()


def occlusion_to_rgb(occlusion: torch.Tensor, *, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Grey picture of an occlusion mask: white = the warped source is used, black = inpainted.

    Args:
        occlusion: ``[B, h, w]`` or ``[B, 1, h, w]`` in ``[0, 1]``.
        size: output ``(H, W)`` (int = square), bilinear; ``None`` keeps ``h x w``.

    Returns:
        ``[B, H, W, 3]`` float32 in ``[0, 1]``.
    """
    if not isinstance(occlusion, torch.Tensor):
        raise TypeError(f"occlusion: expected a torch.Tensor, got {type(occlusion).__name__}")
    if occlusion.ndim == 4 and occlusion.shape[1] == 1:
        occlusion = occlusion[:, 0]
    if occlusion.ndim != 3:
        raise ValueError(f"occlusion: expected [B,h,w] or [B,1,h,w], got {tuple(occlusion.shape)}")
    x = occlusion.float()[:, None]
    hw = Size(*x.shape[2:]) if size is None else Size.of(size)
    if hw != tuple(x.shape[2:]):
        x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False)
    return rearrange(x.clamp(0, 1), "b 1 h w -> b h w 1").expand(-1, -1, -1, 3).contiguous()


def side_by_side(*panels: torch.Tensor) -> torch.Tensor:
    """Concatenate panels left to right.

    Args:
        panels: each ``[B_i, H_i, W_i, 3]`` (or ``[H, W, 3]``) with ``B_i`` equal to 1 or the common
            batch ``B``. Each is resized (antialiased bicubic, the ``picture`` policy; aspect kept) to the first
            panel's height.

    Returns:
        ``[B, H, sum(W_i'), 3]`` float32 on the first panel's device.
    """
    # Not torchvision's make_grid: it tiles the images of one batch and needs them all the same size; here
    # each frame gets its own row of panels of different widths.
    if not panels:
        raise ValueError("side_by_side: need at least one panel")
    panels = tuple(check_user_images(p, name=f"panel {i}", channels=(3,), values=False) for i, p in enumerate(panels))
    b = max(p.shape[0] for p in panels)
    bad = [p.shape[0] for p in panels if p.shape[0] not in (1, b)]
    if bad:
        raise ValueError(f"side_by_side: panel batches must be 1 or {b}, got {bad[0]}")
    h, dev = panels[0].shape[1], panels[0].device
    out = []
    for p in panels:
        p = p.to(device=dev, dtype=torch.float32)
        if p.shape[1] != h:
            p = resize(p, (h, max(1, round(p.shape[2] * h / p.shape[1]))), policy="picture", layout="bhwc")
        out.append(p.expand(b, -1, -1, -1))
    return torch.cat(out, dim=2)
