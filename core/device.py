"""Where and in what precision the networks run: one spelling of devices and dtypes for every entry point.

Dtype names (CLI flags, node inputs, configs and the Python API all accept them): ``float32``,
``bfloat16`` and ``float16``, plus the aliases ``fp32``, ``bf16``, ``fp16``, ``half`` (= float16) and
``none`` (= float32, the trainer's "no mixed precision"); a :class:`torch.dtype` passes through.

Device names: ``auto`` (CUDA if present, else Apple MPS, else the CPU), ``cpu``, ``cuda``, ``cuda:N``,
``mps``, or a :class:`torch.device`. A device the machine lacks is an error naming it.

CPU precision. CPUs without native bfloat16 (no AVX512-BF16/AMX: most AMD and older Intel parts, all
AVX2-only machines) run oneDNN's bfloat16 convolutions in emulation, about 100x slower than float32;
:func:`resolve_dtype` falls back to float32 there with one warning saying why. float16 on the CPU has no
fast kernels at all and becomes bfloat16 where that is native, else float32.
"""
from __future__ import annotations

import warnings

import torch

__all__ = ["DTYPE_NAMES", "DEVICE_CHOICES", "parse_dtype", "dtype_name", "resolve_device", "resolve_dtype",
           "cpu_has_native_bf16"]

DTYPE_NAMES = ("float32", "bfloat16", "float16")
"""The canonical spellings, in the order choices are shown."""
_ALIASES = {"float32": torch.float32, "fp32": torch.float32, "none": torch.float32,
            "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
            "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def parse_dtype(value: str | torch.dtype, *, what: str = "dtype") -> torch.dtype:
    """A dtype name (or alias, case-insensitive) or ``torch.dtype`` -> one of float32/bfloat16/float16."""
    if isinstance(value, torch.dtype):
        dtype = value
    else:
        dtype = _ALIASES.get(str(value).strip().lower())
        if dtype is None:
            raise ValueError(f"{what}: expected one of {', '.join(DTYPE_NAMES)} (or fp32/bf16/fp16), got {value!r}")
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"{what}: expected one of {', '.join(DTYPE_NAMES)}, got {dtype}")
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (the canonical spelling)."""
    return str(parse_dtype(dtype)).removeprefix("torch.")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN's own check: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(value: str | torch.device | None = "auto", *, what: str = "device") -> torch.device:
    """``auto``/``cpu``/``cuda[:N]``/``mps`` or a device -> a :class:`torch.device` this machine has.

    ``None`` means ``auto``. ``ValueError`` naming ``what`` when the device is not available.
    """
    name = "auto" if value is None else str(value).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{what} {value!r}: not a device name (expected auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{what} {name}: no CUDA device is available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{what} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not _mps_available():
        raise ValueError(f"{what} {name}: Apple MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{what} {value!r}: not a device name (expected auto, cpu, cuda, cuda:N or mps)")
    return device


def resolve_dtype(value: str | torch.dtype, device: torch.device | str, *, what: str = "dtype",
                  warn: bool = True) -> torch.dtype:
    """The compute dtype to use for ``value`` on ``device`` (see the module docstring for the CPU rules).

    On the CPU: float16 becomes bfloat16 where bfloat16 is native, and bfloat16 becomes float32 where it
    is not; each change is reported with one ``RuntimeWarning`` naming ``what`` (unless ``warn=False``).
    """
    dtype = parse_dtype(value, what=what)
    if torch.device(device).type != "cpu" or dtype == torch.float32:
        return dtype
    native = cpu_has_native_bf16()
    chosen = torch.bfloat16 if native else torch.float32
    if chosen != dtype and warn:
        why = ("CPUs have no fast float16 kernels" if dtype == torch.float16 and native else
               "this CPU has no native bfloat16 (AVX512-BF16/AMX), so it would be emulated about 100x slower")
        warnings.warn(f"{what} {dtype_name(dtype)}: {why}; using {dtype_name(chosen)}", RuntimeWarning, stacklevel=2)
    return chosen
