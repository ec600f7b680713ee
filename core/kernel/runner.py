"""Run one script and collect a RunResult of what it built.

Two hosts use a `Runner`: the Jupyter kernel that the app supervises (through
`core.kernel.serve`, results over a Comm) and the headless export in `main.py`.
One code path for both. A Runner keeps the namespace of its last run alive, so the
app can ask for a tensor's full statistics, or run backward() on it.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import io
import linecache
import os
import random
import signal
import sys
import threading
import time
import traceback
from typing import Callable

import numpy as np
import torch

from ..labels import error_kind
from ..model.backward import BackwardTrace
from ..model.devices import memory_by_device
from ..model.run import RunError, RunResult
from ..model.tensors import VALUES_LIMIT, TensorValues
from .record import (Recording, ScriptBackwards, StopAfterCall, grad_info, record_backward, resolve_ids,
                     zero_grads)
from .data import describe_into
from .data_objects import plain_data_error
from .script_folder import working_folder
from .tensors import storage_groups, tensor_values
from .torch_state import Leftovers, TorchState
from .parallel import ParallelTracker
from .trace import CallTracker, OriginTracker, bindings_of, named_tensors, trace_graph

CORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
OUTPUT_LIMIT = 200_000  # characters of stdout/stderr kept per run
STREAM_INTERVAL = 0.1  # seconds: on_output is called at most this often ...
STREAM_BATCH = 4096  # ... unless this many characters are waiting
STDIN_CLOSED = ("scripts cannot read input: stdin is closed in Torchscope "
                "(set the value in the script instead)")

OutputCallback = Callable[[str, str], None]


class CappedText(io.StringIO):
    """stdout/stderr of a run: keeps the first OUTPUT_LIMIT characters and counts the
    rest, so `while True: print(1)` cannot eat the kernel's memory before Esc.

    With `on_output`, what is kept is also handed on as it is written, in batches:
    `on_output(name, text)` when a line ends (or the script flushes) and
    STREAM_INTERVAL seconds have passed since the last call, when STREAM_BATCH
    characters wait, and once more by `send()` at the end. An error in `on_output`
    is swallowed: the window's trouble must not stop the script."""

    def __init__(self, name: str = "stdout", on_output: OutputCallback | None = None):
        super().__init__()
        self.dropped = 0
        self.name = name
        self.on_output = on_output
        self.waiting: list[str] = []
        self.waiting_chars = 0
        self.last_sent = 0.0  # the first write goes out at once

    def write(self, text: str) -> int:
        room = OUTPUT_LIMIT - self.tell()
        kept = text[:room] if room > 0 else ""
        if kept:
            super().write(kept)
        self.dropped += len(text) - len(kept)
        if kept and self.on_output is not None:
            self.waiting.append(kept)
            self.waiting_chars += len(kept)
            if self.waiting_chars >= STREAM_BATCH or (kept.endswith(("\n", "\r")) and self._due()):
                self.send()
        return len(text)

    def flush(self) -> None:  # print(..., flush=True), sys.stdout.flush()
        super().flush()
        if self._due():
            self.send()

    def _due(self) -> bool:
        return time.monotonic() - self.last_sent >= STREAM_INTERVAL

    def send(self) -> None:
        """Hand what was written since the last call to `on_output`."""
        if not self.waiting or self.on_output is None:
            return
        text = "".join(self.waiting)
        self.waiting.clear()
        self.waiting_chars = 0
        self.last_sent = time.monotonic()
        try:
            self.on_output(self.name, text)
        except Exception:  # noqa: BLE001 - a broken callback must not break the run
            pass

    def text(self) -> str:
        more = f"\n… {self.dropped} more characters not shown\n" if self.dropped else ""
        return self.getvalue() + more


class ScriptTimeout(BaseException):
    """Raised inside the script when `timeout` runs out (BaseException, so a bare
    `except Exception` in the script does not swallow it)."""


def closed_input(*args, **kwargs):
    """`input` as a script sees it: nobody can type into a run."""
    raise RuntimeError(STDIN_CLOSED)


def fresh_namespace(filename: str) -> dict:
    """The script's globals, with builtins of its own (its `input` says stdin is
    closed; the builtins module itself is left alone)."""
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    script_builtins = dict(vars(builtins), input=closed_input)
    return {"__name__": "__main__", "__file__": filename, "__builtins__": script_builtins}


@contextlib.contextmanager
def script_streams(out: CappedText, err: CappedText):
    """stdout and stderr into the run's texts; stdin empty, so reads give ''."""
    stdin = sys.stdin
    sys.stdin = io.StringIO("")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        sys.stdin = stdin


def python_hint(exc: BaseException, described: traceback.TracebackException) -> str:
    """What Python adds after an exception's message when it prints it, as
    ". Did you mean: 'training_data'?", or "". The traceback module adds it from
    3.12 on; in 3.11 only the interpreter's own excepthook does, so that one is
    asked, into a string."""
    text = str(exc)
    if not text:
        return ""
    if sys.version_info < (3, 12) and isinstance(exc, (NameError, AttributeError)):
        excepthook_text = io.StringIO()
        with contextlib.redirect_stderr(excepthook_text):
            sys.__excepthook__(type(exc), exc, exc.__traceback__)
        printed = excepthook_text.getvalue()
    else:
        printed = "".join(described.format_exception_only())
    at = printed.rfind(text)
    return printed[at + len(text):].split("\n", 1)[0] if at >= 0 else ""


def error_from_exception(exc: BaseException, filename: str, phase: str = "run") -> RunError:
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return RunError("SyntaxError" if type(exc) is SyntaxError else type(exc).__name__,
                        exc.msg, exc.lineno, phase)
    frames = traceback.extract_tb(exc.__traceback__)
    line = None
    for frame in frames:
        if frame.filename == filename:
            line = frame.lineno
    described = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    text, hint = str(exc), python_hint(exc, described)
    message = (text or type(exc).__name__).strip()
    message = (message.splitlines()[0] if message else "") + hint
    if isinstance(exc, KeyboardInterrupt):
        message = "interrupted"
    elif isinstance(exc, SystemExit):
        message = f"the script called exit({exc.code if exc.code is not None else ''})"
    # The traceback from the script's first frame on, without Torchscope's own frames
    # (the runner, the cut-off tracker the script's torch calls pass through).
    first = next((i for i, f in enumerate(frames) if f.filename == filename), 0)
    shown = [f for f in frames[first:] if not f.filename.startswith(CORE_DIR)]
    last = "".join(described.format_exception_only())
    if hint and hint not in last:
        last = last.replace(text, text + hint, 1)
    tb = "Traceback (most recent call last):\n" + "".join(traceback.format_list(shown)) + last
    return RunError(type(exc).__name__, message, line, phase, tb)


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
    t = namespace.get(name) if name in namespace else dict(named_tensors(namespace)).get(name)
    if t is None and name not in namespace:
        raise NameError(f"no variable named {name!r} in the script")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name!r} is a {type(t).__name__}, not a tensor")
    if not t.requires_grad:
        raise RuntimeError(f"{name!r} does not require grad: nothing to backpropagate "
                           "(no leaf it depends on has requires_grad=True)")
    return t


def first_statements(code: str, filename: str, upto: int | None):
    """The script, or (`upto`) only its first `upto` top-level statements, as the AST
    that `compile` takes; the statements keep their own line numbers."""
    if upto is None:
        return code
    tree = ast.parse(code, filename)
    tree.body = tree.body[:max(0, upto)]
    return tree


class Runner:
    """Runs scripts one after the other, each in a fresh namespace with fixed seeds,
    and answers questions about the last one (its tensors, a backward on them)."""

    def __init__(self, grad_limit: int | None = VALUES_LIMIT, node_stats: bool = False):
        self.grad_limit = grad_limit  # grad elements copied into graph nodes (None: all)
        self.node_stats = node_stats  # statistics of every float tensor on its node (the export)
        self.namespace: dict = {}
        self.cuts: CallTracker | None = None
        self.bindings: dict[int, str] = {}  # line -> name it binds (for `x@3`)
        # What each Backward press left in a named leaf's .grad (None: zeroed).
        self.grad_history: dict[str, list] = {}
        self.torch_state = TorchState.capture()  # every run starts from it
        self.leftovers = Leftovers()
        self.cwd: str | None = None  # the last run's folder (the data panel's requests read files there)
        self.data_batches = False  # describe each DataLoader with its preview batch (the export)

    def run(self, code: str, filename: str = "<editor>", timeout: float | None = None,
            backward: str | None = None, values: bool = True, *, cwd: str | None = None,
            on_output: OutputCallback | None = None, upto: int | None = None,
            stop_after_call: int | None = None) -> RunResult:
        """Execute `code` and trace what it built. `backward`: call NAME.backward()
        afterwards (ones as the gradient when NAME is not a scalar), recorded.
        `cwd`: the folder the script runs in (current, and first on sys.path).
        `on_output(stream, text)`: stdout/stderr as the script writes them, batched
        (see CappedText); the RunResult has all of it again. `upto`: run only the
        first `upto` top-level statements (the forward pass, statement by statement)."""
        self.namespace = {}  # free the previous run's graph before this one builds its own
        self.grad_history.clear()
        out, err = CappedText("stdout", on_output), CappedText("stderr", on_output)
        result = RunResult(graph=None)
        ns = fresh_namespace(filename)
        cuts = CallTracker(filename)
        origins = OriginTracker(filename)
        parallel = ParallelTracker()
        script_backwards = ScriptBackwards(self.grad_limit, filename, stop_after=stop_after_call)
        # Tracebacks quote the script's own lines, even for "<editor>".
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self.torch_state.restore()  # whatever an earlier run (or request) left
        self.leftovers.run_starts()
        t0 = time.perf_counter()
        root, recording = None, None
        script_exc = None
        try:
            try:
                compiled = compile(first_statements(code, filename, upto), filename, "exec")
                with working_folder(cwd), script_streams(out, err), time_limit(timeout), \
                        cuts, origins, parallel, script_backwards:
                    exec(compiled, ns)
            except StopAfterCall:
                pass  # the run ends at the backward call asked for: its graph is drawn
            except (Exception, KeyboardInterrupt, SystemExit, ScriptTimeout) as exc:
                script_exc = plain_data_error(exc)  # a dataset's error in plain words
                result.error = error_from_exception(script_exc, filename)
            t1 = time.perf_counter()
            if result.error is None and backward:
                try:
                    with working_folder(cwd), script_streams(out, err):
                        root = backward_root(ns, backward)
                        recording = record_backward(
                            root, backward, None if root.numel() == 1 else torch.ones_like(root),
                            limit=self.grad_limit)
                        if recording.trace.error:
                            raise RuntimeError(recording.trace.error)
                except Exception as exc:
                    result.error = error_from_exception(exc, filename, phase="backward")
        finally:
            self.torch_state.restore()  # the kernel's later requests see torch as it was
            out.send()
            err.send()
        notes = self.leftovers.notes()
        result.stdout = out.text()
        result.stderr = err.text() + "".join(note + "\n" for note in notes)
        result.timings["exec"] = t1 - t0
        self.namespace, self.cuts, self.bindings = ns, cuts, bindings_of(code)
        self.cwd = cwd
        t2 = time.perf_counter()
        describe_into(result, ns, code, cwd, script_exc, batches=self.data_batches)
        result.parallel = parallel.forwards(ns)
        result.timings["data"] = time.perf_counter() - t2
        if result.error is not None:
            if result.error.phase == "run" and result.error.type != "SyntaxError":
                self._trace_partial(result, ns)
                if error_kind(result.error.message) == "cuda_oom" and result.graph is not None:
                    result.error.note = held_by_tensors(result.graph)
            return result
        try:
            if recording is None and script_backwards.recording is not None:
                root, recording = script_backwards.last()  # the latest call: its graph is drawn
            calls = script_backwards.traces(ns, recording)  # named, resolved with `recording`
            self._trace_into(result, ns, recording, root, values)
            result.backward_calls = calls
            result.timings["trace"] = time.perf_counter() - t1 - result.timings.get("values", 0.0)
        except Exception as exc:  # a tensor kind the tracer does not know: say so, keep going
            result.graph = None
            result.error = RunError(type(exc).__name__, f"Torchscope could not trace this script: {exc}",
                                    None, "trace", traceback.format_exc())
        return result

    def _trace_partial(self, result: RunResult, ns: dict) -> None:
        """What the script had built when it failed: drawn dimmed, with the error."""
        try:
            self._trace_into(result, ns, None, None)
        except Exception:  # the error the user needs is the script's own
            result.graph = None

    def _trace_into(self, result: RunResult, ns: dict, recording: Recording | None,
                    root: torch.Tensor | None, values: bool = True) -> None:
        index: dict[int, str] = {}
        result.graph = trace_graph(ns, grad_limit=self.grad_limit, index=index, cuts=self.cuts,
                                   bindings=self.bindings, stats=self.node_stats)
        if recording is not None:
            result.backward = resolve_ids(recording, index, root) if root is not None else recording.trace
        if values:
            t0 = time.perf_counter()
            result.values = self._values_of(ns, result.graph)
            result.timings["values"] = time.perf_counter() - t0
        result.grad_history = {k: list(v) for k, v in self.grad_history.items()}

    @staticmethod
    def _values_of(ns: dict, graph) -> dict[str, TensorValues]:
        named = named_tensors(ns)
        ids = {n.name: n.id for n in graph.by_kind("tensor") if n.name}
        sharing = storage_groups(named)
        out = {}
        for name, t in named:
            if name in ids:
                try:
                    v = tensor_values(t)
                except Exception:  # a tensor subclass the summaries do not know
                    continue
                v.shares_storage_with = sharing.get(name, [])
                out[ids[name]] = v
        return out

    def backward(self, root_name: str, gradient: str = "", retain_graph: bool = False,
                 create_graph: bool = False, zero_first: bool = False) -> RunResult:
        """backward() on a tensor of the last run, recorded, as the app's Backward
        button does; `gradient` is a Python expression (`root` is the tensor), "" for ones."""
        ns = self.namespace
        result = RunResult(graph=None)
        root, recording = None, None
        try:
            root = backward_root(ns, root_name)
            if zero_first:
                for name in zero_grads(ns):
                    self.grad_history.setdefault(name, []).append(None)
            grad = None
            if gradient or root.numel() != 1:
                grad = eval(gradient or "torch.ones_like(root)", {"torch": torch, **ns, "root": root})
            recording = record_backward(root, root_name, grad, retain_graph, create_graph,
                                        limit=self.grad_limit)
        except Exception as exc:
            recording = Recording(failed_trace(root_name, exc))
        if not recording.trace.error:
            for name, t in named_tensors(ns):
                if t.is_leaf and t.grad is not None:
                    self.grad_history.setdefault(name, []).append(grad_info(t.grad))
        if root is not None and all(t is not root for _, t in named_tensors(ns)):
            ns = {**ns, root_name: root}  # e.g. `x.grad` after zeroing: keep its graph in view
        self._trace_into(result, ns, recording, root)
        return result

    def zero_grads(self) -> RunResult:
        for name in zero_grads(self.namespace):
            self.grad_history.setdefault(name, []).append(None)
        result = RunResult(graph=None)
        self._trace_into(result, self.namespace, None, None)
        return result

    def values(self, name: str) -> TensorValues | None:
        """Full statistics of one named tensor of the last run (the inspector asked)."""
        t = dict(named_tensors(self.namespace)).get(name)
        return None if t is None else tensor_values(t, stats_limit=None)


def held_by_tensors(graph) -> str:
    """What the script's named tensors hold on each device, each storage once: the
    figure an out-of-memory message lacks ("how much of that is mine?")."""
    held = memory_by_device(graph)
    if not held:
        return "The script's named tensors hold nothing yet."
    parts = [f"{d['bytes'] / 2**30:,.2f} GiB on {device} ({d['tensors']} tensors)" for device, d in held.items()]
    return "The script's named tensors and parameters hold " + ", ".join(parts) + "."


def failed_trace(root_name: str, exc: Exception) -> BackwardTrace:
    """The trace of a backward that could not even start (no such tensor, a bad
    gradient expression): no steps, the error in one line."""
    text = str(exc).strip()
    return BackwardTrace("", root_name, error=f"{type(exc).__name__}: "
                         + (text.splitlines()[0] if text else type(exc).__name__))
