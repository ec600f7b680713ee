"""Runner.run in a long-lived process: what one script does to torch, to the kernel
and to its streams must not reach the next run, and what goes wrong reads as
plain Python would say it.

Torch settings back before each run; what cannot be put back (a replaced method
of torch.Tensor, a thread still running) noted in stderr; `input()` an error, not
a hang; Python's "Did you mean" hint kept; torch's own name on a mistyped
backward() keyword; the run's folder; stdout/stderr streamed as written.
"""
from __future__ import annotations

import builtins
import contextlib
import io
import os
import sys
import time

import pytest
import torch

from core.kernel.runner import CORE_DIR, OUTPUT_LIMIT, STDIN_CLOSED, STREAM_BATCH
from core.kernel.torch_state import TorchState

SEED = ("import torch\nx = torch.tensor([2.], requires_grad=True)\n"
        "w = torch.tensor([1.], requires_grad=True)\ny = (w + x) * (w + 1)\n")

PROBE = """import torch
state = dict(
    grad=torch.is_grad_enabled(), inference=torch.is_inference_mode_enabled(),
    dtype=torch.get_default_dtype(), device=str(torch.get_default_device()),
    new_tensor_device=str(torch.ones(1).device), anomaly=torch.is_anomaly_enabled(),
    deterministic=torch.are_deterministic_algorithms_enabled(), threads=torch.get_num_threads(),
    cudnn=(torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic),
    matmul=torch.get_float32_matmul_precision(), precision=torch._tensor_str.PRINT_OPTS.precision,
    function_modes=torch._C._len_torch_function_stack())
"""


@pytest.fixture(autouse=True)
def torch_as_it_was():
    """Whatever a test's script does, the next test starts from the same torch."""
    state = TorchState.capture()
    yield
    state.restore()


def node(result, name):
    return next(n for n in result.graph.by_kind("tensor") if n.name == name)


# --- 1. torch state ----------------------------------------------------------------

DISTURBANCES = {
    "grad_off": "torch.set_grad_enabled(False)",
    # (a function keeps the namespace, and so the guard, alive past the next run's start)
    "inference_mode_left_on": "im = torch.inference_mode()\nim.__enter__()\ndef f():\n    pass",
    "float64": "torch.set_default_dtype(torch.float64)",
    "meta_device": "torch.set_default_device('meta')",
    "anomaly": "torch.autograd.set_detect_anomaly(True)",
    "deterministic": "torch.use_deterministic_algorithms(True)",
    "threads": "torch.set_num_threads(torch.get_num_threads() + 1)",
    "cudnn": "torch.backends.cudnn.benchmark = True\ntorch.backends.cudnn.deterministic = True",
    "matmul_precision": "torch.set_float32_matmul_precision('medium')",
    "print_options": "torch.set_printoptions(precision=1)",
    "function_mode_left_on": ("class Mode(torch.overrides.TorchFunctionMode):\n"
                              "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
                              "        return func(*args, **(kwargs or {}))\n"
                              "Mode().__enter__()"),
}


@pytest.mark.parametrize("kind", DISTURBANCES)
def test_what_a_run_sets_in_torch_is_gone_in_the_next(kind, runner):
    assert runner.run(PROBE).error is None
    clean = runner.namespace["state"]
    assert clean["grad"] and not clean["inference"] and clean["dtype"] == torch.float32
    disturbed = runner.run("import torch\n" + DISTURBANCES[kind] + "\n" + PROBE)
    assert disturbed.error is None, disturbed.error
    assert runner.namespace["state"] != clean  # the script did change something
    assert runner.run(PROBE).error is None
    assert runner.namespace["state"] == clean
    # and the graph is the one plain torch draws
    result = runner.run(SEED)
    plain: dict = {}
    exec(SEED, plain)
    assert node(result, "y").grad_fn == type(plain["y"].grad_fn).__name__ == "MulBackward0"


def test_torch_is_restored_for_the_requests_after_a_run(runner):
    runner.run("import torch\ntorch.set_grad_enabled(False)\ntorch.set_default_dtype(torch.float64)\n")
    assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32


def test_grad_mode_off_in_one_run_leaves_the_next_graph_whole(runner):
    runner.run("import torch\ntorch.set_grad_enabled(False)\n")
    result = runner.run(SEED, backward="y")
    assert result.error is None
    assert node(result, "y").grad_fn == "MulBackward0"
    assert node(result, "x").grad.tolist() == [2.0]  # dy/dx = w + 1


def test_a_replaced_tensor_method_is_noted_once_per_run(runner):
    original = torch.Tensor.add
    try:
        first = runner.run("import torch\norig = torch.Tensor.add\n"
                           "torch.Tensor.add = lambda self, *a, **k: orig(self, *a, **k)\n")
        assert first.error is None
        note = ("Torchscope: this script replaced torch.Tensor.add; it stays replaced in this "
                "kernel until Kernel → Restart.")
        assert first.stderr.count(note) == 1
        later = runner.run(SEED)
        assert later.stderr.count("an earlier run replaced torch.Tensor.add") == 1
    finally:
        torch.Tensor.add = original
    assert runner.run(SEED).stderr == ""


def test_a_method_added_to_module_is_noted(runner):
    try:
        result = runner.run("import torch\ntorch.nn.Module.describe = lambda self: 'me'\n")
        assert result.stderr.count("this script added torch.nn.Module.describe") == 1
    finally:
        del torch.nn.Module.describe
    assert runner.run(SEED).stderr == ""


def test_a_thread_left_running_is_noted_until_it_stops(runner):
    code = ("import threading\nstop = threading.Event()\n"
            "threading.Thread(target=stop.wait, name='trainer', daemon=True).start()\n")
    first = runner.run(code)
    stop = runner.namespace["stop"]
    try:
        assert first.stderr.count("this script started a thread (trainer) that is still running") == 1
        later = runner.run(SEED)
        assert later.stderr.count("a thread an earlier run started (trainer) is still running") == 1
    finally:
        stop.set()
    time.sleep(0.05)
    assert runner.run(SEED).stderr == ""
    joined = runner.run("import threading\nt = threading.Thread(target=print, args=('x',))\n"
                        "t.start()\nt.join()\n")
    assert "Torchscope" not in joined.stderr


# --- 5. input() --------------------------------------------------------------------

def test_input_is_a_clear_error_not_a_hang(runner):
    result = runner.run("name = 'a'\nvalue = input('how many? ')\n", timeout=5)
    assert result.error.type == "RuntimeError" and result.error.line == 2
    assert result.error.message == STDIN_CLOSED
    assert CORE_DIR not in result.error.traceback


def test_stdin_reads_give_nothing_and_builtins_stay_the_kernels(runner):
    stdin, input_ = sys.stdin, builtins.input
    result = runner.run("import sys\nall_of_it = sys.stdin.read()\nline = sys.stdin.readline()\n",
                        timeout=5)
    assert result.error is None
    assert runner.namespace["all_of_it"] == "" and runner.namespace["line"] == ""
    assert sys.stdin is stdin and builtins.input is input_
    own = runner.namespace["__builtins__"]
    assert own is not vars(builtins) and own["input"] is not input_ and own["len"] is len


# --- 6. error texts ----------------------------------------------------------------

def plain_python_message(code: str) -> str:
    """What Python's own excepthook prints after 'Type: ' when the code fails
    outside Torchscope (with its "Did you mean" hint)."""
    try:
        exec(compile(code, "<plain>", "exec"), {"__name__": "__main__"})
    except Exception as exc:  # noqa: BLE001
        printed = io.StringIO()
        with contextlib.redirect_stderr(printed):
            sys.__excepthook__(type(exc), exc, exc.__traceback__)
        return printed.getvalue().rstrip("\n").rsplit("\n", 1)[-1].partition(": ")[2]
    raise AssertionError("the code did not fail")


@pytest.mark.parametrize("code", [
    "training_data = [1, 2]\nprint(traning_data)\n",
    "import torch\nx = torch.ones(2)\nx.sumx()\n",
    "class Model:\n    def __init__(self):\n        self.layers = 1\nModel().layer\n",
    "from math import sqr\n",
], ids=["name", "attribute", "own_attribute", "import"])
def test_pythons_did_you_mean_hint_is_kept(code, runner):
    result = runner.run(code)
    assert result.error.message == plain_python_message(code)
    assert result.error.traceback.rstrip().endswith(result.error.message)


def test_the_name_error_hint_names_the_variable(runner):
    result = runner.run("training_data = [1, 2]\nprint(traning_data)\n")
    assert result.error.message.endswith("Did you mean: 'training_data'?")


@pytest.mark.parametrize("call", ["y.backward(retain_grap=True)",
                                  "torch.autograd.backward(y, retain_grap=True)"])
def test_a_mistyped_backward_keyword_reads_as_torchs_error(call, runner):
    result = runner.run(SEED + call + "\n")
    ns: dict = {}
    exec(SEED, ns)
    with pytest.raises(TypeError) as plain:
        eval(call, ns)
    assert result.error.type == "TypeError" and result.error.message == str(plain.value)
    assert "ScriptBackwards" not in result.error.traceback
    assert CORE_DIR not in result.error.traceback
    assert result.error.line == 5


def test_backward_by_keyword_is_still_recorded(runner):
    result = runner.run(SEED + "torch.autograd.backward(tensors=y, retain_graph=True)\n")
    assert result.error is None
    assert result.backward is not None and result.backward.retain_graph
    assert node(result, "w").grad.tolist() == [5.0]


# --- 7. the run's folder -----------------------------------------------------------

def test_a_run_happens_in_its_folder_and_leaves_the_kernels_as_it_was(tmp_path, runner):
    (tmp_path / "helper_for_cwd_test.py").write_text("VALUE = 7\n")
    (tmp_path / "data.txt").write_text("3")
    before_cwd, before_path = os.getcwd(), list(sys.path)
    try:
        result = runner.run("import os, sys\nimport helper_for_cwd_test\nv = helper_for_cwd_test.VALUE\n"
                            "n = int(open('data.txt').read())\nhere = os.getcwd()\nfirst = sys.path[0]\n",
                            cwd=str(tmp_path))
    finally:
        sys.modules.pop("helper_for_cwd_test", None)
    assert result.error is None, result.error
    ns = runner.namespace
    assert (ns["v"], ns["n"]) == (7, 3)
    assert os.path.samefile(ns["here"], tmp_path) and ns["first"] == str(tmp_path)
    assert os.getcwd() == before_cwd and sys.path == before_path


def test_a_script_that_moves_or_adds_paths_does_not_move_the_kernel(tmp_path, runner):
    before_cwd, before_path = os.getcwd(), list(sys.path)
    result = runner.run(f"import os, sys\nos.chdir({str(tmp_path)!r})\nsys.path.append('/nowhere')\n"
                        "raise ValueError('late')\n", cwd=str(tmp_path))
    assert result.error.type == "ValueError"
    assert os.getcwd() == before_cwd and sys.path == before_path


# --- 7. output as it is written ----------------------------------------------------

def collect():
    got: list[tuple[str, str, float]] = []
    return got, lambda stream, text: got.append((stream, text, time.monotonic()))


def test_prints_reach_on_output_while_the_script_runs(runner):
    got, on_output = collect()
    start = time.monotonic()
    result = runner.run("import time\nfor i in range(3):\n    print('epoch', i)\n    time.sleep(0.25)\n",
                        on_output=on_output)
    end = time.monotonic()
    assert result.error is None
    assert "".join(text for _, text, _ in got) == result.stdout == "epoch 0\nepoch 1\nepoch 2\n"
    assert got[0][1] == "epoch 0\n" and got[0][2] - start < 0.2  # not held until the end
    assert len(got) == 3 and end - got[1][2] > 0.2


def test_fast_output_is_batched(runner):
    got, on_output = collect()
    result = runner.run("for i in range(20000):\n    print(i)\n", on_output=on_output)
    assert "".join(text for _, text, _ in got) == result.stdout
    assert len(got) <= len(result.stdout) // STREAM_BATCH + 30
    assert all(len(text) < STREAM_BATCH + 100 for _, text, _ in got)


def test_streamed_output_is_capped_like_the_result(runner):
    got, on_output = collect()
    result = runner.run("while True:\n    print('x' * 1000)\n", timeout=1.0, on_output=on_output)
    assert result.error.type == "ScriptTimeout"
    sent = "".join(text for _, text, _ in got)
    assert len(sent) == OUTPUT_LIMIT and result.stdout.startswith(sent)
    assert "more characters not shown" in result.stdout


def test_stderr_and_the_last_partial_line_are_sent(runner):
    got, on_output = collect()
    result = runner.run("import sys\nprint('warn', file=sys.stderr)\nprint('no newline', end='')\n",
                        on_output=on_output)
    assert result.error is None
    streams = {}
    for stream, text, _ in got:
        streams[stream] = streams.get(stream, "") + text
    assert streams == {"stderr": "warn\n", "stdout": "no newline"}


def test_a_failing_on_output_does_not_break_the_run(runner):
    def broken(stream, text):
        raise ValueError("the window went away")
    result = runner.run(SEED + "print('hi')\n", on_output=broken)
    assert result.error is None and result.stdout == "hi\n"
    assert node(result, "y").grad_fn == "MulBackward0"
