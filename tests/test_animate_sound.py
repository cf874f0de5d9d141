"""TPSMM Animate carries the driving VIDEO's sound: into its VIDEO output (Save Video writes it) and out of its AUDIO
output (for Create Video), cut or padded to the animated frames, a frame cap included. Silent, other-length and
damaged sound never stop the animation."""
from __future__ import annotations

import warnings
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from comfy_nodes import call
from conftest import make_tiny_model
from test_audio import beep_at, clip, decoded_sound, durations

from comfy_api.latest import InputImpl, Types
from tpsmm.core.media.audio import read_audio
from tpsmm.core.media.video import probe_video
from tpsmm.core.model.checkpoint import save_checkpoint

LINKED = {"5": {"class_type": "TPSMM_Animate", "inputs": {}},          # VIDEO and AUDIO linked, frames not
          "7": {"class_type": "SaveVideo", "inputs": {"video": ["5", 1]}},
          "8": {"class_type": "CreateVideo", "inputs": {"audio": ["5", 2]}}}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("sound")
    save_checkpoint(make_tiny_model(), str(d / "tiny.safetensors"))
    mp = pytest.MonkeyPatch()
    mp.setenv("TPSMM_MODELS_DIR", str(d))
    yield call("TPSMM_LoadCheckpoint", ckpt_name="tiny.safetensors", device="cpu", dtype="fp32")[0]
    mp.undo()


def animate(model, video, **kw):
    return call("TPSMM_Animate", model=model, source=torch.rand(1, 64, 64, 3), driving_video=video, batch_size=8,
                prompt=LINKED, unique_id="5", **kw)


def test_talking_clip_sound_goes_into_video_and_audio_outputs_with_a_frame_cap(model, tmp_path, talking):
    frames, video, audio = animate(model, InputImpl.VideoFromFile(str(talking)), max_frames=30)
    assert frames is None and video.get_frame_count() == 30
    n = round(30 / 25 * 44100)
    assert audio["sample_rate"] == 44100 and audio["waveform"].shape == (1, 2, n)
    assert audio["waveform"].dtype == torch.float32
    np.testing.assert_array_equal(audio["waveform"][0].numpy(), read_audio(talking).samples[:, :n])
    video.save_to(str(tmp_path / "out.mp4"))
    video_s, audio_s = durations(tmp_path / "out.mp4")
    assert video_s == pytest.approx(1.2) and abs(audio_s - video_s) < 0.1
    assert probe_video(str(tmp_path / "out.mp4")).frame_count == 30


def test_in_memory_video_sound_of_another_length_is_padded(model, tmp_path):
    """A VIDEO from Create Video (frames + AUDIO in memory) whose sound is shorter than its 20 frames."""
    waveform = torch.from_numpy(beep_at(0.0, 1.0))[None, None]                  # 1 s under 2 s of frames
    components = Types.VideoComponents(images=torch.rand(20, 64, 64, 3), frame_rate=Fraction(10),
                                       audio={"waveform": waveform, "sample_rate": 16000})
    _, video, audio = animate(model, InputImpl.VideoFromComponents(components))
    assert audio["waveform"].shape == (1, 1, 32000) and audio["waveform"][0, 0, 16000:].abs().max() == 0
    video.save_to(str(tmp_path / "pad.mp4"))
    sound, rate = decoded_sound(tmp_path / "pad.mp4")
    assert abs(len(sound) / rate - 2.0) < 0.1
    images = video.get_components()
    assert images.audio["waveform"].shape == (1, 1, 32000) and images.images.shape[0] == 20


def test_silent_and_image_driving_give_no_sound_and_no_warning(model, tmp_path):
    silent = clip(tmp_path / "silent.mp4", 6, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, video, audio = animate(model, InputImpl.VideoFromFile(silent))
        assert audio is None and video.audio is None
        frames, _, audio = call("TPSMM_Animate", model=model, source=torch.rand(1, 64, 64, 3),
                                driving=torch.rand(3, 64, 64, 3))
    assert audio is None and frames.shape[0] == 3


def test_damaged_sound_warns_and_the_video_is_still_written(model, tmp_path):
    bad = clip(tmp_path / "bad.mp4", 20, beep_at(0.0, 2.0), corrupt=True)
    with pytest.warns(RuntimeWarning, match="bad.mp4: its sound is damaged"):
        _, video, audio = animate(model, InputImpl.VideoFromFile(bad))
    video.save_to(str(tmp_path / "out.mp4"))
    assert probe_video(str(tmp_path / "out.mp4")).frame_count == 20
    if audio is not None:                            # what decoded before the damage, padded to the frames
        assert audio["waveform"].shape[-1] == 32000
        with av.open(str(tmp_path / "out.mp4")) as c:
            assert c.streams.audio


def test_audio_input_for_driving_frames_comes_out_fitted_and_bad_audio_is_refused(model):
    waveform = torch.from_numpy(beep_at(0.0, 3.0))[None, None]                  # 3 s of sound for 1 s of frames
    frames, _, audio = call("TPSMM_Animate", model=model, source=torch.rand(1, 64, 64, 3), fps=10.0,
                            driving=torch.rand(10, 64, 64, 3), audio={"waveform": waveform, "sample_rate": 16000})
    assert frames.shape[0] == 10 and audio["waveform"].shape == (1, 1, 16000)
    torch.testing.assert_close(audio["waveform"], waveform[..., :16000])
    for bad in ({"waveform": torch.zeros(2, 3)}, "sound.wav", {"waveform": torch.zeros(1, 1, 5), "sample_rate": 0}):
        with pytest.raises(ValueError, match="audio: ") as info:
            call("TPSMM_Animate", model=model, source=torch.rand(1, 64, 64, 3), driving=torch.rand(2, 64, 64, 3),
                 audio=bad)
        assert "\n" not in str(info.value)
