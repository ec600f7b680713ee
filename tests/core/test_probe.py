"""core.probe.run: seeds, fresh namespaces, errors at the right line, stdout,
timeouts, the `backward=` argument, and tensor summaries against torch."""
from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest
import torch

from core import probe


def named_node(snap, name):
    for n in snap.graph.by_kind("tensor"):
        if n.name == name:
            return n
    raise KeyError(name)


def summary_of(snap, name):
    return snap.summaries[named_node(snap, name).id]


# --- fixed seeds ---------------------------------------------------------------------

def _disturb_global_rngs():
    torch.randn(17)
    random.random()
    np.random.rand(5)


def test_torch_seed_is_fixed():
    a = probe.run("import torch\nx = torch.randn(3)\n")
    assert a.error is None
    first = probe.last_namespace["x"].clone()
    _disturb_global_rngs()
    b = probe.run("import torch\nburn = torch.randn(100)\n")  # a run that uses the RNG more
    assert b.error is None
    c = probe.run("import torch\nx = torch.randn(3)\n")
    assert c.error is None
    second = probe.last_namespace["x"]
    assert torch.equal(first, second)
    assert summary_of(a, "x").preview.tolist() == summary_of(c, "x").preview.tolist()
    # not a constant: the values are random draws
    assert len(set(second.tolist())) == 3


def test_python_and_numpy_seeds_are_fixed():
    code = "import random, numpy\nr = random.random()\nn = numpy.random.rand(4)\n"
    probe.run(code)
    r1, n1 = probe.last_namespace["r"], probe.last_namespace["n"].copy()
    _disturb_global_rngs()
    probe.run(code)
    r2, n2 = probe.last_namespace["r"], probe.last_namespace["n"]
    assert r1 == r2
    assert np.array_equal(n1, n2)
    assert len(set(n2.tolist())) == 4


def test_fresh_namespace_each_run():
    first = probe.run("secret = 41\n")
    assert first.error is None and probe.last_namespace["secret"] == 41
    second = probe.run("print(secret)\n")
    assert second.error is not None
    assert second.error.type == "NameError"
    assert second.error.line == 1
    assert "secret" in second.error.message


def test_module_state_from_a_previous_run_does_not_leak_grads():
    code = "import torch\nx = torch.ones(2, requires_grad=True)\n(x * 3).sum().backward()\n"
    probe.run(code)
    snap = probe.run(code)
    assert named_node(snap, "x").grad == [3.0, 3.0]  # not accumulated to 6


# --- errors ------------------------------------------------------------------------------

def test_syntax_error_line():
    snap = probe.run("import torch\nx = 1\ny = = 2\nz = 3\n")
    assert snap.graph is None
    assert snap.error.type == "SyntaxError"
    assert snap.error.line == 3
    assert snap.error.phase == "run"


def test_indentation_error_line():
    snap = probe.run("x = 1\nif x:\nprint(x)\n")
    assert snap.error is not None and snap.error.line == 3
    assert snap.error.type in ("IndentationError", "SyntaxError")


def test_runtime_error_line_is_in_the_script_not_in_torch():
    code = ("import torch\n"
            "a = torch.ones(2, 3)\n"
            "b = torch.ones(4, 5)\n"
            "\n"
            "c = a @ b\n"
            "d = 1\n")
    snap = probe.run(code)
    assert snap.error.type == "RuntimeError"
    assert snap.error.line == 5
    assert snap.error.phase == "run"
    assert snap.error.message  # torch's message, not empty


def test_runtime_error_raised_in_torch_python_code():
    # the exception is raised inside torch/nn/functional.py; the line is the script's
    code = ("import torch\n"
            "import torch.nn.functional as F\n"
            "logits = torch.randn(2, 3)\n"
            "loss = F.cross_entropy(logits, torch.tensor([0, 7]))\n")
    snap = probe.run(code)
    assert snap.error is not None
    assert snap.error.line == 4


def test_error_in_a_script_function_points_at_the_innermost_script_line():
    code = ("import torch\n"
            "def grow(t):\n"
            "    return t @ torch.ones(5, 5)\n"
            "\n"
            "y = grow(torch.ones(2, 3))\n")
    snap = probe.run(code)
    assert snap.error.type == "RuntimeError"
    assert snap.error.line == 3  # inside grow, where torch raised; not the call on line 5


def test_exception_in_plain_python():
    snap = probe.run("a = 1\nb = 0\nc = a / b\n")
    assert snap.error.type == "ZeroDivisionError" and snap.error.line == 3


def test_error_with_custom_filename():
    snap = probe.run("x = 1\nraise ValueError('boom')\n", filename="lesson.py")
    assert snap.error.type == "ValueError" and snap.error.message == "boom"
    assert snap.error.line == 2
    assert snap.error.one_line("lesson.py") == "lesson.py:2: ValueError: boom"


# --- output ----------------------------------------------------------------------------

def test_stdout_captured(capsys):
    snap = probe.run("print('hello')\nprint(1 + 2)\n")
    assert snap.stdout == "hello\n3\n"
    assert capsys.readouterr().out == ""  # nothing leaked to the real stdout


def test_stdout_kept_when_the_script_fails():
    snap = probe.run("print('before')\nraise RuntimeError('x')\n")
    assert snap.stdout == "before\n"
    assert snap.error.type == "RuntimeError"


# --- timeout ---------------------------------------------------------------------------

def test_timeout_stops_an_infinite_loop():
    t0 = time.perf_counter()
    snap = probe.run("while True:\n    pass\n", timeout=0.5)
    elapsed = time.perf_counter() - t0
    assert snap.error is not None
    assert snap.error.type == "ScriptTimeout"
    assert snap.error.line in (1, 2)
    assert elapsed < 5


def test_timeout_not_swallowed_by_except_exception():
    code = ("n = 0\n"
            "while True:\n"
            "    try:\n"
            "        n += 1\n"
            "    except Exception:\n"
            "        pass\n")
    snap = probe.run(code, timeout=0.3)
    assert snap.error is not None and snap.error.type == "ScriptTimeout"


def test_timer_is_cleared_after_a_run():
    assert probe.run("x = 1\n", timeout=0.3).error is None
    snap = probe.run("import time\ntime.sleep(0.5)\n")  # longer than the previous timeout
    assert snap.error is None


# --- backward= ---------------------------------------------------------------------------

def test_backward_scalar():
    snap = probe.run("import torch\nx = torch.tensor([1., 2., 3.], requires_grad=True)\n"
                     "y = (x ** 2).sum()\n", backward="y")
    assert snap.error is None
    assert named_node(snap, "x").grad == [2.0, 4.0, 6.0]
    assert torch.equal(probe.last_namespace["x"].grad, torch.tensor([2.0, 4.0, 6.0]))


def test_backward_non_scalar_uses_ones():
    snap = probe.run("import torch\nx = torch.tensor([[1., 2.], [3., -1.]], requires_grad=True)\n"
                     "y = x ** 2\n", backward="y")
    assert snap.error is None
    assert named_node(snap, "x").grad == [[2.0, 4.0], [6.0, -2.0]]


def test_backward_output_captured():
    code = ("import torch\nx = torch.ones(2, requires_grad=True)\n"
            "x.register_hook(lambda g: print('hook', g.tolist()))\ny = (x * 4).sum()\n")
    snap = probe.run(code, backward="y")
    assert snap.error is None
    assert "hook [4.0, 4.0]" in snap.stdout


@pytest.mark.parametrize("code, name, etype", [
    ("import torch\nx = torch.ones(2, requires_grad=True)\n", "y", "NameError"),
    ("y = 3\n", "y", "TypeError"),
    ("import torch\ny = torch.ones(3)\n", "y", "RuntimeError"),
])
def test_backward_errors_have_phase_backward(code, name, etype):
    snap = probe.run(code, backward=name)
    assert snap.error is not None
    assert snap.error.phase == "backward"
    assert snap.error.type == etype
    assert snap.error.message


def test_backward_error_from_torch_has_phase_backward():
    # a second backward through a freed graph
    code = ("import torch\nx = torch.ones(2, requires_grad=True)\ny = (x * x).sum()\n"
            "y.backward()\n")
    snap = probe.run(code, backward="y")
    assert snap.error is not None and snap.error.phase == "backward"
    assert snap.error.type == "RuntimeError"


def test_run_errors_have_phase_run_even_with_backward():
    snap = probe.run("raise KeyError('k')\n", backward="y")
    assert snap.error.phase == "run" and snap.error.type == "KeyError"


# --- summaries ---------------------------------------------------------------------------

STATS_CODE = """
import torch
t = torch.tensor([1.5, float('nan'), -2.0, float('inf'), 4.25, float('-inf'), 0.5, 3.0])
w = torch.randn(4, 5, requires_grad=True)
(w * 2).sum().backward()
"""


def test_summary_stats_equal_torch():
    snap = probe.run(STATS_CODE)
    assert snap.error is None
    t = probe.last_namespace["t"]
    s = summary_of(snap, "t")
    finite = t[torch.isfinite(t)]
    assert s.stats.nan == int(torch.isnan(t).sum()) == 1
    assert s.stats.inf == int(torch.isinf(t).sum()) == 2
    assert s.stats.min == pytest.approx(float(finite.min()))
    assert s.stats.max == pytest.approx(float(finite.max()))
    assert s.stats.mean == pytest.approx(float(finite.mean()))
    assert s.stats.std == pytest.approx(float(finite.std()))
    assert all(math.isfinite(v) for v in (s.stats.min, s.stats.max, s.stats.mean, s.stats.std))
    assert s.shape == [8] and s.dtype == "float32" and s.numel == 8
    np.testing.assert_array_equal(s.preview, t.numpy())  # nan == nan here


def test_summary_of_a_parameter_with_grad():
    snap = probe.run(STATS_CODE)
    w = probe.last_namespace["w"]
    s = summary_of(snap, "w")
    assert s.requires_grad and s.is_leaf and s.grad_fn is None
    assert s.stats.mean == pytest.approx(float(w.detach().mean()), abs=1e-6)
    assert s.stats.std == pytest.approx(float(w.detach().std()), rel=1e-5)
    assert s.stats.nan == 0 and s.stats.inf == 0
    assert s.grad_stats.min == 2.0 and s.grad_stats.max == 2.0 and s.grad_stats.std == 0.0
    assert np.array_equal(s.grad_preview, np.full(20, 2.0, dtype=np.float32))


def test_summary_preview_is_capped():
    snap = probe.run("import torch\nbig = torch.arange(10000.)\n")
    s = summary_of(snap, "big")
    assert 0 < s.preview.size < 10000
    assert s.preview.tolist() == list(range(s.preview.size))
    assert s.stats.max == 9999.0 and s.numel == 10000


def test_storage_sharing_reported():
    snap = probe.run("import torch\nbase = torch.zeros(4)\nview = base[1:]\nother = torch.zeros(4)\n")
    assert "view" in summary_of(snap, "base").shares_storage_with
    assert "base" in summary_of(snap, "view").shares_storage_with
    assert summary_of(snap, "other").shares_storage_with == []


def test_summaries_off():
    snap = probe.run("import torch\nx = torch.ones(2)\n", summaries=False)
    assert snap.summaries == {} and snap.graph is not None


def test_grad_limit_leaves_big_grads_out():
    code = ("import torch\nx = torch.ones(100, requires_grad=True)\n"
            "s = torch.ones(3, requires_grad=True)\n(x.sum() + s.sum()).backward()\n")
    snap = probe.run(code, grad_limit=10)
    x, s = named_node(snap, "x"), named_node(snap, "s")
    assert x.grad is None and x.has_grad is True
    assert s.grad == [1.0, 1.0, 1.0] and s.has_grad is True


# --- once bugs in core/, now fixed: they must stay fixed -----

@pytest.mark.parametrize("code", ["import sys\nsys.exit(3)\n", "x = 1\nexit()\n"])
def test_sys_exit_is_reported_not_raised(code):
    snap = probe.run(code)
    assert snap.error is not None and snap.error.type == "SystemExit"
    assert snap.error.line == 2


@pytest.mark.parametrize("code", [
    "import torch\nm = torch.empty(3, device='meta')\n",
    "import torch\nsp = torch.eye(3).to_sparse()\n",
    "import torch\nnt = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])\n",
])
def test_unusual_tensors_do_not_crash_run(code):
    snap = probe.run(code)
    assert snap.graph is not None or snap.error is not None


def test_float64_stats_equal_torch():
    snap = probe.run("import torch\nbig = torch.tensor([1e300, -1e300, 3e300], "
                     "dtype=torch.float64)\n")
    big = probe.last_namespace["big"]
    s = summary_of(snap, "big").stats
    assert s.mean == pytest.approx(float(big.mean()))
    assert s.std == pytest.approx(float(big.std()))


def test_endless_output_is_capped_and_counted():
    snap = probe.run("for i in range(100_000):\n    print(i)\n", "p.py")
    assert snap.error is None
    assert len(snap.stdout) < probe.OUTPUT_LIMIT + 100
    assert snap.stdout.startswith("0\n1\n2\n") and "more characters not shown" in snap.stdout


def test_the_scripts_own_backward_is_recorded_and_torch_is_restored():
    import torch

    original = torch.autograd.backward
    snap = probe.run("import torch\nx = torch.tensor([2.], requires_grad=True)\n"
                     "w = torch.tensor([1.], requires_grad=True)\ny = (w + x) * (w + 1)\ny.backward()\n"
                     "z = (x * 3).sum()\nz.backward()\n")
    assert torch.autograd.backward is original
    trace = snap.backward
    assert trace.root_name == "y (first of 2 backward calls)"
    assert [s.name for s in trace.steps][0] == "MulBackward0"
    ops = {n.id: n.name for n in snap.graph.by_kind("op")}
    assert all(ops[s.node] == s.name for s in trace.steps)
    assert probe.last_namespace["x"].grad.tolist() == [5.0]  # 2 from y, 3 from z


def test_a_failing_backward_in_the_script_still_raises_at_its_line():
    snap = probe.run("import torch\nx = torch.ones(2, requires_grad=True)\ny = x * 2\ny.backward()\n")
    assert snap.error.type == "RuntimeError" and snap.error.line == 4


def test_traceback_shows_the_script_not_torchscope():
    snap = probe.run("import torch\ny = torch.ones(2)\nz = y @ torch.ones(3)\n", "<editor>")
    tb = snap.error.traceback
    assert 'File "<editor>", line 3' in tb and "z = y @ torch.ones(3)" in tb
    assert "core/" not in tb and "probe.py" not in tb


def test_a_huge_allocation_is_an_error_at_its_line_in_plain_words():
    from core.backward import explain_error

    snap = probe.run("import torch\nx = torch.empty(10**13)\n", "big.py")
    assert snap.error.type == "RuntimeError" and snap.error.line == 2
    assert "37,252.9 GiB" in explain_error(snap.error.message)  # 4e13 bytes of float32
