"""Procedural articulated 2-D characters: the drawing half of tpsmm's synthetic data set.

A character is a torso with a head, two arms and two legs (upper + lower segment each, bending at elbows/knees,
with hands and feet), seen from the front or from the side.  Each clip samples one character (shape, colours,
textures, background) and one motion (joint angles = centre + sum of two sinusoids with random frequencies and
phases; the body drifts and bobs; the camera pans and zooms slightly).  Appearance is fixed within a clip.

Conventions: world coordinates are (x, y) with the frame spanning [0, 1] x [0, 1] at the neutral camera, y pointing
down; angles are radians, a limb angle ``a`` points along ``(sin a, cos a)`` (0 = straight down, positive = towards
+x); time ``t`` is in frames.  Rendering is done in numpy at ``supersample`` x the output size with analytic
(signed-distance) edge coverage, then box-downsampled (the same as ``PIL.Image.resize(..., Image.BOX)``).
Everything is drawn from one ``numpy.random.Generator``, so a seed gives identical bytes on a given platform.

This module samples characters and renders clips; the rig (oscillators, limbs, poses, camera) is in
:mod:`.rig`, the antialiased drawing primitives in :mod:`.raster`.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np

from .raster import Paint, Raster, resample
from .rig import Character, Limb, Oscillator, Pose, camera_at, pose_at

__all__ = ["Character", "Pose", "sample_character", "pose_at", "camera_at", "render_frame", "render_character_clip"]

_MARGIN = 0.3  # the background texture covers world [-_MARGIN, 1 + _MARGIN] so camera motion never leaves it


def _osc(rng: np.random.Generator, centre: float, amp: float, speed: float, n: int = 2) -> Oscillator:
    split = rng.uniform(0.6, 0.9)
    amps = (amp * split, amp * (1.0 - split)) if n == 2 else (amp,)
    freqs = tuple(float(speed * rng.uniform(0.6, 1.6)) for _ in range(n))
    phases = tuple(float(rng.uniform(0.0, 2.0 * math.pi)) for _ in range(n))
    return Oscillator(float(centre), tuple(float(a) for a in amps), freqs, phases)


def _lum(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _colour(rng: np.random.Generator, avoid: float | None = None, skin: bool = False) -> tuple[float, float, float]:
    for _ in range(20):
        if skin:
            c = colorsys.hsv_to_rgb(rng.uniform(0.02, 0.1), rng.uniform(0.25, 0.6), rng.uniform(0.35, 1.0))
        else:
            c = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.2, 1.0) ** 0.7, rng.uniform(0.15, 1.0))
        if avoid is None or abs(_lum(c) - avoid) > 0.18:
            break
    return tuple(float(v) for v in c)


def _paint(rng: np.random.Generator, bg_lum: float, plain_prob: float = 0.4, skin: bool = False) -> Paint:
    c1 = _colour(rng, bg_lum, skin)
    pattern = 0 if skin or rng.random() < plain_prob else int(rng.integers(1, 4))
    c2 = _colour(rng, None) if rng.random() < 0.5 else tuple(float(np.clip(v * rng.uniform(0.4, 1.6), 0, 1))
                                                                for v in c1)
    return Paint(c1, c2, pattern, float(rng.uniform(0.06, 0.25)), float(rng.uniform(0, math.pi)))


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """World-space background texture (R, R, 3) float32 over [-0.3, 1.3]^2 and its mean luminance."""
    r = max(48, int(size * (1 + 2 * _MARGIN)))
    w = (np.arange(r) + 0.5) / r * (1 + 2 * _MARGIN) - _MARGIN
    c1, c2 = np.array(_colour(rng)), np.array(_colour(rng))
    kind = int(rng.integers(0, 4))
    if kind == 0:  # flat
        m = np.zeros((r, r))
    elif kind == 1:  # linear gradient
        a = rng.uniform(0, 2 * math.pi)
        m = np.clip(0.5 + (math.cos(a) * w[None, :] + math.sin(a) * w[:, None] - 0.5) * rng.uniform(0.6, 1.4), 0, 1)
    elif kind == 2:  # smooth value noise, two octaves
        m = np.zeros((r, r))
        for cells, weight in ((int(rng.integers(3, 7)), 0.65), (int(rng.integers(8, 20)), 0.35)):
            g = rng.random((cells + 1, cells + 1))
            m += weight * resample(g, w, w, -_MARGIN, 1 + _MARGIN)
        m = np.clip((m - m.mean()) * 2.2 + 0.5, 0, 1)
    else:  # soft checker / stripes in world space
        period = rng.uniform(0.12, 0.35)
        sx, sy = np.sin(2 * math.pi * w / period), np.sin(2 * math.pi * w / period + rng.uniform(0, 6.3))
        m = sx[None, :] * (sy[:, None] if rng.random() < 0.5 else 1.0)
        m = np.clip(0.5 + 2.0 * m, 0, 1) * rng.uniform(0.3, 1.0)
    tex = (c1[None, None] + m[..., None] * (c2 - c1)[None, None]).astype(np.float32)
    grain = np.random.Generator(np.random.PCG64(int(rng.integers(2**63))))  # own stream: draws independent of size
    tex += grain.normal(0, 0.015, tex.shape).astype(np.float32)  # fine grain so flat areas are not perfectly flat
    tex = np.clip(tex, 0, 1)
    return tex, _lum(tex.reshape(-1, 3).mean(0))


def _sample_limbs(rng: np.random.Generator, *, facing: float, speed: float, chest: float, hip: float,
                  arm: tuple[float, float], leg: tuple[float, float], arm_r: float, leg_r: float,
                  paints: tuple[Paint, Paint, Paint, Paint, Paint]) -> tuple[Limb, ...]:
    """Arm and leg of each side (screen-left first), in torso units; ``paints`` = shirt, sleeve, skin, pants, shoes.

    ``facing`` 0 is a front view; +-1 a side view, whose far limbs are shaded and drawn behind the torso.
    """
    shirt, sleeve, skin, pants, shoes = paints
    side_view = facing != 0.0
    limbs = []
    for side in (-1.0, 1.0):
        far = side_view and side != facing
        shade = 0.72 if far else 1.0
        if side_view:
            swing_c, swing_a, bend_sign = 0.15 * facing * rng.uniform(-1, 1), rng.uniform(0.5, 0.9), facing
            attach, hip_attach, hip_c = 0.0, 0.0, 0.05 * facing
        else:
            swing_c, swing_a, bend_sign = side * rng.uniform(0.25, 0.9), rng.uniform(0.35, 0.8), -side
            attach, hip_attach, hip_c = side * 0.9 * chest, side * 0.55 * hip, side * rng.uniform(0.05, 0.25)
        bend_a = rng.uniform(0.2, 0.7)
        limbs.append(Limb(attach, True, arm, (arm_r, arm_r * 0.85, arm_r * 0.7),
                          _osc(rng, swing_c, swing_a, speed), _osc(rng, bend_a + rng.uniform(0.1, 0.6), bend_a, speed),
                          bend_sign, arm_r * rng.uniform(1.1, 1.5), False, facing,
                          0 if far else (4 if side_view else 2), (shirt, sleeve, skin), shade))
        knee_a = rng.uniform(0.1, 0.5)
        limbs.append(Limb(hip_attach, False, leg, (leg_r, leg_r * 0.85, leg_r * 0.7),
                          _osc(rng, hip_c, rng.uniform(0.25, 0.6) if side_view else rng.uniform(0.12, 0.35), speed),
                          _osc(rng, knee_a * 1.1, knee_a, speed), -facing if side_view else side,
                          leg_r * rng.uniform(1.6, 2.4), True, facing if side_view else side,
                          0 if far or not side_view else 2, (pants, pants, shoes), shade))
    return tuple(limbs)


def sample_character(rng: np.random.Generator, size: int) -> Character:
    """Draw one character (appearance + motion + camera + background) for clips of ``size`` pixels."""
    background, bg_lum = _background(rng, size)
    side_view = rng.random() < 0.5
    facing = float(rng.choice([-1.0, 1.0])) if side_view else 0.0
    speed = rng.uniform(1 / 40, 1 / 14)  # cycles per frame of the main oscillations
    chest, hip = rng.uniform(0.2, 0.34), rng.uniform(0.16, 0.28)
    if side_view:
        chest, hip = chest * 0.75, hip * 0.8
    head = rng.uniform(0.24, 0.38)
    head_radii = (head * rng.uniform(0.85, 1.15), head)
    shirt, pants = _paint(rng, bg_lum), _paint(rng, bg_lum, plain_prob=0.6)
    skin, shoes = _paint(rng, bg_lum, skin=rng.random() < 0.6), _paint(rng, bg_lum, plain_prob=1.0)
    sleeve = shirt if rng.random() < 0.5 else skin
    arm = (rng.uniform(0.4, 0.6), rng.uniform(0.38, 0.55))
    leg = (rng.uniform(0.48, 0.65), rng.uniform(0.45, 0.62))
    arm_r, leg_r = rng.uniform(0.11, 0.16), rng.uniform(0.13, 0.19)
    limbs = _sample_limbs(rng, facing=facing, speed=speed, chest=chest, hip=hip, arm=arm, leg=leg, arm_r=arm_r,
                          leg_r=leg_r, paints=(shirt, sleeve, skin, pants, shoes))
    # Size: rest-pose height in torso units, then scale so the figure fills 76-92 % of the frame height (limbs a
    # few pixels wide even at 64x64, where the demo model is trained).
    height = 2 * head_radii[1] * 0.93 + 0.08 + 1.0 + 0.1 + leg[0] + leg[1] + leg_r
    scale = rng.uniform(0.76, 0.92) / height
    top = -scale * (1.0 + 0.08 + 1.85 * head_radii[1])  # head top relative to the pelvis
    bottom = scale * (leg[0] + leg[1] - 0.1 + leg_r)
    cy = 0.5 - (top + bottom) / 2 + rng.uniform(-0.04, 0.04)
    cx = 0.5 + rng.uniform(-0.06, 0.06)
    drift = speed * rng.uniform(0.2, 0.6)
    return Character(
        scale=float(scale), torso_radii=(float(hip), float(chest)), neck=0.08, head_radii=head_radii,
        facing=facing, limbs=limbs, torso_paint=shirt, head_paint=skin,
        eye_colour=(0.05, 0.05, 0.08) if rng.random() < 0.7 else (0.95, 0.95, 0.95),
        outline=tuple(float(v) * 0.35 for v in _colour(rng)) if rng.random() < 0.6 else (0.0, 0.0, 0.0),
        outline_width=float(rng.uniform(0.01, 0.025)) if rng.random() < 0.65 else 0.0,
        lean=_osc(rng, rng.uniform(-0.08, 0.08), rng.uniform(0.05, 0.18), speed),
        head_tilt=_osc(rng, 0.0, rng.uniform(0.08, 0.3), speed),
        root=(_osc(rng, cx, rng.uniform(0.02, 0.06), drift), _osc(rng, cy, rng.uniform(0.01, 0.03), 2 * speed)),
        camera=(_osc(rng, 0.0, rng.uniform(0.005, 0.025), drift, n=1),
                _osc(rng, 0.0, rng.uniform(0.005, 0.02), drift, n=1),
                _osc(rng, 1.0, rng.uniform(0.01, 0.05), drift, n=1)),
        background=background,
    )


def render_frame(ch: Character, t: float, size: int, *, supersample: int = 2) -> np.ndarray:
    """Render frame ``t`` of ``ch`` as float32 (size, size, 3) in [0, 1]."""
    n = size * supersample
    sx, sy, zoom = camera_at(ch, t)
    px = (np.arange(n) + 0.5) / n  # screen coords of pixel centres
    canvas = resample(ch.background, 0.5 + sy + (px - 0.5) / zoom, 0.5 + sx + (px - 0.5) / zoom,
                      -_MARGIN, 1 + _MARGIN)
    unit = zoom * n  # pixels per world unit

    def to_px(p: np.ndarray) -> np.ndarray:
        return np.array([(0.5 + zoom * (p[0] - 0.5 - sx)) * n, (0.5 + zoom * (p[1] - 0.5 - sy)) * n])

    ras = Raster(canvas, unit, ch.outline, ch.outline_width * ch.scale * unit)
    pose, s = pose_at(ch, t), ch.scale * unit
    order = sorted(range(len(ch.limbs)), key=lambda i: ch.limbs[i].layer)
    for layer in range(5):
        for i in order:
            lb = ch.limbs[i]
            if lb.layer != layer:
                continue
            root, joint, end = (to_px(p) for p in pose.limbs[i])
            ras.capsule(root, joint, lb.radii[0] * s, lb.radii[1] * s, lb.paints[0], lb.shade)
            if lb.foot:
                toe = end + lb.end_radius * s * np.array([lb.facing, 0.15])
                ras.capsule(end, toe, lb.radii[2] * s, lb.radii[2] * s * 0.9, lb.paints[2], lb.shade)
            ras.capsule(joint, end, lb.radii[1] * s, lb.radii[2] * s, lb.paints[1], lb.shade)
            if not lb.foot:
                ras.ellipse(end, lb.end_radius * s, lb.end_radius * s, 0.0, lb.paints[2], lb.shade)
        if layer == 1:
            ras.capsule(to_px(pose.pelvis), to_px(pose.neck), ch.torso_radii[0] * s, ch.torso_radii[1] * s,
                        ch.torso_paint, 1.0)
        if layer == 3:
            _draw_head(ch, pose, ras, to_px(pose.head_centre), s)
    out = sum(canvas[i::supersample, j::supersample] for i in range(supersample) for j in range(supersample))
    return np.clip(out * (1.0 / supersample**2), 0.0, 1.0)  # box filter == Image.resize(..., Image.BOX)


def _draw_head(ch: Character, pose: Pose, ras: Raster, centre: np.ndarray, s: float) -> None:
    rx, ry = ch.head_radii[0] * s, ch.head_radii[1] * s
    a = pose.head_angle
    ras.ellipse(centre, rx, ry, a, ch.head_paint, 1.0)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    eye = Paint(ch.eye_colour, ch.eye_colour, 0, 1.0, 0.0)
    offsets = [(0.55 * ch.facing, -0.15)] if ch.facing else [(-0.38, -0.12), (0.38, -0.12)]
    for ox, oy in offsets:
        ras.ellipse(centre + rot @ np.array([ox * rx, oy * ry]), 0.14 * rx, 0.17 * ry, a, eye, 1.0, outline=False)
    mouth = centre + rot @ np.array([0.35 * ch.facing * rx, 0.45 * ry])
    ras.ellipse(mouth, 0.3 * rx * (0.6 if ch.facing else 1.0), 0.07 * ry, a, eye, 1.0, outline=False)


def render_character_clip(rng_or_seed: np.random.Generator | int, *, frames: int, size: int) -> np.ndarray:
    """Render one clip of one random character: uint8 array [frames, size, size, 3] (RGB).

    ``rng_or_seed``: a ``numpy.random.Generator`` (consumed) or a non-negative int seed (``PCG64(seed)``).  The same
    seed gives identical bytes; ``size`` must be a multiple of 32 (>= 32) and ``frames`` >= 2.
    """
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 2:
        raise ValueError(f"frames={frames!r}: must be an integer >= 2")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 32 or size % 32:
        raise ValueError(f"size={size!r}: must be a multiple of 32 and at least 32")
    if isinstance(rng_or_seed, np.random.Generator):
        rng = rng_or_seed
    elif isinstance(rng_or_seed, (int, np.integer)) and not isinstance(rng_or_seed, bool) and rng_or_seed >= 0:
        rng = np.random.Generator(np.random.PCG64(int(rng_or_seed)))
    else:
        raise ValueError(f"rng_or_seed={rng_or_seed!r}: must be a numpy Generator or a non-negative int")
    ch = sample_character(rng, int(size))
    t0 = float(rng.uniform(0, 200))  # random start time so clips do not all begin at a common phase
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        out[t] = np.floor(render_frame(ch, t0 + t, int(size)) * 255.0 + 0.5).astype(np.uint8)
    return out
