"""The main window: docks the panels, wires them to the Session, keeps settings.

The editor's text is saved every few seconds and on quit to an autosave file,
whether or not the user saved it to a .py file, and restored on the next launch.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from core.backward import explain_error, step_view
from core.hooks import add_hook
from core.layout import dot_available
from gui.panels.backward import BackwardPanel
from gui.panels.console import ConsolePanel
from gui.panels.editor import EditorPanel
from gui.panels.graph import GraphPanel
from gui.panels.inspector import InspectorPanel
from gui.session import Session

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = PROJECT_ROOT / "resources" / "examples"
DEBOUNCE_MS = 300
AUTOSAVE_MS = 2000
MAX_RECENT = 8


def settings_dir() -> Path:
    """Where settings and the autosaved text live ($TORCHSCOPE_HOME overrides)."""
    home = os.environ.get("TORCHSCOPE_HOME")
    if home:
        return Path(home)
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.AppConfigLocation)
    return Path(base or Path.home() / ".config") / "torchscope"


def example_title(path: Path) -> str:
    """An example's menu title: its first comment line, else its file name."""
    first = path.read_text(encoding="utf-8").splitlines()[:1]
    if first and first[0].startswith("#"):
        return first[0].lstrip("# ").strip()
    return path.stem


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, session: Session | None = None, start_kernel: bool = True):
        super().__init__()
        self.home = settings_dir()
        self.home.mkdir(parents=True, exist_ok=True)
        self.autosave_path = self.home / "autosave.py"
        self.settings = QtCore.QSettings(str(self.home / "settings.ini"), QtCore.QSettings.IniFormat)
        self.session = session or Session(self)
        self.file_path: Path | None = None
        self.file_dirty = False
        self.autosave_dirty = False
        self.last_snapshot = None
        self.first_run_done = False
        self.live = self.settings.value("live", True, type=bool)

        self.editor = EditorPanel()
        self.graph = GraphPanel()
        self.backward = BackwardPanel()
        self.inspector = InspectorPanel()
        self.console = ConsolePanel()
        centre = QtWidgets.QWidget()
        centre_box = QtWidgets.QVBoxLayout(centre)
        centre_box.setContentsMargins(0, 0, 0, 0)
        centre_box.setSpacing(0)
        centre_box.addWidget(self.backward)
        centre_box.addWidget(self.graph, 1)
        self.setCentralWidget(centre)
        self.editor_dock = self._dock("Code", self.editor, QtCore.Qt.LeftDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", self.inspector, QtCore.Qt.RightDockWidgetArea)
        self.console_dock = self._dock("Output", self.console, QtCore.Qt.BottomDockWidgetArea)
        self.status_label = QtWidgets.QLabel()
        self.timing_label = QtWidgets.QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.timing_label)

        self.debounce = QtCore.QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self.debounce.timeout.connect(self.run_now)
        self.autosave_timer = QtCore.QTimer(self, interval=AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()

        self._build_actions()
        self.editor.text_edited.connect(self._on_text_edited)
        self.editor.run_requested.connect(self.run_now)
        self.editor.interrupt_requested.connect(self.session.interrupt)
        self.graph.node_selected.connect(self._on_node_selected)
        self.backward.backward_requested.connect(self._on_backward_requested)
        self.backward.zero_requested.connect(self._on_zero_requested)
        self.backward.step_changed.connect(self._on_step)
        self.backward.install_shortcuts(self.graph)
        self.session.backward_ready.connect(self.show_backward)
        self.graph.view.hook_requested.connect(self.add_hook)
        self.session.status_changed.connect(self._on_status)
        self.session.snapshot_ready.connect(self.show_snapshot)
        self.session.summary_ready.connect(self._on_summary)
        self.session.kernel_event.connect(self._on_kernel_event)
        self.session.ready.connect(self._on_ready)

        self._restore()
        if start_kernel:
            self._on_status("starting kernel…")
            QtCore.QTimer.singleShot(0, self.session.start)

    # --- building -------------------------------------------------------------
    def _dock(self, title: str, widget: QtWidgets.QWidget, area) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu, text, slot, shortcut=None, checkable=False, tip=None):
        act = QtGui.QAction(text, self)
        if shortcut:
            act.setShortcut(QtGui.QKeySequence(shortcut))
        act.setCheckable(checkable)
        if tip:
            act.setToolTip(tip)
            act.setStatusTip(tip)
        (act.toggled if checkable else act.triggered).connect(slot)
        menu.addAction(act)
        return act

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&New", self.new_file, "Ctrl+N")
        self._action(file_menu, "&Open…", self.open_dialog, "Ctrl+O")
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self._action(file_menu, "&Save", self.save, "Ctrl+S")
        self._action(file_menu, "Save &As…", self.save_as, "Ctrl+Shift+S")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, "Ctrl+Q")

        edit_menu = bar.addMenu("&Edit")
        self._action(edit_menu, "&Find…\tCtrl+F", self.editor.show_find)

        run_menu = bar.addMenu("&Run")
        self.run_act = self._action(run_menu, "&Run", self.run_now, "Ctrl+Return",
                                    tip="Run the script (Ctrl+Enter)")
        self.interrupt_act = self._action(run_menu, "&Interrupt", self.session.interrupt,
                                          tip="Stop the running script (Esc or Ctrl+C in the editor)")
        self.live_act = self._action(run_menu, "&Live mode", self.set_live, checkable=True,
                                     tip="Run 300 ms after you stop typing")
        run_menu.addSeparator()
        self.restart_act = self._action(run_menu, "Restart &kernel", self.session.restart,
                                        tip="Start a fresh Python kernel")

        view_menu = bar.addMenu("&View")
        self.saved_act = self._action(view_menu, "&Saved tensors", self.graph.set_show_saved,
                                      checkable=True)
        self.dot_act = self._action(view_menu, "Lay out with Graphviz &dot", self.graph.set_use_dot,
                                    checkable=True,
                                    tip="Graphviz's layout instead of the built-in one (not stable across edits)")
        self.dot_act.setEnabled(dot_available())
        self._action(view_menu, "&Fit graph", self.graph.fit)
        self._action(view_menu, "Find &node…", self.graph.focus_search)
        view_menu.addSeparator()
        for dock in (self.editor_dock, self.inspector_dock, self.console_dock):
            view_menu.addAction(dock.toggleViewAction())
        self.graph.saved_box.toggled.connect(self.saved_act.setChecked)

        examples_menu = bar.addMenu("E&xamples")
        for path in sorted(EXAMPLES_DIR.glob("*.py")):
            act = examples_menu.addAction(example_title(path))
            act.triggered.connect(lambda _=False, p=path: self.open_file(p, example=True))

        tools = self.addToolBar("Run")
        tools.setObjectName("RunToolbar")
        tools.setToolButtonStyle(QtCore.Qt.ToolButtonTextOnly)
        for act in (self.run_act, self.interrupt_act, self.live_act, self.restart_act, self.saved_act):
            tools.addAction(act)
        self.live_act.setChecked(self.live)

    # --- settings and autosave -----------------------------------------------
    def _restore(self) -> None:
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        state = self.settings.value("state")
        if state is not None:
            self.restoreState(state)
        else:
            self._default_dock_sizes()
        self.saved_act.setChecked(self.settings.value("show_saved", False, type=bool))
        self.dot_act.setChecked(self.settings.value("use_dot", False, type=bool) and dot_available())
        path = self.settings.value("file", "")
        self.file_path = Path(path) if path else None
        if self.autosave_path.exists():
            self.editor.set_text(self.autosave_path.read_text(encoding="utf-8"))
            self.file_dirty = self.settings.value("file_dirty", False, type=bool)
        else:
            self.editor.set_text((EXAMPLES_DIR / "01_computation_graph.py").read_text(encoding="utf-8"))
        self._update_recent()
        self._update_title()

    def _default_dock_sizes(self) -> None:
        """First launch: room for 60 columns of code and for the inspector's values.
        resizeDocks only takes once the window has been laid out, hence the timer."""
        def resize():
            self.resizeDocks([self.editor_dock, self.inspector_dock], [470, 340], QtCore.Qt.Horizontal)
            self.resizeDocks([self.console_dock], [140], QtCore.Qt.Vertical)
        QtCore.QTimer.singleShot(100, self, resize)  # with `self` as context: dropped if closed first

    def autosave(self) -> None:
        if not self.autosave_dirty:
            return
        tmp = self.autosave_path.with_suffix(".tmp")
        tmp.write_text(self.editor.text(), encoding="utf-8")
        tmp.replace(self.autosave_path)  # atomic: a crash mid-write keeps the old copy
        self.settings.setValue("file_dirty", self.file_dirty)
        self.autosave_dirty = False

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.autosave_dirty = True
        self.autosave()
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("state", self.saveState())
        self.settings.setValue("live", self.live)
        self.settings.setValue("show_saved", self.saved_act.isChecked())
        self.settings.setValue("use_dot", self.dot_act.isChecked())
        self.settings.setValue("file", str(self.file_path) if self.file_path else "")
        self.settings.sync()
        self.autosave_timer.stop()
        self.session.shutdown()
        super().closeEvent(event)

    # --- files --------------------------------------------------------------------
    def new_file(self) -> None:
        self.file_path = None
        self.editor.set_text("import torch\n\n")
        self._after_load()

    def open_dialog(self) -> None:
        start = str(self.file_path.parent) if self.file_path else str(Path.home())
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open script", start, "Python (*.py)")
        if path:
            self.open_file(Path(path))

    def open_file(self, path: Path, example: bool = False) -> bool:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.console.add_event(f"Could not open {path}: {exc}")
            self.statusBar().showMessage(f"Could not open {path}", 5000)
            return False
        self.editor.set_text(text)
        self.file_path = None if example else Path(path)
        if not example:
            self._add_recent(Path(path))
        self._after_load()
        return True

    def _after_load(self) -> None:
        self.file_dirty = False
        self.autosave_dirty = True
        self._update_title()
        self.run_now()

    def save(self) -> bool:
        if self.file_path is None:
            return self.save_as()
        return self.save_to(self.file_path)

    def save_as(self) -> bool:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save script as", str(Path.home()),
                                                        "Python (*.py)")
        if not path:
            return False
        if not path.endswith(".py"):
            path += ".py"
        return self.save_to(Path(path))

    def save_to(self, path: Path) -> bool:
        try:
            path.write_text(self.editor.text(), encoding="utf-8")
        except OSError as exc:
            QtWidgets.QMessageBox.warning(self, "Save failed", f"Could not save {path}:\n{exc}")
            return False
        self.file_path = path
        self.file_dirty = False
        self._add_recent(path)
        self._update_title()
        self.statusBar().showMessage(f"Saved {path}", 3000)
        return True

    def _add_recent(self, path: Path) -> None:
        recent = [p for p in self.settings.value("recent", [], type=list) if p != str(path)]
        self.settings.setValue("recent", [str(path)] + recent[:MAX_RECENT - 1])
        self._update_recent()

    def _update_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.value("recent", [], type=list):
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _=False, p=p: self.open_file(Path(p)))
        self.recent_menu.setEnabled(bool(self.recent_menu.actions()))

    def _update_title(self) -> None:
        name = self.file_path.name if self.file_path else "untitled"
        self.setWindowTitle(f"{name}{' *' if self.file_dirty else ''} — Torchscope")

    # --- running -----------------------------------------------------------------
    def set_live(self, on: bool) -> None:
        self.live = on
        if self.live_act.isChecked() != on:
            self.live_act.setChecked(on)

    def _on_text_edited(self) -> None:
        self.autosave_dirty = True
        if not self.file_dirty:
            self.file_dirty = True
            self._update_title()
        if self.live:
            self.debounce.start()

    def run_now(self) -> None:
        self.debounce.stop()
        self.session.run(self.editor.text())

    def _on_ready(self) -> None:
        """Run the restored text once, on the first start only: after a crash the
        same text could crash the new kernel again."""
        if not self.first_run_done and not self.session.is_running():
            self.run_now()
        self.first_run_done = True

    def show_snapshot(self, snap) -> None:
        err = snap.error
        if err is None:
            self.last_snapshot = snap
            self.editor.clear_error()
            self.graph.show_step(None)
            self.graph.show_graph(snap.graph)
            self.backward.set_roots(snap.graph.by_kind("tensor"))
            # The script's own backward() was recorded: ready to step, no button needed.
            if snap.backward:
                self.backward.set_trace(snap.backward, at_end=True)
            else:
                self.backward.clear_trace()
            self.console.show_run(snap.stdout, snap.stderr)
            self._on_node_selected(self.graph.selected_id())
            t = snap.timings
            self.timing_label.setText(f"run {t.get('exec', 0) * 1000:.0f} ms · "
                                      f"trace {t.get('trace', 0) * 1000:.0f} ms")
            return
        text = (f"Line {err.line}: " if err.line else "") + f"{err.type}: {err.message}"
        if err.type == "KeyboardInterrupt":
            text = "Interrupted" + (f" at line {err.line}" if err.line else "") + "."
        plain = explain_error(err.message)
        if plain != err.message:
            text += "\n" + plain
        if err.line:
            self.editor.set_error(err.line, f"{err.type}: {err.message}"
                                  + (f"\n{plain}" if plain != err.message else ""))
        else:
            self.editor.clear_error()
        self.graph.set_stale(f"{text}\n(showing the last good graph)")
        details = err.traceback or text
        if plain != err.message:
            details += "\n" + plain
        self.console.show_run(snap.stdout, snap.stderr, details)

    # --- backward --------------------------------------------------------------
    def _on_backward_requested(self, root, gradient, retain, create, zero_first) -> None:
        if self.graph.view.stale_text:
            self.backward.show_note("The script has an error, so the graph shown is an old one: "
                                    "fix the error first, then press Backward.", error=True)
            return
        if not self.session.backward(root, gradient, retain, create, zero_first):
            self.backward.show_note("The kernel is busy running your script; try again when "
                                    "it says ready.", error=True)

    def _on_zero_requested(self) -> None:
        self.session.zero_grads()

    def show_backward(self, snap) -> None:
        """After Backward or Zero grads: the graph with its new grads, and the recording."""
        self.last_snapshot = snap
        if snap.explanation and "second time" in (snap.backward.error or ""):
            self.graph.set_show_saved(True)  # so the freed saved tensors can be seen
        self.graph.show_graph(snap.graph)
        self.backward.set_roots(snap.graph.by_kind("tensor"))
        if snap.backward is not None:
            self.backward.set_trace(snap.backward, snap.explanation)
            if snap.backward.error:
                self.console.add_event(f"backward() of {snap.backward.root_name} failed: "
                                       f"{snap.backward.error}")
            else:
                self.console.add_event(f"backward() of {snap.backward.root_name}: "
                                       f"{len(snap.backward.steps)} steps recorded. "
                                       "Step with ← → (graph focused) or press ▶.")
        else:
            self.backward.set_trace(None)
            self.console.add_event("Gradients zeroed.")
        self._on_node_selected(self.graph.selected_id())

    def add_hook(self, node_id: str, kind: str) -> None:
        """Write a gradient hook into the script (so the script stays the truth) and rerun."""
        graph = self.graph.shown
        node = next((n for n in graph.nodes if n.id == node_id), None)
        op = None
        if node is not None and node.kind == "op":  # hook the node through a tensor it made
            op = node.name
            made = [n for e in graph.edges if e.src == node_id
                    for n in graph.nodes if n.id == e.dst and n.kind == "tensor" and n.name]
            node = made[0] if made else None
            if node is None:
                self.statusBar().showMessage(f"{op} made no named tensor to reach it by: "
                                             "bind its result to a name first.", 8000)
                return
        if node is None or not node.name:
            return
        try:
            code, line = add_hook(self.editor.text(), node.name, kind, op)
        except ValueError as exc:
            self.statusBar().showMessage(f"Could not add the hook: {exc}", 8000)
            self.console.add_event(f"Could not add the hook: {exc}")
            return
        self.editor.set_text(code)
        self.editor.goto_line(line)
        self._on_text_edited()
        self.console.add_event(f"Added a gradient hook on {op or node.name} at line {line} "
                               "(Ctrl+Z undoes it). Press Backward to see its effect.")
        self.run_now()

    def _on_step(self, index: int) -> None:
        trace = self.backward.trace
        if trace is None or self.graph.shown is None:
            self.graph.show_step(None)
            return
        self.graph.show_step(step_view(self.graph.shown, trace, index))
        self._on_node_selected(self.graph.selected_id())

    def _on_node_selected(self, node_id: str) -> None:
        if not node_id or self.last_snapshot is None:
            self.inspector.clear_node()
            return
        summary = self.last_snapshot.summaries.get(node_id)
        if summary is not None and summary.stats is None:
            self.session.request_summary(node_id, summary.name)
        node = next((n for n in self.graph.shown.nodes if n.id == node_id), None)
        if node is not None and node.kind == "tensor" and node.name and node.grad_fn:
            self.backward.choose_root(node.name)
        trace, index = self.backward.trace, self.backward.index
        step = None
        if trace is not None:
            step = next((s for s in trace.steps[: index + 1] if s.node == node_id), None)
        self.inspector.show_node(self.graph.shown, node_id, self.last_snapshot.summaries,
                                 self.last_snapshot.grad_history, step)

    def _on_summary(self, node_id: str, summary) -> None:
        if self.last_snapshot is None:
            return
        self.last_snapshot.summaries[node_id] = summary
        if self.graph.selected_id() == node_id:
            self._on_node_selected(node_id)

    def _on_status(self, text: str) -> None:
        self.status_label.setText(f"Kernel: {text}")

    def _on_kernel_event(self, text: str) -> None:
        self.console.add_event(text)
        self.statusBar().showMessage(text, 8000)
