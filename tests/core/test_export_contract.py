"""The export contract's additions (`torchscope.graph/1`, new keys only): `module` and
`line` on nodes, every node's `box` and the `badges` of a replayed backward (nothing
overlaps, the boxes are the panel's layout), `--collapse DEPTH` (module nodes whose op
counts add up), `script_backward` for the script's own last backward call, and the
SVG written without Qt (valid XML, the panel's colours and labels)."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from core.export import drawing, to_json, to_svg
from core.layout import badge_sizes, layout_graph
from core.style import STYLE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "resources" / "examples").glob("*.py"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from backward_scripts import SCRIPTS  # noqa: E402

SVG_NS = "{http://www.w3.org/2000/svg}"

SEQUENTIAL = """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
inputs = torch.randn(5, 3)
out = model(inputs)
loss = out.pow(2).mean()
"""

RESNET = """\
import torch, torchvision
model = torchvision.models.resnet18(num_classes=10)
inputs = torch.randn(2, 3, 32, 32)
loss = model(inputs).sum()
"""

TWO_CALLS = """\
import torch
w = torch.tensor([1., 2.], requires_grad=True)
y = (w * w).sum()
y.backward(retain_graph=True)
z = (w * 3).sum()
z.backward()
"""


def export(tmp_path: Path, out_name: str, script_text: str, *extra: str) -> Path:
    script = tmp_path / "script.py"
    script.write_text(script_text)
    out = tmp_path / out_name
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--export", str(out), str(script), *extra],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


def rectangles(data: dict) -> list[tuple[str, list[float]]]:
    """Every node box and badge box of an exported JSON document."""
    return ([(f"node {n['id']}", n["box"]) for n in data["nodes"]]
            + [(f"badge {b['node']}", b["box"]) for b in data.get("badges", [])])


def overlapping(rects: list[tuple[str, list[float]]]) -> list[tuple[str, str]]:
    rs = sorted(rects, key=lambda r: r[1][0])
    bad = []
    for i, (a, (ax, ay, aw, ah)) in enumerate(rs):
        for b, (bx, by, bw, bh) in rs[i + 1:]:
            if bx >= ax + aw:
                break
            if by < ay + ah and ay < by + bh:
                bad.append((a, b))
    return bad


def assert_boxes_are_the_panels(data: dict, graph, trace) -> None:
    """Each box is the panel's layout of this graph (default metrics, badges' room kept)."""
    layout = layout_graph(graph, below=badge_sizes(graph, trace))
    for n in data["nodes"]:
        b = layout.boxes[n["id"]]
        assert n["box"] == pytest.approx([b.x - b.w / 2, b.y - b.h / 2, b.w, b.h], abs=0.01), n["id"]
    for badge in data.get("badges", []):
        b = layout.below[badge["node"]]
        assert badge["box"] == pytest.approx([b.x - b.w / 2, b.y - b.h / 2, b.w, b.h], abs=0.01)
    assert {b["node"] for b in data.get("badges", [])} == set(layout.below)


# --- module and line -----------------------------------------------------------------

def test_module_and_line_on_a_sequential(tmp_path):
    data = json.loads(export(tmp_path, "g.json", SEQUENTIAL).read_text())
    ops = [n for n in data["nodes"] if n["kind"] == "op"]
    tensors = [n for n in data["nodes"] if n["kind"] == "tensor"]
    assert all("module" in n and "line" in n for n in ops)
    assert all("line" in n for n in tensors)
    modules = {(n["name"], n["module"]) for n in ops}
    assert {("AddmmBackward0", "model.0"), ("ReluBackward0", "model.1"), ("AddmmBackward0", "model.2"),
            ("PowBackward0", None), ("MeanBackward0", None)} <= modules
    assert ("AccumulateGrad", "model.0") in modules and ("AccumulateGrad", "model.2") in modules
    lines = {n["name"]: n["line"] for n in ops if n["name"] != "AccumulateGrad"}
    assert lines == {"AddmmBackward0": 5, "TBackward0": 5, "ReluBackward0": 5,
                     "PowBackward0": 6, "MeanBackward0": 6}
    by_name = {n["name"]: n for n in tensors}
    assert (by_name["inputs"]["line"], by_name["out"]["line"], by_name["loss"]["line"]) == (4, 5, 6)
    assert by_name["model.0.weight"]["line"] is None  # made inside torch, not by a line of the script


# --- boxes and badges ----------------------------------------------------------------

@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_boxes_and_badges_do_not_overlap(runner, example):
    result = runner.run(example.read_text(), filename=str(example), values=False)
    assert result.error is None, result.error
    data = json.loads(to_json(result.graph, result.backward, script_backward=True))
    assert len(rectangles(data)) == len(data["nodes"]) + len(data.get("badges", []))
    assert all(len(n["box"]) == 4 and n["box"][2] > 0 and n["box"][3] > 0 for n in data["nodes"])
    assert overlapping(rectangles(data)) == []
    assert_boxes_are_the_panels(data, result.graph, result.backward)
    if result.backward is not None and result.backward.steps:
        assert data["badges"]  # the script's own backward, shown done as the panel shows it


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_backward_script_boxes_and_badges_do_not_overlap(runner, name):
    root, code = SCRIPTS[name]
    result = runner.run(code, filename=f"{name}.py", backward=root, values=False)
    assert result.error is None, result.error
    data = json.loads(to_json(result.graph, result.backward))
    ids = {n["id"] for n in data["nodes"]}
    assert data["badges"] and all(b["node"] in ids for b in data["badges"])
    assert overlapping(rectangles(data)) == []
    assert_boxes_are_the_panels(data, result.graph, result.backward)


def test_cli_writes_boxes_and_badges_with_backward(tmp_path):
    root, code = SCRIPTS["bw_seed"]
    data = json.loads(export(tmp_path, "g.json", code, "--backward", root).read_text())
    assert all("box" in n for n in data["nodes"])
    badged = {b["node"] for b in data["badges"]}
    names = {n["id"]: n["name"] for n in data["nodes"]}
    assert {"x", "w", "MulBackward0"} <= {names[k] for k in badged}
    assert overlapping(rectangles(data)) == []
    assert "script_backward" not in data  # the backward was asked for, not the script's


def test_the_overlap_check_sees_an_overlap():
    assert overlapping([("a", [0, 0, 10, 10]), ("b", [5, 5, 10, 10])]) == [("a", "b")]
    assert overlapping([("a", [0, 0, 10, 10]), ("b", [10, 0, 10, 10]), ("c", [0, 10, 5, 5])]) == []


# --- --collapse ----------------------------------------------------------------------

def test_collapse_resnet18_to_depth_2(tmp_path):
    full = json.loads(export(tmp_path, "full.json", RESNET).read_text())
    data = json.loads(export(tmp_path, "g.json", RESNET, "--collapse", "2").read_text())
    boxes = [n for n in data["nodes"] if n["kind"] == "module"]
    modules = {n["name"]: n for n in boxes}  # each of these is called once by ResNet.forward
    assert len(modules) == len(boxes)
    assert {"model.conv1", "model.bn1", "model.layer1", "model.layer2", "model.layer3", "model.layer4",
            "model.fc"} <= set(modules)
    assert all(name.count(".") == 1 for name in modules)  # depth 2 exactly: nothing deeper is left
    assert modules["model.layer1"]["type"] == "Sequential" and modules["model.conv1"]["type"] == "Conv2d"
    assert all(m["ops"] > 0 for m in boxes)
    ops_full = sum(n["kind"] == "op" for n in full["nodes"])
    ops_outside = [n for n in data["nodes"] if n["kind"] == "op"]  # the model's own and the loss's
    assert all(n["module"] in (None, "model") for n in ops_outside)
    assert sum(m["ops"] for m in boxes) + len(ops_outside) == ops_full
    ids = {n["id"] for n in data["nodes"]}
    pairs = {(e["from"], e["to"]) for e in data["edges"]}
    assert all(a in ids and b in ids for a, b in pairs)
    for a, b in [("layer1", "layer2"), ("layer2", "layer3"), ("layer3", "layer4")]:
        assert (modules[f"model.{a}"]["id"], modules[f"model.{b}"]["id"]) in pairs
    assert overlapping(rectangles(data)) == []
    assert len(data["nodes"]) < len(full["nodes"]) / 5


def test_collapse_applies_to_dot_and_svg(tmp_path):
    dot = export(tmp_path, "g.dot", SEQUENTIAL, "--collapse", "1").read_text()
    assert '"m:model' in dot and "Sequential" in dot and "AddmmBackward0" not in dot
    svg = subprocess.run(["dot", "-Tsvg", str(tmp_path / "g.dot")], capture_output=True, text=True)
    assert svg.returncode == 0, svg.stderr
    root = ET.parse(export(tmp_path, "g.svg", SEQUENTIAL, "--collapse", "1")).getroot()
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert "model" in texts and "Sequential" in texts and "AddmmBackward0" not in texts
    assert any("module" in (r.get("class") or "").split() for r in root.iter(f"{SVG_NS}rect"))


@pytest.mark.parametrize("bad", [["--collapse", "0"], ["--collapse", "x"]])
def test_bad_collapse_is_exit_2(tmp_path, bad):
    script = tmp_path / "s.py"
    script.write_text("x = 1\n")
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--export", str(tmp_path / "g.json"),
                           str(script), *bad], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g.json").exists()


# --- the script's own backward -------------------------------------------------------

def test_script_backward_describes_the_last_call(tmp_path):
    data = json.loads(export(tmp_path, "g.json", TWO_CALLS).read_text())
    sb = data["script_backward"]
    assert (sb["line"], sb["call"], sb["of"]) == (6, 2, 2)
    assert sb["steps"] == data["backward"]
    ids = {n["id"]: n for n in data["nodes"]}
    assert [ids[s["node"]]["name"] for s in sb["steps"]] == ["SumBackward0", "MulBackward0", "AccumulateGrad"]
    for s in sb["steps"]:
        assert set(s) >= {"node", "name", "grad_inputs", "grad_outputs"}
    assert sb["steps"][-1]["grad_outputs"] == [[3.0, 3.0]]


def test_no_script_backward_without_a_call(tmp_path):
    data = json.loads(export(tmp_path, "g.json", SEQUENTIAL).read_text())
    assert "script_backward" not in data and "backward" not in data and "badges" not in data


def test_script_backward_ids_follow_collapse(runner):
    result = runner.run(SEQUENTIAL + "loss.backward()\n", filename="s.py", values=False)
    data = json.loads(to_json(result.graph, result.backward, collapse=1, script_backward=True))
    ids = {n["id"] for n in data["nodes"]}
    assert all(s["node"] in ids for s in data["script_backward"]["steps"])
    boxes = {n["id"] for n in data["nodes"] if n["kind"] == "module" and n["name"] == "model"}
    assert boxes and boxes & {s["node"] for s in data["script_backward"]["steps"]}


# --- SVG ---------------------------------------------------------------------------

def test_svg_is_valid_and_draws_what_the_panel_draws(runner):
    result = runner.run(SCRIPTS["bw_seed"][1], filename="s.py", backward="y", values=False)
    graph = result.graph.without_saved()
    svg = to_svg(graph, result.backward)
    root = ET.fromstring(svg)
    d = drawing(graph, result.backward)
    rects = list(root.iter(f"{SVG_NS}rect"))
    assert len(rects) == 1 + len(graph.nodes) + len(d.badges)  # background, nodes, badges
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    for name in ("x", "w", "y", "MulBackward0", "AccumulateGrad", "grad [5]", "∂ [1]", "grad not kept"):
        assert name in texts
    style = root.find(f"{SVG_NS}style").text
    for fill, border in STYLE.values():
        assert fill in style and border in style
    assert len(root.findall(f"{SVG_NS}path")) == 1  # the edges


def test_svg_escapes_odd_names(tmp_path):
    code = ("import torch\nfrom torch import nn\nmodel = nn.Module()\n"
            "model.add_module('a<b&c\"d', nn.Linear(2, 1))\n"
            "y = model.get_submodule('a<b&c\"d')(torch.ones(2)).sum()\n")
    root = ET.parse(export(tmp_path, "g.svg", code)).getroot()
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert 'model.a<b&c"d.weight' in texts


def test_svg_of_the_3000_node_chain_is_small(tmp_path):
    code = ("import torch\nx = torch.randn(8, requires_grad=True)\ny = x\n"
            "for _ in range(1000):\n    y = torch.sin(y) * 1.01 + y\n")
    out = export(tmp_path, "chain.svg", code)
    root = ET.parse(out).getroot()
    assert len(list(root.iter(f"{SVG_NS}rect"))) == 1 + 3003
    assert out.stat().st_size < 1_000_000  # QSvgGenerator wrote 4.9 MB, Graphviz 2.4 MB
