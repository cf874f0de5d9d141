"""Antialiased 2-D drawing on a numpy canvas for the synthetic characters: paints, texture lookup, shapes.

Coordinates on the canvas are pixels ``(x, y)``; shapes get analytic (signed-distance) edge coverage, and each
part is filled by a :class:`Paint` evaluated in the part's own ``(u, v)`` frame (world units), so patterns move
with the part. Used by :mod:`tpsmm.trainer.synthetic.character`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Paint", "resample", "Raster"]


@dataclass(frozen=True)
class Paint:
    """Fill of one part: ``colour`` blended towards ``colour2`` by a pattern in the part's own (u, v) frame.

    ``pattern``: 0 plain, 1 stripes, 2 dots, 3 gradient; ``period``: pattern scale in world units; ``angle``:
    pattern direction in the part frame (radians).  Patterns move with the part because (u, v) do.
    """

    colour: tuple[float, float, float]
    colour2: tuple[float, float, float]
    pattern: int
    period: float
    angle: float

    def fill(self, u: np.ndarray, v: np.ndarray, unit: float) -> np.ndarray:
        """Colours (h, w, 3) at part coords ``u``, ``v`` (world units, (h, w)); ``unit`` = pixels per world unit."""
        c1, c2 = np.asarray(self.colour, np.float32), np.asarray(self.colour2, np.float32)
        if self.pattern == 0:
            return np.broadcast_to(c1, u.shape + (3,))
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        p = u * ca + v * sa
        px_period = self.period * unit
        if self.pattern == 1:  # stripes with ~1 px soft edges
            m = np.clip(0.5 + np.sin(p * (2 * math.pi / self.period)) * max(0.6, px_period / (2 * math.pi)), 0, 1)
        elif self.pattern == 2:  # dot lattice, dot radius 0.3 period, antialiased
            q = -u * sa + v * ca
            fu, fv = p / self.period, q / self.period
            d = np.hypot(fu - np.floor(fu) - 0.5, fv - np.floor(fv) - 0.5) * px_period
            m = np.clip(0.3 * px_period - d + 0.5, 0, 1)
        else:  # smooth gradient across the part
            m = 0.5 + 0.5 * np.tanh(p / (2 * self.period))
        return c1 + m[..., None].astype(np.float32) * (c2 - c1)


def _lerp_index(coords: np.ndarray, n: int, lo: float, hi: float):
    """Texel indices (i0, i1) and weight of i1 for linear interpolation of ``n`` texels spread over [lo, hi]."""
    f = np.clip((np.asarray(coords, np.float64) - lo) / (hi - lo) * n - 0.5, 0, n - 1)
    i0 = np.floor(f).astype(np.int64)
    return i0, np.minimum(i0 + 1, n - 1), (f - i0).astype(np.float32)


def resample(tex: np.ndarray, ys: np.ndarray, xs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Separable bilinear lookup of ``tex`` (R, C[, 3]) whose texels span [lo, hi] on both axes.

    Returns ``tex`` sampled on the grid ``ys`` x ``xs`` (world coords): (len(ys), len(xs)[, 3]) float32.  Uses
    first-axis gathers only (faster and steadier on a busy CPU than BLAS products or middle-axis indexing).
    """
    y0, y1, wy = _lerp_index(ys, tex.shape[0], lo, hi)
    x0, x1, wx = _lerp_index(xs, tex.shape[1], lo, hi)
    tail = (1,) * (tex.ndim - 1)
    cols = np.ascontiguousarray(np.swapaxes(tex, 0, 1), dtype=np.float32)  # (C, R[, 3])
    cols = cols[x0] * (1 - wx).reshape((-1,) + tail) + cols[x1] * wx.reshape((-1,) + tail)  # (nx, R[, 3])
    rows = np.ascontiguousarray(np.swapaxes(cols, 0, 1))  # (R, nx[, 3])
    return rows[y0] * (1 - wy).reshape((-1,) + tail) + rows[y1] * wy.reshape((-1,) + tail)


class Raster:
    """Paints antialiased parts into ``canvas`` (H, W, 3) float32 in place; coordinates are pixels (x, y).

    ``unit``: pixels per world unit (for texture coords); ``outline`` / ``outline_px``: outline colour and width.
    """

    def __init__(self, canvas: np.ndarray, unit: float, outline, outline_px: float) -> None:
        self.canvas, self.unit = canvas, unit
        self.outline, self.outline_px = np.asarray(outline, np.float32), outline_px

    def _window(self, lo, hi, origin):
        """Canvas slices covering [lo, hi] and pixel-centre offsets from ``origin``: dx (w,), dy (h, 1)."""
        h, w = self.canvas.shape[:2]
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(math.ceil(hi[0])), w), min(int(math.ceil(hi[1])), h)
        if x0 >= x1 or y0 >= y1:
            return None
        dx = np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - origin[0])
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] + np.float32(0.5 - origin[1])
        return (slice(y0, y1), slice(x0, x1)), dx, dy

    def _paint(self, win, dist, u, v, rel, paint: Paint, shade: float, outline: bool) -> None:
        cov = np.clip(0.5 - dist, 0, 1)
        region = self.canvas[win]
        colour = paint.fill(u, v, self.unit) * (shade * (1.0 - 0.28 * np.minimum(rel, 1.0) ** 2))[..., None]
        if outline and self.outline_px > 0:
            region += cov[..., None] * (self.outline - region)
            cov = np.clip(0.5 - dist - self.outline_px, 0, 1)
        region += cov[..., None] * (colour - region)

    def capsule(self, a, b, ra: float, rb: float, paint: Paint, shade: float) -> None:
        """Tapered capsule from ``a`` (radius ``ra``) to ``b`` (radius ``rb``); u runs along a->b."""
        pad = max(ra, rb) + 2.0
        a, b = (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))
        found = self._window((min(a[0], b[0]) - pad, min(a[1], b[1]) - pad),
                             (max(a[0], b[0]) + pad, max(a[1], b[1]) + pad), a)
        if found is None:
            return
        win, xs, ys = found
        length = max(math.hypot(b[0] - a[0], b[1] - a[1]), 1e-6)
        ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
        along = xs * ux + ys * uy
        across = ys * ux - xs * uy
        t = np.clip(along * (1.0 / length), 0, 1)
        r = ra + (rb - ra) * t
        dist = np.hypot(along - t * length, across) - r
        self._paint(win, dist, along / self.unit, across / self.unit, np.abs(across) / r, paint, shade, True)

    def ellipse(self, c, rx: float, ry: float, angle: float, paint: Paint, shade: float, outline: bool = True):
        """Ellipse centred at ``c`` with radii (rx, ry) rotated by ``angle`` (its +y axis along (-sin, cos))."""
        pad = max(rx, ry) + 2.0
        c = (float(c[0]), float(c[1]))
        found = self._window((c[0] - pad, c[1] - pad), (c[0] + pad, c[1] + pad), c)
        if found is None:
            return
        win, xs, ys = found
        ca, sa = math.cos(angle), math.sin(angle)
        lx = xs * ca + ys * sa
        ly = ys * ca - xs * sa
        k = np.hypot(lx / rx, ly / ry)
        dist = (k - 1.0) * min(rx, ry)
        self._paint(win, dist, lx / self.unit, ly / self.unit, k, paint, shade, outline)
