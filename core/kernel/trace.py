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
import bisect
import hashlib
import operator
import sys
import threading
import weakref
from typing import Any, Iterable

import numpy as np
import torch
from torch import Tensor

from ..model.graph import VALUES_ON_NODE, ArrayNode, Edge, Graph, OpNode, SavedNode, TensorNode
from ..model.tensors import VALUES_LIMIT
from .tensors import dtype_name, grad_of, numel_of, shape_of, tensor_stats, to_numpy

SAVED_PREFIX = "_saved_"


class Origin(tuple):
    """The torch call that made a tensor without a grad_fn: (weakref to it, the call's
    name, where in the script (for `line_at`), its tensor inputs, depth). Each input
    is its own Origin (so `c = torch.cat([a * 2, b])` still leads from `c` back to
    the named `a` through the unnamed product) or, for an input without one, a
    weakref to it. A tuple, made in C: one is made on every torch call."""
    __slots__ = ()
    ref = property(operator.itemgetter(0))
    op = property(operator.itemgetter(1))
    where = property(operator.itemgetter(2))
    inputs = property(operator.itemgetter(3))
    depth = property(operator.itemgetter(4))

    @property
    def line(self) -> int | None:
        return line_at(self[2])


_LINE_TABLES: dict = {}  # code object -> (sorted bytecode offsets, their lines)


def line_at(where) -> int | None:
    """The line of a (code object, bytecode offset) pair noted while the script ran.
    Noting `frame.f_lineno` itself would cost a scan of the code's line table on
    every torch call (9 µs a call in a 1,000-line script); this looks it up once."""
    if where is None:
        return None
    code, lasti = where
    table = _LINE_TABLES.get(code)
    if table is None:
        spans = sorted((start, line) for start, _, line in code.co_lines() if line is not None)
        table = _LINE_TABLES[code] = ([s for s, _ in spans], [ln for _, ln in spans])
        if len(_LINE_TABLES) > 256:
            _LINE_TABLES.clear()
            _LINE_TABLES[code] = table
    i = bisect.bisect_right(table[0], lasti) - 1
    return table[1][i] if i >= 0 else None


ORIGIN_DEPTH = 8  # an Origin keeps its inputs' Origins this many calls deep (a loop of
# `x = x + 1` would otherwise keep every step alive)


class CallTracker(torch.overrides.TorchFunctionMode):
    """Watches every torch call a script makes and notes what autograd does not:
    tensors cut off from the graph (the results of `detach()`, and of ops run under
    `torch.no_grad()` on tensors that require grad), the script line that made each
    tensor without a grad_fn, the call and inputs that made it (`Origin`), and the
    in-place ops run on each tensor. Only the script's own lines are noted (not
    those deep inside a library), given the script's file name."""

    def __init__(self, filename: str | None = None):
        super().__init__()
        self.cut: dict[int, tuple[Any, str]] = {}  # id(tensor) -> (weakref, reason)
        self.filename = filename
        self.origins: dict[int, Origin] = {}  # id(tensor) -> how it was made
        self.inplace: dict[int, tuple[Any, list[str]]] = {}  # id(tensor) -> (weakref, ops)
        self.prune_at = 50_000

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **kwargs) if kwargs else func(*args)
        try:  # runs after every torch call: kept cheap (issue 9: ≤ 10% of a script's time)
            name = func.__name__
            if name[-1] == "_" and args and out is args[0] and name[0] != "_":
                self._note_inplace(name, out)  # it stays what it was: no new Origin
            elif isinstance(out, Tensor):
                if out.grad_fn is None:  # (autograd knows where the others came from)
                    self._note(name, args, kwargs, (out,))
            elif isinstance(out, (tuple, list)):
                self._note(name, args, kwargs, out)
        except Exception:  # noting is best effort; the user's op already ran
            pass
        return out

    def _script_line(self, depth: int):
        """Where in the script the torch call being noted is, as (code, bytecode
        offset) for `line_at`; `depth` frames up from here is the caller of
        __torch_function__."""
        if self.filename is None:
            return None
        frame = sys._getframe(depth)
        for _ in range(3):  # the script's own call is within a few frames
            if frame is None or frame.f_code.co_filename == self.filename:
                break
            frame = frame.f_back
        return (frame.f_code, frame.f_lasti) if frame is not None and frame.f_code.co_filename == self.filename \
            else None

    def _note(self, name: str, args, kwargs, outs) -> None:
        """An Origin for each output without a grad_fn, and the cut-off reason."""
        inputs = None
        for o in outs:
            if not isinstance(o, Tensor) or o.grad_fn is not None:
                continue
            if inputs is None:
                inputs, depth = self._inputs(args, kwargs)
                where = self._script_line(3)  # here, _note, __torch_function__, the caller
                reason = "detach()" if name in ("detach", "detach_") else (
                    "no_grad" if not torch.is_grad_enabled() and any(
                        isinstance(a, Tensor) and a.requires_grad for a in args) else None)
            if reason and not o.requires_grad:
                self.cut[id(o)] = (weakref.ref(o), reason)
            self.origins[id(o)] = Origin((weakref.ref(o), name, where, inputs, depth))
        if len(self.origins) > self.prune_at:
            self.origins = {k: v for k, v in self.origins.items() if v[0]() is not None}
            self.prune_at = max(50_000, 2 * len(self.origins))

    def _note_inplace(self, name: str, t: torch.Tensor) -> None:
        line = self._script_line(3)  # here, _note_inplace, __torch_function__, the caller
        ref, ops = self.inplace.get(id(t), (None, None))
        if ref is None or ref() is not t:
            ops = []
            self.inplace[id(t)] = (weakref.ref(t), ops)
        if len(ops) < 8:
            ops.append((name, line))

    def _inputs(self, args, kwargs) -> tuple[list, int]:
        """(for each tensor among the call's arguments, and inside a list or tuple
        argument (`torch.cat([a, b])`): its Origin, or a weakref where it has none;
        the new Origin's depth)."""
        origins, found, depth = self.origins, [], 0
        for a in (args if not kwargs else (*args, *kwargs.values())):
            for t in ((a,) if isinstance(a, Tensor) else a if isinstance(a, (list, tuple)) else ()):
                if isinstance(t, Tensor):
                    e = origins.get(id(t))
                    if e is not None and e[0]() is t:
                        found.append(e)
                        if e[4] > depth:
                            depth = e[4]
                    else:
                        found.append(weakref.ref(t))
        if depth >= ORIGIN_DEPTH:  # keep the chain short: inputs by weakref only
            return [e[0] if isinstance(e, Origin) else e for e in found], 1
        return found, depth + 1

    def origin(self, t: torch.Tensor) -> Origin | None:
        entry = self.origins.get(id(t))
        return entry if entry is not None and entry[0]() is t else None

    def line_of(self, t: torch.Tensor) -> int | None:
        entry = self.origin(t)
        return entry.line if entry is not None else None

    def inplace_ops(self, t: torch.Tensor) -> list[str]:
        """The in-place ops run on `t`, as "add_ (line 7)"."""
        ref, ops = self.inplace.get(id(t), (None, None))
        if ref is None or ref() is not t:
            return []
        return [name + (f" (line {line_at(where)})" if where is not None else "") for name, where in ops]

    def reason(self, t: torch.Tensor) -> str | None:
        entry = self.cut.get(id(t))
        if entry is not None and entry[0]() is t and not t.requires_grad:
            return entry[1]
        return None


MODULE_KEY = "torchscope_module"  # in an autograd node's metadata: the module calls that made it
LINE_KEY = "torchscope_line"  # and where in the script, for `line_at`


def script_place(filename: str):
    """(code, bytecode offset) of the script's innermost frame on the stack, if it is
    there, for `line_at`."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == filename:
            return frame.f_code, frame.f_lasti
        frame = frame.f_back
    return None


class OriginTracker:
    """While a script runs, notes on each new autograd node which nn.Module's forward
    was running (global forward pre/post hooks keep the stack) and which script line
    made it (torch's node_creation_hook), so the window can go from a node to its
    line and back. (Tensors without a grad_fn get their line from the CallTracker.)"""

    def __init__(self, filename: str):
        self.filename = filename
        self.stack: list[tuple[torch.nn.Module, int]] = []
        self.scope: tuple = ()
        self.calls: dict[int, int] = {}  # id(module) -> forward calls so far
        self.thread = threading.get_ident()
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
        if threading.get_ident() != self.thread:  # an nn.DataParallel replica's thread: the nodes
            return  # it makes are tagged with the scope the script's thread is in
        call = self.calls.get(id(module), 0)
        self.calls[id(module)] = call + 1
        self.stack.append((module, call))
        self.scope = tuple(self.stack)

    def _leave_module(self, module, args, output):
        if threading.get_ident() != self.thread:
            return
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] is module:
                del self.stack[i:]
                break
        self.scope = tuple(self.stack)

    def _on_node(self, node) -> None:
        meta = node.metadata
        if self.scope:  # (module, its call number), outermost first: a module called
            meta[MODULE_KEY] = self.scope  # twice (a ReLU reused in a block) is two boxes
        where = script_place(self.filename)
        if where is not None:
            meta[LINE_KEY] = where



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


SEQUENCE_LIMIT = 64  # elements of a named list or tuple of tensors drawn, as `name[i]`


def named_tensors(namespace: dict) -> list[tuple[str, torch.Tensor]]:
    """Every tensor bound to a top-level name, every element of a list or tuple of
    tensors bound to one (`chunks[0]`), and every parameter of a module bound to one
    (as ``model.0.weight``), in the order the script bound them."""
    found: list[tuple[str, torch.Tensor]] = []
    for name, value in namespace.items():
        if name.startswith("__"):  # __builtins__, __name__, __file__
            continue
        if isinstance(value, torch.Tensor):
            found.append((name, value))
        elif isinstance(value, torch.nn.Module):
            for path, p in value.named_parameters(remove_duplicate=False):
                found.append((f"{name}.{path}", p))
        elif isinstance(value, (list, tuple)) and value and len(value) <= 10 * SEQUENCE_LIMIT \
                and any(isinstance(v, torch.Tensor) for v in value[:SEQUENCE_LIMIT]):
            found.extend((f"{name}[{i}]", v) for i, v in enumerate(value[:SEQUENCE_LIMIT])
                         if isinstance(v, torch.Tensor))
    # A grad made with create_graph=True has a graph of its own: draw it as `x.grad`.
    for name, t in list(found):
        if t.is_leaf or t.retains_grad:
            g = t.grad
            if g is not None and g.grad_fn is not None:
                found.append((f"{name}.grad", g))
    return found


def named_arrays(namespace: dict) -> list[tuple[str, np.ndarray]]:
    """NumPy arrays bound to top-level names (object arrays left out)."""
    return [(name, v) for name, v in namespace.items()
            if isinstance(v, np.ndarray) and not name.startswith("__") and not v.dtype.hasobject]


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
                index: dict[int, str] | None = None, cuts: CallTracker | None = None,
                bindings: dict[int, str] | None = None, stats: bool = False) -> Graph:
    """Walk the autograd graph of every named tensor in `namespace`, and add what
    autograd does not know: NumPy arrays, which tensors and arrays share a storage
    ("view" edges), and the torch calls that made tensors without a grad_fn ("data"
    edges, from `cuts`, the run's CallTracker).

    `grad_limit` caps how many grad elements are copied into a node (None: all).
    `saved` adds a node for each saved tensor of each op. `index`, if given, is
    filled with id(fn or tensor) -> node id (valid while those objects live).
    `stats`: each real floating tensor's statistics on its node (the export's).
    """
    modules = module_names(namespace)
    graph = Graph(modules={name: kind for name, kind in modules.values()})
    tensor_by_obj: dict[int, TensorNode] = {}
    keep_alive: list[Any] = []  # holds fns and tensors so their id() stays unique

    def add_tensor(name: str | None, t: torch.Tensor, key: str) -> TensorNode:
        grad, has_grad = grad_values(t, grad_limit)
        fn = t.grad_fn
        origin = cuts.origin(t) if cuts is not None and fn is None else None
        node = TensorNode(
            id=f"t{len(tensor_by_obj)}", key=key, name=name, shape=shape_of(t),
            dtype=dtype_name(t.dtype), device=str(t.device), requires_grad=t.requires_grad,
            is_leaf=t.is_leaf, grad_fn=type(fn).__name__ if fn is not None else None,
            retains_grad=bool(t.retains_grad) if not t.is_leaf else False,
            grad=grad, has_grad=has_grad, cut=cuts.reason(t) if cuts is not None else None,
            line=line_at(_meta(fn, LINE_KEY)) if fn is not None else (origin.line if origin else None),
            values=to_numpy(t, VALUES_ON_NODE), stats=tensor_stats(t) if stats and _real_float(t) else None,
            inplace=cuts.inplace_ops(t) if cuts is not None else [],
            origin=origin.op if origin is not None and origin.inputs and origin.where else None, **memory_layout(t))
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
                               line=line_at(_meta(fn, LINE_KEY)), scope=scope)
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

    members = [(tensor_by_obj[id(t)], t) for t in keep_alive]
    for name, a in named_arrays(namespace):
        node = ArrayNode(id=f"a{len(graph.nodes)}", key="a:" + name, name=name, shape=list(a.shape),
                         dtype=str(a.dtype), values=_first_of(a))
        graph.nodes.append(node)
        members.append((node, a))
    extra = ExtraEdges(graph)
    _link_storage(extra, members, tensor_by_obj)
    if cuts is not None:
        _link_origins(extra, named, tensor_by_obj, cuts)

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


def memory_layout(t: torch.Tensor) -> dict:
    """stride, storage_offset, contiguous, version and element_size, for TensorNode;
    None for what a tensor without strided storage (sparse, nested, meta) lacks."""
    out: dict = {"stride": None, "storage_offset": None, "contiguous": None, "version": None,
                 "element_size": None}
    try:
        out["element_size"] = t.element_size()
        out["version"] = int(t._version)
    except (RuntimeError, AttributeError):  # inference tensors have no version
        pass
    try:
        if t.layout == torch.strided and not t.is_nested:
            out["stride"] = list(t.stride())
            out["storage_offset"] = int(t.storage_offset())
            out["storage_bytes"] = int(t.untyped_storage().nbytes())
            out["contiguous"] = bool(t.is_contiguous())
    except (RuntimeError, NotImplementedError):
        pass
    return out


def _real_float(t: torch.Tensor) -> bool:
    return t.is_floating_point() and not t.is_meta


def _first_of(a: np.ndarray) -> np.ndarray:
    """The first VALUES_ON_NODE elements of an array, flat, without copying it whole."""
    flat = a.reshape(-1) if a.flags.c_contiguous else a.flat[:VALUES_ON_NODE]
    return np.array(flat[:VALUES_ON_NODE])


def storage_span(obj) -> tuple[str, int, int] | None:
    """(device, first byte, end) of the memory a tensor's storage or an array's buffer
    spans; None where there is none (sparse, nested, meta, empty). An array is known
    by the buffer of the array it is a view of, so that `a[:2]` and `a[2:]` share."""
    if isinstance(obj, np.ndarray):
        root = obj
        while isinstance(root.base, np.ndarray):
            root = root.base
        if root.nbytes == 0:
            return None
        lo, hi = np.lib.array_utils.byte_bounds(root)
        return "cpu", lo, hi
    try:
        if obj.is_meta or obj.layout != torch.strided or obj.is_nested:
            return None
        storage = obj.untyped_storage()
        ptr, n = storage.data_ptr(), storage.nbytes()
    except Exception:  # a tensor subclass without a storage
        return None
    return (str(obj.device), ptr, ptr + n) if ptr and n else None


def _link_storage(extra: "ExtraEdges", members: list[tuple], tensor_by_obj: dict) -> None:
    """Give every tensor and array node its storage key (equal for exactly those whose
    memory overlaps one storage), and draw a "view" edge from each base to each view:
    from `t._base` where it is named, else from the group's owner: an array that owns
    its memory, else the tensor made on the earliest line."""
    spans = []
    for order, (node, obj) in enumerate(members):
        span = storage_span(obj)
        if span is not None:
            spans.append((span, order, node, obj))
    spans.sort(key=lambda s: (s[0][0], s[0][1]))
    groups: list[list] = []
    end, device = -1, None
    for span, order, node, obj in spans:
        if groups and span[0] == device and span[1] < end:
            groups[-1].append((order, node, obj))
            end = max(end, span[2])
        else:
            groups.append([(order, node, obj)])
            device, end = span[0], span[2]
    groups.sort(key=lambda g: min(m[0] for m in g))
    for k, group in enumerate(groups):
        group.sort(key=lambda m: m[0])
        for _, node, _ in group:
            node.storage = f"s{k}"
        if len(group) < 2:
            continue
        ids = {id(obj) for _, _, obj in group}
        owner = next((n for _, n, o in group if isinstance(o, np.ndarray)
                      and not isinstance(_root_base(o), torch.Tensor)), None) \
            or min((m for m in group if isinstance(m[2], torch.Tensor)),
                   key=lambda m: (m[1].line is None, m[1].line or 0, m[0]), default=group[0])[1]
        for _, node, obj in group:
            if node is owner:
                continue
            base = getattr(obj, "_base", None) if isinstance(obj, torch.Tensor) else None
            src = tensor_by_obj[id(base)] if base is not None and id(base) in ids else owner
            if src is not node:
                extra.add(Edge(src.id, node.id, "view", getattr(node, "origin", None)))


def _root_base(a: np.ndarray):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a.base


def _link_origins(extra: "ExtraEdges", named: list, tensor_by_obj: dict, cuts: CallTracker) -> None:
    """A "data" edge from each named input of the torch call that made a named tensor
    without a grad_fn, looking through unnamed intermediates (`torch.cat([a * 2, b])`
    links `a` and `b` to the result)."""
    for _, t in named:
        node = tensor_by_obj.get(id(t))
        origin = cuts.origin(t) if t.grad_fn is None else None
        if node is None or origin is None:
            continue
        sources, seen, todo = [], set(), list(origin.inputs)
        while todo and len(seen) < 256:
            item = todo.pop(0)
            inner = item if isinstance(item, Origin) else None
            src = item.ref() if inner is not None else item()
            key = id(inner) if src is None else id(src)
            if key in seen:
                continue
            seen.add(key)
            if src is not None and src is not t and id(src) in tensor_by_obj:
                sources.append(tensor_by_obj[id(src)])
            elif inner is not None:
                todo.extend(inner.inputs)
        for src_id in dict.fromkeys(src.id for src in sources):
            extra.add(Edge(src_id, node.id, "data", origin.op))


class ExtraEdges:
    """Adds view and data edges to a graph: one edge per pair (a view made by a call
    is one "view" edge with that call's name), and none that would close a cycle
    (the layout needs a DAG; a name bound again can make one)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.pairs = {(e.src, e.dst): e for e in graph.edges}
        self.out: dict[str, list[str]] = {}
        for e in graph.edges:
            self.out.setdefault(e.src, []).append(e.dst)

    def add(self, edge: Edge) -> None:
        known = self.pairs.get((edge.src, edge.dst))
        if known is not None:
            if known.kind == "data" and edge.kind == "view":
                known.kind = "view"
            return
        if self._reaches(edge.dst, edge.src):
            return
        self.graph.edges.append(edge)
        self.pairs[(edge.src, edge.dst)] = edge
        self.out.setdefault(edge.src, []).append(edge.dst)

    def _reaches(self, start: str, goal: str) -> bool:
        seen, todo = {start}, [start]
        while todo:
            n = todo.pop()
            if n == goal:
                return True
            for m in self.out.get(n, ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return False


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
