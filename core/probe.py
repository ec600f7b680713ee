"""Run one script and collect a Snapshot of what it built.

Two hosts call `run`: the Jupyter kernel that the app supervises (through
`serve` and `run_and_send`, results over a Comm) and the headless export in
`main.py`. One code path for both.
"""
from __future__ import annotations

import builtins
import contextlib
import gc
import io
import linecache
import os
import random
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import torch

from core.backward import (VALUE_LIMIT, BackwardTrace, GradInfo, ScriptBackwards, explain_error,
                           grad_info, record_backward, resolve_ids, zero_grads)
from core.graph import CutTracker, Graph, named_tensors, trace_graph
from core.tensors import TensorSummary, storage_groups, summarize

CORE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
OUTPUT_LIMIT = 200_000  # characters of stdout/stderr kept per run
GRAD_LIMIT_LIVE = 4096  # grad elements copied into graph nodes for the app


class CappedText(io.StringIO):
    """stdout/stderr of a run: keeps the first OUTPUT_LIMIT characters and counts the
    rest, so `while True: print(1)` cannot eat the kernel's memory before Esc."""

    def __init__(self):
        super().__init__()
        self.dropped = 0

    def write(self, text: str) -> int:
        room = OUTPUT_LIMIT - self.tell()
        if room > 0:
            super().write(text[:room])
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def text(self) -> str:
        more = f"\n… {self.dropped} more characters not shown\n" if self.dropped else ""
        return self.getvalue() + more


class ScriptTimeout(BaseException):
    """Raised inside the script when `timeout` runs out (BaseException, so a bare
    `except Exception` in the script does not swallow it)."""


@dataclass
class RunError:
    type: str  # "SyntaxError", "ZeroDivisionError", "KeyboardInterrupt", "ScriptTimeout"
    message: str
    line: int | None  # 1-based line in the script, None when the error is not in it
    phase: str = "run"  # "run" or "backward"
    traceback: str = ""

    def one_line(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        return f"{where}: {self.type}: {self.message}"


@dataclass
class Snapshot:
    graph: Graph | None
    summaries: dict[str, TensorSummary] = field(default_factory=dict)  # node id -> summary
    stdout: str = ""
    stderr: str = ""
    error: RunError | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds: exec, trace
    backward: BackwardTrace | None = None  # set when this snapshot follows a backward
    explanation: str = ""  # a backward the engine refused, in plain words
    grad_history: dict[str, list] = field(default_factory=dict)  # leaf -> [GradInfo | None]


# The namespace of the last run stays alive so the app can ask for a full tensor,
# and run backward() on it; grad_history is what those backward() calls left in
# each named leaf's .grad (None: zeroed).
last_namespace: dict = {}
last_cuts: CutTracker | None = None
grad_history: dict[str, list[GradInfo | None]] = {}


def fresh_namespace(filename: str) -> dict:
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    return {"__name__": "__main__", "__file__": filename, "__builtins__": builtins}


def error_from_exception(exc: BaseException, filename: str, phase: str = "run") -> RunError:
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return RunError("SyntaxError" if type(exc) is SyntaxError else type(exc).__name__,
                        exc.msg, exc.lineno, phase)
    frames = traceback.extract_tb(exc.__traceback__)
    line = None
    for frame in frames:
        if frame.filename == filename:
            line = frame.lineno
    message = str(exc) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        message = "interrupted"
    elif isinstance(exc, SystemExit):
        message = f"the script called exit({exc.code if exc.code is not None else ''})"
    # The traceback from the script's first frame on, without Torchscope's own frames
    # (the probe, the cut-off tracker the script's torch calls pass through).
    first = next((i for i, f in enumerate(frames) if f.filename == filename), 0)
    shown = [f for f in frames[first:] if not f.filename.startswith(CORE_DIR)]
    tb = ("Traceback (most recent call last):\n" + "".join(traceback.format_list(shown))
          + "".join(traceback.format_exception_only(type(exc), exc)))
    return RunError(type(exc).__name__, message.strip().splitlines()[0] if message.strip() else "",
                    line, phase, tb)


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise ScriptTimeout in the main thread after `seconds` (headless export)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise ScriptTimeout(f"the script timed out after {seconds:g} s and was stopped")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def backward_root(namespace: dict, name: str) -> torch.Tensor:
    """The tensor called `name` (a variable, `model.0.weight`, `x.grad`), checked."""
    if name not in namespace:
        tensors = dict(named_tensors(namespace))
        if name not in tensors:
            raise NameError(f"no variable named {name!r} in the script")
        return _checked_root(name, tensors[name])
    return _checked_root(name, namespace[name])


def _checked_root(name: str, t) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name!r} is a {type(t).__name__}, not a tensor")
    if not t.requires_grad:
        raise RuntimeError(f"{name!r} does not require grad: nothing to backpropagate "
                           "(no leaf it depends on has requires_grad=True)")
    return t


def backward_of(namespace: dict, name: str, limit: int | None) -> tuple[torch.Tensor, BackwardTrace]:
    """`name.backward()` under the recorder, with ones as the gradient when `name`
    is not a scalar."""
    t = backward_root(namespace, name)
    trace = record_backward(t, name, None if t.numel() == 1 else torch.ones_like(t), limit=limit)
    if trace.error:
        raise RuntimeError(trace.error)
    return t, trace


def run(code: str, filename: str = "<editor>", timeout: float | None = None,
        backward: str | None = None, grad_limit: int | None = GRAD_LIMIT_LIVE,
        summaries: bool = True) -> Snapshot:
    """Execute `code` in a fresh namespace with fixed seeds and trace what it built."""
    global last_namespace, last_cuts
    last_namespace = {}  # free the previous run's graph before this one builds its own
    grad_history.clear()
    out, err = CappedText(), CappedText()
    snap = Snapshot(graph=None)
    ns = fresh_namespace(filename)
    cuts = CutTracker()
    script_backwards = ScriptBackwards(None if grad_limit is None else VALUE_LIMIT)
    t0 = time.perf_counter()
    # Tracebacks quote the script's own lines, even for "<editor>".
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    try:
        compiled = compile(code, filename, "exec")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(timeout), \
                cuts, script_backwards:
            exec(compiled, ns)
    except (Exception, KeyboardInterrupt, SystemExit, ScriptTimeout) as exc:
        snap.error = error_from_exception(exc, filename)
    t1 = time.perf_counter()
    root = None
    if snap.error is None and backward:
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                root, snap.backward = backward_of(ns, backward, grad_limit)
        except Exception as exc:
            snap.error = error_from_exception(exc, filename, phase="backward")
    snap.stdout = out.text()
    snap.stderr = err.text()
    snap.timings["exec"] = t1 - t0
    if snap.error is None:
        last_namespace = ns
        try:
            index: dict[int, str] = {}
            snap.graph = trace_graph(ns, grad_limit=grad_limit, index=index, cuts=cuts)
            last_cuts = cuts
            if snap.backward is None and script_backwards.trace is not None:
                root, snap.backward = script_backwards.root, script_backwards.trace
                snap.backward.root_name = next((n for n, t in named_tensors(ns) if t is root),
                                               "the script's root")
                if script_backwards.calls > 1:
                    snap.backward.root_name += f" (first of {script_backwards.calls} backward calls)"
            if snap.backward is not None:
                resolve_ids(snap.backward, index, root)
            t2 = time.perf_counter()
            snap.timings["trace"] = t2 - t1
            if summaries:
                snap.summaries = summarize_named(ns, snap.graph)
                snap.timings["summaries"] = time.perf_counter() - t2
        except Exception as exc:  # a tensor kind the tracer does not know: say so, keep going
            snap.graph = None
            snap.error = RunError(type(exc).__name__, f"Torchscope could not trace this script: {exc}",
                                  None, "trace", traceback.format_exc())
    return snap


def summarize_named(ns: dict, graph: Graph) -> dict[str, TensorSummary]:
    named = named_tensors(ns)
    ids = {n.name: n.id for n in graph.by_kind("tensor") if n.name}
    sharing = storage_groups(named)
    out = {}
    for name, t in named:
        if name in ids:
            try:
                s = summarize(name, t)
            except (RuntimeError, NotImplementedError):  # nested and other exotic tensors
                continue
            s.shares_storage_with = sharing.get(name, [])
            out[ids[name]] = s
    return out


def backward_in_last(root_name: str, gradient: str = "", retain_graph: bool = False,
                     create_graph: bool = False, zero_first: bool = False) -> Snapshot:
    """backward() on a tensor of the last run, recorded, as the app's Backward button
    does; `gradient` is a Python expression (`root` is the tensor), "" for ones."""
    ns = last_namespace
    snap = Snapshot(graph=None)
    root = None
    try:
        root = backward_root(ns, root_name)
        if zero_first:
            for name in zero_grads(ns):
                grad_history.setdefault(name, []).append(None)
        grad = None
        if gradient or root.numel() != 1:
            grad = eval(gradient or "torch.ones_like(root)", {"torch": torch, **ns, "root": root})
        snap.backward = record_backward(root, root_name, grad, retain_graph, create_graph)
        if snap.backward.error:
            snap.explanation = explain_error(snap.backward.error)
    except Exception as exc:
        snap.explanation = explain_error(str(exc).strip().splitlines()[0] if str(exc).strip()
                                         else type(exc).__name__)
        snap.backward = BackwardTrace("", root_name, error=f"{type(exc).__name__}: {exc}")
    if snap.backward is not None and not snap.backward.error:
        _record_history(ns)
    if root is not None and all(t is not root for _, t in named_tensors(ns)):
        ns = {**ns, root_name: root}  # e.g. `x.grad` after zeroing: keep its graph in view
    index: dict[int, str] = {}
    snap.graph = trace_graph(ns, grad_limit=GRAD_LIMIT_LIVE, index=index, cuts=last_cuts)
    if root is not None:
        resolve_ids(snap.backward, index, root)
    snap.summaries = summarize_named(ns, snap.graph)
    snap.grad_history = {k: list(v) for k, v in grad_history.items()}
    return snap


def zero_grads_in_last() -> Snapshot:
    for name in zero_grads(last_namespace):
        grad_history.setdefault(name, []).append(None)
    snap = Snapshot(graph=trace_graph(last_namespace, grad_limit=GRAD_LIMIT_LIVE, cuts=last_cuts))
    snap.summaries = summarize_named(last_namespace, snap.graph)
    snap.grad_history = {k: list(v) for k, v in grad_history.items()}
    return snap


def _record_history(ns: dict) -> None:
    for name, t in named_tensors(ns):
        if t.is_leaf and t.grad is not None:
            grad_history.setdefault(name, []).append(grad_info(t.grad))


# --- kernel side -----------------------------------------------------------------

_comm = None


def serve() -> None:
    """Open the Comm the app listens on. Called once after the kernel starts."""
    global _comm
    from comm import create_comm  # only inside a kernel
    from core.protocol import PROTOCOL_VERSION

    gc.freeze()  # torch's import leaves ~1M objects; keep them out of every collection
    _comm = create_comm(target_name="torchscope", data={
        "type": "hello", "version": PROTOCOL_VERSION, "pid": os.getpid(),
        "torch": torch.__version__, "python": sys.version.split()[0]})


def _send(snap: Snapshot, run_id: int) -> None:
    from core.protocol import encode_snapshot

    data, buffers = encode_snapshot(snap, run_id)
    _comm.send(data, buffers=buffers)


def run_and_send(code: str, run_id: int, filename: str = "<editor>") -> None:
    _send(run(code, filename), run_id)


def backward_and_send(run_id: int, root_name: str, gradient: str = "", retain_graph: bool = False,
                      create_graph: bool = False, zero_first: bool = False) -> None:
    _send(backward_in_last(root_name, gradient, retain_graph, create_graph, zero_first), run_id)


def zero_grads_and_send(run_id: int) -> None:
    _send(zero_grads_in_last(), run_id)


def send_summary(node_id: str, name: str, run_id: int) -> None:
    """Full statistics of one named tensor of the last run (the inspector asked)."""
    from core.protocol import encode_summary

    tensors = dict(named_tensors(last_namespace))
    if name not in tensors:
        return
    data, buffers = encode_summary(node_id, summarize(name, tensors[name], stats_limit=None), run_id)
    _comm.send(data, buffers=buffers)
