"""Stage-1 training on CPU with a tiny model: the loss falls, Ctrl-C + resume repeats the uninterrupted run bit
for bit, a NaN loss stops and keeps the last good checkpoint, checkpoints are never half-written, mixed precision.
The tiny data sets and run options here are shared by the other training tests (test_train_cli.py ...)."""
from __future__ import annotations

import contextlib

import json
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.utils.data import Dataset

from conftest import bf16_fallback, tiny_model_config
from tpsmm.core import load_model
from tpsmm.core.model.config import Config, TrainConfig
from tpsmm.trainer.data import FramePair
from tpsmm.trainer.loop import Trainer, TrainingDiverged, TrainOptions
from tpsmm.trainer.run_dir import RunFiles
from tpsmm.trainer.train_state import load_state


class PairDataset(Dataset):
    """Pairs of crops of one smooth random image (the driving crop is shifted): learnable motion."""

    def __init__(self, n: int, size: int = 64) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> FramePair:
        g = torch.Generator().manual_seed(i)
        s = self.size
        base = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(s + 16, s + 16), mode="bicubic",
                             align_corners=False).clamp(0, 1)[0]
        dx, dy = torch.randint(0, 16, (2,), generator=g).tolist()
        return FramePair(base[:, 8:8 + s, 8:8 + s], base[:, dy:dy + s, dx:dx + s], f"v{i}")


class InterruptingDataset(PairDataset):
    """Sends SIGINT to this process when item number ``at`` (counting calls) is loaded."""

    def __init__(self, n: int, at: int) -> None:
        super().__init__(n)
        self.calls, self.at = 0, at

    def __getitem__(self, i: int) -> FramePair:
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return super().__getitem__(i)


class PoisonedDataset(PairDataset):
    """NaN frames from epoch ``bad_epoch`` on (the trainer calls ``set_epoch``)."""

    def __init__(self, n: int, bad_epoch: int) -> None:
        super().__init__(n)
        self.epoch, self.bad_epoch = 0, bad_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> FramePair:
        pair = super().__getitem__(i)
        if self.epoch >= self.bad_epoch:
            return FramePair(pair.source, torch.full_like(pair.driving, float("nan")), pair.name)
        return pair


def tiny_run_config(*, bg: bool = True, **train) -> Config:
    """Tiny 64x64 model; recipe with short epochs so dropout, bg_start and LR milestones all happen."""
    recipe = dict(batch_size=2, num_epochs=100, bg_start=1, epoch_milestones=(2,), dropout_epoch=3,
                  dropout_inc_epoch=1)
    recipe.update(train)
    return Config(model=tiny_model_config(bg=bg, backbone="small"), train=TrainConfig(**recipe))


def options(out, **kw) -> TrainOptions:
    base = dict(out_dir=str(out), recon_loss="l1-ssim", checkpoint_every=0, vis_every=0, progress=False,
                tensorboard=False)
    base.update(kw)
    return TrainOptions(**base)


pytestmark = pytest.mark.usefixtures("one_thread")


def read_metrics(run) -> list[dict]:
    with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_loss_falls(tmp_path):
    cfg = tiny_run_config(bg=False, batch_size=4)
    result = Trainer(cfg, PairDataset(8), options(tmp_path / "run", max_steps=40)).run()
    assert result.status == "finished" and result.step == 40
    losses = [r["loss"] for r in read_metrics(tmp_path / "run")]
    assert len(losses) == 40 and all(map(lambda v: v == v, losses))
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.8 * first, (first, last)
    model = load_model(str(tmp_path / "run" / "model.safetensors"))
    assert model.config == cfg.model.replace(bg=False)


def test_interrupt_and_resume_is_bitwise_exact(tmp_path):
    """5 steps straight vs Ctrl-C during step 3 + --resume: same weights, optimiser state, metrics.

    With 4 samples and batch 2 an epoch is 2 steps: the run crosses bg_start (epoch 1, the DDP-free bg switch),
    the LR milestone (epoch 2) and the end of TPS dropout (epoch 3); the interrupt lands mid-epoch 1.
    """
    cfg = tiny_run_config()
    straight = tmp_path / "straight"
    Trainer(cfg, PairDataset(4), options(straight, max_steps=5)).run()

    parted = tmp_path / "parted"
    first = Trainer(cfg, InterruptingDataset(4, at=5), options(parted, max_steps=5, checkpoint_every=2)).run()
    assert (first.status, first.step) == ("interrupted", 3)
    assert json.load(open(parted / "latest.json"))["step"] == 3
    assert not (parted / "model.safetensors").exists()
    second = Trainer(cfg, PairDataset(4), options(parted, max_steps=5), resume=True).run()
    assert (second.status, second.step, second.epoch) == ("finished", 5, 2)

    a, b = load_file(str(straight / "model.safetensors")), load_file(str(parted / "model.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("bg_predictor.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    sa = load_state(str(straight / "checkpoints" / "00000005.state.safetensors"))
    sb = load_state(str(parted / "checkpoints" / "00000005.state.safetensors"))
    for key in ("optimizer", "optimizer_bg"):
        for idx, st in sa[key]["state"].items():
            assert all(torch.equal(st[n], sb[key]["state"][idx][n]) for n in st)
    ma, mb = read_metrics(straight), read_metrics(parted)
    assert [r["step"] for r in mb] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in ma] == [r["loss"] for r in mb]
    assert [r["lr"] for r in mb][-1] == pytest.approx(2e-5)  # milestone at epoch 2
    assert "bg" not in mb[1]["losses"] and "bg" in mb[2]["losses"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny_run_config(bg=False), PoisonedDataset(4, bad_epoch=1),
                      options(run, max_steps=6, checkpoint_every=2))
    with pytest.raises(TrainingDiverged, match=r"step 3 .*00000002\.safetensors"):
        trainer.run()
    assert json.load(open(run / "latest.json"))["step"] == 2
    assert sorted(os.listdir(run / "checkpoints")) == ["00000002.safetensors", "00000002.state.safetensors"]
    assert not (run / "model.safetensors").exists()
    model = load_model(str(run / "checkpoints" / "00000002.safetensors"))
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()
               and t.numel() > 1 and t.dim() > 1)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    """A crash while writing the state file leaves the previous checkpoint pair as latest, and no temp files."""
    from tpsmm.trainer import train_state
    from tpsmm.core import TPSMM

    files = RunFiles(str(tmp_path))
    model = TPSMM(tiny_model_config(), with_avd=False)
    cfg = tiny_run_config()
    files.save(model, cfg, {"step": 1, "x": torch.ones(3)}, 1, 0, keep=3)

    def broken_save(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(train_state, "save_file", broken_save)
    with pytest.raises(KeyboardInterrupt):
        files.save(model, cfg, {"step": 2, "x": torch.ones(3)}, 2, 0, keep=3)
    assert json.load(open(tmp_path / "latest.json"))["step"] == 1
    leftovers = [n for n in os.listdir(tmp_path / "checkpoints") if n.startswith(".tmp")]
    assert leftovers == []
    assert load_state(str(tmp_path / "checkpoints" / "00000001.state.safetensors"))["step"] == 1
    monkeypatch.undo()
    files.save(model, cfg, {"step": 3}, 3, 1, keep=1)  # pruning also removes the stray model of step 2
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["00000003.safetensors", "00000003.state.safetensors"]


def _write_frames(root, n_videos: int = 3, frames: int = 3):
    from PIL import Image

    data = PairDataset(n_videos * frames)
    for split in ("train", "test"):
        for v in range(n_videos):
            folder = root / split / f"vid{v}.mp4"
            folder.mkdir(parents=True)
            for t in range(frames):
                img = (data[v * frames + t].source.permute(1, 2, 0).numpy() * 255).astype("uint8")
                Image.fromarray(img).save(folder / f"{t:05d}.png")
    return root


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps(tmp_path, amp):
    with bf16_fallback() if amp == "bf16" else contextlib.nullcontext():
        trainer = Trainer(tiny_run_config(bg_start=0), PairDataset(4), options(tmp_path / amp, max_steps=2, amp=amp))
    result = trainer.run()
    assert result.step == 2
    assert all(r["loss"] == r["loss"] and r["loss"] < 1e4 for r in read_metrics(tmp_path / amp))
    state = load_state(str(tmp_path / amp / "checkpoints" / "00000002.state.safetensors"))
    assert (state["scaler"] is not None) == (amp == "fp16")
