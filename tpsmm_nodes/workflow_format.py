"""ComfyUI workflow files: the UI format (what the editor saves) and the API format (what ``/prompt`` runs).

API format: ``{node_id: {"class_type": str, "inputs": {name: constant | [src_id, out_index]},
"_meta": {"title": str}}}``.

UI format (version 0.4): ``nodes`` with positional ``widgets_values`` and socket ``inputs``/``outputs``,
plus ``links = [[link_id, from_node, from_slot, to_node, to_slot, type], ...]``. Which inputs are
widgets, and in which order, comes from the node classes' ``INPUT_TYPES``: every INT/FLOAT/STRING/
BOOLEAN/COMBO input that is not ``forceInput`` owns one ``widgets_values`` entry (in required, then
optional order), followed by one extra entry for ``control_after_generate`` and for file-upload
combos (``image_upload``/``video_upload`` store ``"image"``), as ComfyUI's frontend writes them.
"""
from __future__ import annotations

from collections import defaultdict

__all__ = ["WorkflowError", "is_ui_format", "input_specs", "is_widget", "ui_to_api", "api_to_ui"]

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


class WorkflowError(ValueError):
    """A workflow file is malformed or uses a node this tool does not know."""


def is_ui_format(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def input_specs(cls) -> list[tuple[str, object, dict, bool]]:
    """``[(name, type, options, required)]`` of a node class in ComfyUI's order (required, then optional)."""
    types = cls.INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, spec in (types.get(section) or {}).items():
            kind = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out.append((name, kind, opts, section == "required"))
    return out


def is_widget(kind, opts: dict) -> bool:
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not opts.get("forceInput")


def _extra_values(kind, opts: dict) -> int:
    upload = opts.get("image_upload") or opts.get("video_upload")
    return int(bool(opts.get("control_after_generate"))) + int(bool(upload))


def _extra_value(kind, opts: dict):
    return "image" if (opts.get("image_upload") or opts.get("video_upload")) else "fixed"


def ui_to_api(ui: dict, registry: dict) -> dict:
    """Convert a UI-format workflow to API format using ``registry`` (class_type -> node class)."""
    links = {}
    for link in ui.get("links", []):
        link_id, src, src_slot = link[0], link[1], link[2]
        links[link_id] = [str(src), int(src_slot)]
    prompt = {}
    for node in ui["nodes"]:
        kind, nid, mode = node.get("type"), str(node.get("id")), node.get("mode", 0)
        if mode == 2:  # muted
            continue
        if mode == 4:
            raise WorkflowError(f"node {nid} ({kind}) is bypassed; remove it or export the workflow in API format")
        if kind not in registry:
            raise WorkflowError(f"node {nid}: unknown node type {kind!r} (export the workflow in API format, or run "
                                "it on a ComfyUI server with --server)")
        linked = {i["name"]: i["link"] for i in node.get("inputs", []) if i.get("link") is not None}
        values, pos, inputs = list(node.get("widgets_values") or []), 0, {}
        for name, k, opts, _ in input_specs(registry[kind]):
            if is_widget(k, opts):
                if pos < len(values):
                    inputs[name] = values[pos]
                pos += 1 + _extra_values(k, opts)
            if name in linked:
                if linked[name] not in links:
                    raise WorkflowError(f"node {nid}: input {name!r} refers to missing link {linked[name]}")
                inputs[name] = list(links[linked[name]])
        prompt[nid] = {"class_type": kind, "inputs": inputs, "_meta": {"title": node.get("title", kind)}}
    return prompt


def _depths(prompt: dict) -> dict:
    depth = {}

    def visit(nid, seen=()):
        if nid not in depth:
            srcs = [v[0] for v in prompt[nid]["inputs"].values() if isinstance(v, list)]
            depth[nid] = 1 + max((visit(s, seen + (nid,)) for s in srcs), default=-1)
        return depth[nid]
    for nid in prompt:
        visit(nid)
    return depth


def api_to_ui(prompt: dict, registry: dict, *, column_width: int = 360, row_height: int = 260) -> dict:
    """Build a UI-format workflow (laid out in columns by graph depth) from an API prompt."""
    depth, rows = _depths(prompt), defaultdict(int)
    links, out_links = [], defaultdict(list)
    for nid in sorted(prompt, key=int):
        for slot, (name, k, opts, _) in enumerate(input_specs(registry[prompt[nid]["class_type"]])):
            value = prompt[nid]["inputs"].get(name)
            if isinstance(value, list):
                src, src_slot = value
                out_type = registry[prompt[src]["class_type"]].RETURN_TYPES[src_slot]
                links.append([len(links) + 1, int(src), src_slot, int(nid), name, out_type])
                out_links[(src, src_slot)].append(len(links))
    nodes = []
    order = sorted(prompt, key=lambda n: (depth[n], int(n)))
    for position, nid in enumerate(order):
        entry = prompt[nid]
        cls = registry[entry["class_type"]]
        sockets, widget_inputs, widgets = [], [], []
        for name, k, opts, _ in input_specs(cls):
            value = entry["inputs"].get(name)
            link = next((ln[0] for ln in links if ln[3] == int(nid) and ln[4] == name), None)
            if is_widget(k, opts):
                default = opts.get("default", (k[0] if isinstance(k, list) and k else None))
                widgets.append(default if isinstance(value, list) or value is None else value)
                widgets += [_extra_value(k, opts)] * _extra_values(k, opts)
                widget_inputs.append({"name": name, "type": "COMBO" if isinstance(k, list) else k,
                                      "widget": {"name": name}, "link": link})
            else:
                sockets.append({"name": name, "type": k, "link": link})
        inputs = sockets + widget_inputs  # the frontend (1.16+) lists sockets first, then widget inputs
        names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
        outputs = [{"name": n, "type": t, "links": out_links.get((nid, i), []), "slot_index": i}
                   for i, (n, t) in enumerate(zip(names, cls.RETURN_TYPES))]
        col = depth[nid]
        nodes.append({"id": int(nid), "type": entry["class_type"], "pos": [col * column_width, rows[col] * row_height],
                      "size": [column_width - 40, row_height - 40], "flags": {}, "order": position, "mode": 0,
                      "inputs": inputs, "outputs": outputs,
                      "title": entry.get("_meta", {}).get("title", entry["class_type"]),
                      "properties": {"Node name for S&R": entry["class_type"]}, "widgets_values": widgets})
        rows[col] += 1
    ui_links = []
    for link_id, src, src_slot, dst, name, out_type in links:
        dst_inputs = next(n["inputs"] for n in nodes if n["id"] == dst)
        ui_links.append([link_id, src, src_slot, dst, [i["name"] for i in dst_inputs].index(name), out_type])
    return {"id": "00000000-0000-4000-8000-000000000000", "revision": 0, "last_node_id": max(int(n) for n in prompt),
            "last_link_id": len(links), "nodes": nodes, "links": ui_links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4}
