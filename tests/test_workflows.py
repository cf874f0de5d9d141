"""The saved workflows: UI-format files that ComfyUI's editor can open, and their API-format twins."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpsmm.tpsmm_nodes.executor import default_registry
from tpsmm.tpsmm_nodes.graph import RenderError, apply_overrides, parse_override, validate
from tpsmm.tpsmm_nodes.headless_nodes import HEADLESS_NODES
from tpsmm.tpsmm_nodes.workflow_format import input_specs, is_widget, ui_to_api

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
NAMES = ("animate_basic", "animate_photo", "inspect_keypoints")
REGISTRY = default_registry()

# Inputs and outputs of ComfyUI v0.8.0's core nodes (GET /object_info), which the headless stand-ins copy.
COMFY_CORE = {
    "LoadImage": (["image"], ["IMAGE", "MASK"]),
    "LoadVideo": (["file"], ["VIDEO"]),
    "GetVideoComponents": (["video"], ["IMAGE", "AUDIO", "FLOAT"]),
    "CreateVideo": (["images", "fps", "audio"], ["VIDEO"]),
    "SaveVideo": (["video", "filename_prefix", "format", "codec"], []),
    "SaveImage": (["images", "filename_prefix"], []),
    "PreviewImage": (["images"], []),
}


@pytest.fixture(autouse=True)
def models_dir(tmp_path, monkeypatch):
    (tmp_path / "vox.safetensors").write_bytes(b"")  # validation only checks that the file exists
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(tmp_path))
    return tmp_path


def load(name):
    read = lambda suffix: json.loads((WORKFLOWS / f"{name}{suffix}.json").read_text())  # noqa: E731
    return read(""), read("_api")


@pytest.mark.parametrize("name", NAMES)
def test_ui_and_api_twins_agree(name):
    ui, api = load(name)
    converted = ui_to_api(ui, REGISTRY)
    assert set(converted) == set(api)
    for nid, node in api.items():
        assert converted[nid]["class_type"] == node["class_type"]
        assert converted[nid]["inputs"] == node["inputs"], nid
        assert converted[nid]["_meta"]["title"] == node["_meta"]["title"]


@pytest.mark.parametrize("name", NAMES)
def test_ui_format_is_well_formed(name):
    ui, _ = load(name)
    keys = {"nodes", "links", "groups", "config", "extra", "last_node_id", "last_link_id"}
    assert ui["version"] == 0.4 and keys <= set(ui)
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert ui["last_node_id"] == max(nodes) and ui["last_link_id"] == max(link[0] for link in ui["links"])
    for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
        out, inp = nodes[src]["outputs"][src_slot], nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id
        assert out["type"] == kind and (inp["type"] == kind or "widget" in inp)
    for node in ui["nodes"]:
        cls = REGISTRY[node["type"]]
        assert {"id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties",
                "widgets_values"} <= set(node)
        specs = input_specs(cls)
        widgets = [(n, k, o) for n, k, o, _ in specs if is_widget(k, o)]
        extra = sum(bool(o.get("image_upload") or o.get("video_upload")) for _, _, o in widgets)
        assert len(node["widgets_values"]) == len(widgets) + extra, node["type"]
        assert [o["type"] for o in node["outputs"]] == list(cls.RETURN_TYPES)
        assert {i["name"] for i in node["inputs"]} == {n for n, *_ in specs}
        for value, (wname, kind, opts) in zip(node["widgets_values"], widgets):
            if isinstance(kind, list) and node["type"].startswith("TPSMM_") and wname != "ckpt_name":
                assert value in kind, (node["type"], wname)


def test_headless_core_nodes_match_comfyui():
    for name, (inputs, outputs) in COMFY_CORE.items():
        cls = HEADLESS_NODES[name]
        assert [n for n, *_ in input_specs(cls)] == inputs, name
        assert list(cls.RETURN_TYPES) == outputs, name
        assert getattr(cls, "OUTPUT_NODE", False) == name.startswith(("Save", "Preview"))


@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_validates(name):
    _, api = load(name)
    constants = validate(api, REGISTRY)
    assert set(constants) == set(api)  # every node feeds an output
    assert {n["class_type"] for n in api.values()} <= set(REGISTRY)


def test_validation_errors_name_the_node():
    _, api = load("animate_basic")
    set_ = lambda *items: apply_overrides(api, [parse_override(s) for s in items], REGISTRY)  # noqa: E731
    with pytest.raises(RenderError, match=r"node 5 \(TPSMM_Animate\): input 'mode': 'fast' is not one of"):
        validate(set_("5.mode=fast"), REGISTRY)
    with pytest.raises(RenderError, match=r"node 5 \(TPSMM_Animate\): input 'batch_size': 0 is below the minimum 1"):
        validate(set_("TPSMM_Animate.batch_size=0"), REGISTRY)
    with pytest.raises(RenderError, match="has no input 'size'"):
        set_("5.size=3")
    with pytest.raises(RenderError, match="is a TPSMM_MODEL socket, not a value"):
        set_("5.model=x")
    with pytest.raises(RenderError, match="no node with this id, title or type"):
        set_("99.mode=relative")
    broken = json.loads(json.dumps(api))
    broken["5"]["inputs"]["source"] = ["3", 0]
    broken["5"]["inputs"]["model"] = ["1", 0]
    with pytest.raises(RenderError, match=r"node 5 .*'model' expects TPSMM_MODEL but is linked to a IMAGE output"):
        validate(broken, REGISTRY)
    del broken["5"]["inputs"]["model"]
    with pytest.raises(RenderError, match="required input 'model' is missing"):
        validate(broken, REGISTRY)
    foreign = json.loads(json.dumps(api))
    foreign["8"] = {"class_type": "KSampler", "inputs": {}}
    with pytest.raises(RenderError, match=r"node 8 \(KSampler\): cannot run this node type here"):
        validate(foreign, REGISTRY)
    with pytest.raises(RenderError, match=r"node 4 .*checkpoint 'gone.safetensors' not found in the tpsmm model"):
        validate(set_("4.ckpt_name=gone.safetensors"), REGISTRY)
    with pytest.raises(RenderError, match="no checkpoint chosen"):
        validate(set_("4.ckpt_name="), REGISTRY)
    with pytest.raises(RenderError, match="no output node"):
        validate({k: v for k, v in api.items() if k != "7"}, REGISTRY)
