"""TPSMM Load Checkpoint: a file from ``models/tpsmm`` -> ``TPSMM_MODEL``."""
from __future__ import annotations

import logging
import warnings

import torch
from comfy_api.latest import io

from ..core.model.checkpoint import CheckpointError
from ..core import BACKENDS, load_model
from ..core.device import resolve_dtype
from . import comfy_compat as cc
from .runtime import PlacedModel
from .sockets import Model

log = logging.getLogger("tpsmm")


def comfy_devices(choice: str) -> tuple[torch.device, torch.device]:
    """The node's ``device`` choice ``auto | cpu | gpu`` -> ComfyUI's ``(run device, offload device)``.

    Device names themselves are the core's (:func:`tpsmm.core.device.resolve_device`); this only asks ComfyUI
    which of its devices the choice means."""
    if choice == "cpu":
        return torch.device("cpu"), torch.device("cpu")
    run = cc.torch_device()
    if choice == "gpu" and run.type == "cpu":
        raise RuntimeError("device 'gpu': no GPU is available here (ComfyUI runs with --cpu, or CUDA is missing); "
                           "choose 'auto' or 'cpu'")
    return run, cc.offload_device()


def node_dtype(choice: str, device: torch.device) -> torch.dtype:
    """``auto`` -> ComfyUI's choice for ``device``; a name -> the core's one rule
    (:func:`tpsmm.core.device.resolve_dtype`: e.g. fp16 on a CPU becomes bf16 where that is native, else fp32)."""
    return cc.auto_dtype(device) if choice == "auto" else resolve_dtype(choice, device, what="dtype")


class LoadCheckpoint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_LoadCheckpoint", display_name="TPSMM Load Checkpoint", category="TPSMM/loaders",
            description="Loads a TPSMM checkpoint from models/tpsmm. Official .pth.tar files load safely "
                        "(weights only) but slower; convert them once with `tpsmm convert`.",
            inputs=[
                io.Combo.Input("ckpt_name", options=cc.list_checkpoints(), tooltip="Checkpoint file in models/tpsmm "
                               "(.safetensors; official .pth.tar files also load, with a warning)."),
                io.Combo.Input("device", options=["auto", "cpu", "gpu"], default="auto", tooltip="Where the model "
                               "runs: auto = ComfyUI's device, gpu = refuse to fall back to the CPU."),
                io.Combo.Input("dtype", options=["auto", "fp32", "fp16", "bf16"], default="auto", tooltip="Compute "
                               "precision (the sensitive steps always run in fp32): auto = fp32 on the CPU, "
                               "bf16/fp16 on capable GPUs."),
                io.Combo.Input("backend", options=list(BACKENDS), default="auto", optional=True,
                               tooltip="What runs the networks: auto = the fastest installed for the device and "
                                       "dtype (OpenVINO, else ONNX Runtime, for fp32 on a CPU; torch on a GPU and "
                                       "for bf16), or one by name. Graph backends export the model on first use and "
                                       "cache it (a few seconds later on)."),
            ],
            outputs=[Model.Output("model", tooltip="The loaded model: keypoint detector, dense motion, inpainting "
                                                   "(and AVD if present).")],
        )

    @classmethod
    def validate_inputs(cls, ckpt_name) -> bool | str:
        """Checked when the prompt is queued: a clear message instead of "value not in list"."""
        try:
            return ckpt_name is None or bool(cc.checkpoint_path(ckpt_name))
        except FileNotFoundError as exc:
            return str(exc)

    @classmethod
    def execute(cls, ckpt_name, device="auto", dtype="auto", backend="auto") -> io.NodeOutput:
        try:
            path = cc.checkpoint_path(ckpt_name)
        except FileNotFoundError as exc:
            raise CheckpointError(str(exc)) from None
        run, offload = comfy_devices(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_model(path, device=offload, dtype=torch.float32, backend=backend)
        for w in caught:
            log.warning("TPSMM: %s", w.message)
        placed = PlacedModel(tpsmm=model, name=ckpt_name, device=run, offload=offload, dtype=node_dtype(dtype, run))
        return io.NodeOutput(placed)
