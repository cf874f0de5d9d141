"""TPSMM Animate's VIDEO output: frames rendered batch by batch while the video is saved (flat memory), counted
without decoding, saved with Save Video's format, codec and metadata as ComfyUI's own videos are. Its use inside
ComfyUI (Save Video encoding it) is covered by the bundled workflows in test_render.py and test_browser.py."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from comfy_nodes import call
from conftest import make_tiny_model

from comfy_api.latest import InputImpl, Types
from tpsmm.core.media.images import InputError
from tpsmm.core.media.video import VideoReader, VideoWriter, probe_video
from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.tpsmm_nodes import steps

ONLY_VIDEO = {"5": {"class_type": "TPSMM_Animate", "inputs": {}},
              "7": {"class_type": "SaveVideo", "inputs": {"video": ["5", 1]}}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("streamed")
    save_checkpoint(make_tiny_model(), str(d / "tiny.safetensors"))
    g = torch.Generator().manual_seed(0)
    with VideoWriter(str(d / "drive.mp4"), fps=10) as w:
        w.write(torch.rand(7, 48, 48, 3, generator=g))
    return d, torch.rand(1, 48, 48, 3, generator=g)


@pytest.fixture
def model(setup, monkeypatch):
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(setup[0]))
    return call("TPSMM_LoadCheckpoint", ckpt_name="tiny.safetensors", device="cpu", dtype="fp32")[0]


def animate(model, setup, **kw):
    d, source = setup
    return call("TPSMM_Animate", model=model, source=source, batch_size=3,
                driving_video=InputImpl.VideoFromFile(str(d / "drive.mp4")), **kw)


def test_streamed_video_matches_the_frames_and_renders_batch_by_batch(model, setup, tmp_path, monkeypatch):
    frames, video, audio = animate(model, setup)
    assert frames.shape == (7, 64, 64, 3) and video.get_frame_count() == 7 and video.get_dimensions() == (64, 64)
    assert audio is None                                        # the driving clip has no sound
    torch.testing.assert_close(video.get_components().images, frames)
    sizes = []
    real = steps.animate_rendered
    monkeypatch.setattr(steps, "animate_rendered",
                        lambda *a, **k: (sizes.append(b.frames.shape[0]) or b for b in real(*a, **k)))
    video.save_to(str(tmp_path / "out.mp4"))
    assert sizes == [3, 3, 1]                                   # never more than one batch at a time
    info = probe_video(str(tmp_path / "out.mp4"))
    assert (info.frame_count, info.width, round(info.fps), info.has_audio) == (7, 64, 10, False)
    decoded = torch.from_numpy(np.stack(list(VideoReader(str(tmp_path / "out.mp4"))))).float() / 255
    assert (decoded - frames).abs().mean() < 0.05               # h264 of the same frames
    # only the VIDEO output linked (as in the bundled workflow): no frames held in memory
    lazy, video, _ = animate(model, setup, prompt=ONLY_VIDEO, unique_id="5")
    assert lazy is None
    torch.testing.assert_close(video.get_components().images, frames)


def test_frame_count_and_duration_never_decode_the_clip(model, setup, monkeypatch):
    _, video, _ = animate(model, setup, prompt=ONLY_VIDEO, unique_id="5", max_frames=5)

    def no_decoding(*a, **k):
        raise AssertionError("the clip was decoded")
    monkeypatch.setattr(steps, "_video_batches", no_decoding)
    monkeypatch.setattr(VideoReader, "__iter__", no_decoding)
    assert (video.get_frame_count(), video.get_duration(), video.get_frame_rate()) == (5, 0.5, 10)
    assert video.get_container_format() == "mp4"


def test_save_video_metadata_is_embedded_as_comfyui_embeds_it(model, setup, tmp_path):
    """Save Video passes {"prompt": ..., "workflow": ...}; the tags must equal those of ComfyUI's own VideoFromComponents."""
    metadata = {"workflow": {"nodes": [{"id": 5, "type": "TPSMM_Animate"}], "links": []}, "prompt": ONLY_VIDEO}
    frames, video, _ = animate(model, setup)
    video.save_to(str(tmp_path / "ours.mp4"), format=Types.VideoContainer.AUTO, codec=Types.VideoCodec.AUTO,
                  metadata=metadata)
    own = InputImpl.VideoFromComponents(Types.VideoComponents(images=frames, frame_rate=video.get_frame_rate()))
    own.save_to(str(tmp_path / "comfy.mp4"), format=Types.VideoContainer.MP4, codec=Types.VideoCodec.H264,
                metadata=metadata)
    tags = [av.open(str(tmp_path / name)).metadata for name in ("ours.mp4", "comfy.mp4")]
    assert tags[0]["workflow"] == tags[1]["workflow"] and tags[0]["prompt"] == tags[1]["prompt"]
    assert json.loads(tags[0]["workflow"]) == metadata["workflow"]
    # ComfyUI reads it back the way its own frontend/loader does
    assert json.loads(InputImpl.VideoFromFile(str(tmp_path / "ours.mp4")).get_components().metadata["prompt"]) \
        == ONLY_VIDEO
    video.save_to(str(tmp_path / "plain.mp4"), format="mp4", codec="h264")  # as strings, no metadata
    assert "prompt" not in av.open(str(tmp_path / "plain.mp4")).metadata


def test_other_formats_and_codecs_are_refused_in_one_line(model, setup, tmp_path):
    _, video, _ = animate(model, setup, prompt=ONLY_VIDEO, unique_id="5")
    for kw, what in (({"format": "webm"}, "written as mp4, not 'webm'"), ({"codec": "vp9"}, "h264, not 'vp9'")):
        with pytest.raises(InputError, match=what) as info:
            video.save_to(str(tmp_path / "x.mp4"), **kw)
        assert str(info.value).startswith("TPSMM Animate: ") and "\n" not in str(info.value)
    assert not (tmp_path / "x.mp4").exists()


def test_saving_into_a_file_object(model, setup, tmp_path):
    import io

    _, video, _ = animate(model, setup, prompt=ONLY_VIDEO, unique_id="5")
    buffer = io.BytesIO()
    video.save_to(buffer, metadata={"prompt": {"1": {}}})
    (tmp_path / "b.mp4").write_bytes(buffer.getvalue())
    assert probe_video(str(tmp_path / "b.mp4")).frame_count == 7
    assert av.open(str(tmp_path / "b.mp4")).metadata["prompt"] == '{"1": {}}'
