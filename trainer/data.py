"""Training and test data: find the videos of a data folder, sample frame pairs, load batches.

Layout (as released): ``ROOT/train/`` and ``ROOT/test/``; or a flat ``ROOT/`` split 80/20 by
:func:`scan_videos` (the rule of sklearn's ``train_test_split(test_size=0.2, random_state=split_seed)``
applied to the name-sorted entries, so the split depends only on the names). An entry is

* a video file (``.mp4 .mov .webm .gif .mkv .avi``), decoded with PyAV;
* a folder of frames (any name, e.g. the released ``id#clip.mp4/0000000.png``), natural-sorted by name;
* a frame strip: one ``.png/.jpg/.jpeg`` holding frames side by side (needs ``frame_shape``).

Policy for bad entries: unreadable files, folders without images, strips that do not fit ``frame_shape``
and entries with fewer than 2 frames are skipped with **one** warning listing them; when nothing usable
remains :class:`DataError` is raised (``no usable videos under ROOT/train: ...``). A clip that probes fine
but fails to decode during training is replaced by the next entry (warned once per file). Frame sizes:
every frame is resized (antialiased bilinear) to ``frame_shape``; without it, to the most common size in
the split (ties: the first by name), warning about the videos that get resized.

Ids: the part of an entry's name before the first ``#`` (the whole name when there is none); the release
matched ``train/<id>*.mp4`` by prefix, which also caught ids that merely start with another id.
Reproducibility: item ``i`` of epoch ``e`` draws everything (video of the id, frame indices, augmentation)
from a generator seeded by ``(seed, e, i)``, so batches do not depend on the worker count.
"""
from __future__ import annotations

import math
import os
import warnings
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import av
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ..core.media.image_io import VideoError, list_image_files, load_image_uint8, resize_uint8
from ..core.media.video import VideoReader, probe_video
from .augment import AugmentConfig, augment_clip

__all__ = ["DataError", "VIDEO_EXTENSIONS", "STRIP_EXTENSIONS", "VideoEntry", "FramePair", "TestVideo",
           "scan_folder", "scan_videos", "common_frame_shape", "read_frames", "FramesDataset", "EpochSampler",
           "make_loader",
           "item_seed"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".gif", ".mkv", ".avi")
STRIP_EXTENSIONS = (".png", ".jpg", ".jpeg")
_MAX_LISTED = 12
_RETRIES = 8


class DataError(ValueError):
    """A data folder (or a data-loading argument) cannot be used; the message names it."""


@dataclass(frozen=True)
class VideoEntry:
    """One usable video of a data set.

    Attributes:
        path: file or folder path. name: its base name (e.g. ``id10001#abc#00001.mp4``).
        video_id: the name before the first ``#`` (id sampling). num_frames: frames (from the container
            or the folder listing; >= 2). kind: ``"video"``, ``"folder"`` or ``"strip"``.
        height, width: native frame size. fps: frame rate (25 for folders and strips).
    """

    path: str
    name: str
    video_id: str
    num_frames: int
    kind: str = "video"
    height: int = 0
    width: int = 0
    fps: float = 25.0


class FramePair(NamedTuple):
    """A training sample; ``default_collate`` batches it to ``[B,3,H,W]`` tensors and a list of names."""

    source: torch.Tensor
    driving: torch.Tensor
    name: str


class TestVideo(NamedTuple):
    """A whole test video: float ``[T,3,H,W]`` in ``[0,1]`` and its name."""

    video: torch.Tensor
    name: str


def _shape(frame_shape) -> tuple[int, int] | None:
    if frame_shape is None:
        return None
    hw = (frame_shape, frame_shape) if isinstance(frame_shape, int) else tuple(frame_shape)[:2]
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw):
        raise DataError(f"frame_shape: expected a positive int or (height, width), got {frame_shape!r}")
    return int(hw[0]), int(hw[1])


def _candidates(folder: str) -> list[str]:
    """Names in ``folder`` that may be entries: sub-folders and video/strip files (hidden ones ignored)."""
    out = []
    for name in os.listdir(folder):
        ext = os.path.splitext(name)[1].lower()
        if name.startswith("."):
            continue
        if os.path.isdir(os.path.join(folder, name)) or ext in VIDEO_EXTENSIONS + STRIP_EXTENSIONS:
            out.append(name)
    return sorted(out)


def _count_packets(path: str) -> int:
    n = 0
    try:
        with av.open(path) as c:
            for packet in c.demux(c.streams.video[0]):
                n += packet.size > 0
    except av.FFmpegError:
        pass
    return n


def _inspect(folder: str, name: str, frame_shape) -> VideoEntry | str:
    """An entry, or the reason it cannot be used."""
    path = os.path.join(folder, name)
    ext = os.path.splitext(name)[1].lower()
    vid = name.split("#", 1)[0]
    try:
        if os.path.isdir(path):
            files = list_image_files(path)
            if not files:
                return "folder has no image files"
            with Image.open(files[0]) as im:
                w, h = im.size
            entry = VideoEntry(path, name, vid, len(files), "folder", h, w)
        elif ext in VIDEO_EXTENSIONS:
            info = probe_video(path)
            n = info.frame_count or _count_packets(path)
            entry = VideoEntry(path, name, vid, n, "video", info.height, info.width, info.fps)
        else:
            if frame_shape is None:
                return "frame strip needs frame_shape"
            with Image.open(path) as im:
                w, h = im.size
            fh, fw = frame_shape
            if h != fh or w % fw:
                return f"strip is {w}x{h}, not a row of {fw}x{fh} frames"
            entry = VideoEntry(path, name, vid, w // fw, "strip", fh, fw)
    except (VideoError, OSError, ValueError, av.FFmpegError) as exc:
        msg = str(exc)
        return "unreadable: " + (msg[len(path) + 2:] if msg.startswith(path + ": ") else msg)
    if entry.num_frames < 2:
        return f"too short ({entry.num_frames} frame{'s' if entry.num_frames != 1 else ''})"
    return entry


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_MAX_LISTED])
    return shown + (f"; and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _scan(folder: str, names: list[str], frame_shape, label: str) -> tuple[list[VideoEntry], list[str]]:
    if not names:
        raise DataError(f"no usable videos under {label}: it has no video files, frame folders or images")
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        found = list(pool.map(lambda n: _inspect(folder, n, frame_shape), names))
    entries = [e for e in found if isinstance(e, VideoEntry)]
    skipped = [f"{n} ({e})" for n, e in zip(names, found) if not isinstance(e, VideoEntry)]
    if not entries:
        raise DataError(f"no usable videos under {label}: {_listing(skipped)}")
    return entries, skipped


def _warn_skipped(skipped: list[str], total: int, label: str) -> None:
    if skipped:
        warnings.warn(f"skipped {len(skipped)} of {total} videos under {label}: {_listing(skipped)}",
                      RuntimeWarning, stacklevel=3)


def scan_folder(folder: str, *, frame_shape=None) -> list[VideoEntry]:
    """All usable entries directly inside ``folder`` (no split), sorted by name; see the module policy."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: data folder not found" if not os.path.exists(folder)
                        else f"{folder}: is not a folder")
    names = _candidates(folder)
    entries, skipped = _scan(folder, names, _shape(frame_shape), folder)
    _warn_skipped(skipped, len(names), folder)
    return entries


def _split_names(root: str, *, is_train: bool, split_seed: int) -> tuple[str, list[str], str]:
    """``(folder, names, label)`` of the requested split of ``root``."""
    train, test = os.path.join(root, "train"), os.path.join(root, "test")
    if os.path.isdir(train) or os.path.isdir(test):
        if not os.path.isdir(train) and is_train:
            raise DataError(f"{root}: has test/ but no train/ folder")
        folder = train if is_train else test
        if not os.path.isdir(folder):
            raise DataError(f"{folder}: not found (a data folder with train/ needs test/ for evaluation)")
        return folder, _candidates(folder), folder
    names = _candidates(root)
    if len(names) < 2:
        raise DataError(f"{root}: need at least 2 videos to split into train and test, found {len(names)} "
                        "(or use ROOT/train and ROOT/test)")
    n_test = math.ceil(0.2 * len(names))  # sklearn ShuffleSplit arithmetic
    perm = np.random.RandomState(split_seed).permutation(len(names))
    chosen = perm[n_test:] if is_train else perm[:n_test]
    return root, sorted(names[i] for i in chosen), f"{root} ({'train' if is_train else 'test'} split)"


def scan_videos(root: str, *, is_train: bool, frame_shape=None, split_seed: int = 0) -> list[VideoEntry]:
    """Usable entries of the train or test split of ``root``, sorted by name.

    Args:
        root: data folder (``train/`` + ``test/`` layout, or flat; see the module docstring).
        is_train: which split.
        frame_shape: ``(h, w)`` or int; needed for frame strips.
        split_seed: seed of the flat 80/20 split.

    Raises:
        DataError: missing folder, a flat folder with fewer than 2 entries, or nothing usable.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"{root}: data folder not found" if not os.path.exists(root) else f"{root}: is not a folder")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise DataError(f"split_seed: expected an int >= 0, got {split_seed!r}")
    folder, names, label = _split_names(root, is_train=is_train, split_seed=split_seed)
    entries, skipped = _scan(folder, names, _shape(frame_shape), label)
    _warn_skipped(skipped, len(names), label)
    return entries


def common_frame_shape(entries: list[VideoEntry]) -> tuple[int, int]:
    """The most common native ``(h, w)`` of ``entries`` (ties: the first entry's in list order)."""
    counts = Counter((e.height, e.width) for e in entries)
    best = max(counts.values())
    return next((e.height, e.width) for e in entries if counts[(e.height, e.width)] == best)


def read_frames(entry: VideoEntry, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Stream uint8 ``[H, W, 3]`` frames of ``entry``, resized to ``size = (h, w)`` when given.

    Video files and folders go through :class:`~tpsmm.core.media.video.VideoReader` (undecodable frames are
    skipped with a warning); strips are cut into ``entry.width``-wide frames.
    """
    if entry.kind == "strip":
        strip = load_image_uint8(entry.path)
        for t in range(strip.shape[1] // entry.width):
            frame = np.ascontiguousarray(strip[:, t * entry.width:(t + 1) * entry.width])
            yield frame if size is None else resize_uint8(frame, size)
        return
    with VideoReader(entry.path, size=size) as reader:
        yield from reader


def item_seed(seed: int, epoch: int, index: int) -> int:
    """63-bit seed of item ``index`` in ``epoch`` (independent streams via numpy's SeedSequence)."""
    a, b = np.random.SeedSequence(int(seed), spawn_key=(int(epoch), int(index))).generate_state(2, np.uint32)
    return ((int(a) << 32) | int(b)) & ((1 << 63) - 1)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[T,H,W,3]`` -> float32 ``[T,3,H,W]`` in ``[0,1]``."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


class FramesDataset(Dataset):
    """Frame pairs for training, or whole videos for testing (see the module docstring for the policy).

    Args:
        root: data folder. is_train: train split (pairs) or test split (videos).
        frame_shape: ``(h, w)``/int every frame is resized to; ``None``: the split's most common size.
        id_sampling: (train) one item per id, a random video of the id each time.
        augment: (train) augmentations applied to each pair, ``None`` for none.
        num_repeats: (train) the item list is repeated this many times per epoch.
        cache_frames: keep decoded clips (uint8, at ``frame_shape``) in a per-process LRU of at most
            ``cache_bytes`` bytes; each DataLoader worker has its own.
        seed: base seed of the per-item generators. split_seed: seed of a flat folder's split.
    """

    def __init__(self, root: str, *, is_train: bool = True, frame_shape: int | tuple[int, int] | None = None,
                 id_sampling: bool = False, augment: AugmentConfig | None = None, num_repeats: int = 1,
                 cache_frames: bool = False, seed: int = 0, cache_bytes: int = 1 << 30, split_seed: int = 0):
        for arg, value, low in (("num_repeats", num_repeats, 1), ("seed", seed, 0), ("cache_bytes", cache_bytes, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DataError(f"{arg}: expected an int >= {low}, got {value!r}")
        if augment is not None and not isinstance(augment, AugmentConfig):
            raise DataError(f"augment: expected an AugmentConfig or None, got {type(augment).__name__}")
        self.root, self.is_train = os.fspath(root), bool(is_train)
        self.entries = scan_videos(self.root, is_train=is_train, frame_shape=frame_shape, split_seed=split_seed)
        self.frame_shape = _shape(frame_shape) or common_frame_shape(self.entries)
        if frame_shape is None:
            other = [f"{e.name} {e.width}x{e.height}" for e in self.entries
                     if (e.height, e.width) != self.frame_shape]
            if other:
                h, w = self.frame_shape
                warnings.warn(f"{len(other)} of {len(self.entries)} videos under {self.root} are not {w}x{h}; "
                              f"their frames are resized to {w}x{h} (set frame_shape to choose): {_listing(other)}",
                              RuntimeWarning, stacklevel=2)
        self.id_sampling = bool(id_sampling) and self.is_train
        self.augment = augment if self.is_train else None
        self.num_repeats = num_repeats if self.is_train else 1
        self.seed, self.cache_frames, self.cache_bytes = seed, bool(cache_frames), cache_bytes
        self.ids = sorted({e.video_id for e in self.entries}) if self.id_sampling else []
        self._by_id: dict[str, list[int]] = {i: [] for i in self.ids}
        for k, e in enumerate(self.entries):
            if self.id_sampling:
                self._by_id[e.video_id].append(k)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()  # seen by persistent workers
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_used = 0
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ epochs and sizes
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws ``__getitem__`` uses (call before iterating each epoch)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise DataError(f"epoch: expected an int >= 0, got {epoch!r}")
        self._epoch.fill_(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def __len__(self) -> int:
        if not self.is_train:
            return len(self.entries)
        return (len(self.ids) if self.id_sampling else len(self.entries)) * self.num_repeats

    def generator(self, index: int) -> torch.Generator:
        """The CPU generator of item ``index`` in the current epoch."""
        return torch.Generator().manual_seed(item_seed(self.seed, self.epoch, index))

    # ------------------------------------------------------------------ test side
    def videos(self) -> list[VideoEntry]:
        """The entries of this split, sorted by name."""
        return list(self.entries)

    def iter_frames(self, entry: VideoEntry) -> Iterator[torch.Tensor]:
        """Stream float ``[3,H,W]`` frames in ``[0,1]`` of ``entry`` at ``frame_shape``."""
        for frame in read_frames(entry, self.frame_shape):
            yield _to_tensor(frame[None])[0]

    # ------------------------------------------------------------------ loading
    def _decode_all(self, entry: VideoEntry) -> np.ndarray:
        if entry.kind == "folder":
            return np.stack([resize_uint8(load_image_uint8(f), self.frame_shape) for f in list_image_files(entry.path)])
        return np.stack(list(read_frames(entry, self.frame_shape)))

    def _cached(self, entry: VideoEntry) -> np.ndarray:
        clip = self._cache.get(entry.path)
        if clip is not None:
            self._cache.move_to_end(entry.path)
            return clip
        clip = self._decode_all(entry)
        if clip.nbytes <= self.cache_bytes:
            while self._cache and self._cache_used + clip.nbytes > self.cache_bytes:
                self._cache_used -= self._cache.popitem(last=False)[1].nbytes
            self._cache[entry.path] = clip
            self._cache_used += clip.nbytes
        return clip

    def _load(self, entry: VideoEntry, indices: list[int]) -> np.ndarray:
        """uint8 ``[len(indices),H,W,3]``; indices past the decodable end take the last frame."""
        if self.cache_frames:
            clip = self._cached(entry)
            return clip[[min(i, len(clip) - 1) for i in indices]]
        if entry.kind == "folder":
            files = list_image_files(entry.path)
            if not files:
                raise VideoError(f"{entry.path}: folder has no image files")
            return np.stack([resize_uint8(load_image_uint8(files[min(i, len(files) - 1)]), self.frame_shape)
                             for i in indices])
        frames: list[np.ndarray] = []
        stream = read_frames(entry, self.frame_shape)
        try:
            for frame in stream:
                frames.append(frame)
                if len(frames) > max(indices):
                    break
        finally:
            stream.close()  # release the decoder now, not at garbage collection
        if not frames:
            raise VideoError(f"{entry.path}: video has no frames")
        return np.stack([frames[min(i, len(frames) - 1)] for i in indices])

    def __getitem__(self, index: int) -> FramePair | TestVideo:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a data set of {len(self)} items")
        if not self.is_train:
            entry = self.entries[index]
            return TestVideo(_to_tensor(np.stack(list(read_frames(entry, self.frame_shape)))), entry.name)
        g = self.generator(index)
        if self.id_sampling:
            members = self._by_id[self.ids[index % len(self.ids)]]
            pos = members[int(torch.randint(len(members), (), generator=g))]
        else:
            pos = index % len(self.entries)
        for attempt in range(_RETRIES):
            entry = self.entries[(pos + attempt) % len(self.entries)]
            indices = torch.randint(entry.num_frames, (2,), generator=g).sort().values.tolist()
            try:
                frames = self._load(entry, indices)
                break
            except VideoError as exc:
                if entry.path not in self._warned:
                    self._warned.add(entry.path)
                    warnings.warn(f"{exc}; using another video instead", RuntimeWarning, stacklevel=2)
        else:
            raise DataError(f"{_RETRIES} videos in a row failed to load under {self.root}; last: {entry.path}")
        clip = _to_tensor(frames)
        if self.augment is not None:
            clip = augment_clip(clip, self.augment, g)
        return FramePair(clip[0], clip[1], entry.name)


class EpochSampler(Sampler):
    """Indices ``0..n-1`` of ``dataset``, shuffled by a permutation that depends only on ``(seed, epoch)``.

    The epoch is the dataset's (:meth:`FramesDataset.set_epoch`), so one call moves both the order and the
    per-item draws; the order does not depend on DataLoader internals or worker counts. Resuming at
    step ``k`` of an epoch: set the epoch and skip the first ``k`` batches of the same order.
    """

    def __init__(self, dataset: Dataset, *, shuffle: bool = True, seed: int = 0):
        self.dataset, self.shuffle, self.seed, self._epoch = dataset, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch used when the dataset has no ``epoch`` of its own (e.g. a ``Subset``)."""
        self._epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if not self.shuffle:
            return iter(range(n))
        epoch = int(getattr(self.dataset, "epoch", self._epoch))
        state = np.random.SeedSequence([self.seed, epoch, 0x5EED]).generate_state(2, np.uint32)
        g = torch.Generator().manual_seed(((int(state[0]) << 32) | int(state[1])) & ((1 << 63) - 1))
        return iter(torch.randperm(n, generator=g).tolist())


def make_loader(dataset: Dataset, *, batch_size: int, num_workers: int, shuffle: bool = True,
                drop_last: bool = True, sampler=None, seed: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader for :class:`FramesDataset` pairs with persistent workers.

    Without a ``sampler`` the order comes from :class:`EpochSampler` (``seed`` and the dataset's epoch);
    with one (e.g. ``DistributedSampler``; call its ``set_epoch`` too) ``shuffle`` is ignored.
    Raises :class:`DataError` when ``drop_last`` would leave no batch at all.
    """
    for arg, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DataError(f"{arg}: expected an int >= {low}, got {value!r}")
    n = len(sampler) if sampler is not None else len(dataset)
    if drop_last and n < batch_size:
        raise DataError(f"batch_size {batch_size} is larger than the {n} samples per epoch"
                        f"{' on this process' if sampler is not None else ''}; lower the batch size or raise "
                        "num_repeats")
    if sampler is None:
        sampler = EpochSampler(dataset, shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                      num_workers=num_workers, drop_last=drop_last, pin_memory=pin_memory,
                      persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed))
