"""`python main.py --export OUT SCRIPT.py`: the stable contract other tools read."""
import errno
import json
import os
import shutil
import stat
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


# --- options in any order, --help, usage errors ----------------------------------------------

BACKWARD_SCRIPT = "import torch\nx = torch.tensor([1., 2.], requires_grad=True)\ny = x * x\n"


@pytest.mark.parametrize("order", [
    ["--export", "g.json", "script.py", "--backward", "y"],
    ["--export", "g.json", "--backward", "y", "script.py"],
    ["--backward", "y", "script.py", "--export", "g.json"],
    ["--export", "g.json", "--timeout", "8", "script.py"],
    ["--timeout", "8", "--export", "g.json", "script.py"],
    ["script.py", "--export", "g.json"],
])
def test_options_in_any_order(tmp_path, order):
    (tmp_path / "script.py").write_text(BACKWARD_SCRIPT)
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), *order], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    x = next(n for n in json.loads((tmp_path / "g.json").read_text())["nodes"] if n.get("name") == "x")
    assert x["grad"] == ([2.0, 4.0] if "--backward" in order else None)


def test_help_shows_examples():
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "examples:" in proc.stdout and "--export graph.json model.py" in proc.stdout


@pytest.mark.parametrize("args,words", [
    (["--export", "g.txt", "s.py"], "OUT must end in one of"),
    (["--export", "g.json"], "needs a SCRIPT"),
    (["--export", "g.json", "s.py", "--timeout", "0"], "--timeout"),
    (["--export", "g.json", "s.py", "--timeout", "nan"], "--timeout"),
    (["--export", "g.json", "s.py", "--timeout", "soon"], "--timeout"),
    (["--export", "g.json", "s.py", "--frobnicate"], "unrecognized arguments"),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, args, words):
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


# --- OUT is written by the parent alone, whole or not at all ----------------------------------

sys.path.insert(0, str(ROOT))
import main as cli  # noqa: E402


def test_write_atomically_writes_whole_with_the_usual_mode(tmp_path):
    out = tmp_path / "g.json"
    out.write_text("old")
    cli.write_atomically(str(out), b"new content")
    assert out.read_bytes() == b"new content"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]


def _disk_full(monkeypatch):
    """Every file the write function opens behaves like /dev/full: writes fail, ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, fd)
        os.close(full)
        return real(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_write_atomically_on_a_full_disk_leaves_out_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "g.json"
    out.write_text("old")
    _disk_full(monkeypatch)
    with pytest.raises(OSError) as info:
        cli.write_atomically(str(out), b"x" * 100_000)
    assert info.value.errno == errno.ENOSPC
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]


@pytest.mark.parametrize("suffix", ["json", "dot"])  # no Qt in this process
def test_export_on_a_full_disk_one_line_no_file(tmp_path, monkeypatch, capsys, suffix):
    from core.kernel.runner import Runner

    script = tmp_path / "script.py"
    script.write_text(BACKWARD_SCRIPT)
    result = Runner(grad_limit=None).run(BACKWARD_SCRIPT, filename=str(script), values=False)
    monkeypatch.setattr(cli, "run_child", lambda *args, **kwargs: result)
    _disk_full(monkeypatch)
    out = tmp_path / f"g.{suffix}"
    assert cli.main(["--export", str(out), str(script)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"{out}: cannot write: No space left on device\n" and captured.out == ""
    assert [p.name for p in tmp_path.iterdir()] == ["script.py"]


def test_render_failure_is_a_write_failure(tmp_path, monkeypatch, capsys):
    from core.kernel.runner import Runner

    script = tmp_path / "script.py"
    script.write_text(BACKWARD_SCRIPT)
    result = Runner(grad_limit=None).run(BACKWARD_SCRIPT, filename=str(script), values=False)
    monkeypatch.setattr(cli, "run_child", lambda *args, **kwargs: result)

    def no_render(result, out, *options, **named):
        raise OSError("Qt could not encode the PNG")

    monkeypatch.setattr(cli, "render", no_render)
    out = tmp_path / "g.png"
    assert cli.main(["--export", str(out), str(script)]) == 1
    assert capsys.readouterr().err == f"{out}: cannot write: Qt could not encode the PNG\n"
    assert [p.name for p in tmp_path.iterdir()] == ["script.py"]
