"""API-format prompts: loading, ``--set`` overrides and validation against a server's node schemas.

Everything here runs before anything is queued, so a bad workflow, ``--set`` or batch column is
refused with one line naming the node and the input. The checks are those of ComfyUI's own
``validate_inputs`` that need no node code: known node types, required inputs present, links to an
existing output of a matching type, constants of the right kind and within ``min``/``max``, and at
least one output node.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass

from .schemas import (InputSpec, WorkflowError, combo_options, inputs_of, is_media, is_ui_format, is_widget, pack_hint,
                      ui_to_api)

__all__ = ["RenderError", "Override", "parse_override", "load_workflow", "node_label", "resolve_node",
           "check_target", "apply_overrides", "validate", "media_inputs"]


class RenderError(RuntimeError):
    """A workflow cannot be rendered; the one-line message names the file, node or argument."""


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


def load_workflow(path: str, schemas: dict) -> dict:
    """Read an API-format workflow; a UI-format one is converted with the served ``schemas``."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise RenderError(f"{path}: workflow file not found") from None
    except IsADirectoryError:
        raise RenderError(f"{path}: is a folder, not a workflow file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RenderError(f"{path}: not a JSON workflow ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if is_ui_format(data):
        try:
            data = ui_to_api(data, schemas)
        except (WorkflowError, TypeError, ValueError) as exc:
            raise RenderError(f"{path}: UI-format workflow: {exc}") from None
    nodes_ok = isinstance(data, dict) and all(
        isinstance(v, dict) and isinstance(v.get("class_type"), str) and isinstance(v.get("inputs", {}), dict)
        for v in data.values())
    if not data or not nodes_ok:
        raise RenderError(f"{path}: not a ComfyUI workflow (expected the API format {{id: {{class_type, inputs}}}} "
                          "from 'Export (API)', or a saved UI workflow)")
    return {str(k): v for k, v in data.items()}


def node_label(prompt: dict, nid: str) -> str:
    node = prompt[nid]
    title = (node.get("_meta") or {}).get("title")
    plain = lambda t: t.replace(" ", "").replace("_", "").lower()  # noqa: E731  (default titles add nothing)
    extra = f" '{title}'" if isinstance(title, str) and plain(title) != plain(node["class_type"]) else ""
    return f"node {nid} ({node['class_type']}{extra})"


def resolve_node(prompt: dict, ref: str, *, what: str = "--set") -> str:
    """Node id for an id, a ``_meta.title`` or a class_type that names exactly one node."""
    if ref in prompt:
        return ref
    for key in (lambda n: (n.get("_meta") or {}).get("title"), lambda n: n["class_type"]):
        hits = [nid for nid, n in prompt.items() if key(n) == ref]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise RenderError(f"{what} {ref}: {len(hits)} nodes match ({', '.join(hits)}); use the node id")
    raise RenderError(f"{what} {ref}: no node with this id, title or type in the workflow")


def check_target(prompt: dict, schemas: dict, node: str, name: str, *, what: str = "--set") -> str:
    """The node id that ``node.name`` sets; :class:`RenderError` when it names no value input."""
    nid = resolve_node(prompt, node, what=what)
    schema = schemas.get(prompt[nid]["class_type"])
    if schema is None:
        return nid   # reported by validate() with the pack hint
    specs = inputs_of(schema)
    if name not in specs:
        raise RenderError(f"{what} {node}.{name}: {node_label(prompt, nid)} has no input {name!r} "
                          f"(inputs: {', '.join(specs) or 'none'})")
    if not is_widget(specs[name]):
        raise RenderError(f"{what} {node}.{name}: input {name!r} is a {specs[name].kind} socket, not a value")
    return nid


def apply_overrides(prompt: dict, overrides, schemas: dict, *, what: str = "--set") -> dict:
    """A copy of ``prompt`` with each override's constant set (replacing a link if there was one)."""
    out = copy.deepcopy(prompt)
    for o in overrides:
        nid = check_target(out, schemas, o.node, o.input, what=what)
        out[nid].setdefault("inputs", {})[o.input] = o.value
    return out


def _coerce(value, kind: str):
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
        if not isinstance(value, (bool, int)):
            raise ValueError
        return bool(value)
    if kind == "STRING" and not isinstance(value, (str, int, float)):
        raise ValueError
    return str(value) if kind == "STRING" else value


def _types_match(out_type: str, in_type) -> bool:
    if isinstance(in_type, list) or in_type in ("*", "COMBO") or out_type == "*":
        return True
    return bool(set(str(out_type).split(",")) & set(str(in_type).split(",")))


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def validate(prompt: dict, schemas: dict, *, server: str = "the server") -> dict:
    """Check ``prompt`` against ``schemas``; returns it with constants coerced (INT "3" -> 3)."""
    for nid, node in prompt.items():
        if node["class_type"] not in schemas:
            raise RenderError(f"{node_label(prompt, nid)}: node type not available on {server}; "
                              f"{pack_hint(node['class_type'])}")
    if not any(schemas[n["class_type"]].get("output_node") for n in prompt.values()):
        raise RenderError("the workflow has no output node (SaveVideo, SaveImage, ...); nothing would be written")
    out = copy.deepcopy(prompt)
    for nid, node in out.items():
        label, inputs = node_label(prompt, nid), node.setdefault("inputs", {})
        for name, spec in inputs_of(schemas[node["class_type"]]).items():
            if name not in inputs:
                if spec.required:
                    raise RenderError(f"{label}: required input {name!r} is missing")
                continue
            if _is_link(inputs[name]):
                _check_link(prompt, schemas, label, name, spec, inputs[name])
            elif not is_media(spec):
                inputs[name] = _check_constant(label, spec, inputs[name])
    return out


def _check_link(prompt, schemas, label, name, spec, value) -> None:
    src = str(value[0])
    if src not in prompt:
        raise RenderError(f"{label}: input {name!r} is linked to node {src}, which is not in the workflow")
    outputs = schemas[prompt[src]["class_type"]].get("output") or []
    if not 0 <= value[1] < len(outputs):
        raise RenderError(f"{label}: input {name!r} is linked to output {value[1]} of {node_label(prompt, src)}, "
                          f"which has {len(outputs)} output(s)")
    if not _types_match(outputs[value[1]], spec.kind):
        raise RenderError(f"{label}: input {name!r} expects {spec.kind} but is linked to a {outputs[value[1]]} "
                          f"output of {node_label(prompt, src)}")


def _check_constant(label: str, spec: InputSpec, value):
    kind = "COMBO" if combo_options(spec) is not None else spec.kind
    if isinstance(value, (list, dict)) or value is None:
        raise RenderError(f"{label}: input {spec.name!r}: expected a {str(kind).lower()} value, got {value!r}")
    try:
        v = _coerce(value, kind)
    except (TypeError, ValueError):
        raise RenderError(f"{label}: input {spec.name!r}: expected {str(kind).lower()}, got {value!r}") from None
    options = combo_options(spec)
    if options and v not in options:
        shown = ", ".join(map(str, options[:8])) + (" ..." if len(options) > 8 else "")
        raise RenderError(f"{label}: input {spec.name!r}: {v!r} is not one of the server's choices ({shown})")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "min" in spec.options and v < spec.options["min"]:
            raise RenderError(f"{label}: input {spec.name!r}: {v} is below the minimum {spec.options['min']}")
        if "max" in spec.options and v > spec.options["max"]:
            raise RenderError(f"{label}: input {spec.name!r}: {v} is above the maximum {spec.options['max']}")
    return v


def media_inputs(prompt: dict, schemas: dict) -> list[tuple[str, str]]:
    """``[(node_id, input)]`` of the inputs that name a media file (LoadImage ``image``, LoadVideo ``file``...)."""
    return [(nid, name) for nid, node in prompt.items()
            for name, spec in inputs_of(schemas.get(node["class_type"], {})).items()
            if is_media(spec) and isinstance(node.get("inputs", {}).get(name), str)]

