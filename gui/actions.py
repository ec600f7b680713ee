"""User intent -> Session requests, and the kernel's answers -> state objects.

Panels call these methods (run, backward, select a node, add a hook…); the Session's
signals land here too, and both end in the state objects panels draw from. This is
the only module that knows both the Session and the states.
"""
from __future__ import annotations

import ast
import os
import socket

from PySide6 import QtCore, QtGui

from core.hooks import add_hook
from core.labels import error_kind, explain_error
from core.model.creation import PreviewReply, PreviewRequest
from core.model.data import (BatchRequest, DataBatch, OfflineCopyReply, OfflineCopyRequest, Stages,
                             StagesRequest)
from core.model.devices import DeviceSamples, SamplerReply, SamplerRequest
from core.model.run import RunResult
from core.model.tensor_view import TensorView, TensorViewRequest
from gui.session import STATUS_TEXT, Session
from gui.state import States

DEBOUNCE_MS = 300  # live mode: run this long after the last keystroke


class Actions(QtCore.QObject):
    goto_line = QtCore.Signal(int)  # the editor should show this line

    def __init__(self, states: States, session: Session, parent=None):
        super().__init__(parent)
        self.states = states
        self.session = session
        self.first_run_done = False
        self.replaying: int | None = None  # the backward call the running script stops after
        self.debounce = QtCore.QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self.debounce.timeout.connect(self.run_now)
        states.script.edited.connect(self._on_edited)
        # The tensor view asks first: its picture is what the click is for; the
        # inspector's full statistics of a big tensor follow.
        states.selection.changed.connect(self.view_tensor)
        states.selection.changed.connect(self._on_selected)
        session.state_changed.connect(lambda s: states.kernel.set_status(STATUS_TEXT[s]))
        session.event.connect(states.kernel.event)
        session.ready.connect(self._on_ready)
        session.run_result.connect(self.show_run)
        session.backward_result.connect(self.show_backward)
        session.values_ready.connect(states.run.set_values)
        session.output.connect(states.run.append_output)
        session.frozen_changed.connect(states.kernel.set_frozen)
        session.described.connect(states.kernel.set_attached)
        session.pushed.connect(self._on_pushed)
        session.ready.connect(self._resume_sampling)
        session.run_result.connect(self._view_tensor_again)
        session.backward_result.connect(self._view_tensor_again)
        # The answers to `session.request`, by type: one table, like the kernel's handlers.
        self.reply_handlers = {
            DataBatch: self._on_data_replied, Stages: self._on_data_replied,
            OfflineCopyReply: self._on_data_replied, SamplerReply: self._on_sampler_reply,
            TensorView: self._on_tensor_view, PreviewReply: self._on_tensor_preview}
        session.replied.connect(self._on_replied)

    # --- running -----------------------------------------------------------------
    def run_now(self, stop_after_call: int | None = None) -> None:
        self.debounce.stop()
        script, forward = self.states.script, self.states.forward
        self.replaying = stop_after_call
        self.session.run(script.text(), cwd=script.folder() or None, filename=script.run_as(),
                         upto=forward.index if forward.active else None, stop_after_call=stop_after_call)

    def replay_call(self, k: int) -> None:
        """Show the script's k-th backward call: run it again up to that call, so the
        graph drawn is the one that call went through."""
        calls = self.states.backward
        self.run_now(stop_after_call=None if k >= calls.calls_total else k)

    # --- the forward pass, statement by statement ------------------------------------
    def step_through(self, on: bool) -> None:
        """Start (or leave) running the script one top-level statement at a time."""
        forward = self.states.forward
        if not on:
            forward.stop()
            self.run_now()
            return
        try:
            tree = ast.parse(self.states.script.text())
        except SyntaxError as exc:
            self.states.kernel.event.emit(f"Fix the syntax error on line {exc.lineno} first.")
            forward.stop()
            return
        forward.start([(st.lineno, st.end_lineno or st.lineno) for st in tree.body])
        self.run_now()

    def statement(self, delta: int | None = None, to: int | None = None) -> None:
        """→ / ←: one statement more or less (re-run up to it); Home / End: first, all."""
        forward = self.states.forward
        if forward.go(to if to is not None else forward.index + (delta or 0)):
            self.run_now()

    def interrupt(self) -> None:
        self.session.interrupt()

    def restart_kernel(self) -> None:
        self.session.restart()

    def connect_to_kernel(self) -> None:
        """File → Connect to kernel…: pick a running kernel's connection file (Jupyter's
        runtime folder first, where kernels leave theirs) and attach to that kernel."""
        from jupyter_core.paths import jupyter_runtime_dir
        from PySide6 import QtWidgets

        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self.parent(), "Connect to a running kernel", jupyter_runtime_dir(),
            "Kernel connection files (*.json);;All files (*)")
        if path:
            self.session.attach(path)

    def set_live(self, on: bool) -> None:
        self.states.settings.set_live(on)

    def _on_edited(self) -> None:
        self.states.forward.stop()  # the statements changed: back to whole runs
        if self.states.settings.live:
            self.debounce.start()

    def _on_ready(self) -> None:
        """Run the restored text once, on the first start only: after a crash the
        same text could crash the new kernel again."""
        if not self.first_run_done and not self.session.is_running():
            self.run_now()
        self.first_run_done = True

    def show_run(self, result: RunResult) -> None:
        s = self.states
        s.run.set_result(result)
        self._show_data(result)
        err = result.error
        if err is None:
            s.script.set_error(None)
            s.backward.set_roots(result.graph, result.backward)
            if self.replaying is None:
                own = result.backward_calls
                total = result.backward.calls if own and result.backward is not None else 0
                s.backward.set_calls([(t.call, t.line) for t in own], total, total)
            else:
                s.backward.set_calls(s.backward.calls, s.backward.calls_total, self.replaying)
            # The script's own backward() was recorded: ready to step, no button needed.
            s.backward.set_trace(result.backward, at_end=True)
            self._on_selected(s.selection.node_id)
        elif err.line:
            plain = explain_error(err.message)
            s.script.set_error(err.line, f"{err.type}: {err.message}"
                               + (f"\n{plain}" if plain != err.message else ""))
        else:
            s.script.set_error(None)

    # --- data: datasets, loaders, transforms ---------------------------------------------
    def _show_data(self, result: RunResult) -> None:
        """A run's datasets and loaders; the picked one's pictures are fetched again
        only when its description changed (never on every keystroke)."""
        data = self.states.data
        if data.set_infos(result.data) or data.batch is None:
            self.data_preview(0)

    def pick_data(self, name: str) -> None:
        self.states.data.pick(name)
        self.data_preview(0)

    def data_preview(self, index: int | None = None) -> None:
        """Batch `index` (None: the one shown again, e.g. un-normalized) and the
        transform strip of the dataset or loader picked."""
        data = self.states.data
        info = data.info()
        if info is None or info.kind not in ("dataset", "loader"):
            data.set_batch(None)
            data.set_stages(None)
            return
        index = data.index if index is None else max(0, index)
        if info.batches is not None:
            index = min(index, max(0, info.batches - 1))
        if self.session.request(BatchRequest(info.name, index, data.unnormalize)):
            data.set_busy(True)
            if data.stages is None or data.stages.name != info.name or index == 0:
                self.session.request(StagesRequest(info.name, 0))

    def set_unnormalize(self, on: bool) -> None:
        self.states.data.set_view(unnormalize=on)
        self.data_preview(None)

    def use_offline_copy(self) -> None:
        """Copy the offline FashionMNIST where the script looks for it, then rerun."""
        missing = self.states.data.missing()
        if missing is not None:
            self.session.request(OfflineCopyRequest(missing.type, missing.root or missing.name), after_run=False)

    def _on_data_replied(self, request, reply) -> None:
        data = self.states.data
        if isinstance(reply, DataBatch):
            data.set_busy(False)
            if reply.name == data.picked:
                data.set_batch(reply)
        elif isinstance(reply, Stages):
            if reply.name == data.picked:
                data.set_stages(reply)
        elif isinstance(reply, OfflineCopyReply):
            if reply.error:
                data.message = f"Could not copy the offline data: {reply.error}"
                self.states.kernel.event.emit(data.message)
                data.infos_changed.emit()
            else:
                data.message = f"Copied {reply.files} files from {reply.source} into {reply.folder}."
                self.states.kernel.event.emit(data.message + " Running the script again.")
                self.run_now()

    # --- devices -------------------------------------------------------------------
    def set_sampling(self, on: bool) -> None:
        """Start (the devices panel is shown) or pause (hidden) the kernel's sampler."""
        self.states.devices.wanted = on
        self._send_sampler()

    def set_sample_rate(self, hz: float) -> None:
        self.states.devices.set_rate(hz)
        self._send_sampler()

    def _resume_sampling(self) -> None:
        """A fresh kernel's sampler is not running: start it if the panel is shown."""
        if self.states.devices.wanted:
            self._send_sampler()

    def _send_sampler(self) -> None:
        d = self.states.devices
        if d.wanted or d.inventory is not None:  # never started: nothing to pause
            self.session.request(SamplerRequest(d.wanted, d.rate_hz, os.getpid(), socket.gethostname()),
                                 after_run=False)

    def _on_pushed(self, message) -> None:
        if isinstance(message, DeviceSamples):
            self.states.devices.add_samples(message.samples)

    def _on_replied(self, request, reply) -> None:
        handler = self.reply_handlers.get(type(reply))
        if handler is not None:
            handler(request, reply)

    def _on_sampler_reply(self, request, reply) -> None:
        self.states.devices.set_inventory(reply.inventory)
        self.states.devices.add_sample(reply.sample)

    # --- backward ------------------------------------------------------------------
    def backward(self) -> None:
        s = self.states
        if s.run.stale:
            s.backward.set_note("The script has an error, so the graph shown is an old one: "
                                "fix the error first, then press Backward.", error=True)
            return
        if self.session.needs_run and self.session.is_ready:
            s.backward.set_note("The kernel restarted, so it holds none of the script's tensors: "
                                "run the script again (Ctrl+Enter), then press Backward.", error=True)
            return
        o = s.backward.options
        if not o.root:
            s.backward.set_note("No tensor that requires grad to differentiate: create a leaf with "
                                "requires_grad=True first.", error=True)
            return
        gradient = "" if s.backward.root_is_scalar() else o.gradient.strip()
        if not self.session.backward(o.root, gradient, o.retain_graph, o.create_graph, o.zero_first):
            s.backward.set_note("The kernel is busy running your script; try again when "
                                "it says ready.", error=True)

    def zero_grads(self) -> None:
        self.session.zero_grads()

    def show_backward(self, result: RunResult) -> None:
        """After Backward or Zero grads: the graph with its new grads, and the recording."""
        s = self.states
        trace = result.backward
        if trace is not None and trace.error and error_kind(trace.error) == "graph_freed":
            s.view.set_show_saved(True)  # so the freed saved tensors can be seen
        s.run.set_result(result, output=False)
        s.backward.set_roots(result.graph)
        s.backward.set_trace(trace)
        if trace is None:
            s.kernel.event.emit("Gradients zeroed.")
        elif trace.error:
            s.backward.set_note(explain_error(trace.error), error=True)
            s.kernel.event.emit(f"backward() of {trace.root_name} failed: {trace.error}")
        else:
            s.kernel.event.emit(f"backward() of {trace.root_name}: {len(trace.steps)} steps recorded. "
                                "Step with ← → (graph focused) or press ▶.")
        self._on_selected(s.selection.node_id)

    # --- the graph -------------------------------------------------------------------
    def select(self, node_id: str) -> None:
        self.states.selection.set(node_id)

    def _on_selected(self, node_id: str) -> None:
        """A big tensor's statistics are fetched when it is selected; a tensor made
        by an op becomes the Backward root."""
        s = self.states
        graph = s.run.graph
        if not node_id or graph is None:
            return
        try:
            node = graph.node(node_id)
        except KeyError:
            return
        s.selection.set_line(getattr(node, "line", None))
        values = s.run.values.get(node_id)
        if values is not None and values.stats is None and node.name:
            self.session.request_values(node_id, node.name)
        if node.kind == "tensor" and node.name and node.grad_fn:
            s.backward.choose_root(node.name)

    def add_hook(self, node_id: str, kind: str) -> None:
        """Write a gradient hook into the script (so the script stays the truth) and rerun."""
        s = self.states
        graph = s.run.graph
        node = next((n for n in graph.nodes if n.id == node_id), None) if graph else None
        op = None
        if node is not None and node.kind == "op":  # hook the node through a tensor it made
            op = node.name
            made = [n for e in graph.edges if e.src == node_id
                    for n in graph.nodes if n.id == e.dst and n.kind == "tensor" and n.name]
            node = made[0] if made else None
            if node is None:
                s.kernel.event.emit(f"{op} made no named tensor to reach it by: bind its result "
                                    "to a name first.")
                return
        if node is None or not node.name:
            return
        try:
            code, line = add_hook(s.script.text(), node.name, kind, op)
        except ValueError as exc:
            s.kernel.event.emit(f"Could not add the hook: {exc}")
            return
        s.script.set_text(code)
        s.script.set_file(s.script.path, True)
        self.goto_line.emit(line)
        s.kernel.event.emit(f"Added a gradient hook on {op or node.name} at line {line} "
                            "(Ctrl+Z undoes it). Press Backward to see its effect.")
        self.run_now()

    # --- the tensor view ---------------------------------------------------------------
    def view_tensor(self, node_id: str | None = None) -> None:
        """Ask the kernel for the selected tensor as the tensor view draws it."""
        s = self.states
        tv = s.tensor_view
        node_id = s.selection.node_id if node_id is None else node_id
        graph = s.run.graph
        node = None
        if node_id and graph is not None:
            try:
                node = graph.node(node_id)
            except KeyError:
                node = None
        if node is None or node.kind not in ("tensor", "array"):
            tv.set_message(tv.PLACEHOLDER if node is None else
                           "This is an autograd node, not a tensor: select a tensor (a box with a shape).")
            return
        if not getattr(node, "name", None):
            tv.set_message("This tensor has no name in the script, so the kernel cannot find it again: "
                           "bind it to a name to see its values.", node_id)
            return
        tv.show(node_id, node.name)
        self._send_tensor_view()

    def view_tile(self, batch_of: str, batch: int, tile: int) -> None:
        """Show image `tile` of batch `batch` of a loader (or dataset) in the tensor
        view: a plain request naming that batch element; the kernel finds it in the
        data panel's batch."""
        self.states.tensor_view.show_tile(batch_of, batch, tile)
        self._send_tensor_view()

    def tensor_view_options(self, dims=None, index=None, mode: str | None = None,
                            part: str | None = None, unnormalize: bool | None = None) -> None:
        """The user moved a slider, picked dims, toggled images/heatmap, the complex
        part or un-normalized display."""
        self.states.tensor_view.set_options(dims, index, mode, part, unnormalize)
        if self.states.tensor_view.node_id:
            self._send_tensor_view()

    def _view_tensor_again(self, result) -> None:
        """A new run (or a backward) answered: the same selection, the kernel's new
        tensor; a data tile shown stays (drawn again from the new run's loader)."""
        if isinstance(result, RunResult) and result.graph is not None and result.error is None:
            self.states.tensor_view.new_run()
        if self.states.tensor_view.batch_of:
            self._send_tensor_view()
        else:
            self.view_tensor()

    def _send_tensor_view(self) -> None:
        tv = self.states.tensor_view
        graph = self.states.run.graph
        node = next((n for n in graph.nodes if n.id == tv.node_id), None) if graph is not None else None
        request = TensorViewRequest(tv.node_id, tv.name, tv.dims, tv.index, tv.mode, tv.complex_part,
                                    version=getattr(node, "version", None),
                                    identity=tv.identities.get(tv.node_id),
                                    batch_of=tv.batch_of, batch=tv.batch, tile=tv.tile,
                                    unnormalize=tv.unnormalize)
        # Slider steps faster than the kernel answers: only the latest one waits.
        queue = getattr(self.session, "queue", None)
        if isinstance(queue, list):
            queue[:] = [r for r in queue if not isinstance(r, TensorViewRequest)]
        if not self.session.request(request):
            if self.session.needs_run:
                tv.set_message("The kernel holds none of the script's tensors (it restarted): run the "
                               "script again to see this tensor.", tv.node_id)

    def _on_tensor_view(self, request, reply) -> None:
        self.states.tensor_view.set_view(reply)

    # --- New tensor… ---------------------------------------------------------------------
    def preview_tensor(self, code: str, stand_ins: list | None = None) -> None:
        """Ask the kernel what one line from the New tensor dialog makes. It is not about
        the run's namespace, so it goes after the request under way even when the graph
        is stale; only the latest line waits."""
        self.states.new_tensor.ask(code)
        standing = getattr(self.session, "standing", None)
        if isinstance(standing, list):
            standing[:] = [r for r in standing if not isinstance(r, PreviewRequest)]
        if not self.session.request(PreviewRequest(code, stand_ins or []), after_run=False):
            self.states.new_tensor.set_message("No kernel to preview in: use Run → Restart kernel.")

    def _on_tensor_preview(self, request, reply) -> None:
        self.states.new_tensor.set_reply(reply)

    def move_to_device(self, name: str, device: str) -> None:
        """Move… (the Devices tab): the script gets `name = name.to("device")` right
        after the top-level statement that last binds `name` — tensors and modules
        alike, as ordinary PyTorch (DESIGN rule 7: the script is the truth)."""
        end = last_binding_end(self.states.script.text(), name)
        if end is None:
            self.states.kernel.event.emit(f"Could not find the line that makes {name} at the top "
                                          "level of the script; write the .to() call yourself.")
            return
        line = f"{name} = {name}.to({device!r})"
        cursor = QtGui.QTextCursor(self.states.script.document.findBlockByNumber(end - 1))
        cursor.movePosition(QtGui.QTextCursor.MoveOperation.EndOfBlock)
        cursor.insertText("\n" + line)  # top level: no indent; one undo step
        self.states.kernel.event.emit(f"Inserted “{line}” at line {end + 1} (Ctrl+Z undoes it).")
        self.run_now()

    def insert_line(self, line: str, cursor) -> None:
        """Write `line` into the script at `cursor` (a QTextCursor on the script's
        document) as one undo step, then run: on an empty line it fills the line, at
        the start of a line it goes above it, elsewhere below, with the line's indent.
        The cursor ends at the end of the new line."""
        cursor.beginEditBlock()
        text = cursor.block().text()
        indent = text[:len(text) - len(text.lstrip())]
        if not text.strip():
            cursor.movePosition(cursor.MoveOperation.EndOfBlock)
            cursor.insertText(line)
        elif cursor.positionInBlock() == 0:
            cursor.insertText(f"{indent}{line}\n")
            cursor.movePosition(cursor.MoveOperation.PreviousCharacter)
        else:
            cursor.movePosition(cursor.MoveOperation.EndOfBlock)
            cursor.insertText(f"\n{indent}{line}")
        cursor.endEditBlock()
        self.states.kernel.event.emit(f"Inserted “{line.strip()}” at line {cursor.blockNumber() + 1} "
                                      "(Ctrl+Z undoes it).")
        self.run_now()


def last_binding_end(code: str, name: str) -> int | None:
    """The last line of the last top-level statement that binds `name` (`x = …`,
    `x: T = …`, `for x in …`, `with … as x`, `import x`), or None."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    found = None
    for stmt in tree.body:
        if any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store) for n in ast.walk(stmt)) \
                or any(isinstance(n, ast.alias) and (n.asname or n.name.split(".")[0]) == name for n in ast.walk(stmt)):
            found = stmt.end_lineno
    return found
