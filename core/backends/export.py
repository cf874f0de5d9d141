"""``tpsmm export``: the networks as ONNX graphs in one folder, with a manifest that ties them to the model.

A folder written by :func:`export_graphs` holds ``keypoints.onnx``, ``generator.onnx``, ``avd.onnx``
(when the checkpoint has an AVD network; ``generator-bg.onnx`` only on request) and ``tpsmm-export.json``:
image size, K, the model id, a digest of every weight, the opset, the versions that wrote it, and each
graph's inputs, outputs and SHA-256. Every graph also carries ``tpsmm_*`` metadata properties, so a lone
``.onnx`` says what it is. With ``internal=True`` (the backends' cache, :mod:`.cache`) the folder also holds
the internal graphs (:data:`~.graphs.INTERNAL`: the source graph and the generator on its outputs), listed and
checksummed in the same manifest. :func:`check_export` refuses a folder or graph that is not ours, belongs to
another model or size, or was truncated (checksum), each with one line.

The folder is written next to its destination and renamed into place when complete: an error leaves
nothing half-written, and an existing folder is replaced only with ``overwrite`` and only when it is an
earlier export (or empty).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import warnings

import torch

from ..networks.subpixel import subpixel_upsampling
from .graphs import (CONTRACT, INTERNAL, AVDGraph, CachedGeneratorGraph, GeneratorGraph, KeypointsGraph, SourceGraph,
                     batch_axes, graph_io)
from .runtimes import BackendError

__all__ = ["MANIFEST", "OPSET", "FORMAT", "export_graphs", "check_export", "weights_digest", "code_digest",
           "graph_names"]

MANIFEST = "tpsmm-export.json"
OPSET = 17
FORMAT = "tpsmm-onnx/1"


def weights_digest(networks) -> str:
    """SHA-256 (first 20 hex digits) of the config and every weight of ``networks`` (the cache key)."""
    h = hashlib.sha256(repr(networks.config).encode())
    for name, tensor in sorted(networks.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def code_digest() -> str:
    """SHA-256 (first 12 hex digits) of the source that defines the graphs (networks, geometry, graph wrappers):
    part of the cache key, so a changed tpsmm never reuses graphs exported by another."""
    core = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for folder in ("networks", "geometry", "backends"):
        for name in sorted(os.listdir(os.path.join(core, folder))):
            if name.endswith(".py"):
                with open(os.path.join(core, folder, name), "rb") as f:
                    h.update(name.encode() + f.read())
    return h.hexdigest()[:12]


def graph_names(networks, *, background: bool = False, internal: bool = False) -> tuple[str, ...]:
    """The graphs an export of ``networks`` holds, in :data:`~.graphs.CONTRACT` order: the background variants only
    with ``background``, ``avd`` only when the model has one; with ``internal`` then :data:`~.graphs.INTERNAL`."""
    avd = networks.avd_network is not None
    return tuple(n for n in CONTRACT + (INTERNAL if internal else ())
                 if (background or not n.endswith("-bg")) and (avd or n != "avd"))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _examples(networks, name: str) -> tuple[torch.Tensor, ...]:
    s, n = networks.config.image_size, 5 * networks.config.num_tps
    gen = torch.Generator().manual_seed(0)
    kp = lambda b: torch.rand(b, n, 2, generator=gen) * 1.6 - 0.8  # noqa: E731
    if name == "keypoints":
        return (torch.rand(2, 3, s, s, generator=gen),)
    if name == "avd":
        return kp(2), kp(2)
    source = torch.rand(1, 3, s, s, generator=gen)
    if name == "source-cache":
        return (source,)
    cached = ()
    if name.startswith("generator-cached"):
        with torch.no_grad():
            cached = tuple(SourceGraph(networks)(source))
    bg = (torch.eye(3).expand(2, 3, 3).contiguous(),) if name.endswith("-bg") else ()
    return (source, *cached, kp(1), kp(2), *bg)


def _module(networks, name: str) -> torch.nn.Module:
    if name == "keypoints":
        return KeypointsGraph(networks)
    if name == "avd":
        return AVDGraph(networks)
    if name == "source-cache":
        return SourceGraph(networks)
    wrapper = CachedGeneratorGraph if name.startswith("generator-cached") else GeneratorGraph
    return wrapper(networks, background=name.endswith("-bg"))


def _export_one(networks, name: str, path: str, meta: dict[str, str]) -> None:
    import onnx

    inputs, outputs = graph_io(name, networks)
    dynamic = batch_axes(name, networks)
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on constant folding and Python values are about its own passes, not the user's model
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)     # the TorchScript exporter: chosen (dynamo=False)
        torch.onnx.export(_module(networks, name).eval(), _examples(networks, name), path, input_names=list(inputs),
                          output_names=list(outputs), dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    model = onnx.load(path)
    onnx.helper.set_model_props(model, {**meta, "tpsmm_graph": name})
    onnx.checker.check_model(model)
    onnx.save(model, path)


def export_graphs(networks, out_dir: str, *, overwrite: bool = False, background: bool = False,
                  internal: bool = False, progress=None) -> dict:
    """Export ``networks`` (a :class:`~tpsmm.core.model.TPSMMNetworks`) to ``out_dir``; returns the manifest.

    ``internal`` adds the backends' own graphs (see :func:`graph_names`); ``tpsmm export`` leaves it off.

    ``progress(message)`` is called before each graph. ``BackendError`` when ``out_dir`` exists and
    ``overwrite`` is off, or when it exists but is neither an earlier export nor empty.
    """
    import onnx

    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.lexists(out_dir):
        if not overwrite:
            raise BackendError(f"{out_dir}: already exists; pass --overwrite to replace it")
        if not os.path.isdir(out_dir) or os.path.islink(out_dir) or (
                os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, MANIFEST))):
            raise BackendError(f"{out_dir}: exists and is not a tpsmm export folder; refusing to replace it")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    nets = copy.deepcopy(networks).to("cpu", torch.float32).eval()
    cfg = nets.config
    digest = weights_digest(nets)
    subpixel_upsampling(nets)            # after the digest: it names the checkpoint's weights, not the graph's
    meta = {"tpsmm_format": FORMAT, "tpsmm_model_id": nets.model_id, "tpsmm_weights": digest,
            "tpsmm_image_size": str(cfg.image_size), "tpsmm_num_tps": str(cfg.num_tps)}
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.partial-", dir=parent)
    try:
        graphs = {}
        for name in graph_names(nets, background=background, internal=internal):
            if progress:
                progress(f"exporting {name}.onnx")
            path = os.path.join(tmp, f"{name}.onnx")
            _export_one(nets, name, path, meta)
            inputs, outputs = graph_io(name, nets)
            graphs[name] = {"file": f"{name}.onnx", "sha256": _sha256(path), "inputs": list(inputs),
                            "outputs": list(outputs)}
        manifest = {"format": FORMAT, "image_size": cfg.image_size, "num_tps": cfg.num_tps,
                    "model_id": nets.model_id, "weights": digest, "opset": OPSET,
                    "versions": {"torch": torch.__version__.split("+")[0],
                                 "onnx": onnx.__version__},
                    "graphs": graphs}
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
        os.chmod(tmp, 0o777 & ~_umask())
        if os.path.lexists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
        return manifest
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_export(folder: str, *, networks=None, graphs: tuple[str, ...] = ("keypoints", "generator"),
                 verify: bool = True) -> dict:
    """The manifest of the export ``folder`` after checking it holds ``graphs`` of ``networks``' model.

    ``BackendError`` (one line) when the folder or a graph is not a tpsmm export, belongs to another
    model or image size, is missing, or fails its checksum (truncated or modified). ``verify=False``
    skips the checksums.
    """
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise BackendError(f"{folder}: no {MANIFEST}; not a folder written by `tpsmm export`") from None
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path}: unreadable export manifest ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackendError(f"{path}: not a tpsmm export manifest (format {FORMAT} expected)")
    if networks is not None:
        cfg = networks.config
        if manifest.get("image_size") != cfg.image_size or manifest.get("num_tps") != cfg.num_tps:
            raise BackendError(f"{folder}: exported for size {manifest.get('image_size')} and K="
                               f"{manifest.get('num_tps')}; this model is size {cfg.image_size}, K={cfg.num_tps}")
        if manifest.get("weights") != weights_digest(networks):
            raise BackendError(f"{folder}: exported from another model (weights differ); export this checkpoint again")
    for name in graphs:
        entry = (manifest.get("graphs") or {}).get(name)
        if not isinstance(entry, dict):
            raise BackendError(f"{folder}: has no {name}.onnx; export again")
        file = os.path.join(folder, f"{name}.onnx")
        if not os.path.isfile(file):
            raise BackendError(f"{file}: missing; export again")
        if verify and _sha256(file) != entry.get("sha256"):
            raise BackendError(f"{file}: truncated or modified (checksum differs from {MANIFEST}); export again")
    return manifest
