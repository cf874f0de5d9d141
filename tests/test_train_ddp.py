"""DDP: a 2-process torchrun (gloo, CPU) run makes the same updates as one process on the same global batch.

"Same global batch" for a model with BatchNorm means the same per-replica batches: one process with
``accumulate=2`` runs the two halves as two micro-batches (BatchNorm statistics per half, like two DDP
replicas) and averages their gradients, as DDP does. The run crosses ``bg_start``, where the trainer
rebuilds the DDP wrapper to include the background predictor.

This file is also the torchrun worker (``python -m torch.distributed.run ... test_train_ddp.py RUN_DIR``).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

STEPS = 2


pytestmark = pytest.mark.usefixtures("one_thread")


def _config():
    from test_train import tiny_run_config

    # 4 samples, global batch 4: one step per epoch, so step 2 is epoch 1 = bg_start
    return tiny_run_config(batch_size=4, bg_start=1)


def _options(out, **kw):
    from test_train import options

    return options(out, max_steps=STEPS, **kw)


def _worker(out: str) -> None:
    from test_train import PairDataset
    from tpsmm.trainer.loop import Trainer

    torch.set_num_threads(1)
    result = Trainer(_config(), PairDataset(4), _options(out)).run()
    assert result.step == STEPS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_single_process(tmp_path):
    from test_train import PairDataset
    from tpsmm.trainer.loop import Trainer

    ddp_run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), os.path.abspath(__file__), str(ddp_run)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = tmp_path / "single"
    Trainer(_config(), PairDataset(4), _options(single, accumulate=2)).run()
    whole = tmp_path / "whole"  # one micro-batch of 4: BatchNorm over all 4 samples, a different update
    Trainer(_config(), PairDataset(4), _options(whole)).run()

    a = load_file(str(ddp_run / "model.safetensors"))
    b = load_file(str(single / "model.safetensors"))
    init = _initial_weights()
    assert a.keys() == b.keys()
    params = [k for k in a if "running_" not in k and "num_batches" not in k and a[k].is_floating_point()]
    moved = max((a[k] - init[k]).abs().max().item() for k in params)
    assert moved > 1e-4  # the steps did something (lr 2e-4)
    worst = max((a[k] - b[k]).abs().max().item() for k in params)
    assert worst < 2e-6, worst
    c = load_file(str(whole / "model.safetensors"))
    assert max((a[k] - c[k]).abs().max().item() for k in params) > 50 * worst + 1e-5  # the check can fail
    bg = [k for k in params if k.startswith("bg_predictor.")]
    assert max((a[k] - init[k]).abs().max().item() for k in bg) > 1e-5  # bg trained after the DDP rebuild


def _initial_weights() -> dict[str, torch.Tensor]:
    from tpsmm.core import TPSMM

    torch.manual_seed(0)
    model = TPSMM(_config().model, with_avd=False)
    return {f"{n}.{k}": v for n in model.present_networks() for k, v in getattr(model, n).state_dict().items()}


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    _worker(sys.argv[1])


def test_step_sampler_splits_global_batches_by_position():
    from tpsmm.trainer.distributed import StepSampler

    def steps(sampler):
        per_step = sampler.micro * sampler.accumulate
        items = list(sampler)
        assert len(items) == len(sampler)
        return [items[i:i + per_step] for i in range(0, len(items), per_step)]

    single = steps(StepSampler(50, micro_batch=3, accumulate=4, seed=7, epoch=2))
    ranks = [steps(StepSampler(50, micro_batch=3, world_size=2, rank=r, accumulate=2, seed=7, epoch=2))
             for r in range(2)]
    assert len(single) == 4 == len(ranks[0])  # 50 // 12, tail dropped
    for s in range(4):
        chunks = [single[s][i:i + 3] for i in range(0, 12, 3)]  # micro-batch c of the global batch
        # rank r, accumulation m holds chunk m * world + r
        assert ranks[0][s] == chunks[0] + chunks[2] and ranks[1][s] == chunks[1] + chunks[3]
    assert sum(single, []) != sorted(sum(single, []))  # shuffled ...
    assert single == steps(StepSampler(50, micro_batch=3, accumulate=4, seed=7, epoch=2))  # ... reproducibly
    assert single != steps(StepSampler(50, micro_batch=3, accumulate=4, seed=7, epoch=3))
    assert steps(StepSampler(50, micro_batch=3, accumulate=4, seed=7, epoch=2, start_step=3)) == single[3:]
