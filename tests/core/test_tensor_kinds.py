"""Every kind of tensor through the kernel's summaries, against torch itself.

Sparse (COO, CSR), quantized, meta, nested, half, bfloat16, float8, complex, bool,
small ints, 0-d, empty, non-contiguous and expanded views, the neg and conj bits:
`trace_graph`, `tensor_values`/`tensor_stats`/`to_numpy`, `grad_values`,
`storage_groups` and `grad_info` never raise, and where a number is defined it is
the one torch gives on a float64 copy. Then backward through a sparse tensor and
a complex leaf, as plain Python runs them.
"""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from wire_check import wire

from core.export import to_json
from core.kernel import record
from core.kernel.record import grad_info
from core.kernel.runner import Runner
from core.kernel.tensors import storage_groups, tensor_stats, tensor_values, to_numpy
from core.kernel.trace import grad_values, trace_graph
from core.protocol import encode

NAN, INF = float("nan"), float("inf")


def _nested():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "nested tensors are a prototype"
        return torch.nested.nested_tensor([torch.tensor([1., 2.]), torch.tensor([3., NAN, 5.])])


KINDS = {
    "sparse_coo": lambda: torch.sparse_coo_tensor(
        torch.tensor([[0, 1, 1], [1, 0, 0]]), torch.tensor([1., 2., -4.]), (2, 3)),  # uncoalesced
    "sparse_csr": lambda: torch.tensor([[0., 1.5, 0.], [-2., 0., INF]]).to_sparse_csr(),
    "quantized": lambda: torch.quantize_per_tensor(torch.tensor([-1., 0.5, 2.]), 0.5, 2, torch.quint8),
    "meta": lambda: torch.empty(2, 3, device="meta"),
    "nested": _nested,
    "nested_jagged": lambda: torch.nested.nested_tensor(
        [torch.tensor([1., 2.]), torch.tensor([3., 4., 5.])], layout=torch.jagged),
    "bfloat16": lambda: torch.tensor([1.5, -2., NAN, INF]).bfloat16(),
    "float16": lambda: torch.tensor([0.25, -INF, 3.]).half(),
    "float8_e4m3fn": lambda: torch.tensor([1., -2., 0.5, NAN]).to(torch.float8_e4m3fn),
    "float8_e5m2": lambda: torch.tensor([1., -2., INF, 0.5]).to(torch.float8_e5m2),
    "complex64": lambda: torch.tensor([1 + 2j, -3j, complex(NAN, 1)], dtype=torch.complex64),
    "complex128": lambda: torch.tensor([[1 - 1j, 2 + 0.5j]], dtype=torch.complex128),
    "bool": lambda: torch.tensor([True, False, True]),
    "int8": lambda: torch.tensor([-128, 5, 127], dtype=torch.int8),
    "uint8": lambda: torch.tensor([0, 200, 255], dtype=torch.uint8),
    "zero_dim": lambda: torch.tensor(2.5),
    "empty": lambda: torch.empty(0, 4),
    "transposed": lambda: torch.arange(6.).reshape(2, 3).t(),
    "expanded": lambda: torch.tensor([1., -1.]).expand(3, 2),
    "neg_bit": lambda: torch.tensor([1 + 1j, 2 - 2j]).conj().imag,
    "conj_bit": lambda: torch.tensor([1 + 1j, 2 - 3j]).conj(),
}


def reference(t: torch.Tensor) -> torch.Tensor | None:
    """The values as torch gives them in a plain dense float64/complex128 tensor."""
    if t.is_meta:
        return None
    if t.is_nested:
        t = torch.cat([c.reshape(-1) for c in t.unbind()])
    elif t.layout != torch.strided:
        t = t.to_dense()
    if t.is_quantized:
        t = t.dequantize()
    t = t.resolve_conj().resolve_neg()
    return t.to(torch.complex128) if t.is_complex() else t.double()


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("kind", KINDS)
def test_stats_equal_torch_on_a_float64_copy(kind):
    t = KINDS[kind]()
    stats = tensor_stats(t)
    ref = reference(t)
    if ref is None:  # meta: no values, nothing counted
        assert stats.min is None and stats.nan == 0 and stats.inf == 0
        return
    assert stats.nan == int(torch.isnan(ref).sum()) and stats.inf == int(torch.isinf(ref).sum())
    if ref.is_complex():  # no order: counts only
        assert stats.min is None and stats.mean is None
        return
    finite = ref[torch.isfinite(ref)]
    if finite.numel() == 0:
        assert stats.min is None
        return
    assert close(stats.min, float(finite.min())) and close(stats.max, float(finite.max()))
    assert close(stats.mean, float(finite.mean()))
    assert close(stats.std, float(finite.std()) if finite.numel() > 1 else 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_previews_are_the_values_numpy_can_hold(kind):
    t = KINDS[kind]()
    preview = to_numpy(t)
    ref = reference(t)
    if ref is None:
        assert preview is None
        return
    assert preview is not None and preview.dtype.kind in "fcbiu"
    expected = ref.reshape(-1).numpy()
    assert np.allclose(preview.reshape(-1).astype(expected.dtype), expected, equal_nan=True)
    if t.is_complex():
        assert preview.dtype.kind == "c"
    capped = to_numpy(t, limit=2)
    assert capped.shape == (min(2, expected.size),)
    assert np.allclose(capped.astype(expected.dtype), expected[:2], equal_nan=True)


@pytest.mark.parametrize("kind", KINDS)
def test_tensor_values_and_storage_groups_never_raise(kind):
    t = KINDS[kind]()
    v = tensor_values(t)
    assert v.numel == t.numel()
    groups = storage_groups([("a", t), ("b", t)])
    if not (t.is_meta or t.is_nested or t.layout != torch.strided or t.numel() == 0):
        assert groups == {"a": ["b"], "b": ["a"]}


@pytest.mark.parametrize("kind", KINDS)
def test_grad_info_of_any_kind_matches_torch(kind):
    t = KINDS[kind]()
    info = grad_info(t, limit=None)
    ref = reference(t)
    if ref is None:
        assert info.values is None
        return
    magnitude = ref.abs() if ref.is_complex() else ref
    if ref.numel():
        assert close(info.norm, float(torch.linalg.vector_norm(ref)))
        assert close(info.min, float(magnitude.min())) and close(info.max, float(magnitude.max()))
    if info.values is not None:
        assert np.allclose(info.values.reshape(-1).astype(ref.numpy().dtype), ref.reshape(-1).numpy(),
                           equal_nan=True)


def test_a_graph_of_every_kind_traces_and_crosses_the_wire():
    ns = {name: make() for name, make in KINDS.items()}
    graph = trace_graph(ns)
    nodes = {n.name: n for n in graph.by_kind("tensor")}
    assert set(nodes) == set(KINDS)
    for name, t in ns.items():
        assert nodes[name].dtype == str(t.dtype).removeprefix("torch.")
        assert all(type(s) is int for s in nodes[name].shape)
    assert nodes["sparse_coo"].shape == [2, 3] and nodes["nested_jagged"].shape == []
    values = Runner._values_of(ns, graph)
    assert set(values) == {n.id for n in nodes.values()}
    wire(*encode(graph))
    wire(*encode(values))
    json.loads(to_json(graph))


GRAD_KINDS = {
    "sparse_coo": "torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), torch.tensor([1., 2.]), (2, 2))",
    "complex": "torch.tensor([1 + 2j, -1j])",
    "bfloat16": "torch.tensor([1.5, -2.]).bfloat16()",
    "float16": "torch.tensor([1.5, -2.]).half()",
    "expanded": "torch.tensor([1., -1.]).expand(3, 2)",
}


@pytest.mark.parametrize("kind", GRAD_KINDS)
def test_grad_values_of_any_kind_match_torch(kind):
    grad = eval(GRAD_KINDS[kind])
    leaf = torch.zeros(grad.shape, dtype=grad.dtype, requires_grad=True)
    leaf.grad = grad  # a .grad of this kind, as torch holds it
    values, has = grad_values(leaf, None)
    assert has
    ref = reference(grad)
    assert np.allclose(values.reshape(-1).astype(ref.numpy().dtype), ref.reshape(-1).numpy())
    summary = tensor_values(leaf)
    assert summary.grad_preview is not None and summary.grad_stats is not None


# --- backward through a sparse tensor ----------------------------------------------

SPARSE = """import torch
i = torch.tensor([[0, 1], [1, 0]])
v = torch.tensor([1., 2.], requires_grad=True)
s = torch.sparse_coo_tensor(i, v, (2, 2))
y = (s.to_dense() * torch.tensor([[1., 3.], [5., 7.]])).sum()
"""


def plain_sparse_grad():
    ns: dict = {}
    exec(SPARSE + "y.backward()\n", ns)
    return ns["v"].grad


def node(result, name):
    return next(n for n in result.graph.by_kind("tensor") if n.name == name)


def test_the_scripts_own_sparse_backward_runs_as_in_plain_python():
    runner = Runner()
    result = runner.run(SPARSE + "y.backward()\n")
    assert result.error is None, result.error
    expected = plain_sparse_grad()
    assert torch.equal(runner.namespace["v"].grad, expected)
    assert node(result, "v").grad.tolist() == expected.tolist()
    assert result.backward is not None and result.backward.error is None
    leaf_steps = [s for s in result.backward.steps if s.leaf == node(result, "v").id]
    assert leaf_steps and leaf_steps[0].leaf_grad.values.tolist() == expected.tolist()
    assert all(g is None or math.isfinite(g.norm) for s in result.backward.steps
               for g in s.grad_inputs + s.grad_outputs)


def test_backward_asked_for_on_a_sparse_graph_matches_torch():
    runner = Runner()
    assert runner.run(SPARSE).error is None
    result = runner.backward("y")
    assert result.backward.error is None, result.backward.error
    expected = plain_sparse_grad()
    assert node(result, "v").grad.tolist() == expected.tolist()
    assert [g.values.tolist() for g in result.grad_history["v"]] == [expected.tolist()]
    with_arg = Runner().run(SPARSE, backward="y")
    assert with_arg.error is None and node(with_arg, "v").grad.tolist() == expected.tolist()


def test_a_failing_summary_never_raises_into_the_engine(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("Cannot access data pointer of Tensor that doesn't have storage")
    monkeypatch.setattr(record, "grad_info", broken)
    runner = Runner()
    result = runner.run("import torch\nx = torch.tensor([1., 2.], requires_grad=True)\n"
                        "y = (x * x).sum()\ny.backward()\n")
    assert result.error is None, result.error
    assert runner.namespace["x"].grad.tolist() == [2.0, 4.0]
    assert [s.name for s in result.backward.steps][-1] == "AccumulateGrad"  # every step, in order


# --- complex values ----------------------------------------------------------------

COMPLEX = """import torch
z = torch.tensor([1 + 2j, -3 + 0.5j], requires_grad=True)
loss = (z * z.conj()).real.sum()
loss.backward()
"""


def test_a_complex_leaf_gets_torchs_grad_and_its_json_has_re_im_pairs():
    plain: dict = {}
    exec(COMPLEX, plain)
    expected = plain["z"].grad  # 2z
    runner = Runner(grad_limit=None)
    result = runner.run(COMPLEX)
    assert result.error is None, result.error
    z = node(result, "z")
    assert z.grad.dtype.kind == "c" and np.allclose(z.grad, expected.numpy())
    assert result.values[z.id].preview.dtype.kind == "c"
    assert np.allclose(result.values[z.id].grad_preview, expected.numpy())
    data = json.loads(to_json(result.graph, result.backward))
    exported = next(n for n in data["nodes"] if n.get("name") == "z")
    assert exported["grad"] == [[v.real, v.imag] for v in expected.tolist()]
    pairs = [g for step in data["backward"] for g in step["grad_inputs"] + step["grad_outputs"]
             if isinstance(g, list) and g and isinstance(g[0], list)]
    assert [[v.real, v.imag] for v in expected.tolist()] in pairs
    wire(*encode(result))  # and the window's codec carries it


EVERY_KIND_SCRIPT = """import torch, warnings
warnings.simplefilter("ignore")
c = torch.tensor([1 + 1j, 2 - 1j], requires_grad=True)
c2 = (c * 2).conj()
h = torch.ones(2, dtype=torch.bfloat16, requires_grad=True)
h2 = h * 3
nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], requires_grad=True)
nested2 = nested * 2
jagged = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged,
                                    requires_grad=True)
jagged2 = jagged * 2
sp = torch.tensor([[0., 1.], [2., 0.]]).to_sparse().requires_grad_()
sp2 = sp.to_dense() * 2
meta = torch.empty(2, 3, device="meta", requires_grad=True)
meta2 = meta.t() * 2
f8 = torch.ones(3).to(torch.float8_e5m2)
q = torch.quantize_per_tensor(torch.tensor([1., 2.]), 0.5, 0, torch.quint8)
base = torch.arange(6., requires_grad=True)
view = base.reshape(2, 3).t()
loss = c2.abs().sum() + h2.float().sum() + sp2.sum() + view.sum()
loss.backward()
"""


def test_a_script_of_every_kind_runs_traces_and_crosses_to_json():
    runner = Runner(grad_limit=None)
    result = runner.run(EVERY_KIND_SCRIPT)
    assert result.error is None, result.error
    names = {n.name for n in result.graph.by_kind("tensor")}
    assert {"c2", "h2", "nested2", "jagged2", "sp2", "meta2", "f8", "q", "view", "loss"} <= names
    plain: dict = {}
    exec(EVERY_KIND_SCRIPT, plain)
    for leaf in ("c", "h", "sp", "base"):
        expected = plain[leaf].grad
        expected = expected.to_dense() if expected.layout != torch.strided else expected
        assert np.allclose(node(result, leaf).grad, expected.float().numpy() if not expected.is_complex()
                           else expected.numpy())
    assert result.backward is not None and result.backward.error is None
    wire(*encode(result))
    json.loads(to_json(result.graph, result.backward))
