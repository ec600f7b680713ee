"""Autograd DAG -> Graph (`core.model.graph`): data, no drawing.

The walk follows what torchviz reads (``grad_fn.next_functions``,
``AccumulateGrad.variable``, ``_saved_*`` attributes) but only collects data;
`core.layout` places it and the GUI or `core.export` draws it, as micrograd keeps
its trace apart from `draw_dot`.

Edges point the way the forward pass ran: from a leaf tensor to its
AccumulateGrad, from each node in ``fn.next_functions`` to ``fn``, and from a
tensor's ``grad_fn`` to the tensor. Inputs are at the top.
"""
from __future__ import annotations

import ast
import hashlib
import sys
import weakref
from typing import Any, Iterable

import numpy as np
import torch

from ..model.graph import Edge, Graph, OpNode, SavedNode, TensorNode
from ..model.tensors import VALUES_LIMIT
from .tensors import dtype_name, grad_of, numel_of, shape_of, to_numpy

SAVED_PREFIX = "_saved_"


class CutTracker(torch.overrides.TorchFunctionMode):
    """Notes tensors cut off from the graph while a script runs: the results of
    `detach()`, and of ops run under `torch.no_grad()` on tensors that require grad.
    Without it they would look like any tensor made from plain data. Given the
    script's file name, it also notes the script line of each torch call the script
    makes itself (not those deep inside a library), for tensors without a grad_fn."""

    def __init__(self, filename: str | None = None):
        super().__init__()
        self.cut: dict[int, tuple[Any, str]] = {}  # id(tensor) -> (weakref, reason)
        self.filename = filename
        self.lines: dict[int, tuple[Any, int]] = {}  # id(tensor) -> (weakref, line)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        try:
            if self.filename is not None and isinstance(out, torch.Tensor):
                frame = sys._getframe(1)
                for _ in range(3):  # the script's own call is within a few frames
                    if frame is None or frame.f_code.co_filename == self.filename:
                        break
                    frame = frame.f_back
                if frame is not None and frame.f_code.co_filename == self.filename:
                    self.lines[id(out)] = (weakref.ref(out), frame.f_lineno)
            reason = None
            if getattr(func, "__name__", "") in ("detach", "detach_"):
                reason = "detach()"
            elif not torch.is_grad_enabled() and isinstance(out, torch.Tensor) and any(
                    isinstance(a, torch.Tensor) and a.requires_grad for a in args):
                reason = "no_grad"
            if reason and isinstance(out, torch.Tensor) and not out.requires_grad:
                self.cut[id(out)] = (weakref.ref(out), reason)
        except Exception:  # noting is best effort; the user's op already ran
            pass
        return out

    def line_of(self, t: torch.Tensor) -> int | None:
        entry = self.lines.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def reason(self, t: torch.Tensor) -> str | None:
        entry = self.cut.get(id(t))
        if entry is not None and entry[0]() is t and not t.requires_grad:
            return entry[1]
        return None


MODULE_KEY = "torchscope_module"  # in an autograd node's metadata: the module calls that made it
LINE_KEY = "torchscope_line"  # and the script line


def script_line(filename: str) -> int | None:
    """The line of the script's innermost frame on the stack, if it is there."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == filename:
            return frame.f_lineno
        frame = frame.f_back
    return None


class OriginTracker:
    """While a script runs, notes on each new autograd node which nn.Module's forward
    was running (global forward pre/post hooks keep the stack) and which script line
    made it (torch's node_creation_hook), so the window can go from a node to its
    line and back. (Tensors without a grad_fn get their line from the CutTracker.)"""

    def __init__(self, filename: str):
        self.filename = filename
        self.stack: list[tuple[torch.nn.Module, int]] = []
        self.scope: tuple = ()
        self.calls: dict[int, int] = {}  # id(module) -> forward calls so far
        self._exit = None

    def __enter__(self):
        from torch.nn.modules import module as nn_module

        handles = [nn_module.register_module_forward_pre_hook(self._enter_module),
                   nn_module.register_module_forward_hook(self._leave_module, always_call=True)]
        creation = torch.autograd.graph.node_creation_hook(self._on_node)
        creation.__enter__()

        def exit_all(*exc):
            creation.__exit__(*exc)
            for h in handles:
                h.remove()
        self._exit = exit_all
        return self

    def __exit__(self, *exc):
        self._exit(*exc)
        self.stack.clear()
        return False

    def _enter_module(self, module, args):
        call = self.calls.get(id(module), 0)
        self.calls[id(module)] = call + 1
        self.stack.append((module, call))
        self.scope = tuple(self.stack)

    def _leave_module(self, module, args, output):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] is module:
                del self.stack[i:]
                break
        self.scope = tuple(self.stack)

    def _on_node(self, node) -> None:
        meta = node.metadata
        if self.scope:  # (module, its call number), outermost first: a module called
            meta[MODULE_KEY] = self.scope  # twice (a ReLU reused in a block) is two boxes
        line = script_line(self.filename)
        if line is not None:
            meta[LINE_KEY] = line



def bindings_of(code: str) -> dict[int, str]:
    """line -> the name bound there by `x = some_call(...)`, for names the script binds
    again later: the tensor that call made is still called by its name, as `x@3`.
    (Only a call's result is the bound value itself: `x = torch.ones(2) * 2` binds
    the product, not the ones.)"""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return {}
    found, times = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    times[target.id] = times.get(target.id, 0) + 1
            if (len(targets) == 1 and isinstance(targets[0], ast.Name)
                    and isinstance(node.value, ast.Call)):
                found[node.lineno] = targets[0].id
    return {line: name for line, name in found.items() if times[name] > 1}


def module_names(namespace: dict) -> dict[int, tuple[str, str]]:
    """id(module) -> (qualified name as the script names it, class name), for every
    module reachable from a top-level name (`model`, `model.layer1.0.conv1`)."""
    names: dict[int, tuple[str, str]] = {}
    for var, value in namespace.items():
        if isinstance(value, torch.nn.Module) and not var.startswith("__"):
            for path, m in value.named_modules():
                names.setdefault(id(m), (f"{var}.{path}" if path else var, type(m).__name__))
    return names


def named_tensors(namespace: dict) -> list[tuple[str, torch.Tensor]]:
    """Every tensor bound to a top-level name, and every parameter of a module
    bound to one (as ``model.0.weight``), in the order the script bound them."""
    found: list[tuple[str, torch.Tensor]] = []
    for name, value in namespace.items():
        if name.startswith("__"):  # __builtins__, __name__, __file__
            continue
        if isinstance(value, torch.Tensor):
            found.append((name, value))
        elif isinstance(value, torch.nn.Module):
            for path, p in value.named_parameters(remove_duplicate=False):
                found.append((f"{name}.{path}", p))
    # A grad made with create_graph=True has a graph of its own: draw it as `x.grad`.
    for name, t in list(found):
        if t.is_leaf or t.retains_grad:
            g = t.grad
            if g is not None and g.grad_fn is not None:
                found.append((f"{name}.grad", g))
    return found


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


_saved_attrs: dict[type, list[str]] = {}  # one dir() per autograd node class


def _saved_values(fn) -> list[tuple[str, Any]]:
    """(attribute name, tensor or None when freed) for each saved tensor of `fn`."""
    out: list[tuple[str, Any]] = []
    attrs = _saved_attrs.get(type(fn))
    if attrs is None:
        attrs = _saved_attrs[type(fn)] = [a for a in dir(fn) if a.startswith(SAVED_PREFIX)]
    for attr in attrs:
        try:
            val = getattr(fn, attr)
        except RuntimeError:  # freed by a backward without retain_graph
            out.append((attr[len(SAVED_PREFIX):], None))
            continue
        if isinstance(val, torch.Tensor):
            out.append((attr[len(SAVED_PREFIX):], val))
        elif isinstance(val, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in val):
            for i, v in enumerate(val):
                if isinstance(v, torch.Tensor):
                    out.append((f"{attr[len(SAVED_PREFIX):]}[{i}]", v))
    return out


def grad_values(t: torch.Tensor, limit: int | None) -> tuple[np.ndarray | None, bool]:
    """(the whole .grad as an array, or None when there is none or it has more than
    `limit` elements; whether a grad exists)."""
    g = grad_of(t)
    if g is None:
        return None, False
    if limit is not None and numel_of(g) > limit:
        return None, True
    return to_numpy(g), True


def trace_graph(namespace: dict, grad_limit: int | None = VALUES_LIMIT, saved: bool = True,
                index: dict[int, str] | None = None, cuts: CutTracker | None = None,
                bindings: dict[int, str] | None = None) -> Graph:
    """Walk the autograd graph of every named tensor in `namespace`.

    `grad_limit` caps how many grad elements are copied into a node (None: all).
    `saved` adds a node for each saved tensor of each op. `index`, if given, is
    filled with id(fn or tensor) -> node id (valid while those objects live).
    """
    modules = module_names(namespace)
    graph = Graph(modules={name: kind for name, kind in modules.values()})
    tensor_by_obj: dict[int, TensorNode] = {}
    keep_alive: list[Any] = []  # holds fns and tensors so their id() stays unique

    def add_tensor(name: str | None, t: torch.Tensor, key: str) -> TensorNode:
        grad, has_grad = grad_values(t, grad_limit)
        fn = t.grad_fn
        node = TensorNode(
            id=f"t{len(tensor_by_obj)}", key=key, name=name, shape=shape_of(t),
            dtype=dtype_name(t.dtype), device=str(t.device), requires_grad=t.requires_grad,
            is_leaf=t.is_leaf, grad_fn=type(fn).__name__ if fn is not None else None,
            retains_grad=bool(t.retains_grad) if not t.is_leaf else False,
            grad=grad, has_grad=has_grad, cut=cuts.reason(t) if cuts is not None else None,
            line=_meta(fn, LINE_KEY) if fn is not None else
            (cuts.line_of(t) if cuts is not None else None))
        tensor_by_obj[id(t)] = node
        keep_alive.append(t)
        graph.nodes.append(node)
        return node

    named = named_tensors(namespace)
    for name, t in named:
        if id(t) in tensor_by_obj:
            tensor_by_obj[id(t)].aliases.append(name)
        else:
            add_tensor(name, t, "t:" + name)

    # Ops: iterative walk from every named tensor's grad_fn, each node exactly once.
    op_of: dict[int, OpNode] = {}
    op_fns: list[Any] = []
    children: dict[int, list[Any]] = {}
    stack = [t.grad_fn for _, t in named if t.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if id(fn) in op_of:
            continue
        scope = [f"{modules[id(m)][0]}#{call}" for m, call in _meta(fn, MODULE_KEY) or ()
                 if id(m) in modules]
        op_of[id(fn)] = OpNode(id=f"op{len(op_fns)}", key="", name=type(fn).__name__,
                               module=scope[-1].rpartition("#")[0] if scope else None,
                               line=_meta(fn, LINE_KEY), scope=scope)
        op_fns.append(fn)
        nexts = [nf for nf, _ in fn.next_functions if nf is not None]
        children[id(fn)] = nexts
        stack.extend(nf for nf in nexts if id(nf) not in op_of)

    # Stable keys: an op is known by its name and the keys of its inputs, so the same
    # expression keeps its key when unrelated lines change. Unnamed leaves are known
    # by shape and order of discovery.
    unnamed_leaves = 0
    for fn in _inputs_first(op_fns, children):
        node = op_of[id(fn)]
        if node.name == "AccumulateGrad":
            var = fn.variable
            leaf = tensor_by_obj.get(id(var))
            if leaf is None:
                line = cuts.line_of(var) if cuts is not None else None
                if line in (bindings or {}):  # a name bound again since: `x@3`
                    name = f"{bindings[line]}@{line}"
                    leaf = add_tensor(name, var, "t:" + name)
                else:
                    leaf = add_tensor(None, var, f"leaf:{shape_of(var)}#{unnamed_leaves}")
                    unnamed_leaves += 1
            graph.edges.append(Edge(leaf.id, node.id))
            basis = "acc:" + leaf.key
        else:
            basis = node.name + "(" + ",".join(op_of[id(c)].key for c in children[id(fn)]) + ")"
        node.key = _short_hash(basis)

    seen_keys: dict[str, int] = {}
    for fn in op_fns:
        node = op_of[id(fn)]
        n = seen_keys.get(node.key, 0)
        seen_keys[node.key] = n + 1
        if n:
            node.key = f"{node.key}#{n}"
        graph.nodes.append(node)

    seen_edges: set[tuple[str, str]] = set()
    for fn in op_fns:
        dst = op_of[id(fn)].id
        for c in children[id(fn)]:
            pair = (op_of[id(c)].id, dst)
            if pair not in seen_edges:
                seen_edges.add(pair)
                graph.edges.append(Edge(*pair))
    for name, t in named:
        node = tensor_by_obj[id(t)]
        if t.grad_fn is not None and node.name == name:
            graph.edges.append(Edge(op_of[id(t.grad_fn)].id, node.id))

    if index is not None:
        index.update({k: n.id for k, n in tensor_by_obj.items()})
        index.update({k: n.id for k, n in op_of.items()})
    if saved:
        for fn in op_fns:
            op = op_of[id(fn)]
            for attr, val in _saved_values(fn):
                freed = val is None
                graph.nodes.append(SavedNode(
                    id=f"s{len(graph.nodes)}", key=f"{op.key}/{attr}", name=attr, op=op.id,
                    shape=None if freed else shape_of(val),
                    dtype=None if freed else dtype_name(val.dtype), freed=freed))
                graph.edges.append(Edge(graph.nodes[-1].id, op.id))
    return graph


def _inputs_first(fns: list[Any], children: dict[int, list[Any]]) -> Iterable[Any]:
    """Post-order over the op DAG: every fn after all its inputs (no recursion, so a
    3,000-step chain does not hit Python's recursion limit)."""
    done: set[int] = set()
    for root in fns:
        if id(root) in done:
            continue
        stack = [(root, False)]
        while stack:
            fn, expanded = stack.pop()
            if id(fn) in done:
                continue
            if expanded:
                done.add(id(fn))
                yield fn
                continue
            stack.append((fn, True))
            stack.extend((c, False) for c in children[id(fn)] if id(c) not in done)


def _meta(fn, key: str):
    """What the OriginTracker noted on an autograd node (None where it noted nothing)."""
    try:
        return fn.metadata.get(key)
    except (AttributeError, RuntimeError):
        return None
