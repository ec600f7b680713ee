"""Instrumented backward -> BackwardTrace: what the autograd engine really did.

Hooks are put on every node reachable from the root (`Node.register_hook`, called
by the engine right after the node ran, with the gradients that flowed in and
out) and taken off again; the backward itself is torch's own
`torch.autograd.backward`. Nothing is recomputed: the order of the steps is the
order in which the engine finished the nodes, the values are the tensors it passed.
"""
from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from core.graph import dtype_name, json_safe, named_tensors
from core.layout import SMALL_GRAD, format_shape, format_values

VALUE_LIMIT = 64  # elements of a gradient copied into the trace for the app


@dataclass
class GradInfo:
    """One gradient tensor as the engine passed it."""
    shape: list[int]
    dtype: str
    norm: float
    min: float
    max: float
    values: Any = None  # nested list, or None when bigger than the limit


@dataclass
class BackwardStep:
    index: int
    node: str  # id of the op node in the Graph traced before the backward
    name: str  # its class name
    grad_outputs: list[GradInfo | None]  # flowed in: gradients w.r.t. the node's outputs
    grad_inputs: list[GradInfo | None]  # flowed out, one per next_functions entry (None: none)
    leaf: str | None = None  # AccumulateGrad: the tensor node whose .grad this step set
    leaf_grad: GradInfo | None = None  # that .grad right after the step


@dataclass
class BackwardTrace:
    root: str  # tensor node id
    root_name: str
    steps: list[BackwardStep] = field(default_factory=list)
    retain_graph: bool = False
    create_graph: bool = False
    error: str | None = None  # the engine's own message when it refused
    # The autograd nodes, held until resolve_ids: some torch versions hand out a new
    # Python wrapper (a new id) for a node once nobody holds the old one.
    keep_alive: list = field(default_factory=list, repr=False, compare=False)


def grad_info(t: torch.Tensor | None, limit: int | None = VALUE_LIMIT) -> GradInfo | None:
    """norm/min/max as torch computes them (inf and nan included); the values
    themselves up to `limit` elements. Complex grads: min/max of the magnitudes."""
    if t is None:
        return None
    g = t.detach()
    shape, dtype, n = list(g.shape), dtype_name(g.dtype), g.numel()
    if n == 0:
        return GradInfo(shape, dtype, 0.0, 0.0, 0.0, [])
    small = (limit is None or n <= limit) and not g.is_complex()
    if small:
        # One copy to Python, statistics from the list: cheaper than three torch ops,
        # which matters for the 3,000 nodes of a long chain.
        values = g.cpu().tolist()
        flat = [float(v) for v in _flatten(values)]
        if all(math.isfinite(v) for v in flat):
            return GradInfo(shape, dtype, math.sqrt(sum(v * v for v in flat)), min(flat), max(flat),
                            values)
    f = g.abs() if g.is_complex() else (g.float() if g.dtype != torch.float64 else g)
    lo, hi = torch.aminmax(f)
    return GradInfo(shape, dtype, float(torch.linalg.vector_norm(g)), float(lo), float(hi),
                    json_safe(values) if small else None)


def _flatten(values) -> list:
    if not isinstance(values, list):
        return [values]
    while values and isinstance(values[0], list):
        values = [v for row in values for v in row]
    return values


def reachable_nodes(root_fn) -> list:
    seen: dict[int, Any] = {}
    stack = [root_fn]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen[id(fn)] = fn
        stack.extend(nf for nf, _ in fn.next_functions)
    return list(seen.values())


@contextlib.contextmanager
def hooks_on(trace: BackwardTrace, roots: list, limit: int | None):
    """Every node reachable from `roots` reports to `trace` while the block runs."""
    def hook_for(fn):
        def on_done(grad_inputs, grad_outputs):
            step = BackwardStep(
                index=len(trace.steps), node=str(id(fn)), name=type(fn).__name__,
                grad_outputs=[grad_info(g, limit) for g in grad_outputs],
                grad_inputs=[grad_info(g, limit) for g in grad_inputs])
            if step.name == "AccumulateGrad":
                var = fn.variable
                trace.keep_alive.append(var)
                step.leaf = str(id(var))
                step.leaf_grad = grad_info(var.grad, limit)
            trace.steps.append(step)
        return on_done

    fns = []
    for root in roots:
        fns += reachable_nodes(root.grad_fn)
    trace.keep_alive = fns
    handles = [fn.register_hook(hook_for(fn)) for fn in fns]
    try:
        yield trace
    finally:
        for h in handles:
            h.remove()


def record_backward(root: torch.Tensor, root_name: str, gradient: torch.Tensor | None = None,
                    retain_graph: bool = False, create_graph: bool = False,
                    limit: int | None = VALUE_LIMIT) -> BackwardTrace:
    """Run `root.backward(...)` under hooks. Steps name their node by `id(fn)` (and
    leaves by `id(tensor)`) until `resolve_ids` maps them onto a traced Graph."""
    trace = BackwardTrace("", root_name, retain_graph=retain_graph, create_graph=create_graph)
    if root.grad_fn is None:
        trace.error = (f"{root_name} is a leaf: it has no grad_fn, so backward() would only add the "
                       "gradient to its own .grad. Pick a tensor computed from it")
        return trace
    try:
        with hooks_on(trace, [root], limit):
            # retain_graph defaults to create_graph, as in torch.autograd.backward.
            _engine_backward(root, grad_tensors=gradient, retain_graph=retain_graph or create_graph,
                             create_graph=create_graph)
    except Exception as exc:  # the engine's refusal, or a custom Function's own error
        text = str(exc).strip()
        trace.error = (f"{type(exc).__name__}: " if not isinstance(exc, RuntimeError) else "") + \
            (text.splitlines()[0] if text else type(exc).__name__)
    return trace


_engine_backward = torch.autograd.backward


class ScriptBackwards:
    """While a script runs, records the first backward() it makes itself, so the
    step controls are ready without pressing Backward (and without tripping over a
    graph the script's own backward already freed). Later calls are only counted."""

    def __init__(self, limit: int | None = VALUE_LIMIT):
        self.limit = limit
        self.trace: BackwardTrace | None = None
        self.root: torch.Tensor | None = None
        self.calls = 0

    def backward(self, tensors, grad_tensors=None, retain_graph=None, create_graph=False,
                 grad_variables=None, inputs=None):
        self.calls += 1
        roots = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
        if self.calls > 1 or len(roots) != 1 or roots[0].grad_fn is None:
            return _engine_backward(tensors, grad_tensors, retain_graph, create_graph,
                                    grad_variables, inputs)
        self.root = roots[0]
        self.trace = BackwardTrace("", "", retain_graph=bool(retain_graph),
                                   create_graph=create_graph)
        with hooks_on(self.trace, roots, self.limit):
            return _engine_backward(tensors, grad_tensors, retain_graph, create_graph,
                                    grad_variables, inputs)

    def __enter__(self):
        torch.autograd.backward = self.backward  # Tensor.backward calls it by this name
        return self

    def __exit__(self, *exc):
        torch.autograd.backward = _engine_backward
        return False


def resolve_ids(trace: BackwardTrace, index: dict[int, str], root: torch.Tensor) -> None:
    """Name nodes by their ids in a Graph traced with `trace_graph(..., index=index)`."""
    trace.root = index.get(id(root), "")
    for step in trace.steps:
        step.node = index.get(int(step.node), "")
        if step.leaf is not None:
            step.leaf = index.get(int(step.leaf))
    trace.keep_alive = []


def zero_grads(namespace: dict) -> list[str]:
    """Set .grad to None on every named leaf and module parameter (as
    `optimizer.zero_grad()` does) and on retained non-leaf grads; returns the
    names that had a grad."""
    cleared = []
    for name, t in named_tensors(namespace):
        if (t.is_leaf or t.retains_grad) and t.grad is not None:
            t.grad = None
            cleared.append(name)
    return cleared


def explain_error(message: str) -> str:
    """An autograd or allocation error in plain words, with what to do instead
    (the message itself when there is nothing to add)."""
    if "backward through the graph a second time" in message:
        return ("The graph was already used by a backward() and its saved tensors were freed "
                "(drawn dashed). Run the script again, or pass retain_graph=True to the first "
                "backward to keep them.")
    if "does not require grad and does not have a grad_fn" in message:
        return ("This tensor is not connected to anything that requires grad, so there is "
                "nothing to differentiate. Create a leaf with requires_grad=True first.")
    if "grad can be implicitly created only for scalar outputs" in message:
        return ("backward() without a gradient only works on a scalar. For a tensor, pass the "
                "vector v of a vector-Jacobian product: y.backward(v), e.g. torch.ones_like(y).")
    if "a leaf Variable that requires grad is being used in an in-place operation" in message:
        return ("A leaf that requires grad cannot be changed in place: autograd needs its "
                "value. Change it under `with torch.no_grad():`, or use an out-of-place op "
                "(x = x + 1 instead of x += 1).")
    asked = re.search(r"tried to allocate (\d+) bytes", message)
    if asked:
        return (f"This tensor needs {int(asked.group(1)) / 2**30:,.1f} GiB, more memory than the "
                "machine can give. Use a smaller shape.")
    if "CUDA out of memory" in message:
        return ("The GPU ran out of memory. Use smaller tensors or batches, or free tensors you "
                "no longer need (del x; torch.cuda.empty_cache()).")
    if "modified by an inplace operation" in message:
        return ("A tensor that backward needs was changed in place after it was saved. Use an "
                "out-of-place op (y = y * 2 instead of y *= 2), or .clone() it before.")
    return message


def trace_to_dict(trace: BackwardTrace) -> list[dict]:
    """The export's `"backward"` list: one entry per executed node, in engine order."""
    def values(infos):
        return [None if g is None else g.values for g in infos]
    return [{"node": s.node, "name": s.name, "grad_inputs": values(s.grad_inputs),
             "grad_outputs": values(s.grad_outputs)} for s in trace.steps]


@dataclass
class StepView:
    """What the graph shows at one step of a recorded backward."""
    current: str | None = None  # the node the engine ran at this step
    active_edges: list[tuple[str, str]] = field(default_factory=list)  # gradient leaving it now
    done_edges: list[tuple[str, str]] = field(default_factory=list)  # gradient that already flowed
    badges: dict[str, str] = field(default_factory=dict)  # node id -> gradient text
    pending_leaves: set[str] = field(default_factory=set)  # leaves whose .grad is not reached yet


def format_grad(g: GradInfo | None, max_values: int | None = None) -> str:
    """The value itself for a small gradient (up to `max_values` numbers, or all
    that were recorded), a summary (norm and shape) for a bigger one."""
    if g is None:
        return "None"
    if g.values is not None and (max_values is None or _numel(g.shape) <= max_values):
        return format_values(g.values)
    return f"‖g‖={g.norm:.4g} {format_shape(g.shape)}"


def _numel(shape: list[int]) -> int:
    return math.prod(shape)


def step_view(graph, trace: BackwardTrace, index: int) -> StepView:
    """The state of the drawing after `index` steps (-1: before the first)."""
    view = StepView()
    steps = trace.steps[: index + 1]
    into: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    kinds = {n.id: n for n in graph.nodes}
    for e in graph.edges:
        if kinds.get(e.src) is not None and kinds[e.src].kind != "saved":
            into.setdefault(e.dst, []).append(e.src)
        if kinds.get(e.dst) is not None and kinds[e.dst].kind == "tensor":
            outputs.setdefault(e.src, []).append(e.dst)
    for step in trace.steps[index + 1:]:
        if step.leaf:
            view.pending_leaves.add(step.leaf)
    for step in steps:
        if not step.node:
            continue
        edges = [(src, step.node) for src in into.get(step.node, [])]
        if step is steps[-1] and len(steps) == index + 1:
            view.current = step.node
            view.active_edges = edges
        else:
            view.done_edges.extend(edges)
        incoming = step.grad_outputs[0] if step.grad_outputs else None
        view.badges[step.node] = "∂ " + format_grad(incoming, SMALL_GRAD)
        if step.leaf:
            view.badges[step.leaf] = "grad " + format_grad(step.leaf_grad, SMALL_GRAD)
        for t in outputs.get(step.node, []):
            node = kinds[t]
            if node.is_leaf:
                continue
            view.badges[t] = ("grad " + format_grad(incoming, SMALL_GRAD) if node.retains_grad
                              else "grad not kept")
    return view
