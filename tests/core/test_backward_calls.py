"""Every backward() and torch.autograd.grad() a script makes, recorded; the latest one
replayed on the graph that is drawn. And the recorder's batched summaries against
torch itself, on graphs long enough to be summarized chunk by chunk while the
engine runs.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from wire_check import deep_equal, wire

from core.kernel import record
from core.kernel.record import CALLS_LIMIT, grad_info, grad_infos, record_backward
from core.kernel.runner import CORE_DIR, Runner
from core.protocol import decode, encode

# backward(create_graph=True) warns about a parameter <-> grad reference cycle
pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")

LOOP = """import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(8, 3)
target = torch.randn(8, 1)
for i in range(5):
    opt.zero_grad()
    loss = ((model(x) - target) ** 2).mean()
    loss.backward()
    opt.step()
"""
LOOP_LINE = LOOP.splitlines().index("    loss.backward()") + 1


def line_of(code: str, text: str) -> int:
    return next(i for i, ln in enumerate(code.splitlines(), 1) if text in ln)


def run_ok(code: str, grad_limit: int | None = None):
    runner = Runner(grad_limit=grad_limit)
    result = runner.run(code, "script.py")
    assert result.error is None, result.error
    return runner, result


def plain_loop_grads() -> list[dict[str, torch.Tensor]]:
    """The loop run by torch alone: each parameter's .grad after each backward."""
    ns: dict = {}
    code = LOOP.replace("    loss.backward()\n",
                        "    loss.backward()\n"
                        "    grads.append({k: p.grad.clone() for k, p in model.named_parameters()})\n")
    exec(compile("grads = []\n" + code, "<plain>", "exec"), ns)
    return ns["grads"]


def leaf_grads(trace, graph) -> dict[str, np.ndarray]:
    """name of the leaf -> the .grad its AccumulateGrad step shows."""
    names = {n.id: n.name for n in graph.nodes}
    return {names[s.leaf]: s.leaf_grad.values for s in trace.steps if s.leaf}


def assert_resolved_on(trace, graph):
    nodes = {n.id: n for n in graph.nodes}
    assert trace.root and nodes[trace.root].kind == "tensor"
    assert trace.steps
    for s in trace.steps:
        assert s.node in nodes and nodes[s.node].kind == "op" and nodes[s.node].name == s.name, s
        if s.leaf is not None:
            assert nodes[s.leaf].kind == "tensor" and nodes[s.leaf].is_leaf


# --- a training loop -----------------------------------------------------------------

def test_a_training_loop_records_every_call_with_its_line():
    runner, result = run_ok(LOOP)
    calls = result.backward_calls
    assert [t.call for t in calls] == [1, 2, 3, 4, 5]
    assert all(t.calls == 5 and t.line == LOOP_LINE and t.kind == "backward" for t in calls)
    assert all(t.error is None and t.steps for t in calls)
    assert result.backward is calls[-1]  # the latest is the one replayed
    assert result.backward.root_name == "loss (call 5 of 5)"
    assert calls[0].root_name == "loss (call 1 of 5)"
    # the same graph five times over: the same steps, in the same order
    assert len({tuple(s.name for s in t.steps) for t in calls}) == 1


def test_the_replayed_call_resolves_onto_the_drawn_graph():
    runner, result = run_ok(LOOP)
    trace, graph = result.backward, result.graph
    assert_resolved_on(trace, graph)
    nodes = {n.id: n for n in graph.nodes}
    assert nodes[trace.root].name == "loss"
    # every op of the drawn graph ran in this call, each once
    ops = [s.node for s in trace.steps]
    assert len(set(ops)) == len(ops) and set(ops) == {n.id for n in graph.by_kind("op")}


def test_the_last_calls_leaf_grads_are_the_final_grads_and_torchs():
    runner, result = run_ok(LOOP)
    plain = plain_loop_grads()
    params = dict(runner.namespace["model"].named_parameters())
    shown = leaf_grads(result.backward, result.graph)
    assert set(shown) == {f"model.{k}" for k in params}
    for k, p in params.items():
        np.testing.assert_array_equal(shown[f"model.{k}"], p.grad.numpy())  # what the graph shows
        assert torch.allclose(torch.from_numpy(shown[f"model.{k}"]), plain[-1][k], rtol=1e-6, atol=1e-8)
        leaf = next(n for n in result.graph.by_kind("tensor") if n.name == f"model.{k}")
        np.testing.assert_array_equal(leaf.grad, shown[f"model.{k}"])  # no second grad for one leaf
    # and each earlier call shows the grads of its own iteration
    for t, grads in zip(result.backward_calls, plain):
        for name, values in leaf_grads(t, result.graph).items():
            ref = grads[name.removeprefix("model.")]
            assert torch.allclose(torch.from_numpy(values), ref, rtol=1e-6, atol=1e-8), (t.call, name)
    first, last = result.backward_calls[0], result.backward
    w0 = leaf_grads(first, result.graph)["model.0.weight"]
    assert not np.allclose(w0, leaf_grads(last, result.graph)["model.0.weight"])


def test_older_calls_keep_their_steps_but_their_graph_is_gone():
    runner, result = run_ok(LOOP)
    older = result.backward_calls[0]
    drawn = {n.id for n in result.graph.nodes}
    # the ops of iteration 1 are not drawn any more (""); the parameters' AccumulateGrad
    # nodes are the same objects in every iteration, so those still are
    assert any(s.node == "" for s in older.steps)
    for s in older.steps:
        assert s.node == "" or s.node in drawn
        assert (s.node != "") == (s.name == "AccumulateGrad"), s
    assert [s.name for s in older.steps] == [s.name for s in result.backward.steps]


def test_150_calls_keep_the_first_99_and_the_latest():
    code = ("import torch\nx = torch.tensor([1.0, 2.0], requires_grad=True)\n"
            "for i in range(150):\n    y = (x * (i + 1)).sum()\n    y.backward()\n")
    runner, result = run_ok(code)
    calls = result.backward_calls
    assert CALLS_LIMIT == 100 and len(calls) == 100
    assert [t.call for t in calls] == list(range(1, 100)) + [150]
    assert all(t.calls == 150 and t.line == 5 for t in calls)
    last = result.backward
    assert last is calls[-1] and last.root_name == "y (call 150 of 150)"
    assert_resolved_on(last, result.graph)
    (acc,) = [s for s in last.steps if s.leaf]
    total = sum(range(1, 151))
    assert acc.leaf_grad.values.tolist() == [total, total] == runner.namespace["x"].grad.tolist()
    mul = next(s for s in last.steps if s.name == "MulBackward0")
    assert mul.grad_inputs[0].values.tolist() == [150.0, 150.0]
    assert calls[0].steps[0].node == ""  # that y is gone


def test_one_backward_is_call_1_of_1_as_before():
    code = "import torch\nx = torch.tensor([2.0], requires_grad=True)\ny = (x * x).sum()\ny.backward()\n"
    runner, result = run_ok(code)
    trace = result.backward
    assert (trace.call, trace.calls, trace.line, trace.kind) == (1, 1, 4, "backward")
    assert trace.root_name == "y"
    assert result.backward_calls == [trace]
    assert_resolved_on(trace, result.graph)
    assert runner.namespace["x"].grad.tolist() == [4.0]


def test_a_backward_asked_for_is_not_a_script_call():
    runner, result = run_ok("import torch\nx = torch.tensor([2.0], requires_grad=True)\n"
                            "y = (x * 3).sum()\n")
    assert result.backward is None and result.backward_calls == []
    pressed = runner.backward("y")
    assert (pressed.backward.call, pressed.backward.calls, pressed.backward.line) == (1, 1, None)
    assert pressed.backward_calls == []


# --- torch.autograd.grad --------------------------------------------------------------

GRAD = """import torch
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = (x ** 2).sum()
(g,) = torch.autograd.grad(y, x)
"""


def test_autograd_grad_is_recorded():
    original = torch.autograd.grad
    runner, result = run_ok(GRAD)
    assert torch.autograd.grad is original
    trace = result.backward
    assert trace.kind == "grad" and (trace.call, trace.calls, trace.line) == (1, 1, 4)
    assert trace.root_name == "y" and not trace.retain_graph and not trace.create_graph
    assert [s.name for s in trace.steps] == ["SumBackward0", "PowBackward0"]  # no AccumulateGrad
    assert_resolved_on(trace, result.graph)
    assert trace.steps[1].grad_inputs[0].values.tolist() == [2.0, 4.0, 6.0]
    assert runner.namespace["g"].tolist() == [2.0, 4.0, 6.0]
    assert runner.namespace["x"].grad is None  # grad() leaves .grad alone


def test_autograd_grad_imported_by_name_and_mixed_with_backward():
    code = ("import torch\nfrom torch.autograd import grad\n"
            "x = torch.tensor([1.0, -2.0], requires_grad=True)\n"
            "y = (x ** 3).sum()\n"
            "(g,) = grad(y, x, create_graph=True)\n"
            "s = g.sum()\n"
            "s.backward()\n")
    runner, result = run_ok(code)
    first, second = result.backward_calls
    assert (first.kind, first.line, first.create_graph, first.retain_graph) == ("grad", 5, True, True)
    assert (second.kind, second.line, second.call, second.calls) == ("backward", 7, 2, 2)
    assert second is result.backward and second.root_name == "s (call 2 of 2)"
    assert runner.namespace["x"].grad.tolist() == [6.0, -12.0]  # d/dx sum(3x^2) = 6x
    (acc,) = [s for s in second.steps if s.leaf]
    assert acc.leaf_grad.values.tolist() == [6.0, -12.0]
    assert_resolved_on(second, result.graph)


def test_the_stand_ins_read_as_torch():
    code = ("import torch, inspect\n"
            "names = (torch.autograd.grad.__name__, torch.autograd.backward.__name__)\n"
            "sigs = (str(inspect.signature(torch.autograd.grad)), "
            "str(inspect.signature(torch.autograd.backward)))\n")
    runner, result = run_ok(code)
    assert runner.namespace["names"] == ("grad", "backward")
    assert runner.namespace["sigs"] == (str(inspect.signature(torch.autograd.grad)),
                                        str(inspect.signature(torch.autograd.backward)))


def test_a_mistyped_grad_keyword_reads_as_torchs_error():
    call = "torch.autograd.grad(y, x, retain_grap=True)"
    result = Runner().run(GRAD + call + "\n", "script.py")
    ns: dict = {}
    exec(GRAD, ns)
    with pytest.raises(TypeError) as plain:
        eval(call, ns)
    assert result.error.type == "TypeError" and result.error.message == str(plain.value)
    assert result.error.line == 5 and CORE_DIR not in result.error.traceback


def test_a_failing_grad_call_is_an_error_at_its_line():
    result = Runner().run("import torch\nx = torch.ones(2, requires_grad=True)\ny = x * 2\n"
                          "torch.autograd.grad(y, x)\n", "script.py")
    assert result.error.type == "RuntimeError" and result.error.line == 4
    assert "scalar" in result.error.message


def test_batched_grads_are_counted_not_recorded():
    code = ("import torch\nx = torch.tensor([1.0, 2.0], requires_grad=True)\ny = x * x\n"
            "(jac,) = torch.autograd.grad(y, x, torch.eye(2), retain_graph=True, is_grads_batched=True)\n"
            "z = y.sum()\nz.backward()\n")
    runner, result = run_ok(code)
    assert runner.namespace["jac"].tolist() == [[2.0, 0.0], [0.0, 4.0]]
    (trace,) = result.backward_calls
    assert (trace.call, trace.calls, trace.line) == (2, 2, 6)


def test_a_result_with_many_calls_travels():
    runner, result = run_ok(LOOP, grad_limit=None)
    data, buffers = encode(result, "m1")
    back, _ = decode(*wire(data, buffers))
    deep_equal(back.backward_calls, result.backward_calls)
    deep_equal(back.backward, result.backward)
    assert [t.call for t in back.backward_calls] == [1, 2, 3, 4, 5]


# --- the batched summaries against torch ----------------------------------------------

def chain_script(n: int):
    """A long graph with branches, several shapes and dtypes, a big tensor, and a
    None among grad_inputs (a constant operand): summarized chunk by chunk."""
    torch.manual_seed(0)
    x = torch.randn(5, requires_grad=True)
    w = torch.randn(20, 30, requires_grad=True)  # 600 elements: over VALUES_LIMIT
    d = torch.randn(3, dtype=torch.float64, requires_grad=True)
    h = x
    for i in range(n):
        h = torch.sin(h) * 1.01 + h * 0.5
    big = (w * 2).tanh().sum()
    y = h.sum() + big + (d * d).sum().float() + (x[0] * 3)
    return y, {"x": x, "w": w, "d": d}


def hook_copies(root):
    post, handles, seen, stack = [], [], set(), [root.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack.extend(nf for nf, _ in fn.next_functions)

        def copy(gs):
            return [None if g is None else g.detach().clone() for g in gs]
        handles.append(fn.register_hook(lambda gi, go, fn=fn: post.append((fn, copy(gi), copy(go)))))
    return post, handles


def same(info, t, rel=1e-6):
    if t is None or info is None:
        return t is None and info is None
    ref = t.detach().double()
    if info.shape != list(t.shape) or info.dtype != str(t.dtype).removeprefix("torch."):
        return False
    if info.values is not None:
        expected = t.detach().float() if t.dtype in (torch.float16, torch.bfloat16) else t.detach()
        if not (info.values.dtype == expected.numpy().dtype
                and np.array_equal(info.values, expected.numpy())):
            return False
    return (math.isclose(info.norm, float(torch.linalg.vector_norm(ref)), rel_tol=rel, abs_tol=1e-12)
            and info.min == float(ref.min()) and info.max == float(ref.max()))


@pytest.mark.parametrize("limit", [record.VALUES_LIMIT, 4, None])
def test_a_long_graph_records_what_flowed_through_every_node(limit):
    y, leaves = chain_script(400)  # 1,200 nodes and more: several chunks while the engine runs
    trace = record_backward(y, "y", limit=limit).trace
    assert trace.error is None and len(trace.steps) > 1200
    assert [s.index for s in trace.steps] == list(range(len(trace.steps)))
    y2, leaves2 = chain_script(400)
    post, handles = hook_copies(y2)
    y2.backward()
    for h in handles:
        h.remove()
    assert [s.name for s in trace.steps] == [type(fn).__name__ for fn, _, _ in post]
    for step, (fn, gi, go) in zip(trace.steps, post):
        assert len(step.grad_inputs) == len(gi) and len(step.grad_outputs) == len(go)
        for info, t in zip(step.grad_inputs + step.grad_outputs, gi + go):
            assert same(info, t), (step.index, step.name)
            if info is not None and limit is not None and t.numel() > limit:
                assert info.values is None
    for name, t in leaves.items():
        assert torch.allclose(t.grad, leaves2[name].grad)
        (acc,) = [s for s in trace.steps if s.leaf == str(id(t))]
        assert same(acc.leaf_grad, leaves2[name].grad), name


def test_grad_infos_equal_grad_info_for_every_kind():
    torch.manual_seed(0)
    a = torch.randn(4, 3)
    tensors = [
        a, a.t(), a[:, 1], a.expand(2, 4, 3), a, None, torch.tensor(2.5), torch.ones(0, 3),
        torch.randn(3, dtype=torch.float64), torch.randn(3).half(), torch.randn(3).bfloat16(),
        torch.tensor([math.inf, -1.0, 2.0]), torch.tensor([math.nan, 1.0, 0.0]),
        torch.tensor([1e30, -1e30, 3e30]), torch.tensor([1 + 2j, 3 - 1j]),
        torch.eye(3).to_sparse(), torch.randn(300), torch.randn(3, requires_grad=True) * 2,
        torch.arange(6).reshape(2, 3),
    ]
    got = grad_infos(tensors)
    assert got[0] is got[4] and got[5] is None
    for info, t in zip(got, tensors):
        ref = grad_info(t)
        if t is None:
            assert info is None
            continue
        assert info.shape == ref.shape and info.dtype == ref.dtype, t
        if ref.values is None:
            assert info.values is None
        else:
            assert info.values.dtype == ref.values.dtype and info.values.shape == ref.values.shape, t
            np.testing.assert_array_equal(info.values, ref.values)
        for a_, b_ in ((info.norm, ref.norm), (info.min, ref.min), (info.max, ref.max)):
            assert (math.isnan(a_) and math.isnan(b_)) or a_ == pytest.approx(b_, rel=1e-6), (t, a_, b_)
            assert type(a_) is type(b_)


def test_hooks_return_none_and_create_graph_is_untouched():
    """The recorder's hooks keep references only: a second derivative through the
    recorded backward equals torch's, and the hooks are gone afterwards."""
    x = torch.tensor([0.5, -1.5, 2.0], requires_grad=True)
    y = (x.sin() * x ** 3).sum()
    trace = record_backward(y, "y", create_graph=True).trace
    assert trace.error is None and trace.create_graph
    g1 = x.grad
    assert g1.grad_fn is not None
    x2 = x.detach().clone().requires_grad_(True)
    (r1,) = torch.autograd.grad((x2.sin() * x2 ** 3).sum(), x2, create_graph=True)
    assert torch.allclose(g1, r1)
    (second,) = torch.autograd.grad(g1.sum(), x, retain_graph=True)
    (ref,) = torch.autograd.grad(r1.sum(), x2)
    assert torch.allclose(second, ref)
    n = len(trace.steps)
    y.backward(retain_graph=True)  # the graph was retained: the hooks must be gone
    assert len(trace.steps) == n


def test_registering_takes_torchs_hook_machinery_back_as_it_was():
    assert "_register_hook" not in torch.autograd.Function.__dict__
    x = torch.ones(2, requires_grad=True)
    record_backward((x * 2).sum(), "y")
    assert "_register_hook" not in torch.autograd.Function.__dict__
    y = x * 3
    handle = y.grad_fn.register_hook(lambda gi, go: None)
    assert type(handle).__name__ == "RemovableHandle"
    handle.remove()


def test_big_grads_summarized_on_their_device_equal_grad_info(monkeypatch):
    """The path CUDA takes (statistics on the device, one copy back), run on the CPU."""
    monkeypatch.setattr(record, "ONE_BY_ONE_DEVICES", set())
    torch.manual_seed(0)
    tensors = [torch.randn(300), torch.randn(300) * 5, torch.randn(20, 30).half(),
               torch.tensor([math.inf] + [1.0] * 299), torch.randn(300, dtype=torch.float64)]
    for info, t in zip(grad_infos(tensors), tensors):
        ref = grad_info(t)
        assert info.values is None and ref.values is None
        assert (info.shape, info.dtype) == (ref.shape, ref.dtype)
        assert (info.norm, info.min, info.max) == (ref.norm, ref.min, ref.max)


def test_a_refused_call_the_script_caught_is_recorded_with_its_error():
    code = ("import torch\nx = torch.tensor([1.0, 2.0], requires_grad=True)\ny = (x * x).sum()\n"
            "y.backward()\ntry:\n    y.backward()\nexcept RuntimeError:\n    pass\n")
    runner, result = run_ok(code)
    first, second = result.backward_calls
    assert first.error is None and len(first.steps) == 3
    assert second is result.backward and (second.call, second.calls, second.line) == (2, 2, 6)
    assert "second time" in second.error
    assert [s.name for s in second.steps] == ["SumBackward0"]  # it ran; MulBackward0 refused
    assert runner.namespace["x"].grad.tolist() == [2.0, 4.0]


def test_stopping_after_call_k_draws_that_calls_graph(runner):
    """Picking call 2 of 5: the script ends right after it, so the graph drawn and the
    replay belong to the same call (and the leaf grads are the ones after call 2)."""
    code = ("import torch\nw = torch.tensor([1.0], requires_grad=True)\n"
            "for i in range(5):\n    loss = (w * (i + 1)).sum()\n    loss.backward()\n")
    result = runner.run(code, filename="loop.py", stop_after_call=2)
    assert result.error is None
    assert (result.backward.call, result.backward.line) == (2, 5)
    nodes = {n.id for n in result.graph.nodes}
    assert result.backward.steps and all(s.node in nodes for s in result.backward.steps)
    w = next(n for n in result.graph.by_kind("tensor") if n.name == "w")
    assert w.grad.tolist() == [3.0]  # 1 + 2: grads accumulate over the two calls
    assert runner.namespace["i"] == 1
