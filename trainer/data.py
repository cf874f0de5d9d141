"""Training and test data sets: sample frame pairs of the videos found by :mod:`.data_scan`, load batches.

See :mod:`tpsmm.trainer.data_scan` for the data folder layouts, entry kinds and the policy for bad entries
(its public names are importable from here too). A clip that probes fine but fails to decode during
training is replaced by the next entry (warned once per file). Frame sizes: every frame is resized
(antialiased bilinear) to ``frame_shape``; without it, to the most common size in the split (ties: the
first by name), warning about the videos that get resized.

Reproducibility: item ``i`` of epoch ``e`` draws everything (video of the id, frame indices, augmentation)
from a generator seeded by ``(seed, e, i)``, so batches do not depend on the worker count.
"""
from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from typing import Iterator, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..core.media.image_io import VideoError, list_image_files, load_image_uint8, resize_uint8
from .augment import AugmentConfig, augment_clip
# the scanning half lives in data_scan; re-exported (private helpers included, trainer.evaluate uses them)
from .data_scan import (STRIP_EXTENSIONS, VIDEO_EXTENSIONS, DataError, VideoEntry, _candidates,  # noqa: F401
                        _listing, _scan, _shape, _split_names, _warn_skipped, common_frame_shape, read_frames,
                        scan_folder, scan_videos)

__all__ = ["training_dataset", "DataError", "VIDEO_EXTENSIONS", "STRIP_EXTENSIONS", "VideoEntry", "FramePair", "TestVideo",
           "scan_folder", "scan_videos", "common_frame_shape", "read_frames", "FramesDataset", "EpochSampler",
           "make_loader",
           "item_seed"]

_RETRIES = 8


class FramePair(NamedTuple):
    """A training sample; ``default_collate`` batches it to ``[B,3,H,W]`` tensors and a list of names."""

    source: torch.Tensor
    driving: torch.Tensor
    name: str


class TestVideo(NamedTuple):
    """A whole test video: float ``[T,3,H,W]`` in ``[0,1]`` and its name."""

    video: torch.Tensor
    name: str

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


def training_dataset(cfg, data: str, *, cache_frames: bool, seed: int, num_repeats: int) -> FramesDataset:
    """The training :class:`FramesDataset` of a run's :class:`~tpsmm.core.model.config.Config` (model-size frames,
    its id sampling and augmentation) over the folder ``data``; ``tpsmm train`` and ``tpsmm train-avd`` use it."""
    size = cfg.model.image_size
    return FramesDataset(data, is_train=True, frame_shape=(size, size), id_sampling=cfg.dataset.id_sampling,
                         augment=AugmentConfig.from_dataset_config(cfg.dataset), num_repeats=num_repeats,
                         cache_frames=cache_frames, seed=seed)


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
