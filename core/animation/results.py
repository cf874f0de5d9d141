"""What the animation pipeline hands back (:class:`RenderedFrames`) and the callbacks it makes (:class:`Hooks`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["Hooks", "RenderedFrames"]


@dataclass
class Hooks:
    """Callbacks of a run (all optional).

    Attributes:
        progress: ``(frames)`` after each finished piece of a stage.
        check_interrupt: called before each piece; raise (e.g. ``KeyboardInterrupt``) to stop.
        on_stage: ``(name, total_frames or None)`` when a stage starts: ``"keypoints"`` (the first pass of a
            two-pass run, and keypoint extraction) and ``"render"``.
        on_reference: ``(index)`` once the reference frame of relative motion is chosen.
    """

    progress: Callable[[int], None] | None = None
    check_interrupt: Callable[[], None] | None = None
    on_stage: Callable[[str, int | None], None] | None = None
    on_reference: Callable[[int], None] | None = None

    def _call(self, name: str, *args) -> None:
        fn = getattr(self, name)
        if fn is not None:
            fn(*args)


@dataclass
class RenderedFrames:
    """One rendered batch.

    Attributes:
        start: index of the batch's first frame in the clip.
        frames: ``[b, H, W, 3]`` the main layout (``options.view``); float32 CPU in ``[0, 1]``.
        views: every requested layout by name (``frames`` is ``views[options.view]``).
        kp_driving: ``[b, 5K, 2]`` driving keypoints (after smoothing); ``None`` when rendering a Motion.
        kp_transferred: ``[b, 5K, 2]`` where the source keypoints went.
        driving: ``[b, H', W', 3]`` the driving frames of the batch (after the driving crop), when at hand.
        deformation: ``[b, h, w, 2]`` dense motion (absolute source coordinates), with ``options.with_motion``.
        occlusion: ``[b, S, S]`` finest occlusion mask (1 = warped source visible), with ``options.with_motion``.
    """

    start: int
    frames: torch.Tensor
    views: dict[str, torch.Tensor] = field(default_factory=dict)
    kp_driving: torch.Tensor | None = None
    kp_transferred: torch.Tensor | None = None
    driving: torch.Tensor | None = None
    deformation: torch.Tensor | None = None
    occlusion: torch.Tensor | None = None
