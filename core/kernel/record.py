"""Instrumented backward -> BackwardTrace: what the autograd engine really did.

Hooks are put on every node reachable from the root (`Node.register_hook`, called
by the engine right after the node ran, with the gradients that flowed in and
out) and taken off again; the backward itself is torch's own
`torch.autograd.backward` (or `torch.autograd.grad`). Nothing is recomputed: the
order of the steps is the order in which the engine finished the nodes, the values
are the tensors it passed.

The hooks only keep references: `(node, grad_inputs, grad_outputs)` as the engine
passed them. Every CHUNK nodes, and once more when the backward returns, the kept
gradients are summarized together (`grad_infos`: gradients of one shape, dtype and
device flattened into one tensor, one copy to numpy, norm/min/max for all of them
at once) and let go. A big model's gradients are so held for at most CHUNK nodes;
while they are small, the next chunk doubles (up to MAX_CHUNK).
"""
from __future__ import annotations

import collections
import contextlib
import functools
import gc
import inspect
import itertools
import math
import operator
import sys
import threading
from typing import Any

import numpy as np
import torch

from ..model.backward import BackwardStep, BackwardTrace, GradInfo
from ..model.tensors import VALUES_LIMIT
from .tensors import dtype_name, numel_of, shape_of, stored_values, to_numpy
from .trace import named_tensors

CHUNK = 16  # nodes whose gradients the hooks hold before they are summarized ...
MAX_CHUNK = 4096  # ... or more, up to this many, while they are small:
HOLD_LIMIT = 1 << 20  # grad elements a chunk may hold and still double the next one
CALLS_LIMIT = 100  # backward()/autograd.grad() calls of a script that are recorded

_ACCUMULATE_GRAD = torch._C._functions.AccumulateGrad


class Recording:
    """A BackwardTrace while it is being made, with the autograd nodes and leaves it
    names by id(): held until `resolve_ids`, because some torch versions hand out a
    new Python wrapper (a new id) for a node once nobody holds the old one.
    `companions`: other recordings (with their roots) that `resolve_ids` names with
    the same index, e.g. the script's earlier backward calls."""

    def __init__(self, trace: BackwardTrace):
        self.trace = trace
        self.alive: list = []
        self.companions: list[tuple[Recording, torch.Tensor | None]] = []


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
        # One copy to Python, statistics from the list: cheaper than three torch ops.
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


# --- many gradients at once --------------------------------------------------------------

# What groups gradients that can be summarized together: tensors of one class, dtype,
# device and shape (the layout is checked on the stacked batch).
_GROUP_KEY = operator.attrgetter("__class__", "dtype", "device", "shape")
# Big gradients (no values kept) on these devices are summarized one by one; on others
# (CUDA) their statistics stay on the device until one copy brings all of a group's back.
ONE_BY_ONE_DEVICES = {"cpu"}
_flatten = torch._utils._flatten_dense_tensors  # what DDP packs its buckets with: one cat
# The dtypes summarized in batches; True: widened to float32 for numpy, as to_numpy does.
_BATCHED = {torch.float32: False, torch.float64: False, torch.float16: True, torch.bfloat16: True}


def grad_infos(tensors: list, limit: int | None = VALUES_LIMIT) -> list[GradInfo | None]:
    """`[grad_info(t, limit) for t in tensors]`, computed in batches: the same
    values (numpy views into one array per batch), the same statistics up to the
    order of a float sum (norms summed in float64). One tensor object given twice
    gets one GradInfo. Never raises."""
    get = _infos_by_id({id(t): t for t in tensors if t is not None}, limit)[0].get
    return [get(id(t)) for t in tensors]


def _infos_by_id(tensors: dict[int, Any], limit: int | None) -> tuple[dict[int, GradInfo], int]:
    """(id -> GradInfo for `tensors` (id -> tensor), how many elements they hold:
    the count of those done in batches, HOLD_LIMIT for any other)."""
    out: dict[int, GradInfo] = {}
    held = 0
    groups: dict[Any, list] = {}
    values = list(tensors.values())
    try:
        keys = list(map(_GROUP_KEY, values))
    except Exception:  # a tensor subclass without one of these: each on its own
        keys = []
        for t in values:
            try:
                keys.append(_GROUP_KEY(t))
            except Exception:
                keys.append(None)
    for t, key in zip(values, keys):
        group = groups.get(key)
        if group is None:
            groups[key] = [t]
        else:
            group.append(t)
    for key, group in groups.items():
        done = False
        if key is not None:
            try:
                done = _summarize_group(key, group, out, limit)
            except Exception:  # e.g. a backend without stack: one by one
                done = False
        if done:
            held += math.prod(key[3]) * len(group)
        else:
            held += HOLD_LIMIT
            for t in group:
                out[id(t)] = grad_info(t, limit)
    return out, held


def _summarize_group(key: tuple, group: list, out: dict, limit: int | None) -> bool:
    """GradInfos for tensors of one class, dtype, device and shape into `out` (by
    id); False when they are not a kind done in batches."""
    cls, dtype, device, shape = key
    n = math.prod(shape)
    if cls is not torch.Tensor or dtype not in _BATCHED or n == 0 or device.type == "meta":
        return False
    dname, dims = dtype_name(dtype), list(shape)
    if limit is not None and n > limit:
        if device.type in ONE_BY_ONE_DEVICES:
            return False  # grad_info one by one: torch's own reductions, no sync to save
        # Off the CPU: each tensor's statistics on its device, one copy back for all.
        with torch.no_grad():
            rows = []
            for t in group:
                if t.layout != torch.strided or t.is_nested:
                    return False
                x = t.float() if _BATCHED[dtype] else t
                lo, hi = torch.aminmax(x)
                rows.append(torch.stack([torch.linalg.vector_norm(x), lo, hi]))
            stats = torch.stack(rows).tolist()
        for t, (norm, lo, hi) in zip(group, stats):
            out[id(t)] = GradInfo(list(dims), dname, norm, lo, hi, None)
        return True
    with torch.no_grad():
        # One flat copy of them all, tensor after tensor (sparse or nested ones refuse).
        batch = _flatten(group)
        if batch.layout != torch.strided or batch.is_nested or type(batch) is not torch.Tensor:
            return False
        if _BATCHED[dtype]:
            batch = batch.float()
        k = len(group)
        arr = batch.cpu().numpy().reshape(k, *dims)
    flat = arr.reshape(k, n)
    with np.errstate(all="ignore"):  # norms summed in float64; min/max exact in any dtype
        norms = np.sqrt(np.einsum("ij,ij->i", flat, flat, dtype=np.float64)).tolist()
        lows, highs = flat.min(axis=1).tolist(), flat.max(axis=1).tolist()
    views = list(arr) if dims else [arr[j, ...] for j in range(k)]  # 0-d: arrays, not scalars
    for t, v, norm, lo, hi in zip(group, views, norms, lows, highs):
        out[id(t)] = GradInfo(list(dims), dname, norm, lo, hi, v)
    return True


# --- hooks on the nodes ------------------------------------------------------------------

def reachable_nodes(root_fn, seen: set | None = None) -> list:
    """Every autograd node reachable from `root_fn` (and not in `seen`, which it fills)."""
    seen = set() if seen is None else seen
    if root_fn is None or root_fn in seen:
        return []
    seen.add(root_fn)
    order, stack = [root_fn], [root_fn]
    add, keep, push, pop = seen.add, order.append, stack.append, stack.pop
    while stack:
        for nf, _ in pop().next_functions:
            if nf is not None and nf not in seen:
                add(nf)
                keep(nf)
                push(nf)
    return order


_step_names: dict[type, str] = {}


def _steps_from(entries: list, first_index: int, limit: int | None) -> tuple[list[BackwardStep], int]:
    """(BackwardSteps from what the hooks kept, the grad elements they held). An
    entry is (node, grad_inputs, grad_outputs), and for AccumulateGrad also (the
    leaf, its .grad right after the step)."""
    tensors = {id(g): g for e in entries for g in e[1]}
    tensors.update((id(g), g) for e in entries for g in e[2])
    tensors.update((id(e[4]), e[4]) for e in entries if len(e) > 3)
    tensors.pop(id(None), None)
    infos, held = _infos_by_id(tensors, limit)
    info = infos.get
    names = _step_names
    steps = []
    index = first_index
    for e in entries:
        fn = e[0]
        cls = type(fn)
        name = names.get(cls)
        if name is None:
            name = names[cls] = cls.__name__
        outs, ins = e[2], e[1]  # mostly one or two: no comprehension for those
        step = BackwardStep(
            index, str(id(fn)), name,
            [info(id(outs[0]))] if len(outs) == 1 else [info(id(g)) for g in outs],
            [info(id(ins[0]))] if len(ins) == 1 else
            [info(id(ins[0])), info(id(ins[1]))] if len(ins) == 2 else [info(id(g)) for g in ins])
        if len(e) > 3:
            step.leaf, step.leaf_grad = str(id(e[3])), info(id(e[4]))
        steps.append(step)
        index += 1
    return steps, held


# --- registering many hooks --------------------------------------------------------------
# `node.register_hook(h)` asks `torch.autograd.Function._register_hook` for the node's
# hook dict and a RemovableHandle (a Python object, a weakref, a class counter): most
# of what a recording costs per node before the backward even starts. While hooks_on
# registers, a stand-in puts the hook in the same dict under a key of its own and
# hands back (dict, key); taking the hook off is deleting that key. Whether the
# stand-in is used is checked once (a torch that looks it up elsewhere gets
# RemovableHandles back, which work as well).

_quick_keys = itertools.count(-1, -1)  # negative: never the id of a RemovableHandle


def _quick_register_hook(backward_hooks, hook):
    if backward_hooks is None:
        backward_hooks = collections.OrderedDict()
    key = next(_quick_keys)
    backward_hooks[key] = hook
    return backward_hooks, (backward_hooks, key)


@contextlib.contextmanager
def _quick_registration():
    function = torch.autograd.Function
    own = function.__dict__.get("_register_hook")
    function._register_hook = staticmethod(_quick_register_hook)
    try:
        yield
    finally:
        if own is None:
            del function._register_hook
        else:
            function._register_hook = own


def _remove_hook(handle) -> None:
    if type(handle) is tuple:
        handle[0].pop(handle[1], None)
    else:
        handle.remove()


_quick_checked: list[bool] = []


def _quick_registration_works() -> bool:
    if not _quick_checked:
        try:
            called = []
            with torch.enable_grad():
                x = torch.ones(1, requires_grad=True)
                y = x * 2
                with _quick_registration():
                    handle = y.grad_fn.register_hook(lambda gi, go: called.append(True))
                _engine_backward(y, retain_graph=True)
                _remove_hook(handle)
                _engine_backward(y)
            _quick_checked.append(type(handle) is tuple and called == [True])  # once: then taken off
        except Exception:
            _quick_checked.append(False)
    return _quick_checked[0]


@contextlib.contextmanager
def hooks_on(rec: Recording, roots: list, limit: int | None):
    """Every node reachable from `roots` reports to `rec.trace` while the block runs;
    its steps are all in `rec.trace.steps` when the block is left (also by an error:
    the steps that ran, in engine order)."""
    trace = rec.trace
    log: list = []
    append = log.append
    lock = threading.Lock()  # a backward on several devices calls hooks from several threads
    chunk = CHUNK

    def flush(wait: bool = False) -> None:
        # Whatever happens here must not raise into the engine: the script's own
        # backward would fail where plain Python runs it.
        nonlocal chunk
        if not lock.acquire(blocking=wait):
            return  # another thread is at it; what it leaves waits for the next flush
        try:
            n = len(log)
            entries = log[:n]
            del log[:n]
            if entries:
                steps, held = _steps_from(entries, len(trace.steps), limit)
                trace.steps += steps
                chunk = min(2 * chunk, MAX_CHUNK) if held < HOLD_LIMIT else CHUNK
        except Exception:
            pass
        finally:
            lock.release()

    seen: set = set()
    fns: list = []
    for root in roots:
        fns += reachable_nodes(root.grad_fn, seen)
    rec.alive = fns
    leaves: list = []
    handles: list = []
    quick = _quick_registration() if _quick_registration_works() else contextlib.nullcontext()
    collecting = gc.isenabled()
    gc.disable()  # tens of thousands of small objects: no collection passes in between
    try:
        with quick:
            for fn in fns:
                # The hooks return None (the engine's gradients stay as they are) and
                # only keep references; they are the whole per-node cost of a recording.
                if type(fn) is _ACCUMULATE_GRAD:
                    var = fn.variable
                    leaves.append(var)

                    def on_done(grad_inputs, grad_outputs, fn=fn, var=var):
                        append((fn, grad_inputs, grad_outputs, var, var.grad))
                        if len(log) >= chunk:
                            flush()
                else:
                    def on_done(grad_inputs, grad_outputs, fn=fn):
                        append((fn, grad_inputs, grad_outputs))
                        if len(log) >= chunk:
                            flush()
                handles.append(fn.register_hook(on_done))
        rec.alive += leaves
        yield trace
    finally:
        for h in handles:
            if type(h) is tuple:  # _remove_hook, inline: once per node
                h[0].pop(h[1], None)
            else:
                h.remove()
        flush(wait=True)
        if collecting:
            gc.enable()


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
        trace.error = _one_line(exc)
    return rec


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (f"{type(exc).__name__}: " if not isinstance(exc, RuntimeError) else "") + \
        (text.splitlines()[0] if text else type(exc).__name__)


_engine_backward = torch.autograd.backward
_engine_grad = torch.autograd.grad
_backward_signature = inspect.signature(_engine_backward)
_grad_signature = inspect.signature(_engine_grad)


def _in_functorch_transform() -> bool:
    """Inside torch.func's vmap/grad/jacrev: the gradients are wrapped tensors of
    that transform, not to be kept past it."""
    try:
        return torch._C._functorch.maybe_current_level() is not None
    except Exception:
        return False


class StopAfterCall(BaseException):
    """Ends a script right after the backward call the window asked to see, so the
    graph drawn is the one that call ran through (not the loop's last)."""


class ScriptBackwards:
    """While a script runs, records every backward() and torch.autograd.grad() it
    makes itself, so the step controls are ready without pressing Backward (and
    without tripping over a graph the script's own backward already freed). A
    training loop makes many: the first CALLS_LIMIT - 1 are kept, and always the
    latest one, whose graph is the one the script's names still hold (the one
    drawn). `calls` counts them all.

    The stand-ins take the place of `torch.autograd.backward` and
    `torch.autograd.grad` under torch's own names and signatures: a mistyped
    keyword reads as torch's error, not as Torchscope's."""

    def __init__(self, limit: int | None = VALUES_LIMIT, filename: str | None = None,
                 keep: int = CALLS_LIMIT, stop_after: int | None = None):
        self.limit = limit
        self.stop_after = stop_after  # end the script right after this call (1-based)
        self.filename = filename  # the script's: a call's line is the innermost frame in it
        self.keep = max(1, keep)
        # (recording, root, the root's name where the call was made), in call order
        self.recorded: list[tuple[Recording, torch.Tensor, str | None]] = []
        self.calls = 0
        # Inside a call: torch's own function re-enters its stand-in when a torch
        # function mode is on (the engine function is looked up by its public name).
        self.inside = 0

        @functools.wraps(_engine_backward)
        def backward(*args, **kwargs):
            return self.backward(*args, **kwargs)

        @functools.wraps(_engine_grad)
        def grad(*args, **kwargs):
            return self.grad(*args, **kwargs)
        self.stand_in, self.grad_stand_in = backward, grad

    @property
    def recording(self) -> Recording | None:
        """The latest recorded call."""
        return self.recorded[-1][0] if self.recorded else None

    @property
    def root(self) -> torch.Tensor | None:
        """The latest recorded call's root (its first tensor)."""
        return self.recorded[-1][1] if self.recorded else None

    def backward(self, *args, **kwargs):
        if self.inside:
            return _engine_backward(*args, **kwargs)
        try:
            bound = _backward_signature.bind(*args, **kwargs)
        except TypeError:  # let torch say what is wrong with the call, in its own words
            return _engine_backward(*args, **kwargs)
        a = bound.arguments
        return self._call("backward", a.get("tensors"), a.get("retain_graph"),
                          bool(a.get("create_graph", False)), lambda: _engine_backward(*args, **kwargs))

    def grad(self, *args, **kwargs):
        if self.inside:
            return _engine_grad(*args, **kwargs)
        try:
            bound = _grad_signature.bind(*args, **kwargs)
        except TypeError:
            return _engine_grad(*args, **kwargs)
        a = bound.arguments
        if a.get("is_grads_batched"):  # under vmap: the engine's tensors are batched ones
            return self._call("grad", None, None, False, lambda: _engine_grad(*args, **kwargs))
        return self._call("grad", a.get("outputs"), a.get("retain_graph"),
                          bool(a.get("create_graph", False)), lambda: _engine_grad(*args, **kwargs))

    def _call(self, kind: str, tensors, retain_graph, create_graph: bool, run):
        self.calls += 1
        self.inside += 1
        try:
            roots = [tensors] if isinstance(tensors, torch.Tensor) else (
                list(tensors) if isinstance(tensors, (list, tuple)) else [])
            roots = [t for t in roots if isinstance(t, torch.Tensor) and t.grad_fn is not None]
            if not roots or _in_functorch_transform():
                return run()  # nothing to record (torch raises if it is an error)
            line, name = self._where(roots[0])
            rec = Recording(BackwardTrace(
                "", "", retain_graph=bool(create_graph if retain_graph is None else retain_graph),
                create_graph=create_graph, line=line, call=self.calls, kind=kind))
            if len(self.recorded) >= self.keep:
                self.recorded[-1] = (rec, roots[0], name)  # the latest replaces the latest
            else:
                self.recorded.append((rec, roots[0], name))
            try:
                with hooks_on(rec, roots, self.limit):
                    out = run()
            except Exception as exc:
                rec.trace.error = _one_line(exc)
                raise
            if self.stop_after == self.calls:
                raise StopAfterCall  # the window asked to see this call's graph
            return out
        finally:
            self.inside -= 1

    def _where(self, root: torch.Tensor) -> tuple[int | None, str | None]:
        """(the script's line that made the call: its innermost frame in the script,
        the name that frame has for `root` or None)."""
        if self.filename is None:
            return None, None
        f = sys._getframe(2)
        while f is not None and f.f_code.co_filename != self.filename:
            f = f.f_back
        if f is None:
            return None, None
        try:
            name = next((k for k, v in f.f_locals.items() if v is root and not k.startswith("__")), None)
        except Exception:  # a frame whose locals cannot be read
            name = None
        return f.f_lineno, name

    def traces(self, namespace: dict, main: Recording | None) -> list[BackwardTrace]:
        """Every recorded call's trace, in call order, with the number of calls and
        its root's name: the script's name for it at the end, else the one it had
        where the call was made, else "the script's root". The
        recordings other than `main` become its companions: `resolve_ids(main, ...)`
        names their nodes with the same graph (nodes no longer drawn: "")."""
        if not self.recorded:
            return []
        names: dict[int, str] = {}
        for name, t in named_tensors(namespace):
            names.setdefault(id(t), name)
        out = []
        for rec, root, name in self.recorded:
            trace = rec.trace
            trace.calls = self.calls
            trace.root_name = names.get(id(root)) or name or "the script's root"
            if self.calls > 1:
                trace.root_name += f" (call {trace.call} of {self.calls})"
            out.append(trace)
            if main is not None and rec is not main:
                main.companions.append((rec, root))
        return out

    def last(self) -> tuple[torch.Tensor | None, Recording | None]:
        """(root, recording) of the latest recorded call: the one replayed."""
        return (self.root, self.recording)

    def __enter__(self):
        # Tensor.backward calls torch.autograd.backward by this name.
        torch.autograd.backward = self.stand_in
        torch.autograd.grad = self.grad_stand_in
        return self

    def __exit__(self, *exc):
        torch.autograd.backward = _engine_backward
        torch.autograd.grad = _engine_grad
        return False


_quick_registration_works()  # checked here, once: not inside a script's torch function modes


def resolve_ids(rec: Recording, index: dict[int, str], root: torch.Tensor | None) -> BackwardTrace:
    """Name nodes by their ids in a Graph traced with `trace_graph(..., index=index)`
    ("" for a node not in it), and the nodes of `rec.companions` too."""
    trace = rec.trace
    trace.root = index.get(id(root), "") if root is not None else ""
    for step in trace.steps:
        step.node = index.get(int(step.node), "") if step.node else ""
        if step.leaf is not None:
            step.leaf = index.get(int(step.leaf))
    rec.alive = []
    companions, rec.companions = rec.companions, []
    for other, other_root in companions:
        if other is not rec:
            resolve_ids(other, index, other_root)
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
