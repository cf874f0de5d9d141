"""End-to-end tests of ``tpsmm animate`` with a tiny random-weight checkpoint (64x64 model)."""
from __future__ import annotations

import contextlib
import os

import av
import numpy as np
import pytest
import torch

from clips import make_clip
from conftest import make_tiny_model
from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.core import load_model
from tpsmm.core.media.image_io import load_image, save_image
from tpsmm.core import TPSMM
from tpsmm.core.media.video import VideoReader, probe_video

N = 8  # driving frames


def frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """uint8 ``[n,h,w,3]``: a textured pattern sliding a little every frame."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([(x + 2 * i) % 32 * 8, (y + i) % 24 * 10, (x + y + 3 * i) % 255], -1)
                     for i in range(n)]).astype(np.uint8)


def write_clip(path, data: np.ndarray, *, fps: int = 10, audio: bool = False) -> str:
    """An H.264 clip of ``data`` (written by tests/clips.py), optionally with a 1 s tone; returns its path."""
    return str(make_clip(path, data, fps=fps, audio=audio))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("animate")
    ckpt = str(d / "tiny.safetensors")
    save_checkpoint(make_tiny_model(), ckpt)
    no_avd = str(d / "no_avd.safetensors")
    torch.manual_seed(0)
    save_checkpoint(TPSMM(make_tiny_model().config, with_avd=False).eval(), no_avd)
    src = str(d / "photo.png")
    save_image(src, frames(1, 80, 100)[0].astype(np.float32) / 255)
    return dict(dir=d, ckpt=ckpt, no_avd=no_avd, src=src, drv=write_clip(d / "drv.mp4", frames(N)))


@pytest.fixture
def cli(monkeypatch, capsys, media):
    import tpsmm.__main__ as entry

    monkeypatch.setattr(entry, "COMMAND_MODULES", ("tpsmm.core.cli",))  # only this package's commands

    def run(out, *extra, driving=None, ckpt=None, source=None, batch=5):
        argv = ["animate", "--checkpoint", ckpt or media["ckpt"], "--source", source or media["src"],
                "--driving", driving or media["drv"], "--out", str(out), *map(str, extra)]
        argv += ["--batch-size", str(batch)] if batch else []
        rc = entry.main(argv)
        cap = capsys.readouterr()
        return rc, cap.out, cap.err
    return run


def read(path) -> np.ndarray:
    return np.stack(list(VideoReader(path)))


def api_animation(media, **kw) -> np.ndarray:
    model = load_model(media["ckpt"])
    driving = torch.from_numpy(read(media["drv"])).float() / 255
    out = model.animate(torch.from_numpy(load_image(media["src"])), driving, batch_size=5, **kw)
    return np.round(out.numpy() * 255)


@pytest.mark.parametrize("reference", ["0", "best"])   # one pass; keypoint pass + render pass
def test_png_output_equals_python_api(cli, media, tmp_path, reference):
    rc, out, err = cli(tmp_path / "frames", "--reference-frame", reference, "--quiet")
    assert rc == 0, err
    assert "wrote" in out and f"{N} frames, 64x64" in out
    got = read(tmp_path / "frames").astype(np.float64)
    ref = int(reference) if reference != "best" else "best"
    expected = api_animation(media, reference_frame=ref)
    assert got.shape == (N, 64, 64, 3) and np.abs(got - expected).max() <= 1  # channels_last rounding only


def test_mp4_gif_progress_and_sound_kept_by_default(cli, media, tmp_path):
    drv = write_clip(tmp_path / "talk.mp4", frames(N), audio=True)
    rc, out, err = cli(tmp_path / "a.mp4", driving=drv, batch=None)   # default batch (2 on the CPU), sound kept
    assert rc == 0, err
    assert "frame/s" in err and "100%" in err and "warning" not in err  # tqdm progress bar with rate
    info = probe_video(tmp_path / "a.mp4")
    assert (info.width, info.height, info.fps, info.frame_count, info.has_audio) == (64, 64, 10, N, True)
    rc, _, err = cli(tmp_path / "b.mp4", "--no-audio", "--quiet", driving=drv)
    assert rc == 0 and not probe_video(tmp_path / "b.mp4").has_audio
    rc, _, err = cli(tmp_path / "c.mp4", "--audio", "--quiet", driving=drv)          # the old flag still works
    assert rc == 0 and probe_video(tmp_path / "c.mp4").has_audio and err == ""
    rc, _, err = cli(tmp_path / "a.gif", "--mode", "standard", "--quiet", driving=drv)  # gif: no sound, no warning
    assert rc == 0 and err == "" and read(tmp_path / "a.gif").shape == (N, 64, 64, 3)


def test_asking_for_sound_that_cannot_be_kept_warns_in_plain_words(cli, media, tmp_path):
    rc, _, err = cli(tmp_path / "silent.mp4", "--quiet")                         # silent driving clip: no warning
    assert rc == 0 and err == "" and not probe_video(tmp_path / "silent.mp4").has_audio
    for out, reason in (("a.mp4", "drv.mp4: has no sound; the video is written without sound"),
                        ("a.gif", "a.gif: gif output cannot hold sound; the sound is left out")):
        rc, _, err = cli(tmp_path / out, "--audio", "--quiet")
        assert rc == 0 and err.strip().endswith(reason) and err.count("\n") == 1, err
        assert "audio_from" not in err and err.startswith("tpsmm animate: warning: ")


def test_existing_output_and_inputs_are_protected(cli, media, tmp_path):
    target = tmp_path / "b.mp4"
    target.write_bytes(b"keep me")
    rc, _, err = cli(target, "--quiet")
    assert rc == 1 and "already exists (pass --overwrite" in err and target.read_bytes() == b"keep me"
    rc, _, err = cli(target, "--quiet", "--overwrite")
    assert rc == 0 and probe_video(target).frame_count == N
    rc, _, err = cli(media["drv"], "--quiet", "--overwrite")
    assert rc == 1 and "refusing to overwrite an input" in err
    rc, _, err = cli(tmp_path / "c.mp4", "--save-flow", tmp_path / "c.mp4", "--quiet")
    assert rc == 1 and "same path" in err


def test_interrupt_leaves_no_output(cli, tmp_path, monkeypatch):
    from tpsmm.core.animation.engine import AnimationEngine

    calls = []
    real = AnimationEngine.render_batch

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)
    monkeypatch.setattr(AnimationEngine, "render_batch", flaky)
    (tmp_path / "o").mkdir()
    rc, _, err = cli(tmp_path / "o" / "x.mp4", "--save-occlusion", tmp_path / "o" / "occ.mp4", "--quiet")
    assert rc == 130 and "interrupted" in err
    assert os.listdir(tmp_path / "o") == []                        # no OUT, no temporary left behind


def test_crop_pastes_back_into_the_full_photo(cli, media, tmp_path):
    rc, out, err = cli(tmp_path / "crop", "--crop", "10,8,60,50", "--feather", "6", "--quiet")
    assert rc == 0, err
    got = read(tmp_path / "crop")
    photo = np.round(load_image(media["src"]) * 255)
    assert got.shape == (N, 80, 100, 3)
    outside = np.ones((80, 100), bool)
    outside[8:58, 10:70] = False
    assert np.array_equal(got[:, outside], np.broadcast_to(photo[outside], got[:, outside].shape))
    assert np.abs(got[:, 20:45, 25:55] - photo[20:45, 25:55]).mean() > 1   # the inside is animated


def test_high_resolution_and_extras(cli, media, tmp_path):
    rc, out, err = cli(tmp_path / "big.mp4", "--output-size", "160x96", "--side-by-side", "--draw-kp",
                       "--save-flow", tmp_path / "flow.mp4", "--save-occlusion", tmp_path / "occ", "--quiet",
                       "--smooth", "one-euro", "--dtype", "bfloat16", "--reference-frame", "-2")
    assert rc == 0, err
    big = probe_video(tmp_path / "big.mp4")
    assert (big.width, big.height, big.frame_count) == (160 + 128 + 160, 96, N)  # source | driving (4:3) | result
    assert probe_video(tmp_path / "flow.mp4").width == 64 and len(os.listdir(tmp_path / "occ")) == N
    occ = read(tmp_path / "occ")
    assert np.array_equal(occ[..., 0], occ[..., 2])                 # grey
    rc, _, err = cli(tmp_path / "bic.mp4", "--output-size", "128", "--upscale", "bicubic", "--quiet",
                     "--smooth", "ema", "--smooth-strength", "0.3", "--max-frames", "4")
    assert rc == 0 and probe_video(tmp_path / "bic.mp4").frame_count == 4


def test_half_precision_on_cpu_falls_back(cli, tmp_path):
    """float16 on the CPU: bfloat16 where that is native, else float32; bfloat16 without native support: float32."""
    from tpsmm.core.device import cpu_has_native_bf16

    rc, _, err = cli(tmp_path / "h.mp4", "--dtype", "float16", "--device", "cpu", "--quiet", "--max-frames", "3")
    expected = "using bfloat16" if cpu_has_native_bf16() else "using float32"
    assert rc == 0 and "warning: --dtype float16:" in err and expected in err, err
    rc, _, err = cli(tmp_path / "b.mp4", "--dtype", "bfloat16", "--device", "cpu", "--quiet", "--max-frames", "3")
    assert rc == 0
    assert ("--dtype bfloat16: this CPU has no native bfloat16" in err) == (not cpu_has_native_bf16()), err


def corrupt_copy(path, out) -> str:
    data = bytearray(open(path, "rb").read())
    start = data.find(b"mdat") + 4
    size = int.from_bytes(data[start - 8: start - 4], "big") - 8
    mid = start + size // 2
    data[mid: mid + 300] = np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
    open(out, "wb").write(bytes(data))
    return str(out)


def test_corrupt_frames_are_skipped_and_counted(cli, tmp_path):
    bad = corrupt_copy(write_clip(tmp_path / "long.mp4", frames(24)), tmp_path / "bad.mp4")
    rc, out, err = cli(tmp_path / "r.mp4", "--quiet", driving=bad)
    assert rc == 0, err
    lines = [l for l in err.splitlines() if "skipped" in l]
    assert lines[-1].startswith("tpsmm animate: warning: skipped") and "driving frame(s)" in lines[-1]
    skipped = int(lines[-1].split("skipped ")[1].split()[0])
    assert skipped > 0 and probe_video(tmp_path / "r.mp4").frame_count == 24 - skipped


def zero_frame_avi(path) -> str:
    c = av.open(str(path), "w")
    s = c.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    c.start_encoding()
    c.close()
    return str(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable(cli, tmp_path):
    rc, _, err = cli(tmp_path / "x.mp4", "--device", "cuda", "--quiet")
    assert rc == 1 and "--device cuda: no CUDA device is available" in err
    mps = getattr(torch.backends, "mps", None)
    if not (mps and mps.is_available()):
        rc, _, err = cli(tmp_path / "x.mp4", "--device", "mps", "--quiet")
        assert rc == 1 and "--device mps: Apple MPS is not available" in err
    assert not (tmp_path / "x.mp4").exists()


def test_bad_inputs_give_one_line_errors(cli, media, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    cases = [
        (dict(driving=str(text)), [], "notes.mp4: not a video file"),
        (dict(driving=zero_frame_avi(tmp_path / "zero.avi")), [], "zero.avi: video has no frames"),
        (dict(driving=str(tmp_path / "missing.mp4")), [], "--driving"),
        (dict(out=tmp_path / "x.avi"), [], "unsupported output extension '.avi'"),
        (dict(), ["--crop", "50,40,60,50"], "crop box 50,40,60,50 lies outside the 100x80 image"),
        (dict(ckpt=media["no_avd"]), ["--mode", "avd"], "has no AVD network"),
        (dict(), ["--reference-frame", "40"], "--reference-frame: 40 is outside the 8 driving frames"),
        (dict(), ["--mode", "standard", "--strength", "2"], "--strength: applies to mode 'relative' only"),
        (dict(), ["--crop", "1,2,3"], "expected four integers"),
    ]
    for kw, extra, message in cases:
        out = kw.pop("out", tmp_path / "y.mp4")
        argparse_error = extra[:1] == ["--crop"] and message.startswith("expected")
        with pytest.raises(SystemExit) if argparse_error else contextlib.nullcontext():
            rc, _, err = cli(out, "--quiet", *extra, **kw)
            assert rc == 1 and message in err, (message, err)
            assert len(err.strip().splitlines()) == 1 and err.startswith("tpsmm animate: error: ")
        assert not os.path.exists(out)
    assert sorted(os.listdir(tmp_path)) == ["notes.mp4", "zero.avi"]     # no stray temporaries


def test_node_and_cli_give_the_same_frames(cli, media, tmp_path, monkeypatch):
    """TPSMM Animate (node) and `tpsmm animate` (written as lossless PNGs) agree to 1/255 for the same inputs and
    options: both render through the one pipeline."""
    from tpsmm.core.media.video import VideoReader
    call = pytest.importorskip("comfy_nodes", reason="no ComfyUI to import the nodes from").call

    rc, _, err = cli(tmp_path / "pngs", "--output-size", "96", "--reference-frame", "best", "--smooth", "ema",
                     "--quiet", batch=3)
    assert rc == 0, err
    cli_frames = torch.from_numpy(np.stack(list(VideoReader(tmp_path / "pngs")))).float() / 255
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(media["dir"]))
    model = call("TPSMM_LoadCheckpoint", ckpt_name="tiny.safetensors", device="cpu", dtype="fp32")[0]
    source = torch.from_numpy(load_image(media["src"]))[None]
    driving = torch.from_numpy(np.stack(list(VideoReader(media["drv"])))).float() / 255
    node_frames = call("TPSMM_Animate", model=model, source=source, driving=driving, mode="relative", best_frame=True,
                                  smoothing="ema", smoothing_strength=0.5, fps=10.0, batch_size=3,
                                  allow_stretch=True, output_size=96, upscale="flow")[0]
    assert node_frames.shape == cli_frames.shape == (N, 96, 96, 3)
    assert (node_frames - cli_frames).abs().max() <= 1 / 255


def test_batch_with_a_number_keeps_its_old_meaning(cli, tmp_path, monkeypatch):
    """`--batch N` (frames per pass before batch files existed) still works as `--batch-size N`."""
    from tpsmm.core.animation.pipeline import AnimationPipeline

    seen = []
    real = AnimationPipeline.__init__

    def spy(self, model, options=None, **kw):
        seen.append(options.batch_size)
        real(self, model, options, **kw)
    monkeypatch.setattr(AnimationPipeline, "__init__", spy)
    rc, _, err = cli(tmp_path / "old.mp4", "--batch", "3", "--quiet", batch=None)
    assert rc == 0, err
    assert seen == [3] and probe_video(tmp_path / "old.mp4").frame_count == N
