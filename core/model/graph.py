"""The autograd graph as data: tensor, op and saved-tensor nodes, and edges.

Edges point the way the forward pass ran: from a leaf tensor to its AccumulateGrad,
from each node in ``fn.next_functions`` to ``fn``, and from a tensor's ``grad_fn`` to
the tensor. `core.kernel.trace` builds a Graph; `core.layout` places it; the panel
and `core.export` draw it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .tensors import Stats


@dataclass
class TensorNode:
    """The one description of a tensor: what the graph draws and the inspector lists.
    Its values and statistics travel beside it, as `TensorValues`."""
    id: str
    key: str  # stable across edits of the script: the layout keeps it in place
    name: str | None  # top-level variable, `var.param.path`, or None for an unnamed leaf
    shape: list[int]
    dtype: str
    device: str
    requires_grad: bool
    is_leaf: bool
    grad_fn: str | None
    retains_grad: bool
    grad: np.ndarray | None = None  # the whole .grad while it is small (VALUES_LIMIT), else None
    has_grad: bool = False  # a grad exists even if `grad` was left out for size
    aliases: list[str] = field(default_factory=list)  # other names bound to the same tensor
    cut: str | None = None  # "detach()" or "no_grad": made from a tensor that requires grad, without history
    kind: str = "tensor"
    line: int | None = None  # the script line that made it (None: not made by the script's own lines)
    # Memory layout (None where the tensor has no strided storage: sparse, nested, meta).
    stride: list[int] | None = None
    storage_offset: int | None = None
    contiguous: bool | None = None
    version: int | None = None  # t._version: bumped by every in-place change
    storage: str | None = None  # equal for exactly the tensors and arrays sharing one storage
    element_size: int | None = None  # bytes per element
    storage_bytes: int | None = None  # bytes of its whole storage (a view's is its base's): memory per device
    values: np.ndarray | None = None  # the first VALUES_ON_NODE elements, flat, row-major
    stats: Stats | None = None  # over all values (real floating tensors), when asked for
    inplace: list[str] = field(default_factory=list)  # in-place ops the script ran on it: "add_ (line 7)"
    origin: str | None = None  # the script's torch call that made it from other tensors, without autograd: "cat"


VALUES_ON_NODE = 64  # elements of each tensor that travel with its node


@dataclass
class ArrayNode:
    """A NumPy array the script named: drawn beside the tensors it shares memory with."""
    id: str
    key: str
    name: str
    shape: list[int]
    dtype: str
    storage: str | None = None  # as TensorNode.storage: equal when they share memory
    values: np.ndarray | None = None  # the first VALUES_ON_NODE elements, flat
    kind: str = "array"


@dataclass
class OpNode:
    id: str
    key: str
    name: str  # type(fn).__name__: "MulBackward0", "AccumulateGrad", "CubeFnBackward"
    kind: str = "op"
    module: str | None = None  # the innermost nn.Module whose forward made it ("model.layer1.0.conv1")
    line: int | None = None  # the script line that made it
    scope: list[str] = field(default_factory=list)  # the module calls it was made in, outermost
    # first, as "name#call" ("model.layer1.0.relu#2": that ReLU's third call)


@dataclass
class SavedNode:
    id: str
    key: str
    name: str  # the attribute without its prefix: "self", "other", "result"
    op: str  # id of the op node that saved it
    shape: list[int] | None  # None when the saved tensor was freed by a backward
    dtype: str | None
    freed: bool = False
    kind: str = "saved"


@dataclass
class ModuleNode:
    """A collapsed nn.Module: every node made inside it, drawn as one box."""
    id: str
    key: str
    name: str  # qualified, as the script names it: "model.layer1.0"
    type: str  # its class: "BasicBlock"
    ops: int  # autograd nodes inside
    kind: str = "module"
    call: int = 0  # which forward call of that module (a ReLU used twice in a block is two boxes)


Node = TensorNode | OpNode | SavedNode | ModuleNode | ArrayNode


@dataclass
class Edge:
    src: str
    dst: str
    kind: str | None = None  # None: autograd; "view": base -> a view of its storage;
    # "data": a named input -> the named output of a torch call without autograd
    op: str | None = None  # for "data" (and "view") edges: the torch function, "cat"


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)  # qualified module name -> class name

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def by_kind(self, kind: str) -> list:
        return [n for n in self.nodes if n.kind == kind]

    def without_saved(self) -> "Graph":
        nodes = [n for n in self.nodes if n.kind != "saved"]
        keep = {n.id for n in nodes}
        return Graph(nodes, [e for e in self.edges if e.src in keep and e.dst in keep], self.modules)


def json_safe(values):
    """Nested lists for JSON: nan/inf as the strings "nan", "inf", "-inf" (JSON has no
    such numbers), complex numbers as [re, im]."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, list):
        return [json_safe(v) for v in values]
    if isinstance(values, complex):
        return [json_safe(values.real), json_safe(values.imag)]
    if isinstance(values, float) and not math.isfinite(values):
        return "nan" if values != values else ("inf" if values > 0 else "-inf")
    return values


def graph_to_dict(graph: Graph) -> dict:
    """The export's JSON contract, `torchscope.graph/1`."""
    nodes = []
    for n in graph.nodes:
        d = dict(n.__dict__)
        if n.kind in ("tensor", "array"):
            d["values"] = None if n.values is None else json_safe(n.values)
        if n.kind == "tensor":
            d["grad"] = None if n.grad is None else json_safe(n.grad)
            d["stats"] = None if n.stats is None else json_safe(dict(n.stats.__dict__))
            for key in ("aliases", "inplace"):
                if not d[key]:
                    d.pop(key)
        elif n.kind == "op":
            d.pop("scope")  # how the window folds modules; "module" says where it was made
        nodes.append(d)
    return {"format": "torchscope.graph/1", "nodes": nodes,
            "edges": [_edge_dict(e) for e in graph.edges]}


def _edge_dict(e: Edge) -> dict:
    d = {"from": e.src, "to": e.dst}
    if e.kind is not None:
        d["kind"] = e.kind
    if e.op is not None:
        d["op"] = e.op
    return d
