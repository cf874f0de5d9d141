"""TPSMM Animate's VIDEO output: frames rendered batch by batch while the video is saved (flat memory).
Its use inside ComfyUI (Save Video encoding it) is covered by the bundled workflow in test_render.py."""
from __future__ import annotations

import torch
from conftest import make_tiny_model
from video_double import FileVideo

from tpsmm.core.media.video import VideoReader, VideoWriter, probe_video
from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.tpsmm_nodes import NODE_CLASS_MAPPINGS as NODES
from tpsmm.tpsmm_nodes import steps as pipeline


def animate(**kwargs):
    cls = NODES["TPSMM_Animate"]
    return getattr(cls(), cls.FUNCTION)(**kwargs)


def test_streamed_video_matches_the_frames_and_renders_batch_by_batch(tmp_path, monkeypatch):
    save_checkpoint(make_tiny_model(), str(tmp_path / "tiny.safetensors"))
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(tmp_path))
    model = NODES["TPSMM_LoadCheckpoint"]().load("tiny.safetensors", device="cpu", dtype="fp32")[0]
    g = torch.Generator().manual_seed(0)
    with VideoWriter(str(tmp_path / "drive.mp4"), fps=10) as w:
        w.write(torch.rand(7, 48, 48, 3, generator=g))
    source = torch.rand(1, 48, 48, 3, generator=g)
    frames, video = animate(model=model, source=source, driving_video=FileVideo(path=str(tmp_path / "drive.mp4")),
                            batch_size=3)
    eager = frames
    assert frames.shape == (7, 64, 64, 3) and video.get_frame_count() == 7 and video.get_dimensions() == (64, 64)
    torch.testing.assert_close(video.get_components().images, frames)
    sizes = []
    real = pipeline.animate_batches
    monkeypatch.setattr(pipeline, "animate_batches",
                        lambda *a, **k: (sizes.append(b.shape[0]) or b for b in real(*a, **k)))
    video.save_to(str(tmp_path / "out.mp4"))
    assert sizes == [3, 3, 1]                                   # never more than one batch at a time
    info = probe_video(str(tmp_path / "out.mp4"))
    assert (info.frame_count, info.width, round(info.fps)) == (7, 64, 10)
    decoded = torch.from_numpy(__import__("numpy").stack(list(VideoReader(str(tmp_path / "out.mp4"))))).float() / 255
    assert (decoded - frames).abs().mean() < 0.05               # h264 of the same frames
    # only the VIDEO output linked (as in the bundled workflow): no frames held in memory
    prompt = {"5": {"class_type": "TPSMM_Animate", "inputs": {}}, "7": {"class_type": "SaveVideo",
                                                                        "inputs": {"video": ["5", 1]}}}
    frames, video = animate(model=model, source=source, driving_video=FileVideo(path=str(tmp_path / "drive.mp4")),
                            batch_size=3, prompt=prompt, unique_id="5")
    assert frames is None and video.get_frame_count() == 7
    torch.testing.assert_close(video.get_components().images, eager)
