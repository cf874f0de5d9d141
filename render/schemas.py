"""Node schemas as a ComfyUI server serves them (``GET /object_info``), and UI -> API conversion with them.

A schema is the ``/object_info`` entry of one node type: ``input`` (``required``/``optional``/``hidden``
sections of ``name: [type, options]``), ``input_order``, ``output`` (types), ``output_node`` and
``python_module`` (``nodes``/``comfy_extras.*`` for ComfyUI's own nodes, ``custom_nodes.<pack>`` for
packs). A COMBO input's type is either the list of choices (classic nodes) or ``"COMBO"`` with
``options["options"]`` (V3 nodes).

UI format (what the editor saves, version 0.4): ``nodes`` with positional ``widgets_values`` and socket
``inputs``, plus ``links = [[link_id, from_node, from_slot, to_node, to_slot, type], ...]``. Every
INT/FLOAT/STRING/BOOLEAN/COMBO input that is not ``forceInput`` owns one ``widgets_values`` entry in
``input_order``, followed by one extra entry for ``control_after_generate`` (and INT ``seed``/``noise_seed``)
and for upload combos, as ComfyUI's frontend writes them.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InputSpec", "WorkflowError", "inputs_of", "combo_options", "is_widget", "is_media", "is_ui_format",
           "ui_to_api", "pack_hint"]

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_KEYS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
# node-name prefixes of well-known packs, for "install ..." hints
KNOWN_PACKS = {"TPSMM_": "tpsmm (this pack)", "VHS_": "ComfyUI-VideoHelperSuite", "Upscale": "an upscaler pack",
               "FaceRestore": "a face-restoration pack (e.g. facerestore_cf)", "Reactor": "ComfyUI-ReActor"}


class WorkflowError(ValueError):
    """A workflow file is malformed or does not fit the server's node schemas."""


@dataclass(frozen=True)
class InputSpec:
    """One input of a node type: ``kind`` (type name, or the list of choices), ``options``, ``required``."""

    name: str
    kind: object
    options: dict
    required: bool


def inputs_of(schema: dict) -> dict[str, InputSpec]:
    """``{name: InputSpec}`` of the visible (required, then optional) inputs in the server's order."""
    sections, order = schema.get("input") or {}, schema.get("input_order") or {}
    out = {}
    for section in ("required", "optional"):
        specs = sections.get(section) or {}
        for name in order.get(section) or list(specs):
            spec = specs.get(name)
            if not isinstance(spec, (list, tuple)) or not spec:
                continue
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out[name] = InputSpec(name, spec[0], opts, section == "required")
    return out


def combo_options(spec: InputSpec) -> list | None:
    if isinstance(spec.kind, list):
        return spec.kind
    if spec.kind == "COMBO":
        return list(spec.options.get("options") or [])
    return None


def is_widget(spec: InputSpec) -> bool:
    return (isinstance(spec.kind, list) or spec.kind in WIDGET_TYPES) and not spec.options.get("forceInput")


def is_media(spec: InputSpec) -> bool:
    """An input that names a file in the server's input folder (LoadImage ``image``, LoadVideo ``file``...)."""
    return any(spec.options.get(k) for k in UPLOAD_KEYS)


def _extra_values(spec: InputSpec) -> int:
    control = spec.options.get("control_after_generate") or (spec.kind == "INT" and spec.name in ("seed", "noise_seed"))
    return int(bool(control)) + int(is_media(spec))


def is_ui_format(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def pack_hint(class_type: str) -> str:
    for prefix, pack in KNOWN_PACKS.items():
        if class_type.startswith(prefix):
            return f"install {pack} on the server"
    return "install the custom node pack that provides it on the server"


def ui_to_api(ui: dict, schemas: dict) -> dict:
    """Convert a UI-format workflow to API format with the served ``schemas`` (class_type -> schema)."""
    links = {}
    for link in ui.get("links") or []:
        if not isinstance(link, list) or len(link) < 5:
            raise WorkflowError(f"malformed link {link!r} (expected [id, from_node, from_slot, to_node, to_slot, type])")
        links[link[0]] = [str(link[1]), int(link[2])]
    prompt = {}
    for node in ui["nodes"]:
        if not isinstance(node, dict) or "type" not in node or "id" not in node:
            raise WorkflowError(f"malformed node entry {str(node)[:80]!r} (expected an object with id and type)")
        kind, nid, mode = node["type"], str(node["id"]), node.get("mode", 0)
        if mode == 2 or kind in ("Note", "MarkdownNote", "Reroute", "PrimitiveNode"):
            if kind in ("Reroute", "PrimitiveNode") and mode != 2:
                raise WorkflowError(f"node {nid} ({kind}) is a frontend-only node; export the workflow in API format")
            continue
        if mode == 4:
            raise WorkflowError(f"node {nid} ({kind}) is bypassed; remove it or export the workflow in API format")
        if kind not in schemas:
            raise WorkflowError(f"node {nid}: unknown node type {kind!r}; {pack_hint(kind)}")
        linked = {i.get("name"): i.get("link") for i in node.get("inputs") or [] if i.get("link") is not None}
        values, pos, inputs = list(node.get("widgets_values") or []), 0, {}
        if isinstance(node.get("widgets_values"), dict):   # some packs save widgets by name
            values, inputs = [], {k: v for k, v in node["widgets_values"].items() if k in inputs_of(schemas[kind])}
        for name, spec in inputs_of(schemas[kind]).items():
            if is_widget(spec) and pos < len(values):
                inputs[name] = values[pos]
            if is_widget(spec):
                pos += 1 + _extra_values(spec)
            if name in linked:
                if linked[name] not in links:
                    raise WorkflowError(f"node {nid}: input {name!r} refers to missing link {linked[name]}")
                inputs[name] = list(links[linked[name]])
        prompt[nid] = {"class_type": kind, "inputs": inputs, "_meta": {"title": node.get("title") or kind}}
    return prompt
