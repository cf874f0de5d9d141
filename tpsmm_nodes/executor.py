"""Run an API-format workflow without ComfyUI: the TPSMM nodes plus the headless core stand-ins.

Like ComfyUI, nodes run in dependency order under ``torch.inference_mode()``, only nodes feeding an
output node run, and output nodes report ``{"ui": {...}}`` (the ``/history`` outputs). Intermediate
results are dropped as soon as their last consumer has run. Loaded checkpoints are kept between
:meth:`Executor.run` calls with the same loader inputs (batch rendering loads a model once). If a
run fails, the files it already wrote are deleted, so a job leaves all of its outputs or none.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import torch

from .graph import RenderError, execution_order, node_label, validate
from .headless_nodes import HEADLESS_NODES, HeadlessContext

__all__ = ["RenderResult", "Executor", "default_registry", "one_line"]

CACHEABLE = frozenset({"TPSMM_LoadCheckpoint"})


def default_registry() -> dict:
    """class_type -> class for everything ``tpsmm render`` can run."""
    from . import NODE_CLASS_MAPPINGS

    return {**HEADLESS_NODES, **NODE_CLASS_MAPPINGS}


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (ValueError, RuntimeError, OSError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class RenderResult:
    """What a run produced.

    Attributes:
        outputs: ``{node_id: ui dict}`` of the output nodes (as in ComfyUI's ``/history``).
        files: paths of the files written, in order.
    """

    outputs: dict = field(default_factory=dict)
    files: list = field(default_factory=list)


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


class Executor:
    """Headless runner.

    Args:
        input_dir: folder that relative LoadImage/LoadVideo names are read from.
        output_dir: folder the save nodes write into (subfolders from ``filename_prefix``).
        registry: class_type -> node class (default: :func:`default_registry`).
    """

    def __init__(self, *, input_dir: str = ".", output_dir: str = "output", registry: dict | None = None):
        self.registry = registry or default_registry()
        self.ctx = HeadlessContext(input_dir=os.path.abspath(input_dir), output_dir=os.path.abspath(output_dir))
        self._cache: dict = {}

    def _instance(self, cls):
        return cls(self.ctx) if cls in HEADLESS_NODES.values() else cls()

    def _call(self, nid: str, cls, kwargs: dict, prompt: dict):
        hidden = (cls.INPUT_TYPES().get("hidden") or {})
        for name, what in hidden.items():
            kwargs[name] = {"PROMPT": prompt, "UNIQUE_ID": nid}.get(what if isinstance(what, str) else what[0])
        key = None
        if prompt[nid]["class_type"] in CACHEABLE:
            key = (prompt[nid]["class_type"], tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
            if key in self._cache:
                return self._cache[key]
        result = getattr(self._instance(cls), cls.FUNCTION)(**kwargs)
        if key is not None:
            self._cache = {key: result}
        return result

    def run(self, prompt: dict) -> RenderResult:
        """Validate and execute ``prompt``; :class:`RenderError` names the node that failed."""
        constants = validate(prompt, self.registry, unsupported_hint="; run it in ComfyUI with --server URL")
        order = execution_order(prompt, self.registry)
        uses = Counter(str(v[0]) for nid in order for v in prompt[nid].get("inputs", {}).values() if _is_link(v))
        values, result = {}, RenderResult()
        try:
            with torch.inference_mode():
                for nid in order:
                    cls, inputs = self.registry[prompt[nid]["class_type"]], prompt[nid].get("inputs", {})
                    kwargs = dict(constants[nid])
                    kwargs.update({k: values[str(v[0])][v[1]] for k, v in inputs.items() if _is_link(v)})
                    try:
                        out = self._call(nid, cls, kwargs, prompt)
                    except RenderError:
                        raise
                    except Exception as exc:
                        raise RenderError(f"{node_label(prompt, nid)}: {one_line(exc)}") from exc
                    if isinstance(out, dict):
                        ui, out = out.get("ui"), out.get("result", ())
                        if ui:
                            result.outputs[nid] = ui
                            result.files += [os.path.join(self.ctx.output_dir, f.get("subfolder", ""), f["filename"])
                                             for key in ("images", "gifs", "videos") for f in ui.get(key, [])
                                             if f.get("type", "output") == "output"]
                    values[nid] = tuple(out or ())
                    for v in inputs.values():
                        if _is_link(v):
                            uses[str(v[0])] -= 1
                            if uses[str(v[0])] == 0:
                                values.pop(str(v[0]), None)
        except BaseException:
            for path in result.files:
                if os.path.isfile(path):
                    os.remove(path)
            raise
        return result
