"""Session: owns the Jupyter kernel that runs the user's code.

It starts and supervises an ipykernel through qtconsole's QtKernelManager, sends
each run as one execute request (`core.probe.run_and_send`), and turns the Comm
messages the kernel sends back into Snapshots, emitted as Qt signals. A run that
is still going when new code arrives is interrupted and replaced; a kernel that
dies is restarted and the panels are told why. The panels never touch the kernel.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_API", "pyside6")

from PySide6 import QtCore  # noqa: E402
from qtconsole.manager import QtKernelManager  # noqa: E402

from core.protocol import ProtocolError, decode_snapshot, decode_summary  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = "import core.probe as _ts_probe; _ts_probe.serve()"


class Session(QtCore.QObject):
    status_changed = QtCore.Signal(str)  # "starting kernel…", "ready", "running…", …
    snapshot_ready = QtCore.Signal(object)  # core.probe.Snapshot of the latest run
    summary_ready = QtCore.Signal(str, object)  # node id, full TensorSummary (on request)
    backward_ready = QtCore.Signal(object)  # Snapshot after a recorded backward or zero grads
    kernel_event = QtCore.Signal(str)  # a sentence for the user: died, restarted, …
    ready = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None, filename: str = "<editor>"):
        super().__init__(parent)
        self.filename = filename
        self.km: QtKernelManager | None = None
        self.kc = None
        self.is_ready = False
        self.status = "stopped"
        self.run_id = 0
        self.answered_run = 0  # the run whose snapshot was emitted last
        self._inflight: str | None = None  # msg_id of the execute request under way
        self._inflight_run = 0
        self._inflight_kind = "run"  # "run", or "backward" for backward and zero-grads requests
        self._inflight_answered = False  # its snapshot came: no need to interrupt it
        self._queued_call: str | None = None  # a backward waiting for the run to finish
        self._pending: str | None = None  # code waiting for the kernel
        self._bootstrap_id: str | None = None
        self.kernel_info: dict = {}

    # --- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        """Start the kernel; returns at once. `ready` fires once torch is imported."""
        self._set_status("starting kernel…")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["MPLBACKEND"] = "Agg"  # plt.show() in a script must not open a window
        self.km = QtKernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=str(PROJECT_ROOT))
        self.km.kernel_restarted.connect(self._on_restarted)
        if self.km._restarter is not None:
            self.km._restarter.time_to_dead = 1.0
            self.km._restarter.add_callback(self._on_dying, "restart")
            self.km._restarter.add_callback(self._on_dead, "dead")
        self.kc = self.km.client()
        self.kc.start_channels()
        # Accept the kernel's Comm (qtconsole closes comms to unknown targets); its
        # messages are read straight off the iopub channel below.
        self.kc.comm_manager.register_target("torchscope", lambda comm, msg: None)
        self.kc.iopub_channel.message_received.connect(self._on_iopub)
        self.kc.shell_channel.message_received.connect(self._on_shell)
        self._bootstrap()

    def shutdown(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None and self.km.has_kernel:
            self.km.stop_restarter()
            self.km.shutdown_kernel(now=True)
        self.is_ready = False
        self._set_status("stopped")

    def restart(self) -> None:
        """Restart by the user's request: a fresh kernel, the editor text untouched."""
        self._reset_runs()
        self._set_status("restarting kernel…")
        self.km.restart_kernel(now=True)
        self._bootstrap()
        self.kernel_event.emit("Kernel restarted.")

    def kernel_pid(self) -> int | None:
        return self.kernel_info.get("pid")

    # --- runs -----------------------------------------------------------------
    def run(self, code: str) -> int:
        """Run `code` as soon as the kernel is free; a run under way is interrupted."""
        self.run_id += 1
        self._pending = code
        if not self.is_ready:
            return self.run_id
        if self._inflight is None:
            self._send_pending()
        elif not self._inflight_answered:  # still running the old text: stop it
            self.interrupt()
        return self.run_id

    def interrupt(self) -> None:
        if self.km is not None and self._inflight is not None:
            self.km.interrupt_kernel()

    def is_running(self) -> bool:
        return self._inflight is not None

    def _send_pending(self) -> None:
        code, self._pending = self._pending, None
        if code is None:
            return
        self._inflight_run = self.run_id
        self._inflight_answered = False
        self._execute(f"_ts_probe.run_and_send({code!r}, {self.run_id}, {self.filename!r})", "run")

    def _execute(self, call: str, kind: str) -> None:
        self._inflight_kind = kind
        self._inflight = self.kc.execute(call, silent=True, store_history=False,
                                         stop_on_error=False)
        self._set_status("running…")

    def backward(self, root: str, gradient: str = "", retain_graph: bool = False,
                 create_graph: bool = False, zero_first: bool = False) -> bool:
        """Recorded backward() on a tensor of the last run (queued behind a run that
        has already answered); False while the script is still running."""
        return self._after_run(f"_ts_probe.backward_and_send({self.run_id}, {root!r}, {gradient!r}, "
                               f"{retain_graph}, {create_graph}, {zero_first})")

    def zero_grads(self) -> bool:
        return self._after_run(f"_ts_probe.zero_grads_and_send({self.run_id})")

    def _after_run(self, call: str) -> bool:
        if not self.is_ready or self._pending is not None or self.answered_run != self.run_id:
            return False
        if self._inflight is not None:
            if not self._inflight_answered:
                return False
            self._queued_call = call
            return True
        self._inflight_run = self.run_id
        self._execute(call, "backward")
        return True

    # --- kernel messages ------------------------------------------------------
    def _bootstrap(self) -> None:
        self.is_ready = False
        self._bootstrap_id = self.kc.execute(BOOTSTRAP, silent=True, store_history=False)

    def _on_iopub(self, msg: dict) -> None:
        kind = msg["header"]["msg_type"]
        content = msg.get("content", {})
        if (kind == "status" and content.get("execution_state") == "idle"
                and msg["parent_header"].get("msg_id") == self._inflight):
            # The request is over. (An interrupt that lands just after the user's code
            # can make the kernel drop its execute_reply, but never this message.)
            self._finish_inflight(ok=True)
        elif kind == "comm_open" and content.get("target_name") == "torchscope":
            self.kernel_info = content.get("data", {})
            self.is_ready = True
            self._set_status("ready")
            self.ready.emit()
            if self._pending is not None:
                self._send_pending()
        elif kind == "comm_msg":
            self._on_comm_msg(content.get("data", {}), msg.get("buffers") or [])
        elif kind == "error" and msg["parent_header"].get("msg_id") == self._bootstrap_id:
            self.kernel_event.emit("The kernel could not load Torchscope's probe: "
                                   + content.get("evalue", ""))

    def _on_comm_msg(self, data: dict, buffers: list) -> None:
        try:
            if data.get("type") == "summary":
                run_id, node_id, summary = decode_summary(data, buffers)
                if run_id == self.answered_run:
                    self.summary_ready.emit(node_id, summary)
                return
            run_id, snap = decode_snapshot(data, buffers)
        except (ProtocolError, KeyError, TypeError) as exc:
            self.kernel_event.emit(f"Could not read the kernel's answer: {exc}")
            return
        if run_id == self._inflight_run:
            self._inflight_answered = True
        if run_id != self.run_id:
            return
        if self._inflight_kind == "backward":
            self.backward_ready.emit(snap)
        else:
            self.answered_run = run_id
            self.snapshot_ready.emit(snap)

    def request_summary(self, node_id: str, name: str) -> None:
        """Ask for the full statistics of a big tensor of the last run."""
        if self.is_ready:
            self.kc.execute(f"_ts_probe.send_summary({node_id!r}, {name!r}, {self.answered_run})",
                            silent=True, store_history=False, stop_on_error=False)

    def _on_shell(self, msg: dict) -> None:
        if msg["header"]["msg_type"] != "execute_reply":
            return
        if msg["parent_header"].get("msg_id") != self._inflight:
            return
        self._finish_inflight(ok=msg["content"].get("status") == "ok")

    def _finish_inflight(self, ok: bool) -> None:
        if self._inflight is None:
            return
        self._inflight = None
        if not ok and self._inflight_run == self.run_id and self._pending is None:
            # Interrupted outside the user's code (between runs): nothing to show.
            self.kernel_event.emit("Run stopped.")
        if self._pending is not None:
            self._queued_call = None  # it was for the old text
            self._send_pending()
        elif self._queued_call is not None:
            call, self._queued_call = self._queued_call, None
            self._inflight_run = self.run_id
            self._execute(call, "backward")
        else:
            self._set_status("ready")

    def _on_dying(self) -> None:
        self._set_status("restarting kernel…")
        was_running = self._inflight is not None
        self._reset_runs()
        self.kernel_event.emit(
            "The kernel died" + (" while running your code" if was_running else "")
            + " (a crash, os._exit, or out of memory). Restarting it; your text is safe. "
            "Press Ctrl+Enter to run again.")

    def _on_restarted(self) -> None:
        self.km.reset_autorestart_count()
        self._bootstrap()
        self.kernel_event.emit("Kernel restarted.")

    def _on_dead(self) -> None:
        self.is_ready = False
        self._set_status("kernel dead")
        self.kernel_event.emit("The kernel keeps dying and was not restarted again. "
                               "Use Kernel → Restart to try once more.")

    def _reset_runs(self) -> None:
        self._inflight = None
        self._pending = None
        self._queued_call = None
        self.is_ready = False

    def _set_status(self, text: str) -> None:
        self.status = text
        self.status_changed.emit(text)
