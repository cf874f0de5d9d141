"""Pictures of training progress, drawn with PIL only: a sample grid and a loss-curve plot.

* :func:`sample_grid` — one row per sample: source with its keypoints, driving with its keypoints,
  prediction, warped source, occlusion mask (white = taken from the warped source, black = inpainted).
* :func:`loss_curve` — every loss against the step (log-scale y), with a legend.

Both return a PIL image; :func:`save_png` writes it atomically.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..core.media.atomic import atomic_write

__all__ = ["keypoint_colors", "sample_grid", "loss_curve", "save_png"]

_COLUMNS = ("source", "driving", "prediction", "deformed", "occlusion")


def keypoint_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct rainbow colours (hue sweep, like the release's gist_rainbow)."""
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(0.85 * i / max(n - 1, 1), 1.0, 1.0)) for i in range(n)]


def _to_image(t: torch.Tensor, zoom: int = 1) -> Image.Image:
    """``[C,H,W]`` float in [0,1] (C = 1 or 3) -> RGB PIL image, enlarged ``zoom`` times (nearest)."""
    arr = (t.detach().float().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    arr = np.repeat(arr, 3, axis=0) if arr.shape[0] == 1 else arr[:3]
    img = Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)), "RGB")
    return img.resize((img.width * zoom, img.height * zoom), Image.NEAREST) if zoom > 1 else img


def _draw_keypoints(img: Image.Image, kp: torch.Tensor) -> Image.Image:
    """Draw ``[N,2]`` keypoints (x, y in [-1,1], align_corners) as filled dots."""
    draw = ImageDraw.Draw(img)
    w, h = img.size
    r = max(1.5, min(w, h) / 64)
    for (x, y), color in zip(kp.detach().float().cpu().tolist(), keypoint_colors(kp.shape[0])):
        px, py = (x + 1) / 2 * (w - 1), (y + 1) / 2 * (h - 1)
        draw.ellipse([px - r, py - r, px + r, py + r], fill=color, outline=(0, 0, 0))
    return img


def sample_grid(visuals: dict[str, torch.Tensor], *, max_rows: int = 4) -> Image.Image:
    """Grid of training samples from :class:`~tpsmm.trainer.batch_losses.BatchLosses` visuals.

    Args:
        visuals: ``source``, ``driving``, ``prediction``, ``deformed`` ``[B,3,H,W]``, ``occlusion``
            ``[B,1,h,w]`` (resized to ``H x W``), ``kp_source``, ``kp_driving`` ``[B,N,2]``.
        max_rows: at most this many samples.

    Frames smaller than 128 pixels are enlarged by an integer factor so the keypoints stay visible.
    """
    missing = [k for k in (*_COLUMNS, "kp_source", "kp_driving") if k not in visuals]
    if missing:
        raise KeyError(f"sample_grid: visuals lack {', '.join(missing)}")
    b, _, h, w = visuals["source"].shape
    rows = min(b, max_rows)
    zoom = max(1, 128 // max(h, w))
    occ = torch.nn.functional.interpolate(visuals["occlusion"][:rows].float(), size=(h, w), mode="bilinear",
                                          align_corners=True)
    pad = 2
    h, w = h * zoom, w * zoom
    canvas = Image.new("RGB", (len(_COLUMNS) * (w + pad) + pad, rows * (h + pad) + pad), (32, 32, 32))
    for i in range(rows):
        tiles = [_draw_keypoints(_to_image(visuals["source"][i], zoom), visuals["kp_source"][i]),
                 _draw_keypoints(_to_image(visuals["driving"][i], zoom), visuals["kp_driving"][i]),
                 _to_image(visuals["prediction"][i], zoom), _to_image(visuals["deformed"][i], zoom),
                 _to_image(occ[i], zoom)]
        for j, tile in enumerate(tiles):
            canvas.paste(tile, (pad + j * (w + pad), pad + i * (h + pad)))
    return canvas


def _binned(steps: list[int], values: list[float], bins: int) -> tuple[list[float], list[float]]:
    if len(steps) <= bins:
        return [float(s) for s in steps], list(values)
    edges = np.linspace(0, len(steps), bins + 1).astype(int)
    xs = [float(np.mean(steps[a:b])) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    ys = [float(np.mean(values[a:b])) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return xs, ys


def loss_curve(history: dict[str, tuple[list[int], list[float]]], *, size: tuple[int, int] = (900, 480),
               title: str = "training losses") -> Image.Image:
    """Plot ``{name: (steps, values)}`` (bin-averaged to the plot width; log10 y when all values > 0)."""
    width, height = size
    left, right, top, bottom = 70, 170, 30, 40
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    series = {k: _binned(s, v, width - left - right) for k, (s, v) in history.items() if s}
    finite = [y for _, ys in series.values() for y in ys if math.isfinite(y)]
    draw.text((left, 8), title, fill=(0, 0, 0))
    if not finite:
        draw.text((left, height // 2), "no data yet", fill=(0, 0, 0))
        return img
    log = min(finite) > 0
    tr = (lambda y: math.log10(y)) if log else (lambda y: y)  # noqa: E731
    lo, hi = min(tr(y) for y in finite), max(tr(y) for y in finite)
    hi = hi if hi > lo else lo + 1
    x0 = min(x for xs, _ in series.values() for x in xs)
    x1 = max(x for xs, _ in series.values() for x in xs)
    x1 = x1 if x1 > x0 else x0 + 1
    px = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    py = lambda y: top + (1 - (tr(y) - lo) / (hi - lo)) * (height - top - bottom)  # noqa: E731
    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = top + (1 - k / 4) * (height - top - bottom)
        draw.line([left - 4, y, left, y], fill=(0, 0, 0))
        draw.text((4, y - 6), f"{10 ** v:.3g}" if log else f"{v:.3g}", fill=(0, 0, 0))
        xv = x0 + (x1 - x0) * k / 4
        xx = px(xv)
        draw.line([xx, height - bottom, xx, height - bottom + 4], fill=(0, 0, 0))
        draw.text((xx - 10, height - bottom + 8), f"{xv:.0f}", fill=(0, 0, 0))
    draw.text(((width - right) // 2, height - 14), "step", fill=(0, 0, 0))
    for i, ((name, (xs, ys)), color) in enumerate(zip(series.items(), keypoint_colors(len(series)))):
        color = tuple(int(c * 0.8) for c in color)
        pts = [(px(x), py(y)) for x, y in zip(xs, ys) if math.isfinite(y)]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        elif pts:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=color)
        ly = top + 14 * i
        draw.line([width - right + 10, ly + 6, width - right + 30, ly + 6], fill=color, width=3)
        draw.text((width - right + 34, ly), name, fill=(0, 0, 0))
    return img


def save_png(image: Image.Image, path: str) -> None:
    """Write ``image`` to ``path`` (PNG) atomically."""
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
