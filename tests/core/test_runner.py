"""core.kernel.runner.Runner.run: seeds, fresh namespaces, errors at the right line,
stdout, timeouts, the `backward=` argument, and tensor values against torch."""
from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest
import torch

from core.kernel import runner as runner_module
from core.kernel.runner import Runner
from core.labels import explain_error
from core.model.tensors import STATS_LIMIT, VALUES_LIMIT


def named_node(result, name):
    for n in result.graph.by_kind("tensor"):
        if n.name == name:
            return n
    raise KeyError(name)


def values_of(result, name):
    return result.values[named_node(result, name).id]


# --- fixed seeds ---------------------------------------------------------------------

def _disturb_global_rngs():
    torch.randn(17)
    random.random()
    np.random.rand(5)


def test_torch_seed_is_fixed(runner):
    a = runner.run("import torch\nx = torch.randn(3)\n")
    assert a.error is None
    first = runner.namespace["x"].clone()
    _disturb_global_rngs()
    b = runner.run("import torch\nburn = torch.randn(100)\n")  # a run that uses the RNG more
    assert b.error is None
    c = runner.run("import torch\nx = torch.randn(3)\n")
    assert c.error is None
    second = runner.namespace["x"]
    assert torch.equal(first, second)
    assert values_of(a, "x").preview.tolist() == values_of(c, "x").preview.tolist()
    # not a constant: the values are random draws
    assert len(set(second.tolist())) == 3


def test_python_and_numpy_seeds_are_fixed(runner):
    code = "import random, numpy\nr = random.random()\nn = numpy.random.rand(4)\n"
    runner.run(code)
    r1, n1 = runner.namespace["r"], runner.namespace["n"].copy()
    _disturb_global_rngs()
    runner.run(code)
    r2, n2 = runner.namespace["r"], runner.namespace["n"]
    assert r1 == r2
    assert np.array_equal(n1, n2)
    assert len(set(n2.tolist())) == 4


def test_fresh_namespace_each_run(runner):
    first = runner.run("secret = 41\n")
    assert first.error is None and runner.namespace["secret"] == 41
    second = runner.run("print(secret)\n")
    assert second.error is not None
    assert second.error.type == "NameError"
    assert second.error.line == 1
    assert "secret" in second.error.message


def test_module_state_from_a_previous_run_does_not_leak_grads(runner):
    code = "import torch\nx = torch.ones(2, requires_grad=True)\n(x * 3).sum().backward()\n"
    runner.run(code)
    result = runner.run(code)
    assert named_node(result, "x").grad.tolist() == [3.0, 3.0]  # not accumulated to 6


# --- errors ------------------------------------------------------------------------------

def test_syntax_error_line(runner):
    result = runner.run("import torch\nx = 1\ny = = 2\nz = 3\n")
    assert result.graph is None
    assert result.error.type == "SyntaxError"
    assert result.error.line == 3
    assert result.error.phase == "run"


def test_indentation_error_line(runner):
    result = runner.run("x = 1\nif x:\nprint(x)\n")
    assert result.error is not None and result.error.line == 3
    assert result.error.type in ("IndentationError", "SyntaxError")


def test_runtime_error_line_is_in_the_script_not_in_torch(runner):
    code = ("import torch\n"
            "a = torch.ones(2, 3)\n"
            "b = torch.ones(4, 5)\n"
            "\n"
            "c = a @ b\n"
            "d = 1\n")
    result = runner.run(code)
    assert result.error.type == "RuntimeError"
    assert result.error.line == 5
    assert result.error.phase == "run"
    assert result.error.message  # torch's message, not empty


def test_runtime_error_raised_in_torch_python_code(runner):
    # the exception is raised inside torch/nn/functional.py; the line is the script's
    code = ("import torch\n"
            "import torch.nn.functional as F\n"
            "logits = torch.randn(2, 3)\n"
            "loss = F.cross_entropy(logits, torch.tensor([0, 7]))\n")
    result = runner.run(code)
    assert result.error is not None
    assert result.error.line == 4


def test_error_in_a_script_function_points_at_the_innermost_script_line(runner):
    code = ("import torch\n"
            "def grow(t):\n"
            "    return t @ torch.ones(5, 5)\n"
            "\n"
            "y = grow(torch.ones(2, 3))\n")
    result = runner.run(code)
    assert result.error.type == "RuntimeError"
    assert result.error.line == 3  # inside grow, where torch raised; not the call on line 5


def test_exception_in_plain_python(runner):
    result = runner.run("a = 1\nb = 0\nc = a / b\n")
    assert result.error.type == "ZeroDivisionError" and result.error.line == 3


def test_error_with_custom_filename(runner):
    result = runner.run("x = 1\nraise ValueError('boom')\n", filename="lesson.py")
    assert result.error.type == "ValueError" and result.error.message == "boom"
    assert result.error.line == 2
    assert result.error.one_line("lesson.py") == "lesson.py:2: ValueError: boom"


# --- output ----------------------------------------------------------------------------

def test_stdout_captured(capsys, runner):
    result = runner.run("print('hello')\nprint(1 + 2)\n")
    assert result.stdout == "hello\n3\n"
    assert capsys.readouterr().out == ""  # nothing leaked to the real stdout


def test_stdout_kept_when_the_script_fails(runner):
    result = runner.run("print('before')\nraise RuntimeError('x')\n")
    assert result.stdout == "before\n"
    assert result.error.type == "RuntimeError"


# --- timeout ---------------------------------------------------------------------------

def test_timeout_stops_an_infinite_loop(runner):
    t0 = time.perf_counter()
    result = runner.run("while True:\n    pass\n", timeout=0.5)
    elapsed = time.perf_counter() - t0
    assert result.error is not None
    assert result.error.type == "ScriptTimeout"
    assert result.error.line in (1, 2)
    assert elapsed < 5


def test_timeout_not_swallowed_by_except_exception(runner):
    code = ("n = 0\n"
            "while True:\n"
            "    try:\n"
            "        n += 1\n"
            "    except Exception:\n"
            "        pass\n")
    result = runner.run(code, timeout=0.3)
    assert result.error is not None and result.error.type == "ScriptTimeout"


def test_timer_is_cleared_after_a_run(runner):
    assert runner.run("x = 1\n", timeout=0.3).error is None
    result = runner.run("import time\ntime.sleep(0.5)\n")  # longer than the previous timeout
    assert result.error is None


# --- backward= ---------------------------------------------------------------------------

def test_backward_scalar(runner):
    result = runner.run("import torch\nx = torch.tensor([1., 2., 3.], requires_grad=True)\n"
                        "y = (x ** 2).sum()\n", backward="y")
    assert result.error is None
    assert named_node(result, "x").grad.tolist() == [2.0, 4.0, 6.0]
    assert torch.equal(runner.namespace["x"].grad, torch.tensor([2.0, 4.0, 6.0]))


def test_backward_non_scalar_uses_ones(runner):
    result = runner.run("import torch\nx = torch.tensor([[1., 2.], [3., -1.]], requires_grad=True)\n"
                        "y = x ** 2\n", backward="y")
    assert result.error is None
    assert named_node(result, "x").grad.tolist() == [[2.0, 4.0], [6.0, -2.0]]


def test_backward_output_captured(runner):
    code = ("import torch\nx = torch.ones(2, requires_grad=True)\n"
            "x.register_hook(lambda g: print('hook', g.tolist()))\ny = (x * 4).sum()\n")
    result = runner.run(code, backward="y")
    assert result.error is None
    assert "hook [4.0, 4.0]" in result.stdout


@pytest.mark.parametrize("code, name, etype", [
    ("import torch\nx = torch.ones(2, requires_grad=True)\n", "y", "NameError"),
    ("y = 3\n", "y", "TypeError"),
    ("import torch\ny = torch.ones(3)\n", "y", "RuntimeError"),
])
def test_backward_errors_have_phase_backward(code, name, etype, runner):
    result = runner.run(code, backward=name)
    assert result.error is not None
    assert result.error.phase == "backward"
    assert result.error.type == etype
    assert result.error.message


def test_backward_error_from_torch_has_phase_backward(runner):
    # a second backward through a freed graph
    code = ("import torch\nx = torch.ones(2, requires_grad=True)\ny = (x * x).sum()\n"
            "y.backward()\n")
    result = runner.run(code, backward="y")
    assert result.error is not None and result.error.phase == "backward"
    assert result.error.type == "RuntimeError"


def test_run_errors_have_phase_run_even_with_backward(runner):
    result = runner.run("raise KeyError('k')\n", backward="y")
    assert result.error.phase == "run" and result.error.type == "KeyError"


# --- values (TensorValues beside each TensorNode) -------------------------------------

STATS_CODE = """
import torch
t = torch.tensor([1.5, float('nan'), -2.0, float('inf'), 4.25, float('-inf'), 0.5, 3.0])
w = torch.randn(4, 5, requires_grad=True)
(w * 2).sum().backward()
"""


def test_value_stats_equal_torch(runner):
    result = runner.run(STATS_CODE)
    assert result.error is None
    t = runner.namespace["t"]
    s = values_of(result, "t")
    finite = t[torch.isfinite(t)]
    assert s.stats.nan == int(torch.isnan(t).sum()) == 1
    assert s.stats.inf == int(torch.isinf(t).sum()) == 2
    assert s.stats.min == pytest.approx(float(finite.min()))
    assert s.stats.max == pytest.approx(float(finite.max()))
    assert s.stats.mean == pytest.approx(float(finite.mean()))
    assert s.stats.std == pytest.approx(float(finite.std()))
    assert all(math.isfinite(v) for v in (s.stats.min, s.stats.max, s.stats.mean, s.stats.std))
    node = named_node(result, "t")  # shape, dtype, ... live on the node, not in the values
    assert node.shape == [8] and node.dtype == "float32" and s.numel == 8
    np.testing.assert_array_equal(s.preview, t.numpy())  # nan == nan here


def test_values_of_a_parameter_with_grad(runner):
    result = runner.run(STATS_CODE)
    w = runner.namespace["w"]
    s = values_of(result, "w")
    node = named_node(result, "w")
    assert node.requires_grad and node.is_leaf and node.grad_fn is None
    assert s.stats.mean == pytest.approx(float(w.detach().mean()), abs=1e-6)
    assert s.stats.std == pytest.approx(float(w.detach().std()), rel=1e-5)
    assert s.stats.nan == 0 and s.stats.inf == 0
    assert s.grad_stats.min == 2.0 and s.grad_stats.max == 2.0 and s.grad_stats.std == 0.0
    assert np.array_equal(s.grad_preview, np.full(20, 2.0, dtype=np.float32))


def test_preview_is_capped(runner):
    result = runner.run("import torch\nbig = torch.arange(10000.)\n")
    s = values_of(result, "big")
    assert s.preview.size == VALUES_LIMIT
    assert s.preview.tolist() == list(range(s.preview.size))
    assert s.stats.max == 9999.0 and s.numel == 10000


def test_big_tensors_get_stats_only_when_asked(runner):
    """A run leaves out statistics past STATS_LIMIT elements; `Runner.values` (the
    inspector's request) computes them in full, equal to torch's."""
    n = STATS_LIMIT + 1
    result = runner.run(f"import torch\nbig = torch.randn({n}, requires_grad=True)\n"
                        "small = torch.randn(5)\n(big * 3).sum().backward()\n")
    assert result.error is None
    lazy = values_of(result, "big")
    assert lazy.numel == n and lazy.stats is None and lazy.grad_stats is None
    assert lazy.preview.size == VALUES_LIMIT and lazy.grad_preview.tolist() == [3.0] * VALUES_LIMIT
    assert values_of(result, "small").stats is not None
    big = runner.namespace["big"].detach()
    full = runner.values("big")
    assert full.numel == n
    assert full.stats.min == pytest.approx(float(big.min()))
    assert full.stats.max == pytest.approx(float(big.max()))
    assert full.stats.mean == pytest.approx(float(big.mean()), abs=1e-5)
    assert full.stats.std == pytest.approx(float(big.std()), rel=1e-4)
    assert full.grad_stats.min == full.grad_stats.max == 3.0
    np.testing.assert_array_equal(full.preview, big[:VALUES_LIMIT].numpy())
    assert runner.values("nope") is None


def test_timings_name_each_phase(runner):
    """`exec`, `data` (finding datasets and loaders), `trace` and `values`, as
    RunResult.timings documents (no `values` when none were computed)."""
    result = runner.run("import torch\nx = torch.ones(2, requires_grad=True)\ny = x * 2\n")
    assert set(result.timings) == {"exec", "data", "trace", "values"}
    assert all(v >= 0 for v in result.timings.values())
    off = runner.run("import torch\nx = torch.ones(2)\n", values=False)
    assert set(off.timings) == {"exec", "data", "trace"}


def test_storage_sharing_reported(runner):
    result = runner.run("import torch\nbase = torch.zeros(4)\nview = base[1:]\nother = torch.zeros(4)\n")
    assert "view" in values_of(result, "base").shares_storage_with
    assert "base" in values_of(result, "view").shares_storage_with
    assert values_of(result, "other").shares_storage_with == []


def test_values_off(runner):
    result = runner.run("import torch\nx = torch.ones(2)\n", values=False)
    assert result.values == {} and result.graph is not None


def test_grad_limit_leaves_big_grads_out():
    code = ("import torch\nx = torch.ones(100, requires_grad=True)\n"
            "s = torch.ones(3, requires_grad=True)\n(x.sum() + s.sum()).backward()\n")
    result = Runner(grad_limit=10).run(code)
    x, s = named_node(result, "x"), named_node(result, "s")
    assert x.grad is None and x.has_grad is True
    assert s.grad.tolist() == [1.0, 1.0, 1.0] and s.has_grad is True
    # the default: VALUES_LIMIT elements kept; None (the export): all of them
    big = code.replace("ones(100,", f"ones({VALUES_LIMIT + 1},")
    assert named_node(Runner().run(big), "x").grad is None
    assert named_node(Runner().run(code), "x").grad.tolist() == [1.0] * 100
    assert named_node(Runner(grad_limit=None).run(big), "x").grad.tolist() == [1.0] * (VALUES_LIMIT + 1)


# --- once bugs in core/, now fixed: they must stay fixed -----

@pytest.mark.parametrize("code", ["import sys\nsys.exit(3)\n", "x = 1\nexit()\n"])
def test_sys_exit_is_reported_not_raised(code, runner):
    result = runner.run(code)
    assert result.error is not None and result.error.type == "SystemExit"
    assert result.error.line == 2


@pytest.mark.parametrize("code", [
    "import torch\nm = torch.empty(3, device='meta')\n",
    "import torch\nsp = torch.eye(3).to_sparse()\n",
    "import torch\nnt = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])\n",
])
def test_unusual_tensors_do_not_crash_run(code, runner):
    result = runner.run(code)
    assert result.graph is not None or result.error is not None


def test_float64_stats_equal_torch(runner):
    result = runner.run("import torch\nbig = torch.tensor([1e300, -1e300, 3e300], "
                        "dtype=torch.float64)\n")
    big = runner.namespace["big"]
    s = values_of(result, "big").stats
    assert s.mean == pytest.approx(float(big.mean()))
    assert s.std == pytest.approx(float(big.std()))


def test_endless_output_is_capped_and_counted(runner):
    result = runner.run("for i in range(100_000):\n    print(i)\n", "p.py")
    assert result.error is None
    assert len(result.stdout) < runner_module.OUTPUT_LIMIT + 100
    assert result.stdout.startswith("0\n1\n2\n") and "more characters not shown" in result.stdout


def test_the_scripts_own_backward_is_recorded_and_torch_is_restored(runner):
    import torch

    original = torch.autograd.backward
    result = runner.run("import torch\nx = torch.tensor([2.], requires_grad=True)\n"
                        "w = torch.tensor([1.], requires_grad=True)\ny = (w + x) * (w + 1)\ny.backward()\n"
                        "z = (x * 3).sum()\nz.backward()\n")
    assert torch.autograd.backward is original
    # every call is recorded; the latest one is replayed (see test_backward_calls.py)
    first, trace = result.backward_calls
    assert trace is result.backward
    assert trace.root_name == "z (call 2 of 2)" and (trace.call, trace.calls, trace.line) == (2, 2, 7)
    assert first.root_name == "y (call 1 of 2)" and (first.call, first.calls, first.line) == (1, 2, 5)
    assert [s.name for s in first.steps][0] == "MulBackward0"
    assert [s.name for s in trace.steps][0] == "SumBackward0"
    ops = {n.id: n.name for n in result.graph.by_kind("op")}
    assert all(ops[s.node] == s.name for s in first.steps + trace.steps)
    assert runner.namespace["x"].grad.tolist() == [5.0]  # 2 from y, 3 from z
    (acc,) = [s for s in trace.steps if s.leaf]
    assert acc.leaf_grad.values.tolist() == [5.0]


def test_a_failing_backward_in_the_script_still_raises_at_its_line(runner):
    result = runner.run("import torch\nx = torch.ones(2, requires_grad=True)\ny = x * 2\ny.backward()\n")
    assert result.error.type == "RuntimeError" and result.error.line == 4


def test_traceback_shows_the_script_not_torchscope(runner):
    result = runner.run("import torch\ny = torch.ones(2)\nz = y @ torch.ones(3)\n", "<editor>")
    tb = result.error.traceback
    assert 'File "<editor>", line 3' in tb and "z = y @ torch.ones(3)" in tb
    assert "core/" not in tb and "runner.py" not in tb and "record.py" not in tb


def test_a_huge_allocation_is_an_error_at_its_line_in_plain_words(runner):
    from core.labels import error_kind

    result = runner.run("import torch\nx = torch.empty(10**13)\n", "big.py")
    assert result.error.type == "RuntimeError" and result.error.line == 2
    assert "37,252.9 GiB" in explain_error(result.error.message)  # 4e13 bytes of float32
    assert error_kind(result.error.message) == "allocation"


def test_a_run_frees_the_previous_namespace_and_history(runner):
    runner.run("import torch\nx = torch.tensor([1.], requires_grad=True)\ny = (x * 2).sum()\n")
    assert runner.backward("y").backward.error is None
    assert len(runner.grad_history["x"]) == 1
    runner.run("z = 1\n")
    assert "x" not in runner.namespace and runner.grad_history == {}
    failed = runner.run("raise ValueError('no')\n")
    assert failed.error is not None
    assert "x" not in runner.namespace  # the earlier run's tensors are gone; the failed run's own
    # namespace is kept, so the partial graph it drew can still be inspected


def test_an_error_keeps_the_graph_built_up_to_the_failing_line(runner):
    result = runner.run("import torch\nx = torch.ones(2, requires_grad=True)\ny = x * 2\n"
                        "z = y @ torch.ones(3)\nw = z + 1\n")
    assert result.error is not None and result.error.line == 4
    assert {n.name for n in result.graph.by_kind("tensor")} == {"x", "y"}
    assert [n.name for n in result.graph.by_kind("op") if n.name != "AccumulateGrad"] == ["MulBackward0"]
    assert runner.run("x = (\n").graph is None  # a syntax error built nothing


def test_ops_know_their_module_and_line(runner):
    code = ("import torch\nfrom torch import nn\n"
            "model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 1)))\n"
            "x = torch.randn(2, 3)\nout = model(x)\nloss = out.sum()\n")
    result = runner.run(code, filename="m.py")
    ops = {o.name: o for o in result.graph.by_kind("op") if o.name != "AccumulateGrad"}
    assert ops["ReluBackward0"].module == "model.1"
    assert {o.module for o in result.graph.by_kind("op") if o.name == "AddmmBackward0"} == {"model.0", "model.2.0"}
    assert ops["SumBackward0"].module is None and ops["SumBackward0"].line == 6
    assert ops["ReluBackward0"].line == 5
    assert result.graph.modules["model.2"] == "Sequential"
    tensors = {n.name: n for n in result.graph.by_kind("tensor")}
    assert tensors["x"].line == 4 and tensors["loss"].line == 6


def test_upto_runs_the_first_statements_only(runner):
    code = ("import torch\nx = torch.ones(2, requires_grad=True)\ny = x * 2\nif True:\n"
            "    z = y.exp()\nw = z.sum()\n")
    names = []
    for k in range(1, 6):
        result = runner.run(code, upto=k)
        assert result.error is None
        names.append({n.name for n in result.graph.by_kind("tensor")})
    assert names == [set(), {"x"}, {"x", "y"}, {"x", "y", "z"}, {"x", "y", "z", "w"}]
    assert runner.run("x = 1\ny = (\n", upto=1).error.type == "SyntaxError"  # the whole file must parse


def test_a_name_bound_again_keeps_its_first_tensor_as_name_at_line(runner):
    result = runner.run("import torch\nx = torch.ones(2, requires_grad=True)\nx = x * 2\ny = x.sum()\n",
                        filename="v.py")
    names = {n.name for n in result.graph.by_kind("tensor")}
    assert names == {"x@2", "x", "y"}
    first = next(n for n in result.graph.by_kind("tensor") if n.name == "x@2")
    assert first.is_leaf and first.line == 2
