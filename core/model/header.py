"""Checks a checkpoint's tensors against its config from the safetensors header, before anything is allocated.

A hostile (or simply wrong) file can state a config whose networks would take gigabytes while its tensors are
small; building the model first and comparing afterwards would allocate all of it. Here the expected shapes
come from a model built on the ``meta`` device (shapes only, no memory) and the file's shapes from its header,
so a mismatch is reported, naming the file and the first differing key, before any real tensor exists.
"""
from __future__ import annotations

import math

import torch
from safetensors import SafetensorError, safe_open

from .config import ModelConfig
from .container import NETWORKS, TPSMMNetworks

__all__ = ["header_shapes", "expected_shapes", "check_header_shapes", "MAX_PARAMETERS"]

MAX_PARAMETERS = 2_000_000_000
"""More parameters than this (8 GB of float32) is refused as not a TPSMM checkpoint (the release has ~60 M)."""


def split_key(key: str, *, source: str) -> tuple[str, str]:
    """The one reading of a checkpoint key: ``"kp_detector.down.0.weight"`` -> ``("kp_detector", "down.0.weight")``;
    ``ValueError`` naming ``source`` for a key outside the known network prefixes (:data:`NETWORKS`)."""
    net, _, rest = key.partition(".")
    if net not in NETWORKS or not rest:
        raise ValueError(f"{source}: unexpected tensor {key!r} (not under a known network prefix)")
    return net, rest


def header_shapes(path: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{network: {key: shape}}`` read from the safetensors header of ``path`` (no tensor data is read).

    Raises ``ValueError`` naming the file for a tensor outside the known network prefixes.
    """
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    with safe_open(path, framework="pt") as f:
        for key in f.keys():
            net, rest = split_key(key, source=path)
            out.setdefault(net, {})[rest] = tuple(f.get_slice(key).get_shape())
    return out


def expected_shapes(config: ModelConfig, networks) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{network: {key: shape}}`` of the :class:`TPSMMNetworks` that ``config`` and a file holding ``networks``
    (names) build (:meth:`TPSMMNetworks.for_networks`), made on the meta device (no memory)."""
    with torch.device("meta"):
        model = TPSMMNetworks.for_networks(config, networks)
    return {name: {k: tuple(v.shape) for k, v in getattr(model, name).state_dict().items()}
            for name in model.present_networks()}


def check_header_shapes(config: ModelConfig, found: dict[str, dict[str, tuple[int, ...]]], *, source: str) -> None:
    """Raise ``ValueError`` (naming ``source`` and the first differing ``network.key``) unless the file's tensors
    ``found`` are exactly what ``config`` builds; also refuse absurd sizes before building anything."""
    total = sum(math.prod(s) for group in found.values() for s in group.values())
    if total > MAX_PARAMETERS:
        raise ValueError(f"{source}: holds {total:,} parameters, more than any TPSMM ({MAX_PARAMETERS:,} at most)")
    want = expected_shapes(config, found)
    for net, tensors in found.items():
        if net not in want:
            raise ValueError(f"{source}: has {net} tensors, which its config does not use")
        for key, shape in tensors.items():
            if key not in want[net]:
                raise ValueError(f"{source}: unexpected key {net}.{key} {shape} for its config")
        for key, shape in want[net].items():
            if key not in tensors:
                raise ValueError(f"{source}: {net} is missing key {net}.{key} that its config needs")
            if tensors[key] != shape:
                raise ValueError(f"{source}: shape mismatch for {net}.{key}: the file has {tensors[key]}, "
                                 f"its config expects {shape}")


def read_header_shapes(path: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """:func:`header_shapes`, with safetensors' own errors turned into ``ValueError`` naming the file."""
    try:
        return header_shapes(path)
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None
