"""Checkpoints: tpsmm ``.safetensors`` files and the release's ``.pth.tar`` files.

A tpsmm checkpoint is one safetensors file holding every network's tensors under its prefix
(``kp_detector.``, ``dense_motion_network.``, ``inpainting_network.``, ``bg_predictor.``,
``avd_network.``) and metadata: ``format = "tpsmm"``, ``format_version``, ``config`` (the full
:class:`~tpsmm.core.model.config.Config` as JSON) and ``networks`` (comma-separated list of those present).

Official files are read with ``torch.load(weights_only=True)`` only: no arbitrary code is unpickled.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..media.atomic import atomic_write
from ..media.torch_archive import ArchiveError, load_tensors
from .config import Config, ConfigError, ModelConfig, load_config
from .container import NETWORKS, TPSMMNetworks
from .header import check_header_shapes, read_header_shapes, split_key

__all__ = ["CheckpointError", "FORMAT_VERSION", "save_checkpoint", "read_checkpoint", "read_official",
           "infer_model_config", "build_model", "load_network", "convert_official", "load_networks", "is_official_path",
           "checkpoint_config"]

FORMAT_VERSION = "1"
REQUIRED = ("kp_detector", "dense_motion_network", "inpainting_network")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe or does not match the architecture."""


def save_checkpoint(model: TPSMMNetworks, path: str, *, config: Config | None = None,
                    metadata: dict[str, str] | None = None) -> None:
    """Write ``model`` (all present networks) to ``path`` as safetensors, atomically.

    Args:
        config: the full run config to store (default: a :class:`Config` around ``model.config``).
        metadata: extra string entries (e.g. training step).
    """
    cfg = config or Config(model=model.config)
    tensors = {}
    for name in model.present_networks():
        for key, value in getattr(model, name).state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous()
    meta = {"format": "tpsmm", "format_version": FORMAT_VERSION, "config": cfg.to_json(),
            "networks": ",".join(model.present_networks())}
    meta.update(metadata or {})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: not a file")


def _read_header(path: str) -> tuple[Config, dict[str, str]]:
    """The config and metadata of a tpsmm safetensors checkpoint, without reading its tensors."""
    _check_file(path)
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != "tpsmm" or "config" not in meta:
        raise CheckpointError(f"{path}: safetensors file without tpsmm metadata (is it a TPSMM checkpoint? "
                              "official .pth.tar files convert with `tpsmm convert`)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta.get('format_version')!r} is not "
                              f"supported (this tpsmm reads version {FORMAT_VERSION})")
    try:
        config = Config.from_json(meta["config"])
    except (ConfigError, json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid config in metadata ({exc})") from None
    return config, meta


def read_checkpoint(path: str) -> tuple[Config, dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """Read a tpsmm safetensors checkpoint -> ``(config, {network: state_dict}, metadata)``."""
    config, meta = _read_header(path)
    try:  # the tensors must be what the config builds: checked from the header, before any allocation
        check_header_shapes(config.model, read_header_shapes(path), source=path)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        try:
            net, rest = split_key(key, source=path)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
        groups.setdefault(net, {})[rest] = value
    return config, groups, meta


def is_official_path(path: str) -> bool:
    return path.endswith((".pth.tar", ".pth", ".pt", ".tar", ".ckpt"))


def read_official(path: str) -> dict[str, dict[str, torch.Tensor]]:
    """Read a release-layout ``.pth.tar`` safely -> ``{network: state_dict}``.

    Uses :func:`~tpsmm.core.media.torch_archive.load_tensors` (``weights_only=True``, record sizes checked
    before anything is inflated); ``optimizer*`` and ``epoch`` entries are
    ignored; a ``module.`` prefix (DataParallel) is stripped.
    """
    _check_file(path)
    try:
        raw = load_tensors(path)      # no code, no zip bombs (:mod:`~tpsmm.core.media.torch_archive`)
    except ArchiveError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a dict of state_dicts, got {type(raw).__name__}")
    out = {}
    for net in NETWORKS:
        if net in raw:
            sd = raw[net]
            if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
                raise CheckpointError(f"{path}: entry {net!r} is not a state_dict of tensors")
            out[net] = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
    missing = [n for n in REQUIRED if n not in out]
    if missing:
        raise CheckpointError(f"{path}: missing network(s) {', '.join(missing)} "
                              f"(found entries: {', '.join(sorted(map(str, raw))) or 'none'})")
    return out


def infer_model_config(groups: dict[str, dict[str, torch.Tensor]], *, image_size: int = 256) -> ModelConfig:
    """Infer the architecture from tensor shapes (the image size cannot be seen in weights)."""
    try:
        kp = groups["kp_detector"]
        num_tps = kp["fg_encoder.fc.weight"].shape[0] // 10
        inp = groups["inpainting_network"]
        dm = groups["dense_motion_network"]
        n_down = len({k.split(".")[1] for k in inp if k.startswith("down_blocks.")})
        gen_be = inp["first.conv.weight"].shape[0]
        gen_max = max(inp[f"down_blocks.{i}.conv.weight"].shape[0] for i in range(n_down))
        n_blocks = len({k.split(".")[3] for k in dm if k.startswith("hourglass.encoder.down_blocks.")})
        dm_be = dm["hourglass.encoder.down_blocks.0.conv.weight"].shape[0] // 2
        dm_max = max(dm[f"hourglass.encoder.down_blocks.{i}.conv.weight"].shape[0] for i in range(n_blocks))
        if "down.weight" in dm:
            ks = dm["down.weight"].shape[-1]
            sigma = (ks - 1) / 8
            scale = 1 / (2 * sigma + 1)
        else:
            scale = 1.0
        small = "fg_encoder.layer1.0.conv1.weight" not in kp
        n_occ = len({k.split(".")[1] for k in dm if k.startswith("occlusion.")})
        avd = groups.get("avd_network", {})
        cfg = ModelConfig(
            num_tps=num_tps, num_channels=inp["final.weight"].shape[0], bg="bg_predictor" in groups,
            backbone="small" if small else "resnet18",
            backbone_width=kp["fg_encoder.conv1.weight"].shape[0] if small else 16,
            multi_mask=n_occ > 1, gen_block_expansion=gen_be, gen_max_features=gen_max,
            gen_num_down_blocks=n_down, dm_block_expansion=dm_be, dm_max_features=dm_max, dm_num_blocks=n_blocks,
            scale_factor=scale,
            avd_id_bottle_size=avd["id_encoder.9.weight"].shape[0] if avd else 128,
            avd_pose_bottle_size=avd["pose_encoder.9.weight"].shape[0] if avd else 128,
            image_size=image_size)
    except (KeyError, IndexError, ConfigError) as exc:
        raise CheckpointError(f"cannot infer the architecture from the tensors ({exc}); pass --config") from None
    return cfg


def build_model(config: ModelConfig, groups: dict[str, dict[str, torch.Tensor]], *, source: str,
                cls: type[TPSMMNetworks] = TPSMMNetworks) -> TPSMMNetworks:
    """Build a ``cls`` (default :class:`TPSMMNetworks`) for ``config`` and load ``groups`` strictly; mismatches
    name key and shapes."""
    missing = [n for n in REQUIRED if n not in groups]
    if missing:
        raise CheckpointError(f"{source}: missing network(s) {', '.join(missing)}")
    model = cls.for_networks(config, groups)
    for net, sd in groups.items():
        load_network(getattr(model, net), sd, name=net, source=source)
    return model


def load_network(module: torch.nn.Module, tensors: dict[str, torch.Tensor], *, name: str, source: str) -> None:
    """Load ``tensors`` into ``module`` strictly; an unexpected, missing or mis-shaped key is a
    :class:`CheckpointError` naming ``source`` and ``name.key`` (the first in the module's own order, whatever
    order the file stores its tensors in)."""
    expected = module.state_dict()
    for key, value in tensors.items():
        if key not in expected:
            raise CheckpointError(f"{source}: unexpected key {name}.{key} {tuple(value.shape)} for this "
                                  "architecture")
    for key, want in expected.items():
        if key in tensors and tuple(tensors[key].shape) != tuple(want.shape):
            raise CheckpointError(f"{source}: shape mismatch for {name}.{key}: checkpoint has "
                                  f"{tuple(tensors[key].shape)}, the config expects {tuple(want.shape)}")
    absent = [k for k in expected if k not in tensors]
    if absent:
        raise CheckpointError(f"{source}: {name} is missing {len(absent)} key(s), e.g. {name}.{absent[0]}")
    module.load_state_dict(tensors, strict=True)


def _official_config(path: str, groups, config: str | Config | None, image_size: int | None) -> Config:
    if isinstance(config, Config):
        cfg = config
    elif config:
        cfg = load_config(config)
    else:
        name = os.path.basename(path).lower()
        size = image_size if image_size is not None else (384 if ("384" in name or "ted" in name) else 256)
        return Config(name=os.path.basename(path), model=infer_model_config(groups, image_size=size))
    if image_size is not None:
        cfg = dataclasses.replace(cfg, model=cfg.model.replace(image_size=image_size))
    return cfg


def checkpoint_config(path: str) -> Config:
    """The :class:`Config` a checkpoint was made with (e.g. to fine-tune it without restating its architecture).

    A tpsmm ``.safetensors`` file stores its full config (model, and the training recipe when ``tpsmm train``
    wrote it). For a release ``.pth.tar`` the model section is inferred from the tensor shapes (image size 384
    when the file name mentions ``384``/``ted``, else 256) and the other sections are the vox-256 defaults.
    """
    path = os.fspath(path)
    if is_official_path(path):
        return _official_config(path, read_official(path), None, None)
    return _read_header(path)[0]


def convert_official(src: str, dst: str, *, config: str | Config | None = None, image_size: int | None = None,
                     overwrite: bool = False) -> TPSMMNetworks:
    """Convert a release ``.pth.tar`` to a tpsmm safetensors checkpoint; returns the loaded model.

    Args:
        config: preset name, YAML path or :class:`Config`; ``None`` infers it from tensor shapes
            (image size 384 when the file name mentions ``384``/``ted``, else 256).
        image_size: override the inference size.
    """
    if os.path.abspath(src) == os.path.abspath(dst):
        raise CheckpointError(f"{dst}: output would overwrite the input")
    if os.path.exists(dst) and not overwrite:
        raise CheckpointError(f"{dst}: exists already (pass --overwrite to replace it)")
    groups = read_official(src)
    cfg = _official_config(src, groups, config, image_size)
    model = build_model(cfg.model, groups, source=src)
    save_checkpoint(model, dst, config=dataclasses.replace(cfg, model=model.config),
                    metadata={"converted_from": os.path.basename(src)})
    return model


def load_networks(path: str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                  config: str | Config | None = None, image_size: int | None = None,
                  cls: type[TPSMMNetworks] = TPSMMNetworks) -> TPSMMNetworks:
    """Load a checkpoint into a ``cls`` for inference (``eval()`` mode, no gradients needed).

    ``tpsmm.core.load_model`` is this with ``cls`` = :class:`tpsmm.core.TPSMM` (the networks plus the
    animation steps).

    Accepts tpsmm ``.safetensors`` files and, with a warning, release ``.pth.tar`` files (converted in
    memory, read with ``weights_only=True``). ``config``/``image_size`` only apply to release files
    (and ``image_size`` also overrides a safetensors file's inference size).
    """
    path = os.fspath(path)
    if is_official_path(path):
        warnings.warn(f"{path}: loading an official checkpoint; convert it once with "
                      "`tpsmm convert IN.pth.tar OUT.safetensors` for faster, safer loading", stacklevel=2)
        groups = read_official(path)
        cfg = _official_config(path, groups, config, image_size).model
    else:
        full, groups, _ = read_checkpoint(path)
        cfg = full.model if image_size is None else full.model.replace(image_size=image_size)
    model = build_model(cfg, groups, source=path, cls=cls)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
