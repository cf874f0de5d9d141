"""Procedural training set of articulated 2-D characters (the data behind tpsmm's bundled demo model).

``make_dataset`` writes the trainer's layout (the same as the reference release's vox/taichi data)::

    OUT/train/vid0000.mp4/00000.png, 00001.png, ...   # each clip is a *folder* of PNG frames named *.mp4
    OUT/test/vid0051.mp4/...
    OUT/dataset.json                                   # spec + counts + clip names

Video ``i`` is drawn from ``numpy.random.Generator(PCG64(SeedSequence(seed, spawn_key=(i,))))``, so a seed gives
identical files, and video ``i`` does not depend on how many videos are made.  The last
``round_half_up(videos * test_fraction)`` indices form the test split (at least 1 when ``videos >= 2`` and
``test_fraction > 0``; always at least 1 training video).  Everything is written into a hidden sibling folder and
renamed into place at the end, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .character import render_character_clip

__all__ = ["DatasetSpec", "render_character_clip", "make_dataset", "add_make_dataset_arguments",
           "make_dataset_command", "clip_rng", "clip_name", "write_clip"]

FORMAT = "tpsmm-synthetic-characters"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate.

    videos: number of clips (>= 1); frames: frames per clip (>= 2); size: square frame side in pixels (a multiple of
    32, >= 32); seed: base seed (>= 0); test_fraction: share of clips in the test split, in [0, 1).
    """

    videos: int
    frames: int
    size: int
    seed: int = 0
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        def is_int(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        if not is_int(self.videos) or self.videos < 1:
            raise ValueError(f"--videos {self.videos}: must be an integer >= 1")
        if not is_int(self.frames) or self.frames < 2:
            raise ValueError(f"--frames {self.frames}: must be an integer >= 2")
        if not is_int(self.size) or self.size < 32 or self.size % 32:
            raise ValueError(f"--size {self.size}: must be a multiple of 32 and at least 32")
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"--seed {self.seed}: must be a non-negative integer")
        tf = self.test_fraction
        if isinstance(tf, bool) or not isinstance(tf, (int, float, np.floating)) or not 0.0 <= float(tf) < 1.0:
            raise ValueError(f"--test-fraction {tf}: must be a number in [0, 1)")

    @property
    def test_videos(self) -> int:
        """Number of test clips (the last indices)."""
        if self.videos < 2 or self.test_fraction <= 0:
            return 0
        return min(max(1, math.floor(self.videos * self.test_fraction + 0.5)), self.videos - 1)


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for video ``index`` of a data set with base ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(int(index),))))


def clip_name(index: int) -> str:
    """Folder name of video ``index`` (a frame folder named like a video, as in the released data)."""
    return f"vid{index:04d}.mp4"


def write_clip(folder: str, seed: int, index: int, frames: int, size: int) -> None:
    """Render video ``index`` of base ``seed`` into the new folder ``folder`` as 00000.png, 00001.png, ..."""
    clip = render_character_clip(clip_rng(seed, index), frames=frames, size=size)
    os.mkdir(folder)
    for t, frame in enumerate(clip):
        Image.fromarray(frame).save(os.path.join(folder, f"{t:05d}.png"), compress_level=1)


def _ignore_sigint() -> None:  # pool workers: let the parent handle ^C and clean up
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_jobs(jobs: list[tuple], workers: int, progress: bool) -> None:
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc="make-dataset", unit="video", file=sys.stderr)
    try:
        if workers <= 1:
            for job in jobs:
                write_clip(*job)
                if bar is not None:
                    bar.update()
            return
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
        try:
            for fut in as_completed([pool.submit(write_clip, *job) for job in jobs]):
                fut.result()
                if bar is not None:
                    bar.update()
        finally:  # on error or ^C: drop queued clips, wait for running ones so nothing writes after cleanup
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if bar is not None:
            bar.close()


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse outputs we must not replace; see ``make_dataset``."""
    from ...core.media.atomic import check_replaceable

    check_replaceable(str(out))  # a symbolic link, device, FIFO or socket is never replaced
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder; choose another output path")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: folder exists and is not empty (pass --overwrite to replace it)")
        if not (out / "dataset.json").is_file():
            raise FileExistsError(f"{out}: not a tpsmm synthetic data set (no dataset.json); refusing to delete it")
    if out.parent.exists() and not out.parent.is_dir():
        raise FileExistsError(f"{out.parent}: exists and is not a folder; choose another output path")


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` (empty, or a data set being overwritten) is moved aside first
    and deleted only once the new one is in place (restored if the swap fails)."""
    if not out.exists():
        tmp.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    out.rename(old / "data")
    try:
        tmp.rename(out)
    except BaseException:
        (old / "data").rename(out)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def make_dataset(out_dir, *, videos: int, frames: int, size: int, seed: int = 0, test_fraction: float = 0.2,
                 overwrite: bool = False, progress: bool = False, workers: int = 1) -> dict:
    """Render ``videos`` clips of ``frames`` RGB frames (``size`` x ``size`` PNG) into ``out_dir``.

    Returns ``{"out_dir", "train_dir", "test_dir", "train", "test", "frames", "size"}`` (paths as str, counts as int).
    Raises ValueError naming the bad argument; FileExistsError if ``out_dir`` exists and is non-empty without
    ``overwrite`` (with ``overwrite`` only a previous data set, i.e. a folder holding ``dataset.json``, is replaced).
    ``workers``: processes rendering in parallel (1 = in this process, 0 = one per CPU, at most 8); the output
    does not depend on it.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"--workers {workers}: must be an integer >= 0 (0 = one per CPU)")
    workers = workers or min(os.cpu_count() or 1, 8)
    spec = DatasetSpec(videos=videos, frames=frames, size=size, seed=seed, test_fraction=test_fraction)
    out = Path(out_dir).expanduser().absolute()
    _prepare_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_test = spec.test_videos
    n_train = spec.videos - n_test
    names = {"train": [clip_name(i) for i in range(n_train)],
             "test": [clip_name(i) for i in range(n_train, spec.videos)]}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        (tmp / "train").mkdir()
        (tmp / "test").mkdir()
        jobs = [(str(tmp / ("train" if i < n_train else "test") / clip_name(i)), spec.seed, i, spec.frames,
                 spec.size) for i in range(spec.videos)]
        _run_jobs(jobs, min(workers, spec.videos), progress)
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "spec": asdict(spec),
                "train": n_train, "test": n_test, "names": names}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out_dir": str(out), "train_dir": str(out / "train"), "test_dir": str(out / "test"),
            "train": n_train, "test": n_test, "frames": spec.frames, "size": spec.size}


def add_make_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``tpsmm make-dataset`` options: OUT, --videos, --frames, --size, --seed, --test-fraction, ..."""
    parser.add_argument("out", metavar="OUT", help="output folder (gets train/, test/ and dataset.json)")
    parser.add_argument("--videos", type=int, default=64, help="number of clips (default 64)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels, multiple of 32 (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of clips for test/ (default 0.2)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing data set in OUT")
    parser.add_argument("--workers", type=int, default=0, help="render processes (default 0 = one per CPU, max 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def make_dataset_command(args: argparse.Namespace) -> int:
    """Body of ``tpsmm make-dataset``: returns 0 on success, 2 on a usage error (one line on stderr), 130 on ^C."""
    try:
        summary = make_dataset(args.out, videos=args.videos, frames=args.frames, size=args.size, seed=args.seed,
                               test_fraction=args.test_fraction, overwrite=args.overwrite,
                               progress=not getattr(args, "quiet", False), workers=getattr(args, "workers", 0))
    except (ValueError, OSError) as exc:
        print(f"tpsmm make-dataset: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tpsmm make-dataset: interrupted; nothing was written", file=sys.stderr)
        return 130
    if not getattr(args, "quiet", False):
        print(f"wrote {summary['train']} train + {summary['test']} test clips of {summary['frames']} frames "
              f"({summary['size']}x{summary['size']}) to {summary['out_dir']}")
    return 0
