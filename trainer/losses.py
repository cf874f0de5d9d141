"""Training losses of TPSMM (paper Sec. 3.4), as released.

* :class:`PerceptualLoss` — multi-scale VGG-19 feature L1 (the reconstruction loss). VGG-19 weights are
  never downloaded: they are read from a local file (:func:`find_vgg_weights`).
* :class:`L1SSIMLoss` — the documented fallback reconstruction loss when no VGG-19 weights exist:
  multi-scale L1 + SSIM.
* :func:`equivariance_loss`, :func:`warp_loss`, :func:`background_loss` — Eq. 11-13.

Images are ``[B, 3, H, W]`` float in ``[0, 1]``; keypoints ``[B, N, 2]`` (x, y) in ``[-1, 1]``.
Every loss returns a float32 scalar already multiplied by its weight.
"""
from __future__ import annotations

import glob
import os
import pickle

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ..core.networks.blocks import AntiAliasInterpolation2d
from ..core.model.config import TrainConfig
from ..core.geometry.tps import RandomTPS

__all__ = ["LossSetupError", "ImagePyramid", "VGG19Features", "find_vgg_weights", "PerceptualLoss", "L1SSIMLoss",
           "equivariance_loss", "warp_loss", "background_loss", "VGG_LAYERS", "RECON_LOSSES",
           "build_reconstruction_loss"]

# torchvision's vgg19 ``features`` indices that end at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
VGG_LAYERS = (2, 7, 12, 21, 30)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class LossSetupError(RuntimeError):
    """A loss cannot be set up (missing or unreadable VGG-19 weights); the message says what to do."""


class ImagePyramid(nn.Module):
    """``[B,C,H,W] -> [x at scale s for s in scales]`` with the release's anti-aliased downsampling."""

    def __init__(self, *, scales: tuple[float, ...], channels: int = 3) -> None:
        super().__init__()
        if not scales:
            raise ValueError("ImagePyramid: scales must not be empty")
        self.scales = tuple(float(s) for s in scales)
        self.downs = nn.ModuleList(AntiAliasInterpolation2d(channels=channels, scale=s) for s in self.scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [down(x) for down in self.downs]


def find_vgg_weights(explicit: str | None = None) -> str | None:
    """Locate VGG-19 ImageNet weights on this machine; never downloads.

    Args:
        explicit: a file given by the user (``--vgg-weights``); it must exist.

    Returns:
        ``explicit``, else the newest ``vgg19-*.pth`` in torchvision's cache
        (``torch.hub.get_dir()/checkpoints``), else ``None``.
    """
    if explicit:
        if not os.path.isfile(explicit):
            raise LossSetupError(f"--vgg-weights {explicit}: no such file")
        return explicit
    found = sorted(glob.glob(os.path.join(torch.hub.get_dir(), "checkpoints", "vgg19-*.pth")), key=os.path.getmtime)
    return found[-1] if found else None


class VGG19Features(nn.Module):
    """Frozen VGG-19 ``features[:30]`` returning relu1_1 … relu5_1 of ImageNet-normalised input.

    ``forward([B,3,H,W] in [0,1]) -> list of 5 feature maps``. The layers are torchvision's own
    ``vgg19().features[:30]`` (built on the meta device, so the unused 100 M-parameter classifier is never
    allocated, then given fresh default-initialised weights), so a torchvision ``vgg19`` state dict
    (``features.{i}.weight``/``bias``) loads directly.
    """

    def __init__(self) -> None:
        super().__init__()
        with torch.device("meta"):
            features = torchvision.models.vgg19(weights=None).features[:VGG_LAYERS[-1]]
        self.features = features.to_empty(device="cpu")
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                layer.reset_parameters()
            elif isinstance(layer, nn.ReLU):
                layer.inplace = False       # the features handed back must not change under later layers
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str) -> "VGG19Features":
        """Load torchvision VGG-19 weights (a state dict ``.pth``) with ``torch.load(weights_only=True)``."""
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise LossSetupError(f"{path}: refused to load: it holds objects other than tensors "
                                 "(only plain state dicts are read, weights_only=True)") from None
        except (RuntimeError, OSError, EOFError, ValueError) as exc:
            raise LossSetupError(f"{path}: not a readable PyTorch weights file ({exc.__class__.__name__})") from None
        if not isinstance(raw, dict):
            raise LossSetupError(f"{path}: expected a VGG-19 state dict, got {type(raw).__name__}")
        module = cls()
        state = {}
        for key, param in module.features.state_dict().items():
            value = raw.get(f"features.{key}")
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(param.shape):
                got = "missing" if value is None else tuple(getattr(value, "shape", ()))
                raise LossSetupError(f"{path}: not VGG-19 weights (features.{key}: expected "
                                     f"{tuple(param.shape)}, got {got})")
            state[key] = value.float()
        module.features.load_state_dict(state)
        return module

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # always frozen

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out, start = [], 0
        for end in VGG_LAYERS:
            for layer in self.features[start:end]:
                x = layer(x)
            out.append(x)
            start = end
        return out


class PerceptualLoss(nn.Module):
    """Multi-scale perceptual loss: ``sum_s sum_l w_l * mean|vgg_l(pred_s) - vgg_l(target_s)|``.

    Args:
        vgg: a :class:`VGG19Features`.
        weights: one weight per VGG layer (5; the release uses ``[10] * 5``).
    """

    name = "perceptual"

    def __init__(self, *, vgg: VGG19Features, weights: tuple[float, ...]) -> None:
        super().__init__()
        if len(weights) != len(VGG_LAYERS):
            raise ValueError(f"PerceptualLoss: weights needs {len(VGG_LAYERS)} values, got {len(weights)}")
        self.vgg, self.weights = vgg, tuple(float(w) for w in weights)

    def forward(self, prediction: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
        """``prediction``/``target``: image pyramids (lists of ``[B,3,h,w]``) -> scalar."""
        total = prediction[0].new_zeros((), dtype=torch.float32)
        for p, t in zip(prediction, target):
            with torch.no_grad():
                t_feat = self.vgg(t)
            for w, a, b in zip(self.weights, self.vgg(p), t_feat):
                if w:
                    total = total + w * (a.float() - b.float()).abs().mean()
        return total


class L1SSIMLoss(nn.Module):
    """Fallback reconstruction loss: ``sum_s w * (mean|pred_s - target_s| + DSSIM(pred_s, target_s))``.

    DSSIM is kornia's ``ssim_loss`` (``(1 - SSIM) / 2``, Gaussian window of 11 pixels, or the largest odd
    size that fits a small pyramid level). ``w`` is the mean of the configured perceptual weights, so the
    loss has the same order of magnitude as the VGG one.
    """

    name = "l1_ssim"

    def __init__(self, *, weight: float, window: int = 11) -> None:
        super().__init__()
        self.weight, self.window = float(weight), int(window)

    def forward(self, prediction: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
        from kornia.losses import ssim_loss

        total = prediction[0].new_zeros((), dtype=torch.float32)
        for p, t in zip(prediction, target):
            p, t = p.float(), t.float()
            total = total + self.weight * (p - t).abs().mean()
            side = min(p.shape[-2:])
            window = min(self.window, side if side % 2 else side - 1)
            if window >= 3:
                total = total + self.weight * ssim_loss(p, t, window_size=window, max_val=1.0)
        return total


def equivariance_loss(kp_detector: nn.Module, driving: torch.Tensor, kp_driving: torch.Tensor,
                      transform: RandomTPS, *, weight: float) -> torch.Tensor:
    """Eq. 11: keypoints must follow a random TPS deformation of the driving frame.

    The driving frame ``[B,3,H,W]`` is warped by ``transform`` (reflection padding, align_corners), its
    keypoints are detected and mapped back with ``transform``; the loss is
    ``weight * mean|kp_driving - T(kp_transformed)|``. Gradients flow through both keypoint sets.
    """
    h, w = driving.shape[-2:]
    grid = transform.grid(h, w).to(driving.dtype)
    transformed = F.grid_sample(driving, grid, padding_mode="reflection", align_corners=True)
    kp_transformed = kp_detector(transformed).float()
    return weight * (kp_driving.float() - transform.warp_points(kp_transformed)).abs().mean()


def warp_loss(driving_encoded: list[torch.Tensor], warped_encoder_maps: list[torch.Tensor], *,
              weight: float) -> torch.Tensor:
    """Eq. 13: masked driving features vs masked warped source features.

    Args:
        driving_encoded: ``InpaintingNetwork.get_encode(driving, occlusion)``, finest first (detached).
        warped_encoder_maps: ``Generated.warped_encoder_maps``, deepest first.
    """
    if len(driving_encoded) != len(warped_encoder_maps):
        raise ValueError(f"warp_loss: {len(driving_encoded)} driving maps vs {len(warped_encoder_maps)} warped maps")
    total = driving_encoded[0].new_zeros((), dtype=torch.float32)
    for enc, warped in zip(driving_encoded, reversed(warped_encoder_maps)):
        total = total + (enc.float() - warped.float()).abs().mean()
    return weight * total


def background_loss(bg_param: torch.Tensor, bg_param_reverse: torch.Tensor, *, weight: float) -> torch.Tensor:
    """Eq. 12: the source->driving and driving->source background affines must compose to the identity.

    ``bg_param = BG(source, driving)``, ``bg_param_reverse = BG(driving, source)``, both ``[B,3,3]``;
    returns ``weight * mean|I - bg_param @ bg_param_reverse|``.
    """
    value = torch.matmul(bg_param.float(), bg_param_reverse.float())
    eye = torch.eye(3, device=value.device, dtype=value.dtype)
    return weight * (eye - value).abs().mean()


RECON_LOSSES = ("vgg", "l1-ssim")


def build_reconstruction_loss(train: TrainConfig, kind: str, vgg_weights: str | None = None) -> nn.Module | None:
    """The reconstruction loss of a run: ``vgg`` (released) or ``l1-ssim`` (fallback); ``None`` when the
    perceptual weights are all 0.

    Raises:
        LossSetupError: ``vgg`` without VGG-19 weights on this machine (nothing is ever downloaded), or an
            unreadable weights file.
    """
    if kind not in RECON_LOSSES:
        raise LossSetupError(f"--recon-loss: expected one of {', '.join(RECON_LOSSES)}, got {kind!r}")
    weights = tuple(float(w) for w in train.loss_perceptual)
    if not any(weights):
        return None
    if kind == "l1-ssim":
        return L1SSIMLoss(weight=sum(weights) / len(weights))
    path = find_vgg_weights(vgg_weights)
    if path is None:
        cache = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise LossSetupError(f"the perceptual loss needs VGG-19 ImageNet weights and none were found in {cache}; "
                             "pass --vgg-weights FILE (torchvision's vgg19-dcbb9e9d.pth) or train with "
                             "--recon-loss l1-ssim (multi-scale L1 + SSIM)")
    return PerceptualLoss(vgg=VGG19Features.from_file(path), weights=weights)
