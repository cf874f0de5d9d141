"""The training recipes (reference ``train_params`` / ``train_avd_params``) and data set options, validated.

Every field is checked when the dataclass is built (from a preset, a YAML file, ``--set`` or a run's
``run.json``): a wrong type, a negative count, a NaN or infinite number, a milestone that is not a whole
number, a probability outside [0, 1] is a :class:`ConfigError` whose one line names the key (``train.num_epochs``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

__all__ = ["ConfigError", "TrainConfig", "AVDTrainConfig", "DatasetConfig"]


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(obj, section: str, *, positive: tuple[str, ...] = (), probabilities: tuple[str, ...] = ()) -> None:
    """Type/range checks of a recipe dataclass from its field annotations; ``ConfigError`` names ``section.key``."""
    for f in dataclasses.fields(obj):
        value, key, kind = getattr(obj, f.name), f"{section}.{f.name}", str(f.type)
        if value is None and "None" in kind:
            continue
        if kind.startswith("int"):
            ok, want = _whole(value) and value >= (1 if f.name in positive else 0), (
                "a positive whole number" if f.name in positive else "a whole number >= 0")
        elif kind.startswith("float"):
            ok, want = _number(value) and value >= 0, "a finite number >= 0"
        elif kind.startswith("tuple[int"):
            ok, want = isinstance(value, tuple) and all(_whole(v) and v >= 0 for v in value), "whole numbers >= 0"
        elif kind.startswith("tuple[float"):
            ok, want = isinstance(value, tuple) and all(_number(v) and v >= 0 for v in value), "finite numbers >= 0"
        elif kind.startswith("bool"):
            ok, want = isinstance(value, bool), "true or false"
        else:
            continue
        if not ok:
            raise ConfigError(f"{key}: expected {want}, got {value!r}")
        if f.name in probabilities and not 0 <= value <= 1:
            raise ConfigError(f"{key}: a probability must be within [0, 1], got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """The released stage-1 recipe (reference ``train_params``)."""

    num_epochs: int = 100
    num_repeats: int = 75
    epoch_milestones: tuple[int, ...] = (70, 90)
    lr_generator: float = 2e-4
    batch_size: int = 28
    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    dataloader_workers: int = 12
    checkpoint_freq: int = 50
    dropout_epoch: int = 35
    dropout_maxp: float = 0.3
    dropout_startp: float = 0.1
    dropout_inc_epoch: int = 10
    bg_start: int = 10
    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5
    loss_perceptual: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
    loss_equivariance_value: float = 10.0
    loss_warp: float = 10.0
    loss_bg: float = 10.0

    def __post_init__(self) -> None:
        _check(self, "train", positive=("num_epochs", "num_repeats", "batch_size", "points_tps", "checkpoint_freq",
                                         "dropout_inc_epoch"), probabilities=("dropout_maxp", "dropout_startp"))
        if not self.lr_generator > 0:
            raise ConfigError(f"train.lr_generator: must be > 0, got {self.lr_generator!r}")
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ConfigError(f"train.scales: expected pyramid scales in (0, 1], got {self.scales!r}")


@dataclass(frozen=True)
class AVDTrainConfig:
    """The released stage-2 (AVD) recipe (reference ``train_avd_params``)."""

    num_epochs: int = 200
    num_repeats: int = 300
    batch_size: int = 256
    dataloader_workers: int = 24
    checkpoint_freq: int = 50
    epoch_milestones: tuple[int, ...] = (140, 180)
    lr: float = 1e-3
    lambda_shift: float = 1.0
    random_scale: float = 0.25

    def __post_init__(self) -> None:
        _check(self, "train_avd", positive=("num_epochs", "num_repeats", "batch_size", "checkpoint_freq"))
        if not self.lr > 0:
            raise ConfigError(f"train_avd.lr: must be > 0, got {self.lr!r}")


@dataclass(frozen=True)
class DatasetConfig:
    """Data set options (reference ``dataset_params``); ``frame_shape`` is (H, W) or None."""

    root_dir: str | None = None
    frame_shape: tuple[int, int] | None = None
    id_sampling: bool = True
    horizontal_flip: bool = True
    time_flip: bool = True
    jitter: dict[str, float] | None = field(
        default_factory=lambda: {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1})
    crop_size: int | None = None
    resize_ratio: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _check(self, "dataset")
        for name in ("frame_shape", "crop_size"):
            value = getattr(self, name)
            values = value if isinstance(value, tuple) else (value,)
            if value is not None and not all(_whole(v) and v >= 1 for v in values):
                raise ConfigError(f"dataset.{name}: expected positive whole numbers, got {value!r}")
        if self.jitter is not None and not (isinstance(self.jitter, dict) and all(
                _number(v) and v >= 0 for v in self.jitter.values())):
            raise ConfigError(f"dataset.jitter: expected a mapping of finite numbers >= 0, got {self.jitter!r}")
