"""Tests for tpsmm.trainer.data: layouts, entry kinds, bad-entry policy, sampling, cache and DataLoader."""
from __future__ import annotations

import os
import warnings

import av
import numpy as np
import pytest
import torch
from PIL import Image

from tpsmm.trainer.augment import AugmentConfig
from tpsmm.trainer.data import (
    DataError, FramePair, FramesDataset, VideoEntry, make_loader, scan_folder, scan_videos,
)
from tpsmm.trainer import data as data_module
from tpsmm.trainer.synthetic.dataset import make_dataset


# ---------------------------------------------------------------- media helpers
def index_frames(n: int, size: int = 32, offset: int = 0) -> np.ndarray:
    """uint8 [n,size,size,3]; frame t is a flat grey of value 8*(t+offset) (its index is readable)."""
    return np.stack([np.full((size, size, 3), 8 * (t + offset), np.uint8) for t in range(n)])


def write_folder(path, frames) -> str:
    os.makedirs(path)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(path, f"{t:05d}.png"))
    return str(path)


def write_mp4(path, frames, fps: int = 10) -> str:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    return str(path)


def write_gif(path, frames) -> str:
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=100, loop=0)
    return str(path)


def moving(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 2 * t, axis=1) for t in range(n)])


@pytest.fixture
def mixed_root(tmp_path):
    """A flat folder with every entry kind, ready for a train/test layout."""
    root = tmp_path / "data" / "train"
    root.mkdir(parents=True)
    write_folder(root / "a#1.mp4", index_frames(6))
    write_folder(root / "a#2.mp4", index_frames(5, offset=10))
    write_mp4(root / "b#1.mp4", moving(7))
    write_gif(str(root / "c.gif"), moving(4, seed=1))
    Image.fromarray(np.concatenate(list(moving(3, seed=2)), axis=1)).save(root / "strip.png")
    os.makedirs(tmp_path / "data" / "test")
    write_mp4(tmp_path / "data" / "test" / "t.mp4", moving(5, seed=3))
    return tmp_path / "data"


# ---------------------------------------------------------------- scanning
def test_train_test_layout_and_entry_kinds(mixed_root):
    entries = scan_videos(str(mixed_root), is_train=True, frame_shape=32)
    by = {e.name: e for e in entries}
    assert list(by) == ["a#1.mp4", "a#2.mp4", "b#1.mp4", "c.gif", "strip.png"]
    assert (by["a#1.mp4"].kind, by["a#1.mp4"].num_frames, by["a#1.mp4"].video_id) == ("folder", 6, "a")
    assert (by["b#1.mp4"].kind, by["b#1.mp4"].num_frames, by["b#1.mp4"].video_id) == ("video", 7, "b")
    assert (by["c.gif"].num_frames, by["c.gif"].video_id) == (4, "c.gif")
    assert (by["strip.png"].kind, by["strip.png"].num_frames, by["strip.png"].width) == ("strip", 3, 32)
    test = scan_videos(str(mixed_root), is_train=False)
    assert [e.name for e in test] == ["t.mp4"] and test[0].fps == pytest.approx(10)


def test_strip_without_frame_shape_is_skipped_with_warning(mixed_root):
    with pytest.warns(RuntimeWarning, match=r"skipped 1 of 5 videos .*strip.png \(frame strip needs frame_shape\)"):
        entries = scan_videos(str(mixed_root), is_train=True)
    assert "strip.png" not in [e.name for e in entries]


def test_synthetic_layout(tmp_path):
    make_dataset(tmp_path / "syn", videos=5, frames=4, size=32, seed=0)
    train = scan_videos(str(tmp_path / "syn"), is_train=True)
    test = scan_videos(str(tmp_path / "syn"), is_train=False)
    assert len(train) == 4 and len(test) == 1
    assert all(e.kind == "folder" and e.num_frames == 4 and (e.height, e.width) == (32, 32) for e in train + test)


def test_flat_split_is_deterministic_and_depends_only_on_names(tmp_path):
    root = tmp_path / "flat"
    for i in range(10):
        write_folder(root / f"v{i}", index_frames(2))
    train = [e.name for e in scan_videos(str(root), is_train=True)]
    test = [e.name for e in scan_videos(str(root), is_train=False)]
    assert len(train) == 8 and len(test) == 2 and not set(train) & set(test)
    assert sorted(train + test) == sorted(f"v{i}" for i in range(10))
    assert train == [e.name for e in scan_videos(str(root), is_train=True)]
    other = [e.name for e in scan_videos(str(root), is_train=False, split_seed=1)]
    assert len(other) == 2
    # a broken test video does not move anything between the splits
    for f in os.listdir(root / test[0]):
        os.remove(root / test[0] / f)
    assert [e.name for e in scan_videos(str(root), is_train=True)] == train
    with pytest.warns(RuntimeWarning, match="folder has no image files"):
        assert [e.name for e in scan_videos(str(root), is_train=False)] == test[1:]


def test_corrupt_and_short_videos_are_skipped_and_listed(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    write_mp4(root / "good.mp4", moving(4))
    (root / "broken.mp4").write_bytes(os.urandom(2000))
    (root / "empty.mov").write_bytes(b"")
    write_mp4(root / "short.mp4", moving(1))
    write_folder(root / "one", index_frames(1))
    (root / "notes.txt").write_text("ignored")
    with pytest.warns(RuntimeWarning) as rec:
        entries = scan_folder(str(root))
    assert [e.name for e in entries] == ["good.mp4"]
    msg = str(rec[0].message)
    assert "skipped 4 of 5 videos" in msg
    assert "broken.mp4 (unreadable" in msg and "empty.mov (unreadable" in msg
    assert "short.mp4 (too short (1 frame))" in msg and "one (too short (1 frame))" in msg


def test_nothing_usable_is_refused(tmp_path):
    root = tmp_path / "bad"
    (root / "train").mkdir(parents=True)
    (root / "train" / "x.mp4").write_bytes(b"not a video")
    with pytest.raises(DataError, match=r"no usable videos under .*train: x.mp4 \(unreadable"):
        FramesDataset(str(root))
    (root / "train" / "x.mp4").unlink()
    with pytest.raises(DataError, match="no usable videos under .*no video files"):
        scan_videos(str(root), is_train=True)
    with pytest.raises(DataError, match="test.*not found"):
        scan_videos(str(root), is_train=False)
    with pytest.raises(DataError, match="data folder not found"):
        scan_videos(str(tmp_path / "missing"), is_train=True)
    (tmp_path / "single").mkdir()
    write_folder(tmp_path / "single" / "v", index_frames(3))
    with pytest.raises(DataError, match="at least 2 videos"):
        scan_videos(str(tmp_path / "single"), is_train=True)


def test_mixed_sizes_resize_to_most_common_or_frame_shape(tmp_path):
    train = tmp_path / "m" / "train"
    write_folder(train / "big", index_frames(3, size=48))
    write_folder(train / "s1", index_frames(3))
    write_mp4(train / "s2.mp4", moving(3))
    with pytest.warns(RuntimeWarning, match=r"1 of 3 videos .* are not 32x32.*big 48x48"):
        ds = FramesDataset(str(tmp_path / "m"))
    assert ds.frame_shape == (32, 32)
    assert [ds[i].source.shape for i in range(len(ds))] == [(3, 32, 32)] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = FramesDataset(str(tmp_path / "m"), frame_shape=(64, 48))
    assert ds[0].driving.shape == (3, 64, 48) and ds[2].source.shape == (3, 64, 48)


# ---------------------------------------------------------------- sampling
def test_pairs_are_two_sorted_frames_of_one_video(tmp_path):
    root = tmp_path / "r"
    write_folder(root / "train" / "v", index_frames(8))
    ds = FramesDataset(str(root), num_repeats=200)
    assert len(ds) == 200
    pairs = set()
    for i in range(len(ds)):
        item = ds[i]
        assert isinstance(item, FramePair) and item.name == "v"
        assert item.source.shape == (3, 32, 32) and item.source.dtype == torch.float32
        s, d = round(float(item.source.mean()) * 255 / 8), round(float(item.driving.mean()) * 255 / 8)
        assert 0 <= s <= d < 8
        pairs.add((s, d))
    assert any(s == d for s, d in pairs) and any(s < d for s, d in pairs) and len(pairs) > 20


def test_id_sampling_and_num_repeats(mixed_root):
    ds = FramesDataset(str(mixed_root), frame_shape=32, id_sampling=True, num_repeats=3)
    assert ds.ids == ["a", "b", "c.gif", "strip.png"] and len(ds) == 12
    names = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in (0, 4, 8):  # item 0 and its repeats: always id "a"
            names.add(ds[i].name)
        assert ds[1].name == "b#1.mp4"
    assert names == {"a#1.mp4", "a#2.mp4"}
    plain = FramesDataset(str(mixed_root), frame_shape=32, num_repeats=2)
    assert len(plain) == 10 and plain[0].name == plain[5].name == "a#1.mp4"


def test_items_are_reproducible_per_seed_and_epoch(mixed_root):
    aug = AugmentConfig(jitter={"brightness": 0.2, "hue": 0.1})
    a = FramesDataset(str(mixed_root), frame_shape=32, augment=aug, seed=3)
    b = FramesDataset(str(mixed_root), frame_shape=32, augment=aug, seed=3)
    for i in range(len(a)):
        assert torch.equal(a[i].source, b[i].source) and torch.equal(a[i].driving, b[i].driving)
    first = [a[i].source for i in range(len(a))]
    a.set_epoch(1)
    assert any(not torch.equal(x, a[i].source) for i, x in enumerate(first))
    a.set_epoch(0)
    assert all(torch.equal(x, a[i].source) for i, x in enumerate(first))
    with pytest.raises(DataError, match="epoch"):
        a.set_epoch(-1)


def test_cache_gives_identical_samples_and_respects_budget(mixed_root):
    plain = FramesDataset(str(mixed_root), frame_shape=32, num_repeats=3)
    cached = FramesDataset(str(mixed_root), frame_shape=32, num_repeats=3, cache_frames=True)
    for i in range(len(plain)):
        p, c = plain[i], cached[i]
        assert torch.equal(p.source, c.source) and torch.equal(p.driving, c.driving) and p.name == c.name
    assert len(cached._cache) == 5 and cached._cache_used == sum(v.nbytes for v in cached._cache.values())
    small = FramesDataset(str(mixed_root), frame_shape=32, cache_frames=True, cache_bytes=2 * 7 * 32 * 32 * 3)
    for i in range(len(small)):
        assert torch.equal(small[i].source, plain[i].source)
    assert 0 < small._cache_used <= small.cache_bytes


def test_decode_failure_during_training_uses_another_video(tmp_path):
    root = tmp_path / "r"
    write_folder(root / "train" / "a", index_frames(3))
    write_folder(root / "train" / "b", index_frames(3, offset=20))
    ds = FramesDataset(str(root))
    for f in os.listdir(root / "train" / "a"):
        (root / "train" / "a" / f).write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="not a readable image.*using another video"):
        item = ds[0]
    assert item.name == "b" and float(item.source.mean()) * 255 >= 8 * 20 - 1


def test_dataloader_with_two_workers_matches_in_process(mixed_root):
    aug = AugmentConfig(jitter={"contrast": 0.2})
    ds = FramesDataset(str(mixed_root), frame_shape=32, augment=aug, num_repeats=4)

    def run(workers):
        loader = make_loader(ds, batch_size=4, num_workers=workers, seed=7)
        out = []
        for epoch in range(2):
            ds.set_epoch(epoch)
            out.append([(b.source.clone(), b.driving.clone(), list(b.name)) for b in loader])
        return out

    ref, par = run(0), run(2)
    assert len(ref[0]) == 5 and ref[0][0][0].shape == (4, 3, 32, 32)
    for e in range(2):
        for (s0, d0, n0), (s1, d1, n1) in zip(ref[e], par[e]):
            assert n0 == n1 and torch.equal(s0, s1) and torch.equal(d0, d1)
    assert not torch.equal(ref[0][0][0], ref[1][0][0])  # epochs differ


def test_epoch_sampler_order_depends_only_on_seed_and_epoch(mixed_root):
    ds = FramesDataset(str(mixed_root), frame_shape=32, num_repeats=4)
    sampler = data_module.EpochSampler(ds, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(20)) and first == list(data_module.EpochSampler(ds, seed=1))
    assert first != list(data_module.EpochSampler(ds, seed=2))
    ds.set_epoch(3)
    assert list(sampler) != first
    ds.set_epoch(0)
    assert list(sampler) == first
    assert list(data_module.EpochSampler(ds, shuffle=False)) == list(range(20))
    sub = torch.utils.data.Subset(ds, range(10))
    s2 = data_module.EpochSampler(sub, seed=1)
    e0 = list(s2)
    s2.set_epoch(1)
    assert sorted(list(s2)) == list(range(10)) and list(s2) != e0


def test_make_loader_refuses_empty_epochs(mixed_root):
    ds = FramesDataset(str(mixed_root), frame_shape=32)
    with pytest.raises(DataError, match="batch_size 8 is larger than the 5 samples"):
        make_loader(ds, batch_size=8, num_workers=0)
    with pytest.raises(DataError, match="num_workers"):
        make_loader(ds, batch_size=2, num_workers=-1)


def test_test_split_streams_whole_videos(mixed_root):
    ds = FramesDataset(str(mixed_root), is_train=False)
    assert len(ds) == 1 and isinstance(ds.videos()[0], VideoEntry)
    frames = list(ds.iter_frames(ds.videos()[0]))
    assert len(frames) == 5 and frames[0].shape == (3, 32, 32) and frames[0].dtype == torch.float32
    item = ds[0]
    assert isinstance(item, data_module.TestVideo) and item.video.shape == (5, 3, 32, 32) and item.name == "t.mp4"
    assert torch.equal(item.video[2], frames[2])
