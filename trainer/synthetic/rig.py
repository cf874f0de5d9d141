"""The synthetic characters' rig: oscillating joint angles, limbs, the character record, its pose and camera.

Conventions (see :mod:`tpsmm.trainer.synthetic.character`): world coordinates ``(x, y)`` with the frame spanning
``[0, 1] x [0, 1]`` at the neutral camera, ``y`` pointing down; a limb angle ``a`` points along
``(sin a, cos a)`` (0 = straight down); time ``t`` is in frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .raster import Paint

__all__ = ["Oscillator", "Limb", "Character", "Pose", "pose_at", "camera_at"]


@dataclass(frozen=True)
class Oscillator:
    """Smooth scalar signal ``centre + sum_k amps[k] * sin(2 pi freqs[k] t + phases[k])``; t in frames."""

    centre: float
    amps: tuple[float, ...]
    freqs: tuple[float, ...]
    phases: tuple[float, ...]

    def __call__(self, t: float) -> float:
        return self.centre + sum(a * math.sin(2.0 * math.pi * f * t + p)
                                 for a, f, p in zip(self.amps, self.freqs, self.phases))


@dataclass(frozen=True)
class Limb:
    """One arm or leg, lengths/radii in torso units (multiplied by ``Character.scale`` for world units).

    ``attach``: offset across the torso axis (+ = the character's screen-right at zero lean); ``at_chest``: arms hang
    from just below the neck, legs from the pelvis; ``swing``: upper-segment angle relative to the torso's down
    axis; ``bend``: joint bend, applied with ``bend_sign``; ``radii``: (root, joint, end); ``end_radius``: hand disc
    radius, or foot length when ``foot`` is set; ``facing``: +-1, the x direction a foot points; ``layer``: draw
    order (torso is 1, head 3); ``paints``: (upper, lower, hand/foot); ``shade``: colour multiplier (< 1 for the far
    limbs of a side view).
    """

    attach: float
    at_chest: bool
    lengths: tuple[float, float]
    radii: tuple[float, float, float]
    swing: Oscillator
    bend: Oscillator
    bend_sign: float
    end_radius: float
    foot: bool
    facing: float
    layer: int
    paints: tuple[Paint, Paint, Paint]
    shade: float


@dataclass(frozen=True)
class Character:
    """One clip's character, motion, camera and background (see module docstring for conventions).

    Geometry fields are in torso units except ``scale`` (world units per torso unit).  ``facing`` is 0 for a
    front view, +-1 for a side view looking towards +-x.  ``background`` is an (R, R, 3) float32 texture in [0, 1]
    covering world [-0.3, 1.3]^2.  ``camera`` = (x shift, y shift, zoom) oscillators.
    """

    scale: float
    torso_radii: tuple[float, float]
    neck: float
    head_radii: tuple[float, float]
    facing: float
    limbs: tuple[Limb, ...]
    torso_paint: Paint
    head_paint: Paint
    eye_colour: tuple[float, float, float]
    outline: tuple[float, float, float]
    outline_width: float
    lean: Oscillator
    head_tilt: Oscillator
    root: tuple[Oscillator, Oscillator]
    camera: tuple[Oscillator, Oscillator, Oscillator]
    background: np.ndarray


@dataclass(frozen=True)
class Pose:
    """Joint positions at one time, world units: ``limbs[i]`` = (root, joint, end) as a (3, 2) array."""

    pelvis: np.ndarray
    neck: np.ndarray
    head_centre: np.ndarray
    head_angle: float
    limbs: tuple[np.ndarray, ...]


def _dir(a: float) -> np.ndarray:
    return np.array([math.sin(a), math.cos(a)])


def pose_at(ch: Character, t: float) -> Pose:
    """Skeleton of ``ch`` at frame ``t`` (forward kinematics from the pelvis)."""
    s, lean = ch.scale, ch.lean(t)
    pelvis = np.array([ch.root[0](t), ch.root[1](t)])
    up, side = np.array([math.sin(lean), -math.cos(lean)]), np.array([math.cos(lean), math.sin(lean)])
    neck = pelvis + s * up
    head_angle = lean + ch.head_tilt(t)
    head_centre = neck + s * (ch.neck + 0.85 * ch.head_radii[1]) * np.array([math.sin(head_angle),
                                                                             -math.cos(head_angle)])
    limbs = []
    for lb in ch.limbs:
        base = neck - 0.12 * s * up if lb.at_chest else pelvis + 0.1 * s * up
        root = base + s * lb.attach * side
        a1 = lb.swing(t) - lean
        joint = root + s * lb.lengths[0] * _dir(a1)
        end = joint + s * lb.lengths[1] * _dir(a1 + lb.bend_sign * lb.bend(t))
        limbs.append(np.stack([root, joint, end]))
    return Pose(pelvis, neck, head_centre, head_angle, tuple(limbs))


def camera_at(ch: Character, t: float) -> tuple[float, float, float]:
    """(x shift, y shift, zoom) of the camera at frame ``t``; screen = 0.5 + zoom * (world - 0.5 - shift)."""
    return ch.camera[0](t), ch.camera[1](t), ch.camera[2](t)
