"""Session: the supervisor of the Jupyter kernel that runs the user's code.

The window never runs the user's code. `KernelProcess` starts an ipykernel through
qtconsole's QtKernelManager; `Session` loads Torchscope's kernel side into it under
a private module name, then talks to it with the typed messages of `core.protocol`
over a Comm: each request is one comm message, answered by one reply tagged with the
request's msg_id, dispatched here by type into Qt signals. `attach(FILE)` swaps in an
`AttachedKernel` instead: a kernel running elsewhere, which gets the kernel side as
text, is interrupted by message, and is never restarted or stopped by the app.

The session is a state machine:

    starting -> bootstrapping -> idle <-> running -> interrupting -> idle
        any state -> restarting (the kernel died, or Restart) -> bootstrapping
        restarting -> dead (it keeps dying)

It is `idle` only once the bootstrap request has finished, and it interrupts only a
request the kernel has announced it started (iopub `busy` with that request as
parent), so an interrupt can never land inside the bootstrap.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_API", "pyside6")

from PySide6 import QtCore  # noqa: E402

from core.attach import (AttachError, bootstrap_code, bootstrap_failure, describe,  # noqa: E402
                         read_connection_file)
from core.model.run import RunError, RunResult  # noqa: E402
from core.protocol import (BackwardRequest, ErrorReply, Hello, OutputChunk, ProtocolError,  # noqa: E402
                           RunRequest, ValuesReply, ValuesRequest, ZeroGradsRequest, decode, encode)

CORE_DIR = Path(__file__).resolve().parent.parent / "core"
PRIVATE_NAME = "_torchscope_core"
# Loads core/ under a private name (a user's own `core` package stays theirs) and
# opens the Comm. The one piece of Python source the window ever sends.
BOOTSTRAP = f"""
def _torchscope_boot(path, name):
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location(name, path + "/__init__.py",
                                                  submodule_search_locations=[path])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return importlib.import_module(name + ".kernel.serve").serve()
_torchscope_endpoint = _torchscope_boot({str(CORE_DIR)!r}, {PRIVATE_NAME!r})
del _torchscope_boot
"""
STATUS_TEXT = {"stopped": "stopped", "starting": "starting kernel…", "bootstrapping": "loading torch…",
               "idle": "ready", "running": "running…", "interrupting": "interrupting…",
               "restarting": "restarting kernel…", "dead": "kernel dead", "broken": "kernel unusable"}
NOT_OURS = ("This kernel was started outside Torchscope, so Torchscope never restarts or stops it: "
            "restart it where it runs, then File → Connect to kernel… again.")
IGNORED_INTERRUPT_MS = 3000  # an interrupt unanswered this long: the script ignores it


def send_comm(kc, comm_id: str, data: dict, buffers: list) -> str:
    """A comm message (JSON plus binary buffers) on a kernel client's shell channel;
    its msg_id, which the kernel's replies carry."""
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    msg["buffers"] = buffers
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


class KernelProcess(QtCore.QObject):
    """A local ipykernel, started and watched by qtconsole's QtKernelManager."""

    message = QtCore.Signal(dict)  # every iopub message
    dying = QtCore.Signal()  # it died; the manager is restarting it
    restarted = QtCore.Signal()  # restarted by the manager after dying
    gave_up = QtCore.Signal()  # it kept dying; no more restarts
    silent = QtCore.Signal(float)  # no heartbeat for this many seconds (frozen?)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.km = None
        self.kc = None

    def start(self, cwd: str) -> None:
        from qtconsole.manager import QtKernelManager

        env = dict(os.environ)
        env["MPLBACKEND"] = "Agg"  # plt.show() in a script must not open a window
        self.km = QtKernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=cwd)
        self.km.kernel_restarted.connect(self._on_restarted)
        if self.km._restarter is not None:
            self.km._restarter.time_to_dead = 1.0
            self.km._restarter.add_callback(self.dying.emit, "restart")
            self.km._restarter.add_callback(self.gave_up.emit, "dead")
        self.kc = self.km.client()
        self.kc.start_channels()
        # Accept the kernel's Comm (qtconsole closes comms to unknown targets); its
        # messages are read straight off the iopub channel.
        self.kc.comm_manager.register_target("torchscope", lambda comm, msg: None)
        self.kc.iopub_channel.message_received.connect(self.message.emit)
        self.kc.hb_channel.kernel_died.connect(self.silent.emit)

    def is_beating(self) -> bool:
        return self.kc is not None and self.kc.hb_channel.is_beating()

    def _on_restarted(self) -> None:
        self.km.reset_autorestart_count()
        self.restarted.emit()

    def execute(self, code: str) -> str:
        return self.kc.execute(code, silent=True, store_history=False, stop_on_error=False)

    def send_comm(self, comm_id: str, data: dict, buffers: list) -> str:
        return send_comm(self.kc, comm_id, data, buffers)

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def restart(self) -> None:
        self.km.restart_kernel(now=True)

    def shutdown(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None and self.km.has_kernel:
            self.km.stop_restarter()
            self.km.shutdown_kernel(now=True)


class AttachedKernel(QtCore.QObject):
    """A kernel that runs elsewhere (a notebook's, or one on a GPU server through an
    SSH tunnel), reached by its connection file as `jupyter console --existing` does:
    qtconsole's QtKernelClient, no manager. The same signals as KernelProcess, but it
    never dies "into" a restart, and nothing here stops its process: `shutdown`
    detaches (closes our Comm and our sockets). Torchscope's kernel side is sent as
    text (`core.attach.bootstrap_code`), so the kernel needs no Torchscope installed."""

    message = QtCore.Signal(dict)
    dying = QtCore.Signal()  # never emitted: nobody here watches its process
    restarted = QtCore.Signal()
    replaced = QtCore.Signal()  # its owner restarted it: another process answers now
    gave_up = QtCore.Signal()
    silent = QtCore.Signal(float)
    owns_process = False  # Session: no restart, never a kill

    def __init__(self, connection_file: str, parent=None):
        """Reads the connection file now: AttachError (one sentence) if it is missing
        or not a kernel's."""
        super().__init__(parent)
        self.path, self.info = read_connection_file(connection_file)
        self.where = describe(self.path, self.info)
        self.bootstrap_code = bootstrap_code()
        self.kc = None
        self.comm_id: str | None = None
        self._executes: set[str] = set()
        self.process: str | None = None  # the kernel process's session id (its messages' header)

    def start(self, cwd: str) -> None:
        from qtconsole.client import QtKernelClient

        self.kc = QtKernelClient()
        self.kc.load_connection_info(self.info)
        self.kc.start_channels()
        self.kc.comm_manager.register_target("torchscope", lambda comm, msg: None)
        self.kc.iopub_channel.message_received.connect(self._on_message)
        self.kc.hb_channel.kernel_died.connect(self.silent.emit)

    def _on_message(self, msg: dict) -> None:
        content = msg.get("content", {})
        kind = msg["header"]["msg_type"]
        process = msg["header"].get("session")  # each kernel process signs with its own
        if (kind == "comm_open" and content.get("target_name") == "torchscope"
                and msg.get("parent_header", {}).get("msg_id") in self._executes):
            self.comm_id, self.process = content.get("comm_id"), process
        elif self.process is not None and process and process != self.process or (
                kind == "status" and content.get("execution_state") == "starting"):
            # A fresh process on the same ports: its owner (a notebook) restarted it,
            # and Torchscope's side must be loaded into it again.
            self._executes.clear()
            self.comm_id = self.process = None
            self.replaced.emit()
            return
        self.message.emit(msg)

    def is_beating(self) -> bool:
        return self.kc is not None and self.kc.hb_channel.is_beating()

    def execute(self, code: str) -> str:
        msg_id = self.kc.execute(code, silent=True, store_history=False, stop_on_error=False)
        self._executes.add(msg_id)
        return msg_id

    def send_comm(self, comm_id: str, data: dict, buffers: list) -> str:
        return send_comm(self.kc, comm_id, data, buffers)

    def interrupt(self) -> None:
        """An `interrupt_request` on the control channel. jupyter_client's manager
        signals a kernel it started (interrupt mode "signal") and sends this message
        otherwise ("message"); for a kernel we did not start only the message is sure
        to arrive: the kernel may be on another machine, where the pid in its Hello
        means nothing here, and the control port goes through the same SSH tunnel as
        the others. ipykernel answers it from its control thread, while the shell is
        busy, by a SIGINT to itself (its process group when it leads one)."""
        if self.kc is not None:
            self.kc.control_channel.send(self.kc.session.msg("interrupt_request", {}))

    def restart(self) -> None:
        raise RuntimeError("an attached kernel is not restarted by Torchscope")

    def shutdown(self) -> None:
        """Detach: close our Comm (the kernel drops our endpoint) and our sockets. The
        kernel keeps running, with everything its owner had in it."""
        if self.kc is None:
            return
        if self.comm_id is not None:
            self.kc.shell_channel.send(self.kc.session.msg("comm_close", {"comm_id": self.comm_id, "data": {}}))
            self.comm_id = None
            QtCore.QThread.msleep(50)  # let the close leave before the socket closes
        self.kc.stop_channels()
        self.kc = None


@dataclass
class Pending:
    """A request sent to the kernel and not yet over."""
    msg_id: str
    request: object
    run_id: int  # the run whose text it belongs to
    started: bool = False  # the kernel said busy with it
    answered: bool = False  # its reply came
    stop_wanted: bool = False  # interrupt it as soon as it starts
    printed: bool = False  # some of its output was pushed already
    standing: bool = False  # not about one run's namespace (request(after_run=False))


class Session(QtCore.QObject):
    state_changed = QtCore.Signal(str)  # one of STATUS_TEXT's keys
    ready = QtCore.Signal()  # bootstrapped: requests can go
    run_result = QtCore.Signal(object)  # RunResult of the latest text
    backward_result = QtCore.Signal(object)  # RunResult after Backward or Zero grads
    values_ready = QtCore.Signal(str, object)  # node id, TensorValues (asked for)
    event = QtCore.Signal(str)  # a sentence for the user: died, restarted, …
    output = QtCore.Signal(str, str, bool)  # stream, text, first of this run: printed as it runs
    frozen_changed = QtCore.Signal(bool)  # no heartbeat: the kernel is frozen (or back)
    replied = QtCore.Signal(object, object)  # request, its reply: for `request()`'s requests
    pushed = QtCore.Signal(object)  # a message the kernel sent on its own (a device sample, …)
    described = QtCore.Signal(str)  # where an attached kernel runs, in words; "" for our own

    def __init__(self, kernel=None, parent: QtCore.QObject | None = None, filename: str = "<editor>",
                 cwd: str | None = None):
        super().__init__(parent)
        self.kernel = None
        self._use(kernel or KernelProcess(self))
        self.filename = filename
        self.cwd = cwd or str(Path.home())
        self.state = "stopped"
        self.hello: Hello | None = None
        self.comm_id: str | None = None
        self.run_id = 0  # the latest text
        self.answered_run = 0  # the run whose result was emitted last
        self.current: Pending | None = None
        self.next_run: RunRequest | None = None  # the latest text, waiting for the kernel
        self.queue: list[object] = []  # other requests, waiting behind the current one
        self.standing: list[object] = []  # requests not tied to a run (sent first)
        self._bootstrap_id: str | None = None
        self._bootstrap_error = ""
        self.needs_run = True  # a fresh kernel holds no script's tensors yet
        self.frozen = False
        self.ignored_timer = QtCore.QTimer(self, singleShot=True, interval=IGNORED_INTERRUPT_MS)
        self.ignored_timer.timeout.connect(self._interrupt_ignored)
        self.beat_timer = QtCore.QTimer(self, interval=1000)  # while frozen: is it back?
        self.beat_timer.timeout.connect(self._check_beat)

    # --- lifecycle ------------------------------------------------------------
    def _use(self, kernel) -> None:
        if self.kernel is not None:
            for signal, slot in self._wiring():
                signal.disconnect(slot)
        self.kernel = kernel
        for signal, slot in self._wiring():
            signal.connect(slot)

    def _wiring(self):
        k = self.kernel
        wiring = [(k.message, self._on_message), (k.dying, self._on_dying), (k.restarted, self._bootstrap),
                  (k.gave_up, self._on_gave_up), (k.silent, self._on_silent)]
        if hasattr(k, "replaced"):
            wiring.append((k.replaced, self._on_replaced))
        return wiring

    def _on_replaced(self) -> None:
        """An attached kernel's owner restarted it: load our side into the new process
        and send the text that was running (or waiting) again."""
        pending = self.current.request if self.current is not None else None
        waiting = self.next_run or (pending if isinstance(pending, RunRequest) else None)
        self.event.emit("The attached kernel was restarted by its owner; Torchscope's side is "
                        "loaded into it again.")
        self._bootstrap()
        self.next_run = waiting

    @property
    def owns_kernel(self) -> bool:
        """This app started the kernel (and may restart it); False for an attached one."""
        return getattr(self.kernel, "owns_process", True)

    def attach(self, connection_file: str) -> bool:
        """Leave the current kernel (stopped only if this app started it) and attach
        to the running kernel of `connection_file`. False, with a sentence in `event`,
        when that file names no kernel; the current kernel is then kept."""
        try:
            kernel = AttachedKernel(connection_file, self)
        except AttachError as exc:
            self.event.emit(f"Could not connect: {exc}")
            return False
        old = self.kernel
        if self.state != "stopped":
            self.shutdown()
        self._use(kernel)
        if old is not None and old.parent() is self:
            old.deleteLater()
        self.described.emit(f"attached: {kernel.where}")
        self.start()
        return True

    def start(self) -> None:
        """Start the kernel; returns at once. `ready` fires once torch is loaded."""
        self._set_state("starting")
        self.kernel.start(self.cwd)
        self._bootstrap()

    def shutdown(self) -> None:
        self._set_frozen(False)
        self.kernel.shutdown()
        self._forget_requests()
        self._set_state("stopped")

    def restart(self, announce: bool = True) -> None:
        """Restart by the user's request: a fresh kernel, the editor text untouched.
        Refused, with a sentence, for an attached kernel: it is not ours to kill."""
        if not self.owns_kernel:
            self.event.emit(NOT_OURS)
            return
        self._forget_requests()
        self._set_state("restarting")
        self._set_frozen(False)
        self.kernel.restart()
        self._bootstrap()
        if announce:
            self.event.emit("Kernel restarted.")

    @property
    def is_ready(self) -> bool:
        return self.state in ("idle", "running", "interrupting")

    def is_running(self) -> bool:
        return self.current is not None

    def kernel_pid(self) -> int | None:
        return self.hello.pid if self.hello else None

    # --- requests ------------------------------------------------------------------
    def run(self, code: str, cwd: str | None = None, filename: str | None = None,
            upto: int | None = None, stop_after_call: int | None = None) -> int:
        """Run `code` (in folder `cwd`; only its first `upto` statements, or up to its
        k-th backward call, if given) as soon as the kernel is free; a request under
        way is interrupted."""
        self.run_id += 1
        self.next_run = RunRequest(code, filename or self.filename, cwd, upto, stop_after_call)
        self.queue.clear()  # Backward and values were for the old text
        if self.current is not None and not self.current.answered:
            self.interrupt()
        self._send_next()
        return self.run_id

    def backward(self, root: str, gradient: str = "", retain_graph: bool = False,
                 create_graph: bool = False, zero_first: bool = False) -> bool:
        """Recorded backward() on a tensor of the last run; False while the graph on
        screen is not the current text's (the script is still running)."""
        return self._after_run(BackwardRequest(root, gradient, retain_graph, create_graph, zero_first))

    def zero_grads(self) -> bool:
        return self._after_run(ZeroGradsRequest())

    def request_values(self, node_id: str, name: str) -> None:
        """Ask for the full statistics of a big tensor of the last run."""
        if self.is_ready and self.answered_run == self.run_id:
            self.queue.append(ValuesRequest(node_id, name))
            self._send_next()

    def request(self, request, after_run: bool = True) -> bool:
        """Send any other request (a batch, a slice, a sampler setting); its answer
        comes back through `replied`. With `after_run` it is about the last run's
        namespace: refused (False) while that run is not the current text's, and
        dropped when the text changes before it goes."""
        if not after_run:
            if self.state in ("dead", "broken"):
                return False
            self.standing.append(request)
            self._send_next()
            return True
        return not self.needs_run and self._after_run(request)

    def _after_run(self, request) -> bool:
        if not self.is_ready or self.next_run is not None or self.answered_run != self.run_id:
            return False
        self.queue.append(request)
        self._send_next()
        return True

    def interrupt(self) -> None:
        """Stop the request under way: now if the kernel has started it, else as soon
        as it does."""
        if self.current is None:
            return
        if self.current.started:
            if self.state == "interrupting":  # pressed again: the script ignores it
                self._interrupt_ignored()
                return
            self._set_state("interrupting")
            self.kernel.interrupt()
            self.ignored_timer.start()
        else:
            self.current.stop_wanted = True

    def _interrupt_ignored(self) -> None:
        """The script catches KeyboardInterrupt: restart the kernel, keep the latest text.
        An attached kernel is interrupted once more instead, never restarted."""
        if self.state != "interrupting":
            return
        if not self.owns_kernel:
            self.event.emit("The script has not stopped (it may catch KeyboardInterrupt, or be in "
                            "native code); Torchscope interrupted it again. " + NOT_OURS)
            self.kernel.interrupt()
            self.ignored_timer.start()
            return
        waiting = self.next_run
        self.event.emit("The script ignored the interrupt (it catches KeyboardInterrupt), so the "
                        "kernel was restarted. Your text and the last graph are kept.")
        self.restart(announce=False)
        self.next_run = waiting

    def _send_next(self) -> None:
        if self.state != "idle" or self.current is not None:
            return
        standing = False
        if self.standing:
            request, standing = self.standing.pop(0), True
        elif self.next_run is not None:
            request, self.next_run = self.next_run, None
        elif self.queue:
            request = self.queue.pop(0)
        else:
            return
        data, buffers = encode(request)
        msg_id = self.kernel.send_comm(self.comm_id, data, buffers)
        self.current = Pending(msg_id, request, self.run_id, standing=standing)
        self._set_state("running")

    # --- kernel messages ------------------------------------------------------
    def _bootstrap(self) -> None:
        self._forget_requests()
        self.hello, self.comm_id, self._bootstrap_error = None, None, ""
        self.needs_run = True
        self._set_state("bootstrapping")
        self._bootstrap_id = self.kernel.execute(getattr(self.kernel, "bootstrap_code", BOOTSTRAP))

    def _on_message(self, msg: dict) -> None:
        kind = msg["header"]["msg_type"]
        content = msg.get("content", {})
        parent = msg.get("parent_header", {}).get("msg_id")
        if kind == "status":
            self._on_status(content.get("execution_state"), parent)
        elif (kind == "comm_open" and content.get("target_name") == "torchscope"
              and parent in (None, self._bootstrap_id)):  # not another window's, on a shared kernel
            self._on_hello(content)
        elif kind == "comm_msg" and content.get("comm_id") == self.comm_id:
            self._on_reply(content.get("data", {}), msg.get("buffers") or [])
        elif kind == "error" and parent == self._bootstrap_id:
            self._bootstrap_error = f"{content.get('ename', '')}: {content.get('evalue', '')}"

    def _on_status(self, state: str | None, parent: str | None) -> None:
        current = self.current
        if state == "busy" and current is not None and parent == current.msg_id:
            current.started = True
            if current.stop_wanted:
                self.interrupt()
        elif state == "idle" and parent is not None and parent == self._bootstrap_id:
            self._bootstrap_id = None
            self._bootstrap_done()
        elif state == "idle" and current is not None and parent == current.msg_id:
            self._finish()

    def _on_hello(self, content: dict) -> None:
        try:
            hello, _ = decode(content.get("data", {}), [])
        except ProtocolError as exc:
            self._bootstrap_error = str(exc)
            return
        if isinstance(hello, Hello):
            self.hello, self.comm_id = hello, content.get("comm_id")
            if not self.owns_kernel:
                self.described.emit(f"attached: pid {hello.pid}"
                                    + (f" on {hello.hostname}" if hello.hostname else "")
                                    + f", Python {hello.python}, torch {hello.torch}")

    def _bootstrap_done(self) -> None:
        if self.comm_id is None:
            self._set_state("broken")
            if not self.owns_kernel:
                self.event.emit(f"Could not use the attached kernel: "
                                f"{bootstrap_failure(self._bootstrap_error or 'it did not open the Comm')}.")
                return
            self.event.emit("The kernel could not load Torchscope's kernel side"
                            + (f": {self._bootstrap_error}" if self._bootstrap_error else "")
                            + ". Use Kernel → Restart to try again.")
            return
        self._set_state("idle")
        self.ready.emit()
        self._send_next()

    def _on_reply(self, data: dict, buffers: list) -> None:
        try:
            reply, reply_to = decode(data, buffers)
        except ProtocolError as exc:
            self.event.emit(f"Could not read the kernel's answer: {exc}")
            return
        if reply_to is None:
            self.pushed.emit(reply)
            return
        pending = self.current
        if pending is None or reply_to != pending.msg_id:
            return  # an answer to a request forgotten by a restart
        latest = pending.run_id == self.run_id
        if isinstance(reply, OutputChunk):
            if latest and isinstance(pending.request, RunRequest):
                self.output.emit(reply.stream, reply.text, not pending.printed)
                pending.printed = True
            return
        pending.answered = True
        if isinstance(reply, ErrorReply):
            if reply.message.startswith("KeyboardInterrupt"):
                if latest and self.next_run is None:
                    self.event.emit("Run stopped.")
            else:
                self.event.emit(f"Torchscope's kernel side failed on {reply.request}: {reply.message}")
                if latest and isinstance(pending.request, RunRequest):  # dim the graph, say why
                    self.answered_run = pending.run_id
                    self.run_result.emit(RunResult(None, error=RunError(
                        "TorchscopeError", f"Torchscope failed on this script: {reply.message}", None,
                        "trace", reply.traceback)))
        elif isinstance(reply, ValuesReply):
            if pending.run_id == self.answered_run and reply.values is not None:
                self.values_ready.emit(reply.node_id, reply.values)
        elif isinstance(reply, RunResult):
            if not latest:
                return
            if isinstance(pending.request, RunRequest):
                self.answered_run = pending.run_id
                self.needs_run = False
                self.run_result.emit(reply)
            else:
                self.backward_result.emit(reply)
        elif latest or pending.standing:
            self.replied.emit(pending.request, reply)

    def _finish(self) -> None:
        self.ignored_timer.stop()
        pending, self.current = self.current, None
        if (not pending.answered and pending.run_id == self.run_id and self.next_run is None
                and isinstance(pending.request, RunRequest)):
            self.event.emit("Run stopped.")  # interrupted outside the user's code
        self._set_state("idle")
        self._send_next()

    def _on_dying(self) -> None:
        was_running = self.current is not None and isinstance(self.current.request, RunRequest)
        self._forget_requests()
        self._set_state("restarting")
        self.event.emit(
            "The kernel died" + (" while running your code" if was_running else "")
            + " (a crash, os._exit, or out of memory). Restarting it; your text is safe. "
            "Press Ctrl+Enter to run again.")

    def _on_gave_up(self) -> None:
        self._set_state("dead")
        self.event.emit("The kernel keeps dying and was not restarted again. "
                        "Use Kernel → Restart to try once more.")

    def _on_silent(self, seconds: float) -> None:
        if self.state not in ("stopped", "starting", "restarting", "dead") and not self.frozen:
            self._set_frozen(True)
            if not self.owns_kernel:
                self.event.emit(f"The attached kernel has not answered for {seconds:.0f} s: it is stopped, "
                                "gone, or out of reach (is the SSH tunnel still open?). " + NOT_OURS)
                return
            self.event.emit(f"The kernel has not answered for {seconds:.0f} s: it is frozen (stopped, "
                            "or stuck in native code). Use Restart kernel to start a fresh one; "
                            "your text and the last graph are kept.")

    def _check_beat(self) -> None:
        if self.kernel.is_beating():
            self._set_frozen(False)
            self.event.emit("The kernel answers again.")


    def _set_frozen(self, frozen: bool) -> None:
        if frozen != self.frozen:
            self.frozen = frozen
            (self.beat_timer.start if frozen else self.beat_timer.stop)()
            self.frozen_changed.emit(frozen)

    def _forget_requests(self) -> None:
        self.ignored_timer.stop()
        self.current = None
        self.next_run = None
        self.queue.clear()
        self.standing.clear()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)
