"""A kernel elsewhere, without a window: `torchscope --existing FILE --export OUT SCRIPT`
against a real ipykernel that the test starts itself (`python -m ipykernel_launcher -f
FILE`, as a notebook server or a GPU server would), and the `"kernel"` key that every
export carries. The kernel is never killed by Torchscope: each test checks it is
alive afterwards, and the fixture kills it."""
import json
import os
import platform
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from jupyter_client.connect import write_connection_file

from core import attach, protocol
from core.attach import AttachError, HeadlessKernel
from core.protocol import Hello, decode, encode

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
SCRIPT = """import torch
x = torch.ones(3, requires_grad=True)
w = torch.full((3,), 2.0, requires_grad=True)
y = (x * w).sum()
"""


def start_kernel(folder: Path, env: dict | None = None) -> tuple[str, subprocess.Popen]:
    """A real ipykernel in a session of its own, with a connection file written here."""
    path, _ = write_connection_file(str(folder / "kernel-test.json"))
    proc = subprocess.Popen([PYTHON, "-m", "ipykernel_launcher", "-f", path], cwd=folder,
                            env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return path, proc


def stop_kernel(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.fixture
def kernel(tmp_path):
    path, proc = start_kernel(tmp_path)
    yield path, proc
    stop_kernel(proc)


def export(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True,
                          text=True, timeout=180, cwd=cwd)


def test_export_runs_in_the_attached_kernel_and_writes_here(kernel, tmp_path):
    path, proc = kernel
    script = tmp_path / "model.py"
    script.write_text(SCRIPT)
    out = tmp_path / "g.json"
    res = export("--existing", path, "--export", str(out), str(script), "--backward", "y")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    data = json.loads(out.read_text())
    names = {n.get("name") for n in data["nodes"]}
    assert {"x", "w", "y"} <= names
    assert data["backward"], "the --backward NAME was recorded in the kernel"
    x = next(n for n in data["nodes"] if n.get("name") == "x")
    assert x["grad"] is not None  # dy/dx = w, recorded over there
    assert data["kernel"] == {"pid": proc.pid, "hostname": socket.gethostname(),
                              "python": platform.python_version(), "torch": torch.__version__}
    assert proc.poll() is None, "the attached kernel must outlive the export"

    # Attached again: the window's core/ is sent again and replaces the first copy.
    again = tmp_path / "g2.json"
    res = export("--existing", path, "--export", str(again), str(script))
    assert res.returncode == 0, res.stderr
    assert {n.get("name") for n in json.loads(again.read_text())["nodes"]} == names
    assert proc.poll() is None


def test_the_attached_export_matches_the_local_one(kernel, tmp_path):
    path, _ = kernel
    script = tmp_path / "model.py"
    script.write_text(SCRIPT)
    assert export("--existing", path, "--export", str(tmp_path / "a.json"), str(script)).returncode == 0
    assert export("--export", str(tmp_path / "l.json"), str(script)).returncode == 0
    there, here = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "l.json"))
    assert there.pop("kernel")["pid"] != here.pop("kernel")["pid"]
    assert there == here


def test_a_script_that_runs_too_long_is_interrupted_not_the_kernel(kernel, tmp_path):
    path, proc = kernel
    loop = tmp_path / "loop.py"
    loop.write_text("import torch\nx = torch.ones(2, requires_grad=True)\nwhile True:\n    pass\n")
    out = tmp_path / "g.json"
    res = export("--existing", path, "--export", str(out), str(loop), "--timeout", "2")
    assert res.returncode == 1
    assert res.stderr.strip().startswith(f"{loop}:3: ")
    assert "timed out after 2 s and was stopped" in res.stderr
    assert not out.exists()
    assert proc.poll() is None
    script = tmp_path / "model.py"
    script.write_text(SCRIPT)
    assert export("--existing", path, "--export", str(out), str(script)).returncode == 0  # usable still


def test_an_error_in_the_script_is_one_line_as_for_a_local_export(kernel, tmp_path):
    path, proc = kernel
    script = tmp_path / "bad.py"
    script.write_text("import torch\nx = torch.ones(2)\ny = x @ torch.ones(3)\n")
    res = export("--existing", path, "--export", str(tmp_path / "g.json"), str(script))
    assert res.returncode == 1
    assert res.stderr.startswith(f"{script}:3: RuntimeError:")
    assert proc.poll() is None


@pytest.mark.parametrize("content, says", [
    (None, "no such connection file"),
    ('{"shell_port": ', "not a kernel connection file (not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"shell_port": 1, "key": "k"}', "no iopub_port, control_port, hb_port"),
])
def test_a_bad_connection_file_is_one_line(tmp_path, content, says):
    file = tmp_path / "kernel-x.json"
    if content is not None:
        file.write_text(content)
    script = tmp_path / "model.py"
    script.write_text(SCRIPT)
    res = export("--existing", str(file), "--export", str(tmp_path / "g.json"), str(script))
    assert res.returncode == 1
    assert says in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g.json").exists()


def test_a_kernel_that_does_not_answer_is_reported(tmp_path):
    """A connection file whose kernel is gone (or whose tunnel is closed)."""
    path, _ = write_connection_file(str(tmp_path / "kernel-gone.json"))
    with pytest.raises(AttachError, match=r"did not answer within 2 s \(is it running\? is the SSH tunnel"):
        HeadlessKernel(path, connect_timeout=2)


def test_a_protocol_mismatch_is_reported_not_crashed_on(kernel, monkeypatch):
    """The window speaks another protocol than the kernel side says in its Hello."""
    path, proc = kernel
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", protocol.PROTOCOL_VERSION + 97)
    k = HeadlessKernel(path)
    try:
        with pytest.raises(AttachError, match=rf"version mismatch .*the kernel speaks protocol "
                                              rf"{protocol.PROTOCOL_VERSION - 97}, the window speaks "
                                              rf"{protocol.PROTOCOL_VERSION}"):
            k.bootstrap()
    finally:
        k.detach()
    assert proc.poll() is None


def test_a_kernel_without_torch_is_told_so(tmp_path):
    """A kernel whose Python has no torch: a `torch` that cannot be imported shadows the
    real one on its PYTHONPATH."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    path, proc = start_kernel(tmp_path, {"PYTHONPATH": str(tmp_path / "site")})
    try:
        k = HeadlessKernel(path)
        try:
            with pytest.raises(AttachError, match="the kernel has no torch .* install torch in the kernel's"):
                k.bootstrap()
        finally:
            k.detach()
        assert proc.poll() is None
    finally:
        stop_kernel(proc)


def test_the_kernel_side_is_sent_as_text_and_loads_under_its_private_name(kernel):
    """What runs over there is this checkout's core/, from the sent text (not a copy on
    that machine's disk): a module's __file__ is under "/_torchscope_core/"."""
    path, _ = kernel
    k = HeadlessKernel(path)
    try:
        hello = k.bootstrap()
        assert hello.hostname == socket.gethostname()
        msg_id = k.client.execute("import sys; print(sys.modules['_torchscope_core.kernel.serve'].__file__)",
                                  store_history=False)
        printed = ""
        while True:
            msg = k.client.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                printed += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert printed.strip() == "/_torchscope_core/kernel/serve.py"
    finally:
        k.detach()
    assert set(attach.kernel_sources()) >= {"__init__.py", "protocol.py", "kernel/serve.py", "model/run.py"}


def test_the_local_export_names_its_own_process(tmp_path):
    script = tmp_path / "model.py"
    script.write_text(SCRIPT)
    out = tmp_path / "g.json"
    res = export("--export", str(out), str(script))
    assert res.returncode == 0, res.stderr
    kernel = json.loads(out.read_text())["kernel"]
    assert set(kernel) == {"pid", "hostname", "python", "torch"}
    assert isinstance(kernel["pid"], int) and kernel["pid"] not in (os.getpid(), 0)
    assert (kernel["hostname"], kernel["python"], kernel["torch"]) == (
        socket.gethostname(), platform.python_version(), torch.__version__)


def test_hello_from_an_older_kernel_side_still_decodes():
    data, buffers = encode(Hello(protocol.PROTOCOL_VERSION, 7, "3.11.7", "2.14.1", "gpu-box"))
    del data["body"]["hostname"]
    hello, _ = decode(data, buffers)
    assert hello == Hello(protocol.PROTOCOL_VERSION, 7, "3.11.7", "2.14.1", "")
