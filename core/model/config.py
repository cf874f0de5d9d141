"""Model and training configuration: dataclasses, the four released presets, release-style YAML.

A :class:`Config` bundles everything a run needs:

* :class:`ModelConfig` — the architecture (what a checkpoint's tensors depend on) plus the
  inference image size.
* :class:`TrainConfig` / :class:`AVDTrainConfig` — the released training recipe.
* :class:`DatasetConfig` — data set options (frame shape, id sampling, augmentation).

The YAML layout is the reference's (``model_params.common_params`` …), so the release's
``config/*.yaml`` files load unchanged.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from ..geometry.lucas_kanade import MOTION_MODELS
from ..networks.backbone import BACKBONES
from .recipe import AVDTrainConfig, ConfigError, DatasetConfig, TrainConfig

__all__ = ["ConfigError", "ModelConfig", "TrainConfig", "AVDTrainConfig", "DatasetConfig", "Config", "PRESETS",
           "get_preset", "load_config"]


#: Background-motion models: the released learned predictor, or a robust Lucas-Kanade fit (no weights).
BG_MOTIONS = ("predictor", "lk")
#: Warps the Lucas-Kanade background fit can use (degrees of freedom 2, 3, 4, 6): the geometry's own list.
LK_MOTION_MODELS = tuple(MOTION_MODELS)

#: Upper bounds of integer model fields (others 8192): far above any sensible model, too low to allocate gigabytes.
_MODEL_BOUNDS = {"num_tps": 64, "num_channels": 4, "gen_num_down_blocks": 6, "dm_num_blocks": 8, "image_size": 4096,
                 "gen_block_expansion": 512, "dm_block_expansion": 512, "backbone_width": 512}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the five networks (reference ``model_params``) and the inference size.

    ``image_size`` is the square frame size the model runs at (256 or 384 for the releases);
    it must be divisible by ``128`` for the released hourglass (``4 / scale_factor`` ×
    ``2 ** num_blocks`` in general).
    """

    num_tps: int = 10
    num_channels: int = 3
    bg: bool = True
    # how the background affine is found: "predictor" (the released learned BG motion predictor) or "lk"
    # (a robust Lucas-Kanade fit of one ``bg_lk_model`` warp to the frame pair; no weights, see
    # core/geometry/lucas_kanade.py)
    bg_motion: str = "predictor"
    bg_lk_model: str = "similarity"
    multi_mask: bool = True
    # keypoint detector / background predictor encoder: "resnet18" (release) or "small" (compact)
    backbone: str = "resnet18"
    backbone_width: int = 16
    # inpainting network ("generator_params")
    gen_block_expansion: int = 64
    gen_max_features: int = 512
    gen_num_down_blocks: int = 3
    # dense motion network
    dm_block_expansion: int = 64
    dm_max_features: int = 1024
    dm_num_blocks: int = 5
    scale_factor: float = 0.25
    kp_variance: float = 0.01
    # AVD network
    avd_id_bottle_size: int = 128
    avd_pose_bottle_size: int = 128
    # inference size
    image_size: int = 256

    @property
    def num_kp(self) -> int:
        """Number of keypoints, ``5 * num_tps``."""
        return 5 * self.num_tps

    @property
    def size_multiple(self) -> int:
        """Frame sizes must be a multiple of this (dense-motion downscale × hourglass depth)."""
        return int(round(1 / self.scale_factor)) * 2 ** self.dm_num_blocks

    def __post_init__(self) -> None:
        for name in ("num_tps", "num_channels", "gen_block_expansion", "gen_max_features",
                     "gen_num_down_blocks", "dm_block_expansion", "dm_max_features", "dm_num_blocks",
                     "avd_id_bottle_size", "avd_pose_bottle_size", "image_size", "backbone_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model config: {name} must be a positive integer, got {value!r}")
            if value > _MODEL_BOUNDS.get(name, 8192):
                raise ConfigError(f"model config: {name} {value} is beyond any sane TPSMM "
                                  f"(at most {_MODEL_BOUNDS.get(name, 8192)})")
        if self.backbone not in BACKBONES:
            raise ConfigError(f"model config: backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.bg_motion not in BG_MOTIONS:
            raise ConfigError(f"model config: bg_motion must be one of {', '.join(BG_MOTIONS)}, got {self.bg_motion!r}")
        if self.bg_lk_model not in LK_MOTION_MODELS:
            raise ConfigError(f"model config: bg_lk_model must be one of {', '.join(LK_MOTION_MODELS)}, "
                              f"got {self.bg_lk_model!r}")
        s = self.scale_factor
        if not (0 < s <= 1) or abs(math.log2(s) - round(math.log2(s))) > 1e-9:
            raise ConfigError(f"model config: scale_factor must be a power of 1/2 (1, 0.5, 0.25, ...), got {s!r}")
        if not isinstance(kv := self.kp_variance, (int, float)) or not math.isfinite(kv) or kv <= 0:
            raise ConfigError(f"model config: kp_variance must be > 0, got {self.kp_variance!r}")
        if self.multi_mask and self.gen_num_down_blocks != 3:
            raise ConfigError("model config: multi_mask=True needs gen_num_down_blocks=3 "
                              f"(one occlusion mask per inpainting level), got {self.gen_num_down_blocks}")
        if self.multi_mask:
            # The four occlusion masks sit at 1/8..1/1 of the frame: log2(1/s) of them come from up-sampling blocks
            # after the hourglass, the rest from its last levels (the release: s=0.25, 2 + 2).
            ups = int(round(-math.log2(s)))
            if ups > 3:
                raise ConfigError(f"model config: multi_mask=True needs scale_factor >= 0.125, got {s}")
            if 4 - ups > self.dm_num_blocks:
                raise ConfigError(f"model config: multi_mask=True with scale_factor={s} needs dm_num_blocks >= "
                                  f"{4 - ups}, got {self.dm_num_blocks}")
        self.check_image_size(self.image_size)

    def check_image_size(self, size: int, what: str = "image_size") -> None:
        """Raise :class:`ConfigError` unless ``size`` fits the hourglass (a multiple of ``size_multiple``)."""
        m = self.size_multiple
        if size % m != 0:
            lo, hi = max(m, size // m * m), (size // m + 1) * m
            raise ConfigError(f"model config: {what} {size} cannot be divided by the hourglass; "
                              f"it must be a multiple of {m} (e.g. {lo} or {hi})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"model config: unknown field(s) {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Config:
    """Everything a run needs: model, dataset, training and AVD training settings."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    train_avd: AVDTrainConfig = field(default_factory=AVDTrainConfig)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        d = json.loads(text)
        return _config_from_plain(d)


def _config_from_plain(d: dict[str, Any]) -> Config:
    def build(kind, values):
        values = dict(values or {})
        for f in dataclasses.fields(kind):
            if f.name in values and isinstance(values[f.name], list):
                values[f.name] = tuple(values[f.name])
        known = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{kind.__name__}: unknown field(s) {', '.join(unknown)}")
        return kind(**values)

    return Config(name=d.get("name", "custom"), model=ModelConfig.from_dict(d.get("model", {})),
                  dataset=build(DatasetConfig, d.get("dataset")), train=build(TrainConfig, d.get("train")),
                  train_avd=build(AVDTrainConfig, d.get("train_avd")))


def _vox() -> Config:
    return Config(name="vox-256")


PRESETS: dict[str, Config] = {
    "vox-256": _vox(),
    "taichi-256": Config(
        name="taichi-256",
        train=TrainConfig(num_repeats=150, dropout_maxp=0.7, dropout_startp=0.0, bg_start=0),
        train_avd=AVDTrainConfig(num_epochs=100, num_repeats=150, epoch_milestones=(70, 90), checkpoint_freq=10)),
    "ted-384": Config(
        name="ted-384", model=ModelConfig(image_size=384),
        train=TrainConfig(num_repeats=150, batch_size=12, dataloader_workers=6, dropout_maxp=0.5,
                          dropout_startp=0.0, bg_start=0),
        train_avd=AVDTrainConfig(num_epochs=30, num_repeats=500, epoch_milestones=(20, 25), checkpoint_freq=10)),
    "mgif-256": Config(
        name="mgif-256", model=ModelConfig(bg=False),
        dataset=DatasetConfig(id_sampling=False, jitter={"hue": 0.5}, crop_size=256, resize_ratio=(0.9, 1.1)),
        train=TrainConfig(num_repeats=50, dropout_maxp=0.5, dropout_startp=0.2, bg_start=0),
        train_avd=AVDTrainConfig(num_epochs=100, num_repeats=50, epoch_milestones=(70, 90), checkpoint_freq=10)),
}


def get_preset(name: str) -> Config:
    """Return a released preset by name (``vox-256``, ``taichi-256``, ``ted-384``, ``mgif-256``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


_MODEL_KEYS = {
    "common_params": {"num_tps": "num_tps", "num_channels": "num_channels", "bg": "bg", "multi_mask": "multi_mask"},
    "generator_params": {"block_expansion": "gen_block_expansion", "max_features": "gen_max_features",
                         "num_down_blocks": "gen_num_down_blocks"},
    "dense_motion_params": {"block_expansion": "dm_block_expansion", "max_features": "dm_max_features",
                            "num_blocks": "dm_num_blocks", "scale_factor": "scale_factor",
                            "kp_variance": "kp_variance"},
    "avd_network_params": {"id_bottle_size": "avd_id_bottle_size", "pose_bottle_size": "avd_pose_bottle_size"},
}


def load_config(spec: str, *, image_size: int | None = None) -> Config:
    """Load a preset name or a release-style YAML file.

    Args:
        spec: a preset name (see :data:`PRESETS`) or a path to a ``.yaml`` file in the reference layout.
        image_size: inference size override (else the preset's, or inferred from the YAML's name:
            384 when the file name contains ``384``, else 256).

    Raises:
        ConfigError: unknown preset, unreadable file or invalid values (the message names the field).
    """
    if spec in PRESETS:
        cfg = PRESETS[spec]
    else:
        if not os.path.isfile(spec):
            raise ConfigError(f"config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor an existing file")
        cfg = _load_yaml(spec)
    if image_size is not None:
        cfg = dataclasses.replace(cfg, model=cfg.model.replace(image_size=image_size))
    return cfg


def _load_yaml(path: str) -> Config:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config {path}: cannot read YAML ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: expected a mapping at the top level")
    name = os.path.splitext(os.path.basename(path))[0]
    mp = raw.get("model_params") or {}
    model: dict[str, Any] = {"image_size": 384 if "384" in name else 256}
    for section, mapping in _MODEL_KEYS.items():
        for key, value in (mp.get(section) or {}).items():
            if key not in mapping:
                raise ConfigError(f"config {path}: unknown key model_params.{section}.{key}")
            model[mapping[key]] = value
    tp = dict(raw.get("train_params") or {})
    train: dict[str, Any] = {}
    tparams = tp.pop("transform_params", {}) or {}
    lw = tp.pop("loss_weights", {}) or {}
    known_train = {f.name for f in dataclasses.fields(TrainConfig)}
    for k, v in tp.items():
        if k in known_train:
            train[k] = tuple(v) if isinstance(v, list) else v
    for k in ("sigma_affine", "sigma_tps", "points_tps"):
        if k in tparams:
            train[k] = tparams[k]
    if "perceptual" in lw:
        train["loss_perceptual"] = tuple(float(x) for x in lw["perceptual"])
    for src, dst in (("equivariance_value", "loss_equivariance_value"), ("warp_loss", "loss_warp"), ("bg", "loss_bg")):
        if src in lw:
            train[dst] = float(lw[src])
    ap = raw.get("train_avd_params") or {}
    known_avd = {f.name for f in dataclasses.fields(AVDTrainConfig)}
    avd = {k: (tuple(v) if isinstance(v, list) else v) for k, v in ap.items() if k in known_avd}
    dp = raw.get("dataset_params") or {}
    aug = dp.get("augmentation_params") or {}
    flip = aug.get("flip_param") or {}
    ds: dict[str, Any] = {
        "root_dir": dp.get("root_dir"),
        "frame_shape": tuple(dp["frame_shape"][:2]) if dp.get("frame_shape") else None,
        "id_sampling": bool(dp.get("id_sampling", False)),
        "horizontal_flip": bool(flip.get("horizontal_flip", False)),
        "time_flip": bool(flip.get("time_flip", False)),
        "jitter": aug.get("jitter_param"),
        "crop_size": (aug.get("crop_param") or {}).get("size", [None])[0] if aug.get("crop_param") else None,
        "resize_ratio": tuple((aug.get("resize_param") or {}).get("ratio")) if aug.get("resize_param") else None,
    }
    try:
        return Config(name=name, model=ModelConfig(**model), dataset=DatasetConfig(**ds),
                      train=TrainConfig(**train), train_avd=AVDTrainConfig(**avd))
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"config {path}: {exc}") from None
