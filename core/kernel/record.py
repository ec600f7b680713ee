"""Instrumented backward -> BackwardTrace: what the autograd engine really did.

Hooks are put on every node reachable from the root (`Node.register_hook`, called
by the engine right after the node ran, with the gradients that flowed in and
out) and taken off again; the backward itself is torch's own
`torch.autograd.backward`. Nothing is recomputed: the order of the steps is the
order in which the engine finished the nodes, the values are the tensors it passed.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
from typing import Any

import torch

from ..model.backward import BackwardStep, BackwardTrace, GradInfo
from ..model.tensors import VALUES_LIMIT
from .tensors import dtype_name, numel_of, shape_of, stored_values, to_numpy
from .trace import named_tensors


class Recording:
    """A BackwardTrace while it is being made, with the autograd nodes and leaves it
    names by id(): held until `resolve_ids`, because some torch versions hand out a
    new Python wrapper (a new id) for a node once nobody holds the old one."""

    def __init__(self, trace: BackwardTrace):
        self.trace = trace
        self.alive: list = []


def grad_info(t: torch.Tensor | None, limit: int | None = VALUES_LIMIT) -> GradInfo | None:
    """norm/min/max as torch computes them (inf and nan included); the values
    themselves up to `limit` elements. Complex grads: min/max of the magnitudes.
    Sparse grads: over the values they stand for (the zeros they leave out
    included). Never raises: it runs inside the engine's hooks."""
    if t is None:
        return None
    g = t.detach()
    shape, dtype, n = shape_of(g), dtype_name(g.dtype), numel_of(g)
    try:
        return _grad_summary(g, shape, dtype, n, limit)
    except Exception:  # a grad kind without these ops: its shape and dtype, no numbers
        nan = float("nan")
        return GradInfo(shape, dtype, nan, nan, nan, None)


def _grad_summary(g: torch.Tensor, shape: list[int], dtype: str, n: int,
                  limit: int | None) -> GradInfo:
    if n == 0:
        return GradInfo(shape, dtype, 0.0, 0.0, 0.0, to_numpy(g))
    small = limit is None or n <= limit
    plain = g.layout == torch.strided and not (g.is_nested or g.is_meta)
    if small and n <= 64 and plain and not g.is_complex():
        # One copy to Python, statistics from the list: cheaper than three torch ops,
        # which matters for the 3,000 tiny nodes of a long chain.
        values = to_numpy(g)
        flat = values.reshape(-1).tolist()
        if all(math.isfinite(v) for v in flat):
            return GradInfo(shape, dtype, math.sqrt(sum(v * v for v in flat)), min(flat), max(flat),
                            values)
    stored = stored_values(g)
    if stored is None:  # meta: no values
        nan = float("nan")
        return GradInfo(shape, dtype, nan, nan, nan, None)
    x, implicit_zeros = stored
    f = x.abs() if x.is_complex() else (x.float() if x.dtype != torch.float64 else x)
    lo, hi = (float(v) for v in torch.aminmax(f)) if f.numel() else (0.0, 0.0)
    if implicit_zeros:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    return GradInfo(shape, dtype, float(torch.linalg.vector_norm(x)), lo, hi,
                    to_numpy(g) if small else None)


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
def hooks_on(rec: Recording, roots: list, limit: int | None):
    """Every node reachable from `roots` reports to `rec.trace` while the block runs."""
    trace = rec.trace
    def hook_for(fn):
        def on_done(grad_inputs, grad_outputs):
            # Whatever happens here must not raise into the engine: the script's own
            # backward would fail where plain Python runs it.
            step = BackwardStep(index=len(trace.steps), node=str(id(fn)), name=type(fn).__name__,
                                grad_outputs=[], grad_inputs=[])
            trace.steps.append(step)
            try:
                step.grad_outputs = [grad_info(g, limit) for g in grad_outputs]
                step.grad_inputs = [grad_info(g, limit) for g in grad_inputs]
                if step.name == "AccumulateGrad":
                    var = fn.variable
                    rec.alive.append(var)
                    step.leaf = str(id(var))
                    step.leaf_grad = grad_info(var.grad, limit)
            except Exception:  # the step stays, in engine order, with what was recorded
                pass
        return on_done

    fns = []
    for root in roots:
        fns += reachable_nodes(root.grad_fn)
    rec.alive = fns
    handles = [fn.register_hook(hook_for(fn)) for fn in fns]
    try:
        yield trace
    finally:
        for h in handles:
            h.remove()


def record_backward(root: torch.Tensor, root_name: str, gradient: torch.Tensor | None = None,
                    retain_graph: bool = False, create_graph: bool = False,
                    limit: int | None = VALUES_LIMIT) -> Recording:
    """Run `root.backward(...)` under hooks. Steps name their node by `id(fn)` (and
    leaves by `id(tensor)`) until `resolve_ids` maps them onto a traced Graph."""
    rec = Recording(BackwardTrace("", root_name, retain_graph=retain_graph, create_graph=create_graph))
    trace = rec.trace
    if root.grad_fn is None:
        trace.error = (f"{root_name} is a leaf: it has no grad_fn, so backward() would only add the "
                       "gradient to its own .grad. Pick a tensor computed from it")
        return rec
    try:
        with hooks_on(rec, [root], limit):
            # retain_graph defaults to create_graph, as in torch.autograd.backward.
            _engine_backward(root, grad_tensors=gradient, retain_graph=retain_graph or create_graph,
                             create_graph=create_graph)
    except Exception as exc:  # the engine's refusal, or a custom Function's own error
        text = str(exc).strip()
        trace.error = (f"{type(exc).__name__}: " if not isinstance(exc, RuntimeError) else "") + \
            (text.splitlines()[0] if text else type(exc).__name__)
    return rec


_engine_backward = torch.autograd.backward
_engine_signature = inspect.signature(_engine_backward)


class ScriptBackwards:
    """While a script runs, records the first backward() it makes itself, so the
    step controls are ready without pressing Backward (and without tripping over a
    graph the script's own backward already freed). Later calls are only counted.

    It stands in for `torch.autograd.backward` under torch's own name and
    signature: a mistyped keyword reads as torch's error, not as Torchscope's."""

    def __init__(self, limit: int | None = VALUES_LIMIT):
        self.limit = limit
        self.recording: Recording | None = None
        self.root: torch.Tensor | None = None
        self.calls = 0

        @functools.wraps(_engine_backward)
        def backward(*args, **kwargs):
            return self.backward(*args, **kwargs)
        self.stand_in = backward

    def backward(self, *args, **kwargs):
        try:
            bound = _engine_signature.bind(*args, **kwargs)
        except TypeError:  # let torch say what is wrong with the call, in its own words
            return _engine_backward(*args, **kwargs)
        bound.apply_defaults()
        tensors = bound.arguments["tensors"]
        roots = [tensors] if isinstance(tensors, torch.Tensor) else (
            list(tensors) if isinstance(tensors, (list, tuple)) else [])
        self.calls += 1
        if (self.calls > 1 or len(roots) != 1 or not isinstance(roots[0], torch.Tensor)
                or roots[0].grad_fn is None):
            return _engine_backward(*args, **kwargs)
        self.root = roots[0]
        self.recording = Recording(BackwardTrace(
            "", "", retain_graph=bool(bound.arguments["retain_graph"]),
            create_graph=bool(bound.arguments["create_graph"])))
        with hooks_on(self.recording, roots, self.limit):
            return _engine_backward(*args, **kwargs)

    def __enter__(self):
        torch.autograd.backward = self.stand_in  # Tensor.backward calls it by this name
        return self

    def __exit__(self, *exc):
        torch.autograd.backward = _engine_backward
        return False


def resolve_ids(rec: Recording, index: dict[int, str], root: torch.Tensor) -> BackwardTrace:
    """Name nodes by their ids in a Graph traced with `trace_graph(..., index=index)`."""
    trace = rec.trace
    trace.root = index.get(id(root), "")
    for step in trace.steps:
        step.node = index.get(int(step.node), "")
        if step.leaf is not None:
            step.leaf = index.get(int(step.leaf))
    rec.alive = []
    return trace


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
