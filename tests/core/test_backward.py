"""core.kernel.record: the recorded backward against torch itself.

Each script's forward is built several times from the same seed: once for a plain
`root.backward(...)` (the reference grads), once under `record_backward`, and once
under hooks this file registers itself (the reference for what flowed through every
node). The order test puts this file's hooks and the recorder on the *same* graph.
Then `Runner.run(backward=...)`, the export, `Runner.backward` (the app's Backward
button), plain words for refusals (`core.labels`) and the protocol round trip.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from wire_check import deep_equal, wire

from core.kernel.record import grad_info, record_backward, resolve_ids, zero_grads
from core.kernel.runner import Runner
from core.kernel.trace import trace_graph
from core.labels import error_kind, explain_error
from core.model.backward import BackwardStep, BackwardTrace, GradInfo, trace_to_dict
from core.model.tensors import VALUES_LIMIT
from core.protocol import decode, encode

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "resources" / "examples"

# backward(create_graph=True) warns about a parameter <-> grad reference cycle
pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")

HEADER = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"


def example(name: str, *drop: str) -> str:
    """An example script without its own backward() and print() lines."""
    lines = (EXAMPLES / name).read_text().splitlines()
    keep = [ln for ln in lines if ln.strip() not in drop and not ln.strip().startswith("print(")]
    return "\n".join(keep) + "\n"


SEED = example("01_computation_graph.py", "y.backward()")
VECTOR = example("06_vector_backward.py", "y.backward(v)")
V_EXPR = "torch.tensor([0.1, 1.0, 0.0001])"

CUBE = """
class CubeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * grad_out


x = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
w = torch.tensor([0.3, 0.7, -1.1], requires_grad=True)
y = CubeFn.apply(x * w)
s = (y * x).sum()
"""

# id -> (code, root name, gradient expression or None, create_graph)
SCRIPTS = {
    "module_loss": (example("03_module_with_loss.py", "loss.backward()"), "loss", None, False),
    "custom_function": (CUBE, "s", None, False),
    "broadcasting": ("x = torch.randn(3, requires_grad=True)\nw = torch.randn(4, requires_grad=True)\n"
                     "y = (x[:, None] * w[None, :]).sum()\n", "y", None, False),
    "shared_input_3x": ("x = torch.randn(4, requires_grad=True)\na = x * 2\nb = x.sin()\n"
                        "c = x ** 2\ny = (a + b * c).sum()\n", "y", None, False),
    "inplace_non_leaf": ("x = torch.randn(3, requires_grad=True)\nh = x * 2\nh.add_(1)\nh.mul_(3)\n"
                         "y = (h * x).sum()\n", "y", None, False),
    "retain_grad": (example("07_retain_grad.py", "out.backward()"), "out", None, False),
    "create_graph": ("x = torch.tensor([1.0, 2.0, -3.0], requires_grad=True)\ny = (x ** 3).sum()\n",
                     "y", None, True),
    "matmul_relu_softmax_ce": (
        "x = torch.randn(5, 4)\nW = torch.randn(4, 3, requires_grad=True)\n"
        "b = torch.zeros(3, requires_grad=True)\nlogits = (x @ W + b).relu()\n"
        "p = logits.softmax(dim=1)\ntarget = torch.tensor([0, 2, 1, 1, 0])\n"
        "loss = F.cross_entropy(logits, target) + (p * p).sum()\n", "loss", None, False),
    "conv_maxpool": ("conv = nn.Conv2d(1, 2, 3)\nimg = torch.randn(2, 1, 6, 6)\n"
                     "out = F.max_pool2d(conv(img).relu(), 2)\nloss = out.pow(2).mean()\n",
                     "loss", None, False),
    "lstm_cell": ("cell = nn.LSTMCell(3, 4)\nxs = torch.randn(3, 2, 3)\nh = torch.zeros(2, 4)\n"
                  "c = torch.zeros(2, 4)\nfor t in range(3):\n    h, c = cell(xs[t], (h, c))\n"
                  "loss = h.pow(2).sum() + c.mean()\n", "loss", None, False),
    "rnn_cell": ("rnn = nn.RNNCell(2, 3)\nxs = torch.randn(4, 1, 2, requires_grad=True)\n"
                 "h = torch.zeros(1, 3)\nfor t in range(4):\n    h = rnn(xs[t], h)\nloss = h.sum()\n",
                 "loss", None, False),
    "where": ("x = torch.randn(6, requires_grad=True)\n"
              "y = torch.where(x > 0, x ** 2, -3 * x).sum()\n", "y", None, False),
    "index_cat_stack_split": (
        "x = torch.randn(6, requires_grad=True)\na, b, c = x.split(2)\n"
        "s = torch.stack([a * 2, b, c.exp()])\n"
        "z = torch.cat([x[1:4], x[[0, 0, 5]], s.flatten(), s[1]])\n"
        "y = (z * torch.arange(z.numel())).sum()\n", "y", None, False),
    "seed": (SEED, "y", None, False),
    "seed_vector_backward": (VECTOR, "y", "v", False),
    "detach_in_the_middle": ("x = torch.randn(3, requires_grad=True)\nh = x * 3\nd = h.detach()\n"
                             "y = (d * x + h.sin()).sum()\n", "y", None, False),
    "division_and_pow": (
        "x = torch.tensor([0.5, 1.5, -2.0], dtype=torch.float64, requires_grad=True)\n"
        "w = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64, requires_grad=True)\n"
        "y = ((x / (w ** 2 + 1)) ** 3).sum() + (2 ** w).sum() + (w ** x.abs()).sum() + (1 / x).sum()\n",
        "y", None, False),
    "mean_of_squares": (example("02_mean_of_squares.py", "out.backward()"), "out", None, False),
    "non_scalar_root": ("x = torch.randn(2, 3, requires_grad=True)\ny = x.tanh() * x\n",
                        "y", "torch.linspace(-1, 1, 6).reshape(2, 3)", False),
}
IDS = list(SCRIPTS)


def build(script_id: str):
    """A fresh forward of the script: (namespace, root, gradient, create_graph)."""
    code, root_name, grad_expr, create_graph = SCRIPTS[script_id]
    torch.manual_seed(0)
    ns: dict = {"__name__": "__script__"}
    exec(compile(HEADER + code, f"<{script_id}>", "exec"), ns)
    root = ns[root_name]
    gradient = eval(grad_expr, ns) if grad_expr else None
    return ns, root, gradient, create_graph


def leaves(ns: dict) -> dict[str, torch.Tensor]:
    """Named leaves that require grad, and module parameters (`model.0.weight`)."""
    out = {}
    for name, v in ns.items():
        if name.startswith("__"):
            continue
        if isinstance(v, torch.Tensor) and v.is_leaf and v.requires_grad:
            out[name] = v
        elif isinstance(v, torch.nn.Module):
            for path, p in v.named_parameters():
                out[f"{name}.{path}"] = p
    return out


def walk(root_fn) -> list:
    """Every autograd node reachable from root_fn (this file's own walk)."""
    seen, order, stack = set(), [], [root_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        order.append(fn)
        stack.extend(nf for nf, _ in fn.next_functions)
    return order


def hook_everything(root) -> tuple[list, list, list]:
    """Post-hooks and pre-hooks on every node: (post log, pre log, handles).
    The post log holds (fn, grad_inputs, grad_outputs) as the engine passed them."""
    post, pre, handles = [], [], []

    def copy(gs):
        return [None if g is None else g.detach().clone() for g in gs]

    for fn in walk(root.grad_fn):
        handles.append(fn.register_prehook(lambda go, fn=fn: pre.append(fn)))
        handles.append(fn.register_hook(
            lambda gi, go, fn=fn: post.append((fn, copy(gi), copy(go)))))
    return post, pre, handles


def values_tensor(info: GradInfo, like: torch.Tensor) -> torch.Tensor:
    assert isinstance(info.values, np.ndarray) and list(info.values.shape) == info.shape
    return torch.from_numpy(np.asarray(info.values, dtype=np.float64)).reshape(like.shape)


def same(info: GradInfo | None, t: torch.Tensor | None) -> bool:
    """A GradInfo (recorded with limit=None) describes exactly this tensor."""
    if t is None or info is None:
        return t is None and info is None
    t = t.detach()
    if info.shape != list(t.shape) or info.dtype != str(t.dtype).removeprefix("torch."):
        return False
    if info.values is None:
        return False
    ref = t.double()
    if not torch.allclose(values_tensor(info, ref), ref, rtol=1e-6, atol=1e-9):
        return False
    if t.numel() and not math.isclose(info.norm, float(torch.linalg.vector_norm(ref)),
                                      rel_tol=1e-5, abs_tol=1e-9):
        return False
    if t.numel() and not (math.isclose(info.min, float(ref.min()), rel_tol=1e-6, abs_tol=1e-9)
                          and math.isclose(info.max, float(ref.max()), rel_tol=1e-6, abs_tol=1e-9)):
        return False
    return True


def last_leaf_grads(trace: BackwardTrace) -> dict[str, GradInfo]:
    """leaf key (still `str(id(tensor))` before resolve_ids) -> its last recorded grad."""
    out = {}
    for step in trace.steps:
        if step.name == "AccumulateGrad":
            assert step.leaf is not None and step.leaf_grad is not None, step
            out[step.leaf] = step.leaf_grad
        else:
            assert step.leaf is None and step.leaf_grad is None, step
    return out


# --- 1. recorded grads equal torch's --------------------------------------------------

@pytest.mark.parametrize("script_id", IDS)
def test_recorded_grads_equal_plain_backward_and_own_hooks(script_id):
    # plain torch
    ns0, root0, g0, cg = build(script_id)
    root0.backward(g0, create_graph=cg)
    plain = {name: t.grad for name, t in leaves(ns0).items()}
    plain_non_leaf = {k: v.grad for k, v in ns0.items()
                      if isinstance(v, torch.Tensor) and not v.is_leaf and v.retains_grad}
    assert any(g is not None for g in plain.values())

    # recorded
    ns1, root1, g1, cg = build(script_id)
    rec = record_backward(root1, SCRIPTS[script_id][1], g1, create_graph=cg, limit=None)
    trace = rec.trace
    assert trace.error is None
    assert trace.root == "" and trace.root_name == SCRIPTS[script_id][1]
    assert trace.create_graph is cg
    assert [s.index for s in trace.steps] == list(range(len(trace.steps)))
    names = {str(id(t)): name for name, t in leaves(ns1).items()}
    recorded = {names[k]: info for k, info in last_leaf_grads(trace).items()}
    assert set(recorded) == {name for name, g in plain.items() if g is not None}
    for name, info in recorded.items():
        assert same(info, plain[name]), name
        assert same(info, leaves(ns1)[name].grad), name  # the recorder's backward is real
        assert torch.allclose(leaves(ns1)[name].grad, plain[name])
    for k, g in plain_non_leaf.items():
        assert torch.allclose(ns1[k].grad, g), k
    if cg:
        for name, t in leaves(ns1).items():
            assert t.grad.grad_fn is not None, name

    # this file's own hooks on a third identical forward
    ns2, root2, g2, cg = build(script_id)
    post, _, handles = hook_everything(root2)
    try:
        root2.backward(g2, create_graph=cg)
    finally:
        for h in handles:
            h.remove()
    assert [s.name for s in trace.steps] == [type(fn).__name__ for fn, _, _ in post]
    for step, (fn, gi, go) in zip(trace.steps, post):
        assert len(step.grad_inputs) == len(gi) == len(fn.next_functions), step.name
        assert len(step.grad_outputs) == len(go), step.name
        for info, t in zip(step.grad_inputs, gi):
            assert same(info, t), (step.index, step.name, "grad_inputs")
        for info, t in zip(step.grad_outputs, go):
            assert same(info, t), (step.index, step.name, "grad_outputs")


# --- 2. order: the engine's own, and topological ---------------------------------------

@pytest.mark.parametrize("script_id", IDS)
def test_order_is_the_engines_and_topological(script_id):
    ns, root, gradient, cg = build(script_id)
    post, pre, handles = hook_everything(root)  # registered before the recorder's
    fns = walk(root.grad_fn)
    try:
        rec = record_backward(root, "root", gradient, create_graph=cg)
        trace = rec.trace
    finally:
        for h in handles:
            h.remove()
    assert trace.error is None
    engine = [str(id(fn)) for fn, _, _ in post]
    assert [s.node for s in trace.steps] == engine
    assert [str(id(fn)) for fn in pre] == engine
    assert [s.name for s in trace.steps] == [type(fn).__name__ for fn, _, _ in post]
    # every reachable node ran exactly once
    assert sorted(engine) == sorted(str(id(fn)) for fn in fns)
    assert len(set(engine)) == len(engine)
    # a node runs only after every node that feeds it gradient (its forward consumers)
    pos = {node: i for i, node in enumerate(s.node for s in trace.steps)}
    for fn in fns:
        for nf, _ in fn.next_functions:
            if nf is not None:
                assert pos[str(id(fn))] < pos[str(id(nf))], (type(fn).__name__, type(nf).__name__)
    assert trace.steps[0].node == str(id(root.grad_fn))


def test_hooks_are_taken_off_after_the_recording():
    ns, root, gradient, _ = build("seed")
    trace = record_backward(root, "y", retain_graph=True).trace
    n = len(trace.steps)
    assert n == 5
    root.backward(retain_graph=True)
    assert len(trace.steps) == n
    # and after a failed backward too
    failing = record_backward(root, "y", gradient=torch.ones(3)).trace
    assert failing.error and not failing.steps
    trace2 = record_backward(root, "y").trace
    assert len(trace2.steps) == 5 and len(trace.steps) == n and not failing.steps
    assert ns["w"].grad.tolist() == [15.0]


def test_limit_caps_values_not_statistics():
    torch.manual_seed(0)
    x = torch.randn(10, requires_grad=True)
    trace = record_backward((x * x).sum(), "y", limit=4).trace
    acc = trace.steps[-1]
    assert acc.name == "AccumulateGrad"
    g = acc.leaf_grad
    assert g.values is None and g.shape == [10]
    assert g.norm == pytest.approx(float(x.grad.norm()), rel=1e-5)
    assert (g.min, g.max) == pytest.approx((float(x.grad.min()), float(x.grad.max())))
    u = torch.ones(4, requires_grad=True)
    small = record_backward((u * 3).sum(), "z", limit=4).trace
    assert small.steps[-1].leaf_grad.values.tolist() == [3.0, 3.0, 3.0, 3.0]
    # default limit: VALUES_LIMIT elements kept, one more not
    assert grad_info(torch.ones(VALUES_LIMIT)).values.tolist() == [1.0] * VALUES_LIMIT
    assert grad_info(torch.ones(VALUES_LIMIT + 1)).values is None
    assert grad_info(torch.ones(VALUES_LIMIT + 1), limit=None).values.tolist() == [1.0] * (VALUES_LIMIT + 1)
    assert grad_info(None) is None
    scalar = grad_info(torch.tensor(2.5))
    assert scalar.values.shape == () and scalar.values.tolist() == 2.5 and scalar.shape == []
    empty = grad_info(torch.ones(0, 3))
    assert empty.shape == [0, 3] and empty.values.shape == (0, 3) and empty.norm == 0.0


@pytest.mark.parametrize("n", [1, 64, 65, VALUES_LIMIT, VALUES_LIMIT + 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_grad_info_equals_torch_on_both_paths(n, dtype):
    """Small grads take a path through Python lists, bigger ones torch ops: both
    give torch's norm/min/max, and the values numpy holds equal the tensor."""
    torch.manual_seed(n)
    t = (torch.randn(n) * 3).to(dtype)
    info = grad_info(t)
    ref = t.double()
    assert info.shape == [n] and info.dtype == str(dtype).removeprefix("torch.")
    # torch takes the norm of a half tensor in half precision: equal to that precision
    rel = 2e-3 if dtype == torch.float16 else 1e-5
    assert info.norm == pytest.approx(float(torch.linalg.vector_norm(ref)), rel=rel)
    assert (info.min, info.max) == (pytest.approx(float(ref.min())), pytest.approx(float(ref.max())))
    if n <= VALUES_LIMIT:
        assert isinstance(info.values, np.ndarray) and info.values.shape == (n,)
        np.testing.assert_array_equal(info.values.astype(np.float64), ref.numpy())
    else:
        assert info.values is None


def test_refused_backwards_set_error_and_explain_it():
    leaf = torch.ones(3, requires_grad=True)
    t = record_backward(leaf, "leaf").trace
    assert t.error and "grad_fn" in t.error and not t.steps
    plain = torch.ones(3) * 2
    assert record_backward(plain, "plain").trace.error
    y = (leaf * 2)  # non-scalar, no gradient
    t = record_backward(y, "y").trace
    assert t.error and "scalar" in t.error and not t.steps
    assert "y.backward(v)" in explain_error(t.error)
    assert error_kind(t.error) == "not_scalar"
    assert leaf.grad is None
    s = (leaf * leaf).sum()
    assert record_backward(s, "s").trace.error is None
    t = record_backward(s, "s").trace
    assert "second time" in t.error and "\n" not in t.error
    assert "retain_graph=True" in explain_error(t.error)
    assert error_kind(t.error) == "graph_freed"
    assert leaf.grad.tolist() == [2.0, 2.0, 2.0]
    assert explain_error("something else entirely") == "something else entirely"
    assert error_kind("something else entirely") is None


def test_zero_grads_and_trace_to_dict():
    ns, root, _, _ = build("seed")
    trace = record_backward(root, "y").trace
    d = trace_to_dict(trace)
    json.dumps(d, allow_nan=False)  # the export's contract: nested lists, strict JSON
    assert [e["name"] for e in d] == [s.name for s in trace.steps]
    assert d[0]["grad_outputs"] == [[1.0]] and d[0]["grad_inputs"] == [[2.0], [3.0]]
    assert all(set(e) == {"node", "name", "grad_inputs", "grad_outputs"} for e in d)
    assert sorted(zero_grads(ns)) == ["w", "x"]
    assert ns["w"].grad is None and ns["x"].grad is None
    assert zero_grads(ns) == []


# --- 3. Runner.run(backward=...) and the export -----------------------------------------

@pytest.mark.parametrize("script_id", IDS)
def test_run_resolves_steps_onto_the_graph(script_id):
    code, root_name, _, _ = SCRIPTS[script_id]
    runner = Runner(grad_limit=None)
    result = runner.run(HEADER + code, backward=root_name)
    assert result.error is None, result.error
    trace = result.backward
    assert trace is not None and trace.error is None and trace.steps
    g = result.graph
    nodes = {n.id: n for n in g.nodes}
    edges = {(e.src, e.dst) for e in g.edges}
    assert trace.root and nodes[trace.root].kind == "tensor" and nodes[trace.root].name == root_name
    assert (nodes[trace.root].grad_fn == trace.steps[0].name
            and (trace.steps[0].node, trace.root) in edges)
    ops = [s.node for s in trace.steps]
    assert all(ops) and len(set(ops)) == len(ops)
    assert set(ops) == {n.id for n in g.by_kind("op")}  # the graph holds only this root's ops
    for s in trace.steps:
        assert nodes[s.node].kind == "op" and nodes[s.node].name == s.name
    # the resolved order is topological in the drawn graph (edges run forward: input -> op)
    pos = {node: i for i, node in enumerate(ops)}
    for a, b in edges:
        if a in pos and b in pos:
            assert pos[b] < pos[a], (nodes[a].name, nodes[b].name)
    ns_leaves = leaves(runner.namespace)
    seen = set()
    for s in trace.steps:
        if s.name != "AccumulateGrad":
            continue
        leaf = nodes[s.leaf]
        assert leaf.kind == "tensor" and leaf.is_leaf and leaf.name in ns_leaves, leaf
        assert (s.leaf, s.node) in edges
        assert same(s.leaf_grad, ns_leaves[leaf.name].grad), leaf.name
        np.testing.assert_array_equal(leaf.grad, s.leaf_grad.values)
        assert leaf.grad.shape == s.leaf_grad.values.shape == tuple(leaf.shape)
        seen.add(leaf.name)
    assert seen == {k for k, t in ns_leaves.items() if t.grad is not None}


def test_resolve_ids_by_hand_on_a_graph_traced_after_the_backward():
    ns, root, _, _ = build("shared_input_3x")
    rec = record_backward(root, "y", retain_graph=True)
    trace = rec.trace
    index: dict[int, str] = {}
    g = trace_graph(ns, index=index)
    raw = [s.node for s in trace.steps]
    assert resolve_ids(rec, index, root) is trace
    assert rec.alive == []  # the autograd nodes are let go once named
    nodes = {n.id: n for n in g.nodes}
    assert trace.root == next(n.id for n in g.by_kind("tensor") if n.name == "y")
    assert [nodes[s.node].name for s in trace.steps] == [s.name for s in trace.steps]
    assert [s.node for s in trace.steps] == [index[int(r)] for r in raw]
    (acc,) = [s for s in trace.steps if s.leaf is not None]
    assert nodes[acc.leaf].name == "x"


def test_export_json_has_the_backward_list(tmp_path):
    script = tmp_path / "seed.py"
    script.write_text(SEED)
    out = tmp_path / "x.json"
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--export", str(out), str(script),
                           "--backward", "y"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    nodes = {n["id"]: n for n in data["nodes"]}
    steps = data["backward"]
    assert [s["name"] for s in steps][:1] == ["MulBackward0"]
    assert sorted(s["name"] for s in steps) == ["AccumulateGrad", "AccumulateGrad", "AddBackward0",
                                                "AddBackward0", "MulBackward0"]
    for s in steps:
        assert set(s) == {"node", "name", "grad_inputs", "grad_outputs"}
        assert s["node"] in nodes and nodes[s["node"]]["name"] == s["name"]
        for g in s["grad_inputs"] + s["grad_outputs"]:
            assert g is None or isinstance(g, list)
    edges = [(e["from"], e["to"]) for e in data["edges"]]
    acc = {nodes[a]["name"]: b for a, b in edges if nodes[a]["kind"] == "tensor"
           and nodes[b]["name"] == "AccumulateGrad"}
    step_of = {s["node"]: s for s in steps}
    # y = (w + x) * (w + 1) at x = 2, w = 1: dy/da = b = 2, dy/db = a = 3
    assert steps[0]["grad_outputs"] == [[1.0]]
    assert steps[0]["grad_inputs"] == [[2.0], [3.0]]
    adds = [s for s in steps if s["name"] == "AddBackward0"]
    const = [s for s in adds if None in s["grad_inputs"]]
    assert len(const) == 1 and const[0]["grad_inputs"] == [[3.0], None]  # b = w + 1
    assert const[0]["grad_outputs"] == [[3.0]]
    (a_step,) = [s for s in adds if s is not const[0]]
    assert a_step["grad_inputs"] == [[2.0], [2.0]] and a_step["grad_outputs"] == [[2.0]]
    assert step_of[acc["w"]]["grad_outputs"] == [[5.0]] and step_of[acc["w"]]["grad_inputs"] == []
    assert step_of[acc["x"]]["grad_outputs"] == [[2.0]]


# --- 4. Runner.backward: the app's Backward button -----------------------------------------
# (The old `Snapshot.explanation` is gone by design: the window words a refusal itself
# with `core.labels.explain_error(trace.error)`, so these tests ask that function.)

def history_values(result, name):
    return [None if g is None else g.values.tolist() for g in result.grad_history[name]]


def run_ok(runner, code: str):
    result = runner.run(code)
    assert result.error is None, result.error
    return result


def test_backward_twice_with_retain_graph_accumulates_then_zero_first_resets(runner):
    run_ok(runner, SEED)
    s1 = runner.backward("y", retain_graph=True)
    assert s1.backward.error is None
    assert history_values(s1, "w") == [[5.0]] and history_values(s1, "x") == [[2.0]]
    saved = s1.graph.by_kind("saved")
    assert saved and not any(n.freed for n in saved)
    s2 = runner.backward("y", retain_graph=True)
    assert s2.backward.error is None
    assert history_values(s2, "w") == [[5.0], [10.0]] and history_values(s2, "x") == [[2.0], [4.0]]
    assert history_values(s1, "w") == [[5.0]]  # a result keeps its own copy
    assert runner.grad_history["w"][-1].values.tolist() == [10.0]
    assert runner.namespace["w"].grad.tolist() == [10.0]
    leaf_grads = {s.leaf: s.leaf_grad.values.tolist() for s in s2.backward.steps if s.leaf}
    names = {n.id: n.name for n in s2.graph.nodes}
    assert {names[k]: v for k, v in leaf_grads.items()} == {"w": [10.0], "x": [4.0]}
    w_node = next(n for n in s2.graph.by_kind("tensor") if n.name == "w")
    assert w_node.grad.tolist() == [10.0]
    assert s2.backward.root == next(n.id for n in s2.graph.by_kind("tensor") if n.name == "y")
    assert set(s2.values) == {n.id for n in s2.graph.by_kind("tensor")}
    assert s2.values[w_node.id].grad_preview.tolist() == [10.0]
    s3 = runner.backward("y", retain_graph=True, zero_first=True)
    assert history_values(s3, "w") == [[5.0], [10.0], None, [5.0]]
    assert history_values(s3, "x") == [[2.0], [4.0], None, [2.0]]
    assert runner.namespace["w"].grad.tolist() == [5.0]
    z = runner.zero_grads()
    assert z.backward is None and z.error is None
    assert history_values(z, "w")[-1] is None and len(z.grad_history["w"]) == 5
    assert runner.namespace["w"].grad is None
    assert not next(n for n in z.graph.by_kind("tensor") if n.name == "w").has_grad
    # a new run starts a new history
    run_ok(runner, SEED)
    assert history_values(runner.backward("y"), "w") == [[5.0]]


def test_second_backward_without_retain_graph_is_explained_and_saved_are_freed(runner):
    run_ok(runner, SEED)
    s1 = runner.backward("y")
    assert s1.backward.error is None
    s2 = runner.backward("y")
    assert s2.backward.error and "second time" in s2.backward.error
    assert s2.error is None  # the script is fine: the refusal lives in the trace
    assert error_kind(s2.backward.error) == "graph_freed"
    assert "retain_graph=True" in explain_error(s2.backward.error)
    saved = s2.graph.by_kind("saved")
    assert saved and all(n.freed for n in saved)
    assert runner.namespace["w"].grad.tolist() == [5.0]  # nothing was added


def test_non_scalar_root_uses_ones_or_the_given_gradient(runner):
    run_ok(runner, "import torch\nx = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)\ny = x ** 2\n")
    result = runner.backward("y", gradient="")
    assert result.backward.error is None
    assert runner.namespace["x"].grad.tolist() == [2.0, 4.0, 6.0]
    assert result.backward.steps[0].grad_outputs[0].values.tolist() == [1.0, 1.0, 1.0]

    reference = Runner()
    ref = reference.run((EXAMPLES / "06_vector_backward.py").read_text())
    assert ref.error is None
    expected = reference.namespace["x"].grad.clone()
    run_ok(runner, VECTOR)
    result = runner.backward("y", gradient=V_EXPR)
    assert result.backward.error is None
    got = runner.namespace["x"].grad
    assert torch.allclose(got, expected) and not torch.allclose(got, torch.zeros(3))
    assert result.backward.steps[0].grad_outputs[0].values.tolist() == pytest.approx([0.1, 1.0, 0.0001])
    assert history_values(result, "x") == [pytest.approx(expected.tolist())]


def test_create_graph_then_second_order_through_x_grad(runner):
    run_ok(runner, "import torch\nx = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)\n"
                   "y = (x ** 3).sum()\n")
    s1 = runner.backward("y", create_graph=True)
    assert s1.backward.error is None and s1.backward.create_graph
    tensors = {n.name: n for n in s1.graph.by_kind("tensor")}
    assert "x.grad" in tensors and tensors["x.grad"].grad_fn is not None
    assert not tensors["x.grad"].is_leaf
    ops = {n.id for n in s1.graph.by_kind("op")}
    assert any(e.src in ops and e.dst == tensors["x.grad"].id for e in s1.graph.edges)
    assert runner.namespace["x"].grad.tolist() == [3.0, 12.0, 27.0]
    s2 = runner.backward("x.grad", zero_first=True)
    assert s2.backward.error is None, s2.backward.error
    assert runner.namespace["x"].grad.tolist() == [6.0, 12.0, 18.0]  # d/dx sum(3x^2) = 6x
    assert history_values(s2, "x") == [[3.0, 12.0, 27.0], None, [6.0, 12.0, 18.0]]


@pytest.mark.parametrize("root_name, gradient, words", [
    ("nope", "", "nope"),
    ("n", "", "not a tensor"),
    ("c", "", "does not require grad"),
    ("y", "torch.ones(7)", "shape"),
    ("y", "torch.(", ""),
    ("y", "undefined_name * 2", "undefined_name"),
])
def test_bad_backward_requests_are_explained_not_raised(root_name, gradient, words, runner):
    run_ok(runner, SEED + "n = 3\nc = torch.ones(2)\n")
    result = runner.backward(root_name, gradient=gradient)
    assert result.backward is not None and result.backward.error and not result.backward.steps
    assert "\n" not in result.backward.error
    plain = explain_error(result.backward.error)
    assert plain and words.lower() in plain.lower()
    assert result.graph is not None
    assert runner.namespace["w"].grad is None
    assert runner.backward("y").backward.error is None  # the graph is still usable
    assert runner.namespace["w"].grad.tolist() == [5.0]


@pytest.mark.parametrize("code", ["x = torch.ones(2, requires_grad=True)\nx.add_(1)\n",
                                  "x = torch.ones(2, requires_grad=True)\nx += 1\n",
                                  "x = torch.ones(2, requires_grad=True)\nx[0] = 5.0\n"])
def test_in_place_on_a_leaf_is_a_run_error_explained_with_no_grad(code, runner):
    result = runner.run("import torch\n" + code)
    assert result.error is not None and result.error.phase == "run" and result.error.line == 3
    assert "torch.no_grad" in explain_error(result.error.message)
    assert error_kind(result.error.message) == "inplace_leaf"


def test_modified_saved_tensor_is_a_backward_error_explained_with_clone(runner):
    result = runner.run("import torch\nx = torch.ones(2, requires_grad=True)\ny = x.sigmoid()\n"
                        "y.mul_(2)\ns = y.sum()\n", backward="s")
    assert result.error is not None and result.error.phase == "backward"
    assert ".clone()" in explain_error(result.error.message)
    assert error_kind(result.error.message) == "inplace_saved"


# --- 5. protocol ----------------------------------------------------------------------

def round_trip(message, reply_to="m7"):
    data, buffers = encode(message, reply_to)
    back, got_reply_to = decode(*wire(data, buffers))
    assert got_reply_to == reply_to
    return back


def test_protocol_round_trip_of_a_backward_result(runner):
    run_ok(runner, SEED + "u = torch.tensor([0.0, 4.0], requires_grad=True)\nr = u.sqrt().sum()\n")
    runner.backward("y", retain_graph=True)
    result = runner.backward("y", retain_graph=True, zero_first=True)
    inf_result = runner.backward("r")
    for s in (result, inf_result):
        back = round_trip(s)
        deep_equal(back.backward, s.backward)
        deep_equal(back.grad_history, s.grad_history)
        deep_equal(back, s)
    assert any(None in st.grad_inputs for st in result.backward.steps)  # b = w + 1
    assert history_values(result, "w") == [[5.0], None, [5.0]]
    steps = {s.name: s for s in inf_result.backward.steps}
    acc = steps["AccumulateGrad"].leaf_grad
    assert acc.values.tolist() == [math.inf, 0.25] and acc.norm == math.inf
    back = round_trip(inf_result)
    back_acc = {s.name: s for s in back.backward.steps}["AccumulateGrad"].leaf_grad
    deep_equal(back_acc, acc)
    assert all(isinstance(v, float) for v in (back_acc.norm, back_acc.min, back_acc.max))
    # a refused request travels too
    err = runner.backward("nope")
    back = round_trip(err)
    assert back.backward.error == err.backward.error and back.backward.steps == []
    assert explain_error(back.backward.error) == explain_error(err.backward.error)


def test_protocol_nan_grads_and_hand_made_trace():
    trace = BackwardTrace("t3", "y", steps=[
        BackwardStep(0, "op0", "MulBackward0", [GradInfo([2], "float32", math.nan, math.nan, 1.0,
                                                         np.array([math.nan, 1.0], np.float32))], [None]),
        BackwardStep(1, "op1", "AccumulateGrad", [grad_info(torch.ones(2, 2))], [], "t0",
                     grad_info(torch.ones(2, 2)))], retain_graph=True, error=None)
    back = round_trip(trace)
    deep_equal(back, trace)
    assert back.retain_graph
    g = back.steps[0].grad_outputs[0]
    assert math.isnan(g.norm) and math.isnan(g.min) and g.max == 1.0
    assert np.isnan(g.values[0]) and g.values[1] == 1.0 and g.values.dtype == np.float32
    assert back.steps[0].grad_inputs == [None]
    assert back.steps[1].leaf_grad.values.tolist() == [[1.0, 1.0]] * 2
    # and the export writes the nan as a string: strict JSON
    assert trace_to_dict(trace)[0]["grad_outputs"] == [["nan", 1.0]]


# --- once bugs in core/, now fixed: they must stay fixed ---------------------------

def test_a_complex_gradient_trace_travels_as_strict_json():
    z = torch.tensor([1 + 2j, 3 - 1j], requires_grad=True)
    trace = record_backward((z * z.conj()).real.sum(), "y").trace
    assert trace.error is None and trace.steps[-1].name == "AccumulateGrad"
    back = round_trip(trace)
    assert [s.name for s in back.steps] == [s.name for s in trace.steps]
    deep_equal(back, trace)
    assert back.steps[-1].leaf_grad.values.tolist() == z.grad.tolist()
    json.dumps(trace_to_dict(trace), allow_nan=False)  # complex values as [re, im] in the export


def test_complex_gradient_norm_is_not_zero():
    z = torch.tensor([1 + 2j, 3 - 1j], requires_grad=True)
    trace = record_backward((z * z.conj()).real.sum(), "y").trace
    acc = trace.steps[-1]
    assert acc.name == "AccumulateGrad"
    assert acc.leaf_grad.norm == pytest.approx(float(torch.linalg.vector_norm(z.grad)))


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_grad_statistics_do_not_depend_on_the_value_limit(bad):
    t = torch.tensor([bad, 0.25, -1.0])
    kept, capped = grad_info(t, limit=None), grad_info(t, limit=1)
    assert kept.values is not None and capped.values is None
    for field_name in ("norm", "min", "max"):
        a, b = getattr(kept, field_name), getattr(capped, field_name)
        assert a == b or (math.isnan(a) and math.isnan(b)), (field_name, a, b)


def test_a_request_that_runs_no_backward_adds_no_history(runner):
    run_ok(runner, SEED)
    assert history_values(runner.backward("y", retain_graph=True), "w") == [[5.0]]
    result = runner.backward("nope")
    assert result.backward.error
    assert history_values(result, "w") == [[5.0]]


def test_an_exception_in_a_custom_backward_is_kept_in_trace_error():
    ns: dict = {}
    exec("import torch\n"
         "class Bad(torch.autograd.Function):\n"
         "    @staticmethod\n"
         "    def forward(ctx, x):\n"
         "        return x * 2\n"
         "    @staticmethod\n"
         "    def backward(ctx, g):\n"
         "        raise ValueError('nope in backward')\n"
         "x = torch.ones(2, requires_grad=True)\n"
         "w = torch.ones(2, requires_grad=True)\n"
         "y = (Bad.apply(x) + w * 3).sum()\n", ns)
    trace = record_backward(ns["y"], "y").trace
    assert trace.error and "nope in backward" in trace.error
    assert trace.steps and trace.steps[0].name == "SumBackward0"
