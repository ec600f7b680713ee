"""Issue 9's graph side, against torch and NumPy themselves: storage keys, strides,
values, statistics, where each tensor came from (data edges and lines), shared
storage (view edges), NumPy arrays, tuple elements and in-place marks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.export import to_json
from core.kernel.runner import Runner
from core.model.graph import VALUES_ON_NODE, json_safe

OPS = """import torch, numpy as np
a = np.arange(6.)
t = torch.from_numpy(a)
n = t.numpy()
x = torch.tensor([[1., 2., 3.], [4., 5., 6.]])
c = torch.cat([x * 2, x])
chunks = torch.chunk(c, 2)
parts = torch.split(x, [1, 2], dim=1)
v = x.view(3, 2)
tt = x.t()
s = x[:, 1]
e = x[:1].expand(4, 3)
d = x.detach()
r = x.reshape(6)
cl = x.clone()
x.add_(1)
st = torch.stack([x, cl])
m = torch.masked_select(x, x > 4)
idx = torch.index_select(x, 0, torch.tensor([1]))
out = torch.empty(2, 3)
torch.add(x, 1, out=out)
other = np.ones(3)
big = torch.arange(100.)
"""


@pytest.fixture(scope="module")
def run():
    runner = Runner()
    result = runner.run(OPS, "ops.py")
    assert result.error is None, result.error
    return runner.namespace, result.graph


def objects(ns, graph):
    """(node, the tensor or array it stands for) for every named tensor and array."""
    out = []
    for node in graph.nodes:
        if node.kind in ("tensor", "array") and node.name:
            name, _, index = node.name.partition("[")
            obj = ns[name] if not index else ns[name][int(index[:-1])]
            out.append((node, obj))
    return out


def test_storage_keys_are_equal_exactly_when_torch_and_numpy_share_memory(run):
    ns, graph = run
    pairs = objects(ns, graph)
    assert len(pairs) > 20

    def shares(p, q):
        if isinstance(p, torch.Tensor) and isinstance(q, torch.Tensor):
            return p.untyped_storage().data_ptr() == q.untyped_storage().data_ptr()
        as_np = [o if isinstance(o, np.ndarray) else o.numpy() for o in (p, q)]
        return np.shares_memory(*as_np)

    for i, (n1, o1) in enumerate(pairs):
        for n2, o2 in pairs[i + 1:]:
            assert (n1.storage == n2.storage) == shares(o1, o2), (n1.name, n2.name)


def test_layout_fields_equal_torch(run):
    ns, graph = run
    for node, obj in objects(ns, graph):
        if node.kind == "array":
            assert node.shape == list(obj.shape) and node.dtype == str(obj.dtype)
            continue
        assert node.stride == list(obj.stride()), node.name
        assert node.storage_offset == obj.storage_offset()
        assert node.contiguous == obj.is_contiguous()
        assert node.version == obj._version
        assert node.element_size == obj.element_size()
        flat = obj.detach().reshape(-1)[:VALUES_ON_NODE].numpy()
        assert np.array_equal(node.values, flat), node.name


def test_view_edges_go_from_base_to_view(run):
    _, graph = run
    name = {n.id: n.name for n in graph.nodes}
    views = {(name[e.src], name[e.dst]) for e in graph.edges if e.kind == "view"}
    for view in ("v", "tt", "s", "d", "r"):
        assert ("x", view) in views, view
    assert ("c", "chunks[0]") in views and ("c", "chunks[1]") in views
    assert ("a", "t") in views and ("a", "n") in views  # from_numpy / .numpy() twins
    assert not any(dst in ("cl", "st", "m", "idx", "out", "other", "big") for _, dst in views)
    # e = x[:1].expand(4, 3): a view of a view; its base x[:1] is unnamed, so from x
    assert ("x", "e") in views


def test_data_edges_name_the_call_and_look_through_unnamed_tensors(run):
    _, graph = run
    name = {n.id: n.name for n in graph.nodes}
    data = {(name[e.src], name[e.dst], e.op) for e in graph.edges if e.kind == "data"}
    assert ("x", "c", "cat") in data  # through the unnamed x * 2
    assert ("x", "st", "stack") in data and ("cl", "st", "stack") in data
    assert ("x", "m", "masked_select") in data and ("x", "idx", "index_select") in data
    assert ("x", "cl", "clone") in data


def test_lines_and_in_place_marks(run):
    _, graph = run
    nodes = {n.name: n for n in graph.nodes if n.kind == "tensor"}
    lines = OPS.splitlines()
    for name in ("x", "c", "v", "cl", "st", "m", "big"):
        assert lines[nodes[name].line - 1].startswith(f"{name} = "), name
    assert nodes["chunks[0]"].line == nodes["chunks[1]"].line == 7
    assert nodes["x"].inplace == ["add_ (line 16)"]
    assert nodes["x"].version == 1 and nodes["v"].version == 1  # a view shares the counter
    assert nodes["cl"].version == 0


def test_tuple_elements_are_nodes(run):
    ns, graph = run
    names = {n.name for n in graph.nodes if n.kind == "tensor"}
    assert {"chunks[0]", "chunks[1]", "parts[0]", "parts[1]"} <= names
    assert len(ns["chunks"]) == 2


def test_export_json_keys():
    runner = Runner(grad_limit=None, node_stats=True)
    code = ("import torch, numpy as np\n"
            "f = torch.tensor([1., float('nan'), 3., float('inf'), -2.])\n"
            "i = torch.arange(4)\n"
            "z = torch.tensor([1 + 2j])\n"
            "arr = np.zeros((2, 2))\n")
    result = runner.run(code, "keys.py")
    assert result.error is None
    import json
    data = json.loads(to_json(result.graph))
    nodes = {n["name"]: n for n in data["nodes"]}
    f = nodes["f"]
    assert f["values"] == [1.0, "nan", 3.0, "inf", -2.0]
    finite = torch.tensor([1., 3., -2.], dtype=torch.float64)
    assert f["stats"]["nan"] == 1 and f["stats"]["inf"] == 1
    assert math.isclose(f["stats"]["mean"], float(finite.mean()), rel_tol=1e-6)
    assert math.isclose(f["stats"]["std"], float(finite.std()), rel_tol=1e-6)
    assert (f["stats"]["min"], f["stats"]["max"]) == (-2.0, 3.0)
    assert nodes["i"]["stats"] is None and nodes["i"]["values"] == [0, 1, 2, 3]
    assert nodes["z"]["stats"] is None and nodes["z"]["values"] == [[1.0, 2.0]]
    assert {k: f[k] for k in ("stride", "storage_offset", "contiguous", "version", "line")} == {
        "stride": [1], "storage_offset": 0, "contiguous": True, "version": 0, "line": 2}
    assert nodes["arr"] == {**nodes["arr"], "kind": "array", "shape": [2, 2], "dtype": "float64",
                            "values": [0.0] * 4}
    assert isinstance(nodes["arr"]["storage"], str) and nodes["arr"]["storage"] != f["storage"]


def test_tensors_without_storage_have_null_keys():
    result = Runner().run("import torch\nsp = torch.eye(3).to_sparse()\nmeta = torch.ones(2, device='meta')\n"
                          "empty = torch.ones(0)\nempty2 = torch.ones(0)\n", "none.py")
    nodes = {n.name: n for n in result.graph.nodes}
    assert nodes["sp"].storage is None and nodes["sp"].stride is None
    assert nodes["meta"].storage is None and nodes["meta"].values is None
    assert nodes["empty"].storage is None and nodes["empty2"].storage is None  # nothing to share


def test_a_rebound_name_never_closes_a_cycle():
    code = ("import torch\na = torch.zeros(3)\nb = a.view(3)\na = b.clone()\nc = a + b\nb = c.view(3)\n")
    result = Runner().run(code, "cycle.py")
    graph = result.graph
    succ = {}
    for e in graph.edges:
        succ.setdefault(e.src, []).append(e.dst)

    def reaches(start, goal, seen=None):
        seen = seen or set()
        return any(n == goal or (n not in seen and not seen.add(n) and reaches(n, goal, seen))
                   for n in succ.get(start, ()))
    assert not any(reaches(n.id, n.id) for n in graph.nodes)


def test_json_safe_values_round_trip():
    assert json_safe(np.array([1.0, np.nan, -np.inf])) == [1.0, "nan", "-inf"]
