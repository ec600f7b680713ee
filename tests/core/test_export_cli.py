"""`python main.py --export OUT SCRIPT.py`: the stable contract other tools read."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "resources" / "examples" / "01_computation_graph.py"


def export(tmp_path, out_name, script_text=None, script=None, *extra, timeout=120):
    if script is None:
        script = tmp_path / "script.py"
        script.write_text(script_text)
    out = tmp_path / out_name
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--export", str(out), str(script), *extra],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    return proc, out


def test_json_contract_for_the_seed_example(tmp_path):
    proc, out = export(tmp_path, "g.json", script=SEED)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["format"] == "torchscope.graph/1"
    ids = {n["id"] for n in data["nodes"]}
    assert len(ids) == len(data["nodes"])
    tensors = {n["name"]: n for n in data["nodes"] if n["kind"] == "tensor"}
    assert set(tensors) == {"x", "w", "a", "b", "y"}
    w = tensors["w"]
    assert (w["shape"], w["dtype"], w["device"], w["requires_grad"], w["is_leaf"], w["grad_fn"]) == \
        ([1], "float32", "cpu", True, True, None)
    assert w["grad"] == [5.0] and tensors["x"]["grad"] == [2.0]
    assert tensors["y"]["grad_fn"] == "MulBackward0" and tensors["y"]["grad"] is None
    ops = sorted(n["name"] for n in data["nodes"] if n["kind"] == "op")
    assert ops == ["AccumulateGrad", "AccumulateGrad", "AddBackward0", "AddBackward0", "MulBackward0"]
    pairs = [(e["from"], e["to"]) for e in data["edges"]]
    assert len(pairs) == len(set(pairs)) and all(a in ids and b in ids for a, b in pairs)
    by_id = {n["id"]: n for n in data["nodes"]}
    named = {(by_id[a].get("name"), by_id[b].get("name")) for a, b in pairs}
    assert ("w", "AccumulateGrad") in named and ("MulBackward0", "y") in named


def test_backward_flag_fills_grads_of_a_non_scalar(tmp_path):
    proc, out = export(tmp_path, "g.json", "import torch\nx = torch.tensor([1., 2.], requires_grad=True)\n"
                                           "y = x * x\n", None, "--backward", "y")
    assert proc.returncode == 0, proc.stderr
    x = next(n for n in json.loads(out.read_text())["nodes"] if n.get("name") == "x")
    ref = torch.tensor([1., 2.], requires_grad=True)
    (ref * ref).backward(torch.ones(2))
    assert x["grad"] == ref.grad.tolist()


def test_error_in_script_exit_1_one_line_no_file(tmp_path):
    proc, out = export(tmp_path, "g.json", "import torch\n\nx = torch.ones(2)\ny = x @ torch.ones(3)\n")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(str(tmp_path / "script.py") + ":4: RuntimeError: ")
    assert not out.exists()


def test_syntax_error_gives_its_line(tmp_path):
    proc, out = export(tmp_path, "g.json", "import torch\nx = (1,\n\n")
    assert proc.returncode == 1
    assert ":2: SyntaxError: " in proc.stderr
    assert not out.exists()


def test_timeout_stops_the_script(tmp_path):
    proc, out = export(tmp_path, "g.json", "while True:\n    pass\n", None, "--timeout", "1")
    assert proc.returncode == 1
    assert "timed out" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("script,name", [("import torch\nx = torch.ones(2)\n", "nope"),
                                         ("import torch\nx = torch.ones(2)\n", "x"),
                                         ("n = 3\n", "n")])
def test_bad_backward_name_exit_2(tmp_path, script, name):
    proc, out = export(tmp_path, "g.json", script, None, "--backward", name)
    assert proc.returncode == 2
    assert name in proc.stderr
    assert not out.exists()


def test_dot_is_graphviz_source(tmp_path):
    proc, out = export(tmp_path, "g.dot", script=SEED)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("digraph") and "MulBackward0" in text
    if shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed")
    svg = subprocess.run(["dot", "-Tsvg", str(out)], capture_output=True, text=True, check=True).stdout
    assert "MulBackward0" in svg


def test_svg_and_png_draw_the_graph(tmp_path):
    proc, svg = export(tmp_path, "g.svg", script=SEED)
    assert proc.returncode == 0, proc.stderr
    text = svg.read_text()
    assert "<svg" in text and "MulBackward0" in text and "AccumulateGrad" in text
    proc, png = export(tmp_path, "g.png", script=SEED)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000



def test_png_of_a_3000_node_chain_fits_qimage_limits(tmp_path):
    import struct

    chain = ("import torch\nx = torch.randn(8, requires_grad=True)\ny = x\n"
             "for _ in range(1000):\n    y = torch.sin(y) * 1.01 + y\n")
    proc, png = export(tmp_path, "chain.png", chain)
    assert proc.returncode == 0, proc.stderr
    width, height = struct.unpack(">II", png.read_bytes()[16:24])
    assert 0 < width <= 32767 and 10_000 < height <= 32767
