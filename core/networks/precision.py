"""Mixed-precision policy shared by the networks.

Under ``torch.autocast`` (bfloat16 / float16) the convolutions run in half precision, but some parts
of TPSMM are numerically sensitive: the TPS solve (an 8x8 inverse), Gaussian heatmaps, sampling grids
and ``grid_sample`` coordinates (a rounding of 1/256 is a pixel), the contribution softmax, occlusion
sigmoids and the final blends. The networks compute those inside :func:`float32_region`, which turns
autocast off and is a no-op when autocast is not active — so float32 inference is unchanged.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["float32_region", "autocast_active", "into_trunk"]


def autocast_active(device_type: str) -> bool:
    """Whether autocast is enabled for ``device_type`` (``"cpu"``, ``"cuda"``, ...)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # older torch without the device argument
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


@contextlib.contextmanager
def float32_region(like: torch.Tensor):
    """Disable autocast on ``like``'s device; yields a cast function for the region's inputs.

    Inside an autocast context the cast is ``Tensor.float``; outside it is the identity, so a model
    kept in float64 or bfloat16 (without autocast) computes in its own dtype as before::

        with float32_region(logits) as f32:
            maps = torch.softmax(f32(logits), dim=1)
    """
    device_type = like.device.type
    if not autocast_active(device_type):
        yield _identity
        return
    with torch.autocast(device_type=device_type, enabled=False):
        yield _to_float


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _to_float(t: torch.Tensor) -> torch.Tensor:
    return t.float()


def into_trunk(x: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
    """A map from a float32 region, made ready to re-enter ``module``'s convolution trunk.

    * dtype: when the trunk is stored in half precision (an inference copy cast to bfloat16/float16), ``x``
      takes that dtype: normalisation layers, unlike convolutions, are not cast by autocast and refuse a float32
      input with half-precision parameters. With float32 parameters (float32 inference, training under
      autocast) the dtype is left alone, so those numerics are untouched.
    * layout: when the trunk's weights are channels_last, so is ``x`` (one conversion here instead of one
      per layer).
    """
    weight = next(module.parameters())
    if weight.dtype in (torch.bfloat16, torch.float16) and x.dtype != weight.dtype:
        x = x.to(weight.dtype)
    conv = next((p for p in module.parameters() if p.ndim == 4), None)
    if x.ndim == 4 and conv is not None and conv.is_contiguous(memory_format=torch.channels_last) \
            and not conv.is_contiguous():
        x = x.contiguous(memory_format=torch.channels_last)
    return x
