"""The graph `Runner.run` traces (`core.kernel.trace`), checked against torch itself.

For each script the test walks ``grad_fn.next_functions`` from the real tensors
that the run left in `Runner.namespace` (its own small walker, keyed by
the fn objects) and compares op names, edges, saved tensors, grads and the
per-tensor flags with what the graph JSON says.

Ops are matched by a canonical label computed bottom-up on both sides: an op is
its class name plus the sorted labels of its distinct inputs, an AccumulateGrad
is its leaf's label, a tensor is its name (or ``None:<shape>`` when unnamed).
Two structurally different graphs cannot get equal label multisets, so comparing
``Counter``s of op labels and of (src label, dst label) edges is exact.
"""
from __future__ import annotations

import hashlib
import json
import textwrap
from collections import Counter

import numpy as np
import pytest
import torch

from core.kernel.runner import Runner
from core.model.graph import graph_to_dict

FORMAT = "torchscope.graph/1"


# --- the reference: torch's own objects -----------------------------------------

def _h(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


def ref_named(ns: dict) -> list[tuple[str, torch.Tensor]]:
    """Top-level tensors and `var.param.path` for parameters of top-level modules."""
    out = []
    for name, value in ns.items():
        if name.startswith("_"):
            continue
        if isinstance(value, torch.Tensor):
            out.append((name, value))
        elif isinstance(value, torch.nn.Module):
            for path, p in value.named_parameters(remove_duplicate=False):
                out.append((f"{name}.{path}", p))
    return out


def tensor_label(name, shape) -> str:
    return f"T:{name}" if name is not None else f"T:None:{list(shape)}"


class Reference:
    """What torch says: fns, labels, edges, saved tensors, grads."""

    def __init__(self, ns: dict):
        self.named = ref_named(ns)
        self.primary: dict[int, str] = {}  # id(tensor) -> first name bound to it
        self.by_name: dict[str, torch.Tensor] = {}
        keep = []
        for name, t in self.named:
            self.primary.setdefault(id(t), name)
            self.by_name[name] = t
            keep.append(t)
        # walk, keyed by the fn objects (kept alive in self.fns so ids stay unique)
        self.fns: list = []
        seen: set[int] = set()
        stack = [t.grad_fn for _, t in self.named if t.grad_fn is not None]
        while stack:
            fn = stack.pop()
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            self.fns.append(fn)
            stack.extend(nf for nf, _ in fn.next_functions if nf is not None)
        self.children: dict[int, list] = {}
        for fn in self.fns:
            distinct = {}
            for nf, _ in fn.next_functions:
                if nf is not None:
                    distinct[id(nf)] = nf
            self.children[id(fn)] = list(distinct.values())
        self._labels: dict[int, str] = {}
        self.unnamed_leaves: list[torch.Tensor] = []
        for fn in self.fns:
            if type(fn).__name__ == "AccumulateGrad" and id(fn.variable) not in self.primary:
                self.unnamed_leaves.append(fn.variable)
        self._keep = keep

    def leaf_label(self, var: torch.Tensor) -> str:
        return tensor_label(self.primary.get(id(var)), var.shape)

    def label(self, fn) -> str:
        key = id(fn)
        if key in self._labels:
            return self._labels[key]
        name = type(fn).__name__
        if name == "AccumulateGrad":
            lab = _h(name, self.leaf_label(fn.variable))
        else:
            lab = _h(name, *sorted(self.label(c) for c in self.children[key]))
        self._labels[key] = lab
        return lab

    def op_names(self) -> Counter:
        return Counter(type(fn).__name__ for fn in self.fns)

    def op_labels(self) -> Counter:
        return Counter(self.label(fn) for fn in self.fns)

    def edges(self) -> Counter:
        out = Counter()
        for fn in self.fns:
            if type(fn).__name__ == "AccumulateGrad":
                out[(self.leaf_label(fn.variable), self.label(fn))] += 1
            for c in self.children[id(fn)]:
                out[(self.label(c), self.label(fn))] += 1
        done = set()
        for name, t in self.named:
            if t.grad_fn is not None and id(t) not in done:
                done.add(id(t))
                out[(self.label(t.grad_fn), tensor_label(self.primary[id(t)], t.shape))] += 1
        return out

    def saved(self) -> Counter:
        out = Counter()
        for fn in self.fns:
            for attr in dir(fn):
                if not attr.startswith("_saved_"):
                    continue
                short = attr[len("_saved_"):]
                try:
                    val = getattr(fn, attr)
                except RuntimeError:
                    out[(self.label(fn), short, None)] += 1
                    continue
                if isinstance(val, torch.Tensor):
                    out[(self.label(fn), short, tuple(val.shape))] += 1
                elif isinstance(val, (tuple, list)):
                    for i, v in enumerate(val):
                        if isinstance(v, torch.Tensor):
                            out[(self.label(fn), f"{short}[{i}]", tuple(v.shape))] += 1
        return out


# --- the graph side: the JSON contract --------------------------------------------

class GraphSide:
    def __init__(self, data: dict):
        self.data = data
        self.nodes = {n["id"]: n for n in data["nodes"]}
        self.edges = [(e["from"], e["to"]) for e in data["edges"] if "kind" not in e]  # autograd only
        self.inputs: dict[str, list[str]] = {}
        for s, d in self.edges:
            if self.nodes[s]["kind"] != "saved":
                self.inputs.setdefault(d, []).append(s)
        self._labels: dict[str, str] = {}

    def of_kind(self, kind):
        return [n for n in self.data["nodes"] if n["kind"] == kind]

    def label(self, node_id: str) -> str:
        n = self.nodes[node_id]
        if n["kind"] == "tensor":
            return tensor_label(n["name"], n["shape"])
        if node_id in self._labels:
            return self._labels[node_id]
        srcs = sorted(set(self.inputs.get(node_id, [])))
        lab = _h(n["name"], *sorted(self.label(s) for s in srcs))
        self._labels[node_id] = lab
        return lab

    def op_names(self) -> Counter:
        return Counter(n["name"] for n in self.of_kind("op"))

    def op_labels(self) -> Counter:
        return Counter(self.label(n["id"]) for n in self.of_kind("op"))

    def edge_labels(self) -> Counter:
        return Counter((self.label(s), self.label(d)) for s, d in self.edges
                       if self.nodes[s]["kind"] != "saved")

    def saved(self) -> Counter:
        return Counter((self.label(n["op"]), n["name"],
                        tuple(n["shape"]) if n["shape"] is not None else None)
                       for n in self.of_kind("saved"))

    def tensors_by_name(self) -> dict[str, dict]:
        out = {}
        for n in self.of_kind("tensor"):
            for name in [n["name"], *n.get("aliases", [])]:
                if name is not None:
                    out[name] = n
        return out


# --- the comparison ---------------------------------------------------------------

def close(a, b) -> bool:
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64),
                          torch.as_tensor(b, dtype=torch.float64), rtol=1e-5, atol=1e-6)


def run_and_compare(code: str, backward: str | None = None):
    code = textwrap.dedent(code)
    runner = Runner()
    result = runner.run(code, backward=backward)
    assert result.error is None, result.error
    data = graph_to_dict(result.graph)
    json.dumps(data, allow_nan=False)  # the contract is strict JSON
    assert data["format"] == FORMAT
    g = GraphSide(data)
    ref = Reference(runner.namespace)

    # no edge touches a node that does not exist, no duplicate edge
    assert all(s in g.nodes and d in g.nodes for s, d in g.edges)
    assert len(g.edges) == len(set(g.edges)), "an edge pair is listed twice"
    # ids unique
    assert len(g.nodes) == len(data["nodes"])

    assert g.op_names() == ref.op_names()
    assert g.op_labels() == ref.op_labels()
    assert g.edge_labels() == ref.edges()
    assert g.saved() == ref.saved()
    for n in g.of_kind("saved"):
        assert (n["id"], n["op"]) in g.edges, "a saved node must point at its op"
        assert g.nodes[n["op"]]["kind"] == "op"

    # every top-level tensor (and parameter) is listed, with torch's flags
    by_name = g.tensors_by_name()
    assert set(by_name) == set(ref.by_name)
    for name, t in ref.by_name.items():
        n = by_name[name]
        assert n["shape"] == list(t.shape), name
        assert n["dtype"] == str(t.dtype).removeprefix("torch."), name
        assert n["device"] == str(t.device), name
        assert n["requires_grad"] == t.requires_grad, name
        assert n["is_leaf"] == t.is_leaf, name
        assert n["grad_fn"] == (type(t.grad_fn).__name__ if t.grad_fn is not None else None), name
        has = t.is_leaf or t.retains_grad
        torch_grad = t.grad if has else None
        if torch_grad is None:
            assert n["grad"] is None, name
        else:
            assert n["grad"] is not None, f"{name}: torch has a grad, the graph has none"
            assert close(n["grad"], torch_grad.tolist()), name
    # one node per distinct tensor object
    assert len({id(t) for _, t in ref.named}) + len(ref.unnamed_leaves) == len(g.of_kind("tensor"))

    # unnamed leaves: listed with name null and their grads
    unnamed = [n for n in g.of_kind("tensor") if n["name"] is None]
    assert len(unnamed) == len(ref.unnamed_leaves)
    for n in unnamed:
        assert n["is_leaf"] is True and n["grad_fn"] is None
    key = lambda shape, grad: (shape, json.dumps(grad))
    got = sorted((key(n["shape"], n["grad"]) for n in unnamed))
    want = sorted(key(list(v.shape), v.grad.tolist() if v.grad is not None else None)
                  for v in ref.unnamed_leaves)
    assert [s for s, _ in got] == [s for s, _ in want]
    for (s1, g1), (s2, g2) in zip(got, want):
        g1, g2 = json.loads(g1), json.loads(g2)
        assert (g1 is None) == (g2 is None)
        if g1 is not None:
            assert close(g1, g2)
    # the graph object itself holds numpy grads, equal to what the JSON says
    for n in result.graph.by_kind("tensor"):
        assert n.grad is None or (isinstance(n.grad, np.ndarray) and list(n.grad.shape) == n.shape)
        assert n.has_grad or n.grad is None
    return result, data, ref


# --- the scripts ------------------------------------------------------------------

SEED = """
import torch
x = torch.tensor([2.], requires_grad=True)
w = torch.tensor([1.], requires_grad=True)
a = torch.add(w, x)
b = torch.add(w, 1)
y = torch.mul(a, b)
y.backward()
"""

MEAN = """
import torch
x = torch.ones(2, 2, requires_grad=True)
y = x + 2
z = y * y * 3
out = z.mean()
out.backward()
"""

SEQUENTIAL = """
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
inputs = torch.randn(5, 4)
target = torch.randn(5, 2)
loss_fn = nn.MSELoss()
loss = loss_fn(model(inputs), target)
loss.backward()
"""

MODULE = """
import torch
from torch import nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.fc2 = nn.Linear(4, 1, bias=False)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)) * self.scale)

net = Net()
x = torch.randn(6, 3)
pred = net(x)
loss = pred.pow(2).mean()
loss.backward()
"""

CUBE = """
import torch

class CubeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g

x = torch.tensor([1., 2., -1.5], requires_grad=True)
y = CubeFn.apply(x)
s = (y * 2).sum()
s.backward()
"""

CREATE_GRAPH = """
import torch
x = torch.tensor([1.5, -0.5], requires_grad=True)
y = (x ** 3).sum()
(g,) = torch.autograd.grad(y, x, create_graph=True)
h = (g * g).sum()
h.backward()
"""

DETACH = """
import torch
x = torch.tensor([1., 2., 3.], requires_grad=True)
y = x * x
d = y.detach()
z = (d * x).sum()
z.backward()
"""

NO_GRAD = """
import torch
x = torch.tensor([1., 2.], requires_grad=True)
with torch.no_grad():
    n = x * 10
y = (x * n).sum()
y.backward()
"""

REQUIRES_GRAD_ = """
import torch
a = torch.randn(3)
a.requires_grad_()
b = (a * a).sum()
b.backward()
"""

INPLACE = """
import torch
x = torch.ones(3, requires_grad=True)
y = x * 2
y.add_(1)
s = (y * x).sum()
s.backward()
"""

RETAIN_GRAD = """
import torch
x = torch.tensor([1., -2., 3.], requires_grad=True)
h = x * 3
h.retain_grad()
out = (h ** 2).sum()
out.backward()
"""

BROADCAST = """
import torch
a = torch.randn(3, 1, requires_grad=True)
b = torch.randn(1, 4, requires_grad=True)
c = a * b + a
s = c.sum()
s.backward()
"""

SHARED = """
import torch
x = torch.tensor([0.5, 2.], requires_grad=True)
sq = x * x
t = sq + x
u = t.exp().sum() + sq.sum()
u.backward()
"""

VECTOR = """
import torch
x = torch.randn(3, requires_grad=True)
y = x * 2
while y.data.norm() < 1000:
    y = y * 2
v = torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float)
y.backward(v)
"""

CLASSIFIER = """
import torch
import torch.nn.functional as F
W = torch.randn(4, 3, requires_grad=True)
bias = torch.zeros(3, requires_grad=True)
inputs = torch.randn(5, 4)
labels = torch.tensor([0, 2, 1, 1, 0])
logits = torch.relu(inputs @ W + bias)
probs = torch.softmax(logits, dim=1)
loss = F.cross_entropy(logits, labels) + probs.max(dim=1).values.mean()
loss.backward()
"""

PLAIN = """
import torch
plain = torch.arange(6.).reshape(2, 3)
other = plain * 2
"""

UNNAMED = """
import torch
y = torch.ones(3, requires_grad=True) * 2
z = (y * torch.full((3,), 0.5, requires_grad=True)).sum()
z.backward()
"""

SAVED_BEFORE = """
import torch
a = torch.randn(2, 3, requires_grad=True)
b = torch.randn(2, 3, requires_grad=True)
c = a * b
"""

SAVED_FREED = SAVED_BEFORE + "c.sum().backward()\n"
SAVED_RETAINED = SAVED_BEFORE + "c.sum().backward(retain_graph=True)\n"

ALIAS = """
import torch
x = torch.tensor([3.], requires_grad=True)
same = x
y = (same * x).sum()
y.backward()
"""

TIED = """
import torch
from torch import nn
enc = nn.Linear(3, 3)
model = nn.Sequential(enc, nn.ReLU(), enc)
inputs = torch.randn(2, 3)
loss = model(inputs).sum()
loss.backward()
"""

SCRIPTS = {
    "seed": SEED, "mean": MEAN, "sequential": SEQUENTIAL, "module": MODULE,
    "cube": CUBE, "create_graph": CREATE_GRAPH, "detach": DETACH, "no_grad": NO_GRAD,
    "requires_grad_": REQUIRES_GRAD_, "inplace": INPLACE, "retain_grad": RETAIN_GRAD,
    "broadcast": BROADCAST, "shared": SHARED, "vector": VECTOR, "classifier": CLASSIFIER,
    "plain": PLAIN, "unnamed": UNNAMED, "saved_before": SAVED_BEFORE,
    "saved_freed": SAVED_FREED, "saved_retained": SAVED_RETAINED, "alias": ALIAS,
    "tied": TIED,
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_graph_matches_torch(name):
    run_and_compare(SCRIPTS[name])


# --- the specific expectations of each script, on top of the generic comparison --

def tensors(data):
    out = {}
    for n in data["nodes"]:
        if n["kind"] == "tensor":
            for name in [n["name"], *n.get("aliases", [])]:
                out[name] = n
    return out


def ops(data):
    return Counter(n["name"] for n in data["nodes"] if n["kind"] == "op")


def edge_names(data):
    nodes = {n["id"]: n for n in data["nodes"]}
    return Counter((nodes[e["from"]]["name"], nodes[e["to"]]["name"]) for e in data["edges"])


def test_seed_example_exact():
    _, data, _ = run_and_compare(SEED)
    # torch.add(w, 1) wraps the 1 as a tensor: both adds are AddBackward0
    assert ops(data) == Counter({"AddBackward0": 2, "MulBackward0": 1, "AccumulateGrad": 2})
    t = tensors(data)
    assert t["x"]["grad"] == [2.0] and t["w"]["grad"] == [5.0]  # dy/dx = b, dy/dw = a + b
    assert t["y"]["grad_fn"] == "MulBackward0" and not t["y"]["is_leaf"]
    assert t["a"]["grad"] is None  # a non-leaf that did not retain its grad
    en = edge_names(data)
    assert en[("x", "AccumulateGrad")] == 1 and en[("w", "AccumulateGrad")] == 1
    # w and x feed a = w + x, w feeds b = w + 1
    assert en[("AccumulateGrad", "AddBackward0")] == 3
    assert en[("AddBackward0", "MulBackward0")] == 2
    assert en[("MulBackward0", "y")] == 1
    assert en[("AddBackward0", "a")] == 1 and en[("AddBackward0", "b")] == 1


def test_mean_example_exact():
    _, data, _ = run_and_compare(MEAN)
    assert tensors(data)["x"]["grad"] == [[4.5, 4.5], [4.5, 4.5]]
    assert ops(data)["MeanBackward0"] == 1
    assert tensors(data)["out"]["grad_fn"] == "MeanBackward0"


def test_sequential_parameters_are_named_by_path():
    _, data, ref = run_and_compare(SEQUENTIAL)
    t = tensors(data)
    for p in ("model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"):
        assert t[p]["is_leaf"] and t[p]["requires_grad"]
        assert close(t[p]["grad"], ref.by_name[p].grad.tolist())
    assert t["model.0.weight"]["shape"] == [8, 4]
    assert ops(data)["AccumulateGrad"] == 4
    assert ops(data)["MseLossBackward0"] == 1


def test_module_subclass_parameters():
    _, data, _ = run_and_compare(MODULE)
    t = tensors(data)
    assert {"net.fc1.weight", "net.fc1.bias", "net.scale", "net.fc2.weight"} <= set(t)
    assert "net.fc2.bias" not in t
    assert t["net.scale"]["shape"] == [] and t["net.scale"]["grad"] is not None


def test_custom_function_name():
    _, data, ref = run_and_compare(CUBE)
    assert ops(data)["CubeFnBackward"] == 1
    x = ref.by_name["x"]
    assert close(tensors(data)["x"]["grad"], (6 * x.detach() ** 2).tolist())


def test_create_graph_builds_a_second_order_graph():
    _, data, ref = run_and_compare(CREATE_GRAPH)
    t = tensors(data)
    assert t["g"]["requires_grad"] and t["g"]["grad_fn"] is not None
    x = ref.by_name["x"].detach()
    # h = sum((3x^2)^2) = 9 sum x^4 -> dh/dx = 36 x^3
    assert close(t["x"]["grad"], (36 * x ** 3).tolist())


def test_detach_cuts_the_graph():
    _, data, _ = run_and_compare(DETACH)
    t = tensors(data)
    assert t["d"]["is_leaf"] and not t["d"]["requires_grad"] and t["d"]["grad_fn"] is None
    assert t["x"]["grad"] == [1.0, 4.0, 9.0]  # z = sum(x^2 (detached) * x)
    autograd = [e for e in data["edges"] if "kind" not in e]
    assert not any(e["to"] == t["d"]["id"] or e["from"] == t["d"]["id"] for e in autograd)
    # detach() keeps the storage: the only edge to `d` is the dashed "shares storage" one
    assert [(e["from"], e["kind"]) for e in data["edges"] if e["to"] == t["d"]["id"]] == [(t["y"]["id"], "view")]


def test_no_grad_result_has_no_history():
    _, data, _ = run_and_compare(NO_GRAD)
    n = tensors(data)["n"]
    assert n["grad_fn"] is None and not n["requires_grad"] and n["is_leaf"]
    assert tensors(data)["x"]["grad"] == [10.0, 20.0]


def test_requires_grad_in_place_on_plain_tensor():
    _, data, ref = run_and_compare(REQUIRES_GRAD_)
    a = tensors(data)["a"]
    assert a["requires_grad"] and a["is_leaf"]
    assert close(a["grad"], (2 * ref.by_name["a"].detach()).tolist())


def test_inplace_on_non_leaf():
    _, data, _ = run_and_compare(INPLACE)
    y = tensors(data)["y"]
    assert y["grad_fn"] == "AddBackward0"  # the in-place add is now y's grad_fn
    assert tensors(data)["x"]["grad"] == [5.0, 5.0, 5.0]  # d/dx sum((2x+1) x) = 4x + 1


def test_retain_grad_keeps_the_non_leaf_grad():
    _, data, _ = run_and_compare(RETAIN_GRAD)
    h = tensors(data)["h"]
    assert not h["is_leaf"] and h["grad"] == [6.0, -12.0, 18.0]


def test_broadcast_grads_have_the_input_shapes():
    _, data, _ = run_and_compare(BROADCAST)
    t = tensors(data)
    assert torch.tensor(t["a"]["grad"]).shape == (3, 1)
    assert torch.tensor(t["b"]["grad"]).shape == (1, 4)


def test_shared_input_is_one_node():
    _, data, _ = run_and_compare(SHARED)
    x = tensors(data)["x"]
    acc = [e["to"] for e in data["edges"] if e["from"] == x["id"]]
    assert len(acc) == 1
    # x * x: one edge AccumulateGrad -> MulBackward0 even though x is used twice
    nodes = {n["id"]: n for n in data["nodes"]}
    into_mul = [e for e in data["edges"] if e["from"] == acc[0] and nodes[e["to"]]["name"] == "MulBackward0"]
    assert len(into_mul) == 1


def test_vector_backward():
    _, data, ref = run_and_compare(VECTOR)
    y = ref.by_name["y"]
    x = ref.by_name["x"]
    factor = float(y.detach()[0] / x.detach()[0])
    v = torch.tensor([0.1, 1.0, 0.0001])
    assert close(tensors(data)["x"]["grad"], (v * factor).tolist())
    assert ops(data)["MulBackward0"] == round(__import__("math").log2(factor))


def test_classifier_ops():
    _, data, _ = run_and_compare(CLASSIFIER)
    names = ops(data)
    for op in ("MmBackward0", "ReluBackward0", "SoftmaxBackward0"):
        assert names[op] == 1, op
    assert any("Nll" in n or "LogSoftmax" in n for n in names)


def test_plain_tensors_have_no_autograd_edges_only_a_data_edge():
    _, data, _ = run_and_compare(PLAIN)
    t = tensors(data)
    for name in ("plain", "other"):
        assert not t[name]["requires_grad"] and t[name]["grad_fn"] is None
    assert ops(data) == Counter()
    assert data["edges"] == [{"from": t["plain"]["id"], "to": t["other"]["id"], "kind": "data", "op": "mul"}]


def test_unnamed_leaf_has_name_null():
    _, data, _ = run_and_compare(UNNAMED)
    unnamed = [n for n in data["nodes"] if n["kind"] == "tensor" and n["name"] is None]
    assert len(unnamed) == 2
    assert sorted(json.dumps(n["grad"]) for n in unnamed) == sorted(
        [json.dumps([1.0, 1.0, 1.0]), json.dumps([2.0, 2.0, 2.0])])
    assert all(any(e["from"] == n["id"] for e in data["edges"]) for n in unnamed)
    assert '"name": null' in json.dumps(data)


def saved_of(data):
    nodes = {n["id"]: n for n in data["nodes"]}
    return {(nodes[n["op"]]["name"], n["name"]): n for n in data["nodes"] if n["kind"] == "saved"}


def test_saved_tensors_before_backward():
    _, data, _ = run_and_compare(SAVED_BEFORE)
    s = saved_of(data)
    for part in ("self", "other"):
        node = s[("MulBackward0", part)]
        assert node["shape"] == [2, 3] and node["freed"] is False


def test_saved_tensors_freed_after_backward():
    _, data, _ = run_and_compare(SAVED_FREED)
    s = saved_of(data)
    for part in ("self", "other"):
        node = s[("MulBackward0", part)]
        assert node["shape"] is None and node["freed"] is True


def test_saved_tensors_kept_with_retain_graph():
    _, data, _ = run_and_compare(SAVED_RETAINED)
    s = saved_of(data)
    assert s[("MulBackward0", "self")]["shape"] == [2, 3]
    assert s[("MulBackward0", "other")]["freed"] is False


def test_alias_is_one_node():
    _, data, _ = run_and_compare(ALIAS)
    x = [n for n in data["nodes"] if n["kind"] == "tensor" and n["name"] == "x"]
    assert len(x) == 1 and x[0]["aliases"] == ["same"] and x[0]["grad"] == [6.0]


def test_tied_parameters_are_one_node():
    _, data, _ = run_and_compare(TIED)
    t = tensors(data)
    assert t["enc.weight"]["id"] == t["model.0.weight"]["id"] == t["model.2.weight"]["id"]
    assert ops(data)["AccumulateGrad"] == 2


def test_backward_argument_matches_torch():
    """`run(backward="y")` then the same comparison (grads come from the runner's backward)."""
    _, data, ref = run_and_compare("import torch\nx = torch.arange(3., requires_grad=True)\n"
                                   "y = x.sin() * x\n", backward="y")
    x = ref.by_name["x"].detach()
    assert close(tensors(data)["x"]["grad"], (x.cos() * x + x.sin()).tolist())


# --- the comparison itself can fail ------------------------------------------------

def test_comparison_detects_a_missing_edge_and_a_wrong_grad():
    runner = Runner()
    result = runner.run(textwrap.dedent(SEED))
    data = graph_to_dict(result.graph)
    ref = Reference(runner.namespace)
    g = GraphSide(data)
    assert g.edge_labels() == ref.edges()
    broken = dict(data, edges=data["edges"][1:])
    assert GraphSide(broken).edge_labels() != ref.edges()
    # two graphs with the same op names but different wiring get different labels
    other = runner.run("import torch\nx = torch.tensor([2.], requires_grad=True)\n"
                      "w = torch.tensor([1.], requires_grad=True)\na = torch.add(x, 1)\n"
                      "b = torch.add(w, x)\ny = torch.mul(a, b)\ny.backward()\n")
    g2 = GraphSide(graph_to_dict(other.graph))
    assert g2.op_names() == g.op_names()
    assert g2.op_labels() != g.op_labels()
    assert not close([2.0], [2.1])
