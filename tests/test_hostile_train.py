"""Hostile inputs for ``tpsmm train``: --overwrite never removes files a run did not write, --resume works for
every README configuration (LK background included) and falls back past a corrupt newest checkpoint, the CLI
refuses bad recipes with one line naming the key, and --amp bf16 falls back to float32 on CPUs without native bf16.
"""
from __future__ import annotations

import json
import os

import pytest
import torch

from conftest import tiny_model_config
from hostile_util import snapshot
from test_train import PairDataset, options, read_metrics, tiny_run_config
from tpsmm.core.model.config import Config, TrainConfig
from tpsmm.trainer.loop import Trainer
from tpsmm.trainer.run_dir import RunError

pytestmark = pytest.mark.usefixtures("one_thread")


def lk_config() -> Config:
    return Config(model=tiny_model_config(backbone="small", bg_motion="lk"),
                  train=TrainConfig(batch_size=2, num_epochs=100, bg_start=0, epoch_milestones=(2,)))


def test_resume_with_lk_background(tmp_path):
    run = tmp_path / "run"
    assert Trainer(lk_config(), PairDataset(4), options(run, max_steps=2)).run().step == 2
    result = Trainer(lk_config(), PairDataset(4), options(run, max_steps=3), resume=True).run()
    assert result.status == "finished" and result.step == 3
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3]


def test_resume_skips_a_corrupt_newest_checkpoint(tmp_path):
    run = tmp_path / "run"
    cfg = tiny_run_config(bg=False)
    Trainer(cfg, PairDataset(4), options(run, max_steps=2, checkpoint_every=1, keep_checkpoints=3)).run()
    newest = run / "checkpoints" / "00000002.state.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # a full disk cut it short
    with pytest.warns(RuntimeWarning, match=r"skipping checkpoint of step 2: .*00000002\.state\.safetensors"):
        trainer = Trainer(cfg, PairDataset(4), options(run, max_steps=3), resume=True)
    assert trainer.step == 1
    assert trainer.run().step == 3


def test_resume_errors_name_the_file(tmp_path):
    run = tmp_path / "run"
    cfg = tiny_run_config(bg=False)
    Trainer(cfg, PairDataset(4), options(run, max_steps=1)).run()
    (run / "checkpoints" / "00000001.safetensors").write_bytes(b"junk")
    with pytest.warns(RuntimeWarning), pytest.raises(RunError, match=r"no intact checkpoint .*00000001\.safetensors"):
        Trainer(cfg, PairDataset(4), options(run, max_steps=2), resume=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunError, match=r"--resume .*empty: no checkpoint to resume from"):
        Trainer(cfg, PairDataset(4), options(empty, max_steps=2), resume=True)


def test_overwrite_keeps_a_folder_that_is_not_a_run(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"my own model")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "keep.txt").write_text("precious")
    (folder / "notes.txt").write_text("notes")
    before = snapshot(folder)
    with pytest.raises(RunError, match=r"not a tpsmm run folder .*holds model\.safetensors, checkpoints; "
                                       r".*nothing was removed"):
        Trainer(tiny_run_config(bg=False), PairDataset(4), options(folder, max_steps=1), overwrite=True)
    assert snapshot(folder) == before


def test_overwrite_replaces_only_what_a_run_wrote(tmp_path):
    run = tmp_path / "run"
    cfg = tiny_run_config(bg=False)
    Trainer(cfg, PairDataset(4), options(run, max_steps=2)).run()
    (run / "notes.txt").write_text("mine")
    (run / "data").mkdir()
    (run / "data" / "a.png").write_bytes(b"png")
    kept = {k: v for k, v in snapshot(run).items() if k.startswith(("notes", "data"))}
    Trainer(cfg, PairDataset(4), options(run, max_steps=1), overwrite=True).run()
    after = snapshot(run)
    assert all(after[k] == v for k, v in kept.items())
    assert [r["step"] for r in read_metrics(run)] == [1]


def test_amp_bf16_falls_back_to_float32_without_native_bf16(tmp_path, monkeypatch):
    from tpsmm.core import device as placement

    monkeypatch.setattr(placement, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match=r"--amp bfloat16: .*no native bfloat16.*using float32"):
        trainer = Trainer(tiny_run_config(bg=False), PairDataset(4), options(tmp_path / "r", max_steps=1, amp="bf16"))
    assert trainer.amp_dtype is None
    monkeypatch.setattr(placement, "cpu_has_native_bf16", lambda: True)
    trainer = Trainer(tiny_run_config(bg=False), PairDataset(4), options(tmp_path / "s", max_steps=1, amp="bf16"))
    assert trainer.amp_dtype == torch.bfloat16


def test_resume_survives_a_garbled_latest_json(tmp_path):
    run = tmp_path / "run"
    cfg = tiny_run_config(bg=False)
    Trainer(cfg, PairDataset(4), options(run, max_steps=2, checkpoint_every=1)).run()
    (run / "latest.json").write_text('["not", "a", "mapping"')
    trainer = Trainer(cfg, PairDataset(4), options(run, max_steps=3), resume=True)
    assert trainer.step == 2


def test_make_dataset_refuses_a_symlinked_out(tmp_path, capsys):
    from tpsmm.__main__ import main

    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "dataset.json").write_text("{}")
    (target / "mine.txt").write_text("keep")
    link = tmp_path / "data"
    link.symlink_to(target)
    before = snapshot(tmp_path)
    code = main(["make-dataset", str(link), "--videos", "2", "--frames", "2", "--size", "32", "--overwrite"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "symbolic link" in err[0], err
    assert snapshot(tmp_path) == before


def test_train_cli_overwrite_on_a_foreign_folder_names_what_it_found(tmp_path, capsys):
    from test_train import _write_frames
    from tpsmm.__main__ import main

    data = _write_frames(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.jsonl").write_text("my own metrics\n")
    before = snapshot(out)
    code = main(["train", "--data", str(data), "--out", str(out), "--overwrite", "--image-size", "64",
                 "--batch-size", "2", "--num-repeats", "2", "--set", "model.num_tps=2", "--set",
                 "model.dm_num_blocks=3", "--model-size", "tiny", "--recon-loss", "l1-ssim", "--steps", "1",
                 "--no-progress", "--no-tensorboard"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "holds metrics.jsonl" in err[0], err
    assert snapshot(out) == before
