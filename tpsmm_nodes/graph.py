"""API-format prompts: loading, ``--set`` overrides, validation by ComfyUI's rules, execution order.

Validation follows ComfyUI's ``execution.validate_inputs``: required inputs present, links point at an
existing node output of a matching type, constants coerced to INT/FLOAT/STRING/BOOLEAN, ``min``/``max``
and combo lists enforced unless the class's ``VALIDATE_INPUTS`` names the input, then
``VALIDATE_INPUTS`` itself. Only nodes that feed an output node (``OUTPUT_NODE = True``) run.
"""
from __future__ import annotations

import copy
import inspect
import json
from dataclasses import dataclass

from .workflow_format import WorkflowError, input_specs, is_ui_format, is_widget, ui_to_api

__all__ = ["RenderError", "Override", "parse_override", "load_prompt", "node_label", "resolve_node", "apply_overrides",
           "validate", "execution_order"]


class RenderError(RuntimeError):
    """A workflow cannot be rendered; the one-line message names the node."""


@dataclass(frozen=True)
class Override:
    """``NODE.input=VALUE`` from ``--set`` or a batch column: ``node`` is an id, a title or a class_type."""

    node: str
    input: str
    value: object


def parse_override(text: str) -> Override:
    target, sep, value = text.partition("=")
    node, dot, name = target.strip().rpartition(".")
    if not sep or not dot or not node or not name:
        raise RenderError(f"--set {text!r}: expected NODE.input=VALUE, e.g. 3.ckpt_name=vox.safetensors")
    return Override(node=node, input=name, value=value)


def load_prompt(path: str, registry: dict) -> dict:
    """Read an API-format workflow (a UI-format file is converted when all its nodes are known)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise RenderError(f"{path}: workflow file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RenderError(f"{path}: not a JSON workflow ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if is_ui_format(data):
        try:
            data = ui_to_api(data, registry)
        except WorkflowError as exc:
            raise RenderError(f"{path}: UI-format workflow: {exc}") from None
    nodes_ok = isinstance(data, dict) and all(isinstance(v, dict) and "class_type" in v for v in data.values())
    if not data or not nodes_ok:
        raise RenderError(f"{path}: not an API-format workflow (expected {{id: {{class_type, inputs}}}}; "
                          "use 'Export (API)' in ComfyUI)")
    return data


def node_label(prompt: dict, nid: str) -> str:
    node = prompt[nid]
    title = node.get("_meta", {}).get("title")
    plain = lambda t: t.replace(" ", "").replace("_", "").lower()  # noqa: E731  (default titles add nothing)
    extra = f" '{title}'" if title and plain(title) != plain(node["class_type"]) else ""
    return f"node {nid} ({node['class_type']}{extra})"


def resolve_node(prompt: dict, ref: str) -> str:
    """Node id for an id, a ``_meta.title`` or a class_type that names exactly one node."""
    if ref in prompt:
        return ref
    for key in (lambda n: n.get("_meta", {}).get("title"), lambda n: n["class_type"]):
        hits = [nid for nid, n in prompt.items() if key(n) == ref]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise RenderError(f"--set {ref}: {len(hits)} nodes match ({', '.join(hits)}); use the node id")
    raise RenderError(f"--set {ref}: no node with this id, title or type in the workflow")


def apply_overrides(prompt: dict, overrides, registry: dict) -> dict:
    """A copy of ``prompt`` with each override's constant set (replacing a link if there was one)."""
    out = copy.deepcopy(prompt)
    for o in overrides:
        nid = resolve_node(out, o.node)
        cls = registry.get(out[nid]["class_type"])
        specs = {name: (kind, opts) for name, kind, opts, _ in input_specs(cls)} if cls else {}
        if cls and o.input not in specs:
            raise RenderError(f"--set {o.node}.{o.input}: {node_label(out, nid)} has no input {o.input!r} "
                              f"(inputs: {', '.join(specs)})")
        if cls and not is_widget(*specs[o.input]):
            raise RenderError(f"--set {o.node}.{o.input}: input {o.input!r} is a {specs[o.input][0]} socket, "
                              "not a value")
        out[nid].setdefault("inputs", {})[o.input] = o.value
    return out


def _coerce(value, kind, name: str):
    try:
        if kind == "INT":
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if kind == "FLOAT":
            return float(value)
        if kind == "BOOLEAN":
            if isinstance(value, str):
                if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.strip().lower() in ("true", "1", "yes")
            return bool(value)
        return value if kind != "STRING" else str(value)
    except (TypeError, ValueError):
        raise RenderError(f"input {name!r}: expected {kind.lower()}, got {value!r}") from None


def _types_match(out_type: str, in_type) -> bool:
    if isinstance(in_type, list) or in_type in ("*", "COMBO") or out_type == "*":
        return True
    return bool(set(out_type.split(",")) & set(str(in_type).split(",")))


def validate(prompt: dict, registry: dict, *, unsupported_hint: str = "") -> dict:
    """Check every node that will run; returns ``{node_id: {input: constant}}`` with coerced constants."""
    for nid, node in prompt.items():
        if node["class_type"] not in registry:
            raise RenderError(f"{node_label(prompt, nid)}: cannot run this node type here; tpsmm render runs the TPSMM "
                              f"nodes and {', '.join(sorted(n for n in registry if not n.startswith('TPSMM_')))}"
                              f"{unsupported_hint}")
    constants = {}
    for nid in execution_order(prompt, registry):
        cls, node = registry[prompt[nid]["class_type"]], prompt[nid]
        inputs, label = node.get("inputs", {}), node_label(prompt, nid)
        validated = set(inspect.signature(cls.VALIDATE_INPUTS).parameters) if hasattr(cls, "VALIDATE_INPUTS") else set()
        consts = {}
        for name, kind, opts, required in input_specs(cls):
            if name not in inputs:
                if required:
                    raise RenderError(f"{label}: required input {name!r} is missing")
                continue
            value = inputs[name]
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                src = str(value[0])
                if src not in prompt:
                    raise RenderError(f"{label}: input {name!r} is linked to node {src}, which is not in the workflow")
                returns = registry[prompt[src]["class_type"]].RETURN_TYPES
                if not 0 <= value[1] < len(returns):
                    raise RenderError(f"{label}: input {name!r} is linked to output {value[1]} of "
                                      f"{node_label(prompt, src)}, which has {len(returns)} output(s)")
                if not _types_match(returns[value[1]], kind):
                    raise RenderError(f"{label}: input {name!r} expects {kind} but is linked to a "
                                      f"{returns[value[1]]} output of {node_label(prompt, src)}")
                continue
            try:
                v = _coerce(value, "COMBO" if isinstance(kind, list) else kind, name)
            except RenderError as exc:
                raise RenderError(f"{label}: {exc}") from None
            if name not in validated:
                options = kind if isinstance(kind, list) else opts.get("options") if kind == "COMBO" else None
                if options is not None and v not in options:
                    shown = ", ".join(map(str, options[:8])) + (" ..." if len(options) > 8 else "")
                    raise RenderError(f"{label}: input {name!r}: {v!r} is not one of the choices ({shown or 'none'})")
                if "min" in opts and isinstance(v, (int, float)) and v < opts["min"]:
                    raise RenderError(f"{label}: input {name!r}: {v} is below the minimum {opts['min']}")
                if "max" in opts and isinstance(v, (int, float)) and v > opts["max"]:
                    raise RenderError(f"{label}: input {name!r}: {v} is above the maximum {opts['max']}")
            consts[name] = v
        if validated:
            args = {k: consts.get(k) for k in validated if k in consts or k in inputs}
            result = cls.VALIDATE_INPUTS(**args)
            if result is not True:
                raise RenderError(f"{label}: {result}")
        constants[nid] = consts
    return constants


def execution_order(prompt: dict, registry: dict) -> list[str]:
    """Nodes feeding an output node, each after its inputs; errors for no output or a cycle."""
    outputs = [nid for nid, n in prompt.items() if getattr(registry.get(n["class_type"]), "OUTPUT_NODE", False)]
    if not outputs:
        raise RenderError("the workflow has no output node (SaveVideo, SaveImage, ...); nothing would be written")
    order, state = [], {}

    def visit(nid: str, path: tuple) -> None:
        if state.get(nid) == "done":
            return
        if nid in path:
            raise RenderError(f"the workflow has a cycle through nodes {' -> '.join(path + (nid,))}")
        if nid not in prompt:
            raise RenderError(f"{node_label(prompt, path[-1])} is linked to node {nid}, which is not in the workflow")
        for value in prompt[nid].get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                visit(str(value[0]), path + (nid,))
        state[nid] = "done"
        order.append(nid)
    for nid in sorted(outputs, key=lambda n: (len(n), n)):
        visit(nid, ())
    return order
