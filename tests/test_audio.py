"""The driving clip's sound: read with PyAV (aligned to the first video frame), cut or padded to the rendered frames,
encoded next to them in sync; missing or damaged sound never stops a video from being written."""
from __future__ import annotations

import warnings

import av
import numpy as np
import pytest

from tpsmm.core.media.audio import AudioTrack, read_audio
from tpsmm.core.media.video import VideoReader, VideoWriter, probe_video

RATE, FPS = 16000, 10


def clip(path, n: int, sound: np.ndarray | None, *, audio_start: int = 0, corrupt: bool = False) -> str:
    """An mp4 of ``n`` grey frames at 10 fps with ``sound`` (mono float, 16 kHz; its stream starting ``audio_start``
    samples after the video); ``corrupt`` replaces every audio packet after the first two by garbage."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = c.add_stream("aac", rate=RATE, layout="mono") if sound is not None else None
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
        if a is not None:
            frame = av.AudioFrame.from_ndarray(sound[None].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = RATE, audio_start
            packets = a.encode(frame) + a.encode(None)
            for k, p in enumerate(packets):
                if corrupt and k > 2:
                    p.update(np.random.default_rng(k).integers(0, 256, p.size, dtype=np.uint8).tobytes())
                c.mux(p)
    return str(path)


def beep_at(seconds: float, total: float) -> np.ndarray:
    """Silence with a 1 kHz beep starting at ``seconds``."""
    t = np.arange(round(total * RATE)) / RATE
    return np.where(t >= seconds, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)


def decoded_sound(path) -> tuple[np.ndarray, int]:
    """The first audio stream decoded to mono (the channels' mean), sample 0 at time 0 of the file (start time applied)."""
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].sample_rate
        frames = list(c.decode(audio=0))
    assert all(f.format.is_planar for f in frames)
    start = round(float(frames[0].pts * frames[0].time_base) * rate)
    sound = np.concatenate([f.to_ndarray().mean(axis=0) for f in frames])
    return (np.pad(sound, (start, 0)) if start > 0 else sound[-start:]), rate


def onset(sound: np.ndarray, rate: int) -> float:
    return int(np.argmax(np.abs(sound) > 0.1)) / rate


def durations(path) -> tuple[float, float]:
    """Where the video and the audio stream of ``path`` end, in seconds (start time + duration)."""
    with av.open(str(path)) as c:
        return tuple(float((s.start_time + s.duration) * s.time_base) for s in (c.streams.video[0], c.streams.audio[0]))


def test_track_is_cut_or_padded_to_a_duration():
    track = AudioTrack(np.ones((2, 100), np.float32), 100)
    assert track.fitted(0.5).samples.shape == (2, 50) and track.fitted(0.5).samples.min() == 1
    longer = track.fitted(1.5).samples
    assert longer.shape == (2, 150) and longer[:, 100:].max() == 0 and track.seconds == 1.0
    with pytest.raises(ValueError, match="audio: expected samples"):
        AudioTrack(np.ones(5), 100)


def test_talking_clip_sound_stays_in_sync_over_the_clip(tmp_path, talking):
    """talking.mp4 (169 frames at 25 fps, AAC stereo 44.1 kHz, 20 ms shorter than its video): re-encoded next to its
    frames the sound starts with frame 0, lasts exactly as long as the video and lines up to a fraction of a frame."""
    track = read_audio(talking)
    assert (track.channels, track.sample_rate) == (2, 44100) and abs(track.seconds - 6.76) < 0.03
    frames = np.stack(list(VideoReader(talking)))
    with VideoWriter(tmp_path / "t.mp4", fps=25, audio=track) as w:
        w.write(frames)
    video_s, audio_s = durations(tmp_path / "t.mp4")
    assert video_s == pytest.approx(169 / 25) and abs(audio_s - video_s) < 0.5 / 25
    with av.open(str(tmp_path / "t.mp4")) as c:
        assert c.streams.audio[0].start_time == c.streams.video[0].start_time == 0
    ours, rate = decoded_sound(tmp_path / "t.mp4")
    theirs, _ = decoded_sound(talking)
    n = 5 * rate                                  # the mono mixes of the first 5 s, cross-correlated
    a, b = ours[:n], theirs[:n]
    lags = np.arange(-rate // 25, rate // 25 + 1, 8)
    best = lags[np.argmax([np.dot(a[2000 + k: n - 2000 + k], b[2000: n - 2000]) for k in lags])]
    assert abs(best) / rate < 1 / 25 / 4, best    # well within one frame


@pytest.mark.parametrize("audio_start", [0, 4000])  # sound starting with the video, or 0.25 s after it
def test_a_sound_onset_lands_on_its_frame(tmp_path, audio_start):
    src = clip(tmp_path / "beep.mp4", 20, beep_at(1.2 - audio_start / RATE, 1.6), audio_start=audio_start)
    track = read_audio(src)
    assert onset(track.samples[0], RATE) == pytest.approx(1.2, abs=0.01)
    with VideoWriter(tmp_path / "o.mp4", fps=FPS, audio=track) as w:
        w.write(np.zeros((20, 32, 32, 3), np.uint8))
    sound, rate = decoded_sound(tmp_path / "o.mp4")
    assert round(onset(sound, rate) * FPS) == 12            # the beep plays with frame 12, as in the source


def test_other_lengths_are_cut_or_padded_and_webm_gets_opus(tmp_path):
    src = clip(tmp_path / "short.mp4", 20, beep_at(0.0, 1.0))   # 1 s of sound under 2 s of video
    for name, n in (("pad.mp4", 20), ("cut.mp4", 5), ("pad.webm", 20)):
        with VideoWriter(tmp_path / name, fps=FPS, audio=read_audio(src)) as w:
            w.write(np.zeros((n, 32, 32, 3), np.uint8))
        sound, rate = decoded_sound(tmp_path / name)
        assert abs(len(sound) / rate - n / FPS) < 0.1, name
    with av.open(str(tmp_path / "pad.webm")) as c:
        assert c.streams.audio[0].codec_context.name == "opus"


def test_no_sound_and_damaged_sound(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_audio(clip(tmp_path / "silent.mp4", 5, None)) is None          # no sound: no warning
    bad = clip(tmp_path / "bad.mp4", 20, beep_at(0.0, 2.0), corrupt=True)
    with pytest.warns(RuntimeWarning, match=r"bad.mp4: its sound is damaged and stops after") as caught:
        track = read_audio(bad)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    with VideoWriter(tmp_path / "out.mp4", fps=FPS, audio=track) as w:
        w.write(np.zeros((20, 32, 32, 3), np.uint8))
    info = probe_video(tmp_path / "out.mp4")
    assert info.frame_count == 20 and info.has_audio == (track is not None)


@pytest.mark.parametrize("audio_start", [0, 4000])
def test_tpsmm_animate_keeps_the_sound_in_sync_and_cuts_it_with_the_frames(tmp_path, tiny_checkpoint, audio_start,
                                                                            talking):
    from tpsmm.__main__ import main
    from tpsmm.core.media.image_io import save_image

    save_image(str(tmp_path / "face.png"), np.full((32, 32, 3), 0.5, np.float32))
    beep = clip(tmp_path / "beep.mp4", 20, beep_at(1.2 - audio_start / RATE, 1.8), audio_start=audio_start)
    for driving, cap, fps in ((beep, 15, FPS), (str(talking), 25, 25)):
        out = tmp_path / f"out-{cap}.mp4"
        assert main(["animate", "--checkpoint", tiny_checkpoint, "--source", str(tmp_path / "face.png"), "--driving",
                     driving, "--out", str(out), "--max-frames", str(cap), "--quiet"]) == 0
        video_s, audio_s = durations(out)
        assert video_s == pytest.approx(cap / fps) and abs(audio_s - video_s) < 0.1, (driving, video_s, audio_s)
        with av.open(str(out)) as c, av.open(driving) as d:   # the sound starts where it starts in the driving clip
            assert [float(x.streams.audio[0].start_time * x.streams.audio[0].time_base) for x in (c, d)] == \
                pytest.approx([float(d.streams.audio[0].start_time * d.streams.audio[0].time_base)] * 2)
    sound, rate = decoded_sound(tmp_path / "out-15.mp4")
    assert round(onset(sound, rate) * FPS) == 12                 # the beep still plays with frame 12
