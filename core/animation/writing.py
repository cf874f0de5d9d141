"""From rendered batches to video writers: the one loop every entry point that writes files uses.

``tpsmm animate``, ``tpsmm demo`` and ``tpsmm eval`` hand :func:`write_rendered` what the pipeline yields
and a list of ``(track, writer)`` pairs; each batch goes to every writer as soon as it is rendered (memory
does not grow with the clip). A track names what a writer receives:

* ``"frames"``: the main layout (``RenderedFrames.frames``);
* a layout of :data:`~tpsmm.core.animation.options.VIEWS` (``RenderedFrames.views[track]``; the options
  must render it, e.g. through ``extra_views``);
* ``"flow"``: the dense motion coloured by :func:`~tpsmm.core.media.visualize.flow_to_rgb` (a displacement of
  :data:`FLOW_SCALE` fully saturated), and ``"occlusion"``: the occlusion mask in grey (both need the
  options' ``with_motion``), drawn at ``motion_size``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..media.errors import FieldError
from ..media.size import Size
from ..media.visualize import flow_to_rgb, occlusion_to_rgb
from .options import VIEWS
from .results import RenderedFrames

__all__ = ["FLOW_SCALE", "TRACKS", "Written", "write_rendered"]

FLOW_SCALE = 0.25
"""``"flow"`` track: displacement (normalised units, 2 = image width) shown fully saturated."""
TRACKS = ("frames", *VIEWS, "flow", "occlusion")


@dataclass(frozen=True)
class Written:
    """What :func:`write_rendered` wrote.

    Attributes:
        frames: frames written to each writer.
        size: :class:`~tpsmm.core.media.size.Size` of the main layout's frames (``None`` when nothing came).
        seconds: wall time of the loop (rendering included).
    """

    frames: int
    size: Size | None
    seconds: float

    @property
    def rate(self) -> float:
        """Frames per second of the loop."""
        return self.frames / max(self.seconds, 1e-9)


def _picture(out: RenderedFrames, track: str, motion_size: Size | None):
    if track == "frames":
        return out.frames
    if track == "flow":
        return flow_to_rgb(out.deformation, size=motion_size, max_magnitude=FLOW_SCALE)
    if track == "occlusion":
        return occlusion_to_rgb(out.occlusion, size=motion_size)
    return out.views[track]


def write_rendered(rendered: Iterable[RenderedFrames], writers: Sequence[tuple[str, object]], *,
                   motion_size: int | Size | None = None, each=None) -> Written:
    """Write every batch of ``rendered`` to its writers, batch by batch.

    Args:
        rendered: what :meth:`AnimationPipeline.run <tpsmm.core.animation.pipeline.AnimationPipeline.run>` (or
            ``generate``) yields.
        writers: ``(track, writer)`` pairs (tracks in the module docstring; a track may repeat); a writer
            is anything with ``write(frames [b, H, W, 3])``, e.g. a :class:`~tpsmm.core.media.video.VideoWriter`.
        motion_size: size of the ``flow``/``occlusion`` pictures (an int: square; ``None``: the motion's own).
        each: optional ``(RenderedFrames) -> None`` called after a batch is written (metrics, previews).

    Returns:
        :class:`Written`. Writers are neither opened nor closed here: the caller owns them.
    """
    for track, _ in writers:
        if track not in TRACKS:
            raise FieldError(f"{track!r} is not one of {', '.join(TRACKS)}", field="writers")
    size = None if motion_size is None else Size.of(motion_size, field="motion_size")
    started, count, shape = time.perf_counter(), 0, None
    for out in rendered:
        for track, writer in writers:
            writer.write(_picture(out, track, size))
        count += out.frames.shape[0]
        shape = Size.of_image(out.frames)
        if each is not None:
            each(out)
    return Written(frames=count, size=shape, seconds=time.perf_counter() - started)
