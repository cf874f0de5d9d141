"""Video reconstruction evaluation (the paper's L1 metric) and the ``tpsmm eval`` command.

As released (``reconstruction.py``): for each test video, source = frame 0; every frame ``t`` (frame 0
included) is reconstructed from the source with the keypoints of frame ``t`` and, when the model has a
background predictor and ``use_bg``, ``bg_param = bg_predictor(source, frame t)``; the per-frame L1 is
``mean |prediction - frame|`` over pixels and channels; the reported mean is **frame-weighted** (the mean of
all per-frame values of all videos). Differences from the release: frames are read at the model's
``image_size`` (antialiased bilinear resize when the video has another size), the source is encoded
once per video and frames are processed ``batch_size`` at a time. The report also holds the
*no-motion baseline* (every frame predicted as the source), to show what the model adds.

Data: ``data_dir`` with ``test/`` (``ROOT`` of a train/test layout) evaluates ``ROOT/test``; any other
folder is evaluated whole (every usable entry; same skip policy as :mod:`tpsmm.trainer.data`).

Outputs in ``out_dir`` (written atomically, never overwriting without ``overwrite``):
``<stem>.mp4`` (H.264 CRF 18), ``png/<stem>/00000.png ...`` (lossless, 8-bit, rounded — the release
truncates and concatenates along the width; a folder streams and opens in any viewer) and
``report.json`` (:meth:`EvalReport.to_dict`). ``<stem>`` is the entry name without its extension (the
full name with dots replaced when two entries would collide).

Keypoint metrics (AKD/AED need external detectors, not a dependency): pass ``keypoint_metric``, a
callable ``(pred [b,3,S,S], gt [b,3,S,S]) -> {metric: per-frame values [b]}`` (float CPU tensors in
``[0,1]``; NaN = no detection, left out of the mean). Its frame-weighted means go into ``metrics``.
"""
from __future__ import annotations

import json
import math
import os
import sys
import warnings
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Mapping

import numpy as np
import torch

from ..core import AnimationOptions, AnimationPipeline, DrivingFrames, Hooks
from ..core.media.atomic import atomic_write
from ..core.media.image_io import VideoError
from ..core.animation.writing import write_rendered
from ..core.media.video_writer import VideoWriter
from .data import (STRIP_EXTENSIONS, VIDEO_EXTENSIONS, DataError, VideoEntry, _candidates, _scan, _split_names,
                   _warn_skipped, read_frames)

__all__ = ["EvalReport", "evaluate_reconstruction", "output_stems"]

KeypointMetric = Callable[[torch.Tensor, torch.Tensor], Mapping[str, object]]


@dataclass
class EvalReport:
    """Result of :func:`evaluate_reconstruction`.

    Attributes:
        per_video: video name -> mean L1 of its frames. mean_l1: frame-weighted mean over all frames.
        frames: frames evaluated. frames_per_video: name -> frame count.
        per_frame: name -> per-frame L1 values. baseline_per_video / baseline_mean_l1: the same for the
            no-motion prediction (the source itself). metrics: frame-weighted means of ``keypoint_metric``.
        skipped: entries that could not be used, with the reason. image_size: evaluation size.
        use_bg: whether a background predictor was used. out_dir: where outputs went (None: none written).
    """

    per_video: dict[str, float]
    mean_l1: float
    frames: int
    frames_per_video: dict[str, int] = field(default_factory=dict)
    per_frame: dict[str, list[float]] = field(default_factory=dict)
    baseline_per_video: dict[str, float] = field(default_factory=dict)
    baseline_mean_l1: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    image_size: int = 0
    use_bg: bool = False
    out_dir: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN becomes ``None``)."""
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v
        return clean(asdict(self))


def _eval_entries(data_dir: str) -> tuple[list[VideoEntry], list[str], str]:
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: data folder not found" if not os.path.exists(data_dir)
                        else f"{data_dir}: is not a folder")
    if os.path.isdir(os.path.join(data_dir, "test")) or os.path.isdir(os.path.join(data_dir, "train")):
        folder, names, label = _split_names(data_dir, is_train=False, split_seed=0)
    else:
        folder, names, label = data_dir, _candidates(data_dir), data_dir
    entries, skipped = _scan(folder, names, None, label)
    _warn_skipped(skipped, len(names), label)
    return entries, skipped, label


def output_stems(entries: list[VideoEntry]) -> list[str]:
    """Output file stems: names without a video/image extension; full names (dots -> ``_``) on collision."""
    def stem(name: str) -> str:
        base, ext = os.path.splitext(name)
        return base if ext.lower() in VIDEO_EXTENSIONS + STRIP_EXTENSIONS and base else name
    stems = [stem(e.name) for e in entries]
    return [s if stems.count(s) == 1 else e.name.replace(".", "_") for s, e in zip(stems, entries)]


def _chunks(frames: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    chunk: list[np.ndarray] = []
    for f in frames:
        chunk.append(f)
        if len(chunk) == n:
            yield np.stack(chunk)
            chunk = []
    if chunk:
        yield np.stack(chunk)


def _check_outputs(out_dir: str, stems: list[str], save_videos: bool, overwrite: bool) -> None:
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    paths = [os.path.join(out_dir, "report.json")]
    if save_videos:
        for s in stems:
            paths += [os.path.join(out_dir, f"{s}.mp4"), os.path.join(out_dir, "png", s)]
    if not overwrite:
        for p in paths:
            if os.path.lexists(p):
                raise FileExistsError(f"{p}: already exists (pass --overwrite or choose another --out)")
    from ..core.media.outputs import check_outputs  # links, devices, foreign folders: refused before any work

    check_outputs([("--out", p) for p in paths[1:]], inputs={}, overwrite=overwrite)
    check_outputs([("--out", paths[0])], inputs={}, overwrite=overwrite, kinds=False)


def _write_json(path: str, data: dict) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    atomic_write(path, write)


def _clip(entry: VideoEntry, size: int) -> DrivingFrames:
    """The entry's frames at the model size as a re-iterable clip (decoded batch by batch)."""
    def batches(n: int):
        for chunk in _chunks(read_frames(entry, (size, size)), n):
            yield torch.from_numpy(chunk).float().div_(255)
    return DrivingFrames.from_batches(batches, fps=entry.fps, size=(size, size), name=entry.name)


def _evaluate_video(model, entry: VideoEntry, stem: str, out_dir: str | None, batch_size: int, use_bg: bool,
                    keypoint_metric, sums: dict[str, list[float]], overwrite: bool, bar):
    """Per-frame L1 of the model and of the no-motion baseline for one video; writes its outputs.

    The reconstruction goes through the animation pipeline in standard mode (every frame from the source
    with its own keypoints), with the background predictor when ``use_bg``.
    """
    clip = _clip(entry, model.config.image_size)
    first = clip.batches(1)
    source = next(first)[0]
    first.close()
    options = AnimationOptions(mode="standard", background=use_bg, batch_size=batch_size, dtype=None)
    pipeline = AnimationPipeline(model, options, hooks=Hooks(progress=bar.update if bar is not None else None))
    l1s: list[float] = []
    base: list[float] = []

    def measure(out) -> None:
        pred, gt = out.frames, out.driving
        l1s.extend((pred - gt).abs().mean(dim=(1, 2, 3)).tolist())
        base.extend((source[None] - gt).abs().mean(dim=(1, 2, 3)).tolist())
        if keypoint_metric is not None:
            _add_metric(keypoint_metric, pred, gt, sums)

    with ExitStack() as stack, torch.inference_mode():
        writers = []
        if out_dir is not None:
            os.makedirs(os.path.join(out_dir, "png"), exist_ok=True)
            for path in (os.path.join(out_dir, f"{stem}.mp4"), os.path.join(out_dir, "png", stem) + os.sep):
                writers.append(("frames", stack.enter_context(VideoWriter(path, fps=entry.fps, overwrite=overwrite))))
        write_rendered(pipeline.run(source, clip), writers, each=measure)
    return l1s, base


def _add_metric(keypoint_metric, pred: torch.Tensor, gt: torch.Tensor, sums: dict[str, list[float]]) -> None:
    """Run the per-frame metric hook on ``[b,S,S,3]`` frames (it takes ``[b,3,S,S]``) and collect its values."""
    b = pred.shape[0]
    for k, v in keypoint_metric(pred.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2)).items():
        vals = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
        if vals.numel() != b:
            raise ValueError(f"keypoint_metric: {k!r} gave {vals.numel()} values for {b} frames")
        sums.setdefault(k, []).extend(vals.tolist())


def _evaluate_entry(report: EvalReport, model, entry: VideoEntry, stem: str, out_dir: str | None, batch_size: int,
                    use_bg: bool, keypoint_metric, sums: dict[str, list[float]], overwrite: bool, bar) -> None:
    """Evaluate one entry into ``report`` (an entry with no decodable frame is skipped, as the scan would)."""
    try:
        l1s, base = _evaluate_video(model, entry, stem, out_dir, batch_size, use_bg, keypoint_metric, sums,
                                    overwrite, bar)
    except VideoError as exc:
        warnings.warn(f"{exc}; skipped", RuntimeWarning, stacklevel=3)
        report.skipped.append(f"{entry.name} ({exc})")
        return
    report.per_frame[entry.name] = l1s
    report.frames_per_video[entry.name] = len(l1s)
    report.per_video[entry.name] = float(np.mean(l1s))
    report.baseline_per_video[entry.name] = float(np.mean(base))


def evaluate_reconstruction(model, data_dir: str, *, out_dir: str | None, batch_size: int = 8, use_bg: bool = True,
                            progress: bool = True, device: str | torch.device | None = None, save_videos: bool = True,
                            overwrite: bool = False, keypoint_metric: KeypointMetric | None = None) -> EvalReport:
    """Reconstruct every test video from its first frame and measure L1 (see the module docstring).

    Args:
        model: a :class:`~tpsmm.core.TPSMM` (put in eval mode for the run, restored after).
        data_dir: ``ROOT`` with ``test/``, or a folder of videos to evaluate whole.
        out_dir: folder for videos, PNGs and ``report.json``; ``None`` writes nothing.
        batch_size: frames per forward pass. use_bg: use the background predictor when present.
        progress: tqdm bar on stderr. device: run on this device (the model is moved there); default: the
            model's. save_videos: write mp4 + PNG outputs (else only ``report.json``).
        overwrite: replace existing outputs. keypoint_metric: optional per-frame metric hook.

    Returns:
        :class:`EvalReport`. Raises :class:`~tpsmm.trainer.data.DataError` when there is nothing to evaluate,
        ``FileExistsError`` for outputs that exist without ``overwrite``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    data_dir = os.fspath(data_dir)
    entries, skipped, _ = _eval_entries(data_dir)
    stems = output_stems(entries)
    if out_dir is not None:
        out_dir = os.fspath(out_dir)
        _check_outputs(out_dir, stems, save_videos, overwrite)
    if device is not None:
        model.to(device)
    size = model.config.image_size
    use_bg = bool(use_bg and model.bg_predictor is not None)
    report = EvalReport(per_video={}, mean_l1=float("nan"), frames=0, skipped=skipped, image_size=size,
                        use_bg=use_bg, out_dir=out_dir)
    sums: dict[str, list[float]] = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(e.num_frames for e in entries), desc="eval", unit="frame", file=sys.stderr)
    was_training = model.training
    model.eval()
    try:
        for entry, stem in zip(entries, stems):
            _evaluate_entry(report, model, entry, stem, out_dir if save_videos else None, batch_size, use_bg,
                            keypoint_metric, sums, overwrite, bar)
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    all_l1 = [v for vals in report.per_frame.values() for v in vals]
    if not all_l1:
        raise DataError(f"no video under {data_dir} could be decoded: {'; '.join(report.skipped)}")
    report.frames = len(all_l1)
    report.mean_l1 = float(np.mean(all_l1))
    report.baseline_mean_l1 = float(np.sum([report.baseline_per_video[n] * report.frames_per_video[n]
                                            for n in report.per_video]) / report.frames)
    for k, vals in sums.items():
        finite = [v for v in vals if math.isfinite(v)]
        report.metrics[k] = float(np.mean(finite)) if finite else float("nan")
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        _write_json(os.path.join(out_dir, "report.json"), report.to_dict())
    return report
