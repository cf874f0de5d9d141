"""THE animation pipeline: a source image and a stream of driving batches in, rendered batches out.

Every entry point — ``tpsmm animate``, ``TPSMM.animate``/``generate``, every ComfyUI node, ``tpsmm demo``,
``tpsmm eval`` and the benchmark — renders through :class:`AnimationPipeline`; nothing else loops over
frames. A frame's trip is one-way::

    driving batch -> (driving crop) -> keypoints -> smoothing -> motion transfer
                  -> engine (dense motion + inpainting on the cached source) -> compose -> caller

Memory does not grow with the clip: batches are decoded, rendered and handed back one at a time. With
a reference frame other than the first (relative mode) the keypoints of the whole clip are needed
first: one keypoint pass keeps ``[T, 5K, 2]`` only, then the clip is read again for the layouts that
show it. Between batches :class:`Hooks` report progress and may stop the run; a CUDA out-of-memory
error halves the batch and retries it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterator

import torch

from ..media.images import InputError, check_user_images
from ..media.size import Size
from ..model.container import ModelError
from ..model.structures import Keypoints, Motion
from .compose import Composer
from ..media.crop import crop
from .driving import DrivingFrames
from .engine import make_engine
from .motion import MotionTransfer, best_reference_frame, require_avd_network
from .options import AnimationOptions
from .results import Hooks, RenderedFrames
from .smoothing import make_filter

__all__ = ["AnimationPipeline", "Hooks", "RenderedFrames"]

def _note(message: str) -> None:
    """One progress line on stderr (a graph backend's first-use export)."""
    print(f"tpsmm: {message}", file=sys.stderr, flush=True)


OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass
class _Source:
    frame: torch.Tensor          # [1,3,S,S] model layout
    kp: torch.Tensor             # [1,5K,2] on the device
    cache: object
    composer: Composer


class AnimationPipeline:
    """Renders animations of ``model`` with ``options`` (see the module docstring).

    Args:
        model: a :class:`~tpsmm.core.model.TPSMMNetworks` (usually a :class:`~tpsmm.core.TPSMM`) in eval mode;
            the pipeline runs on its device and never modifies it.
        options: :class:`AnimationOptions`.
        hooks: progress / interruption callbacks.
    """

    def __init__(self, model, options: AnimationOptions | None = None, *, hooks: Hooks | None = None) -> None:
        self.model, self.options, self.hooks = model, options or AnimationOptions(), hooks or Hooks()
        o = self.options
        if o.mode == "avd":
            require_avd_network(model.avd_network)
        if o.background and model.bg_predictor is None:
            raise ModelError("this checkpoint has no background motion predictor", field="background")
        self.engine = make_engine(model, o, progress=_note)    # torch or a graph backend (options.backend)
        self._limit = self.engine.batch_size

    @property
    def batch_size(self) -> int:
        """Frames per forward pass now (halved after an out-of-memory error)."""
        return self._limit

    # ------------------------------------------------------------------ keypoints and motion
    def _model_frames(self, images: torch.Tensor, name: str, *, box=None, single: bool = False) -> torch.Tensor:
        if box is not None:
            images = crop(check_user_images(images, name=name), box)
        return self.model.prepare(images, name=name, single=single)

    def detect(self, images: torch.Tensor, *, name: str = "driving") -> torch.Tensor:
        """User-layout driving frames ``[b,H,W,C]`` -> keypoints ``[b,5K,2]`` (float32, device; driving crop applied)."""
        frames = self._model_frames(images, name, box=self.options.driving_crop)
        return torch.cat(list(self._pieces(lambda a, b: self.engine.detect(frames[a:b]), frames.shape[0])))

    def extract_keypoints(self, clip: DrivingFrames | torch.Tensor, *, name: str = "images") -> Keypoints:
        """Keypoints of every frame of ``clip`` (a :class:`DrivingFrames` or an IMAGE batch) as :class:`Keypoints`.

        The model-size frame is kept in ``Keypoints.frames`` when the clip is a single image (a source).
        """
        if not isinstance(clip, DrivingFrames):
            clip = DrivingFrames.from_tensor(check_user_images(clip, name=name), name=name)
        value, first = self._keypoint_pass(clip, name=name)
        frames = (self._model_frames(first, name, box=self.options.driving_crop).cpu()
                  if first is not None and len(value) == 1 else None)
        return Keypoints(value=value, model_id=self.model.model_id, frames=frames)

    def _keypoint_pass(self, clip: DrivingFrames, *, name: str,
                       smooth=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The one keypoint pass over a clip -> ``(keypoints, first)``: keypoints ``[T,5K,2]`` on the CPU
        (each batch passed through ``smooth`` when given); ``first`` the frame ``[1,H,W,3]`` when the clip
        is a single frame, else ``None``."""
        self.hooks._call("on_stage", "keypoints", clip.frame_count)
        values, first = [], None
        for i, chunk in enumerate(clip.batches(self._limit)):
            self.hooks._call("check_interrupt")
            kp = self.detect(chunk, name=name)
            values.append((kp if smooth is None else smooth(kp)).cpu())
            self.hooks._call("progress", chunk.shape[0])
            first = chunk[:1] if i == 0 else None
        return torch.cat(values), first

    def smoother(self, fps: float):
        """A fresh causal keypoint filter for the options' smoothing (``None`` when off)."""
        return make_filter(self.options.smoothing, self.options.smoothing_strength, fps=fps)

    def transfer(self, kp_source: torch.Tensor, kp_reference: torch.Tensor) -> MotionTransfer:
        """The options' motion transfer for ``kp_source [1,5K,2]`` and the reference frame's keypoints ``[1,5K,2]``."""
        o = self.options
        return MotionTransfer(mode=o.mode, kp_source=kp_source, kp_reference=kp_reference.to(kp_source),
                              strength=o.strength, avd_network=self.model.avd_network)

    def reference_index(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> int:
        """The reference frame of relative motion among ``kp_driving [T,5K,2]`` (``0 <= index < T``)."""
        ref, t = self.options.reference_frame, kp_driving.shape[0]
        ref = best_reference_frame(kp_source.cpu(), kp_driving.cpu()) if ref == "best" else ref
        if not -t <= ref < t:
            raise ModelError(f"{ref} is outside the {t} driving frames", field="reference_frame")
        self.hooks._call("on_reference", ref % t)
        return ref % t

    def estimate_motion(self, kp_source: Keypoints, kp_driving: Keypoints, *, fps: float = 30.0) -> Motion:
        """Smoothing and motion transfer of whole keypoint sets (the nodes' and ``TPSMM.estimate_motion``'s path)."""
        for kp, name in ((kp_source, "kp_source"), (kp_driving, "kp_driving")):
            self.model.check_keypoints(kp, name)
        if len(kp_source) != 1:
            raise ModelError(f"kp_source: expected keypoints of one source image, got {len(kp_source)}")
        device = self.model.device
        src = kp_source.value.to(device=device, dtype=torch.float32)
        drv = kp_driving.value.to(device=device, dtype=torch.float32)
        smoother = self.smoother(fps)
        drv = smoother(drv) if smoother is not None else drv
        ref = self.reference_index(src, drv) if self.options.mode == "relative" else 0
        new = self.transfer(src, drv[ref:ref + 1])(drv)
        return Motion(kp_source=src, kp_driving=new, mode=self.options.mode, model_id=self.model.model_id,
                      source=kp_source.frames)

    # ------------------------------------------------------------------ rendering
    def _prepare_source(self, source, kp_source: torch.Tensor | None = None) -> _Source:
        o, size = self.options, self.model.config.image_size
        photo = check_user_images(source, name="source", single=True)[0].float().cpu()
        if o.crop is not None:
            o.crop.clip(photo.shape[1], photo.shape[0])     # must overlap the photo; a part outside is padded
        frame = self._model_frames(photo, "source", box=o.crop, single=True)
        kp = self.engine.detect(frame) if kp_source is None else kp_source.to(self.model.device, torch.float32)
        out_size = Size(o.crop.h, o.crop.w) if o.crop is not None and o.output_size is None else o.output_size
        composer = Composer(photo=photo, box=o.crop, feather=o.feather, out_size=out_size or Size(size, size),
                            upscale=o.upscale, model_size=size, kp_source=kp, device=self.model.device)
        return _Source(frame=frame, kp=kp, cache=self.engine.cache_source(frame), composer=composer)

    def run(self, source, driving: DrivingFrames | torch.Tensor) -> Iterator[RenderedFrames]:
        """Animate ``source`` (``[H,W,C]``/``[1,H,W,C]`` in ``[0,1]``) with ``driving``; yields :class:`RenderedFrames`."""
        if not isinstance(driving, DrivingFrames):
            driving = DrivingFrames.from_tensor(check_user_images(driving, name="driving"))
        src = self._prepare_source(source)
        smoother = self.smoother(driving.fps)
        smooth = (lambda kp: smoother(kp)) if smoother is not None else (lambda kp: kp)
        if not self.options.two_pass:
            self.hooks._call("on_stage", "render", driving.frame_count)
            transfer, start = None, 0
            for chunk in driving.batches(self._limit):
                kp = smooth(self.detect(chunk))
                transfer = transfer or self.transfer(src.kp, kp[:1])
                yield from self._render(src, start, transfer(kp), kp, chunk)
                start += kp.shape[0]
            return
        kps, _ = self._keypoint_pass(driving, name="driving", smooth=smooth)
        transfer = self.transfer(src.kp, kps[self.reference_index(src.kp, kps)][None])
        yield from self._render_keypoints(src, kps, transfer, driving)

    def generate(self, source, motion: Motion) -> Iterator[RenderedFrames]:
        """Render a :class:`Motion` (from :meth:`estimate_motion`) on its ``source`` image."""
        if not isinstance(motion, Motion):
            raise InputError(f"motion: expected a Motion, got {type(motion).__name__}")
        if motion.model_id != self.model.model_id:
            raise ModelError("motion: it was estimated with another model; use the same checkpoint")
        if self.options.needs_driving_frames:
            raise ValueError("rendering a Motion: background motion and side-by-side layouts need the driving frames")
        src = self._prepare_source(source, kp_source=motion.kp_source)
        yield from self._render_keypoints(src, motion.kp_driving.cpu(), None, None)

    def _render_keypoints(self, src: _Source, kps: torch.Tensor, transfer, driving) -> Iterator[RenderedFrames]:
        """Second pass: render precomputed keypoints (re-reading the driving frames when a layout shows them)."""
        t = kps.shape[0]
        self.hooks._call("on_stage", "render", t)
        needs_frames = driving is not None and self.options.needs_driving_frames
        batches = driving.batches(self._limit) if needs_frames else None
        start = 0
        while start < t:
            chunk = next(batches, None) if batches is not None else None
            n = chunk.shape[0] if chunk is not None else self._limit
            if batches is not None and (chunk is None or start + n > t):
                raise InputError(f"{driving.name}: the clip decoded differently on the second pass")
            kp = kps[start:start + n].to(self.model.device)
            yield from self._render(src, start, transfer(kp) if transfer else kp, kp if transfer else None, chunk)
            start += kp.shape[0]

    def _render(self, src: _Source, start: int, kp_new: torch.Tensor, kp_driving: torch.Tensor | None,
                driving: torch.Tensor | None) -> Iterator[RenderedFrames]:
        """Render one batch in pieces of at most :attr:`batch_size` frames (halved on out-of-memory)."""
        if driving is not None and self.options.driving_crop is not None:
            driving = crop(check_user_images(driving, name="driving"), self.options.driving_crop)
        piece = lambda a, b: self._render_piece(  # noqa: E731
            src, start + a, kp_new[a:b], None if kp_driving is None else kp_driving[a:b],
            None if driving is None else driving[a:b])
        for out in self._pieces(piece, kp_new.shape[0], interruptible=True):
            self.hooks._call("progress", out.frames.shape[0])
            yield out

    def _render_piece(self, src: _Source, start: int, kp_new, kp_driving, driving) -> RenderedFrames:
        o = self.options
        bg = None
        if o.background:
            frames = self.model.prepare(driving, name="driving")
            with torch.no_grad():
                bg = self.model.bg_predictor(src.frame.expand(frames.shape[0], -1, -1, -1), frames)
        gen, motion = self.engine.render_batch(src.cache, src.kp, kp_new, bg_param=bg)
        occ = motion.occlusion[-1]
        result = src.composer.result(gen.prediction, motion.deformation, occ)
        views = src.composer.views(o.views, result, kp_transferred=kp_new, driving=driving, kp_driving=kp_driving)
        cpu = lambda t: None if t is None else t.detach().float().cpu()  # noqa: E731
        return RenderedFrames(start=start, frames=views[o.view], views=views, kp_driving=cpu(kp_driving),
                              kp_transferred=cpu(kp_new), driving=driving,
                              deformation=cpu(motion.deformation) if o.with_motion else None,
                              occlusion=cpu(occ[:, 0]) if o.with_motion else None)

    def _pieces(self, fn, total: int, *, interruptible: bool = False) -> Iterator:
        """The one piece-wise runner: yields ``fn(a, b)`` over ``range(total)`` in pieces of at most
        :attr:`batch_size`; an out-of-memory error halves the batch size and retries the piece.
        ``interruptible``: the ``check_interrupt`` hook runs before every try."""
        done = 0
        while done < total:
            if interruptible:
                self.hooks._call("check_interrupt")
            stop = min(done + self._limit, total)
            try:
                part = fn(done, stop)
            except OUT_OF_MEMORY as exc:
                self._halve(exc)
                continue
            done = stop
            yield part

    def _halve(self, exc: BaseException) -> None:
        if self._limit == 1:
            raise exc
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self._limit = max(1, self._limit // 2)
        self.engine.batch_size = self._limit
