"""The main window: the shell. It docks the panels of the panel table, holds the
menus and the window's own settings (geometry, dock layout). Everything a panel
shows comes from `gui.state`; everything the user asks for goes through
`gui.actions`. Adding a panel is one row in PANELS and one file in gui/panels/.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from core.layout import dot_available
from gui.actions import Actions
from gui.files import ScriptFiles
from gui.lecture import LectureMode
from gui.new_tensor_dialog import NewTensorDialog
from gui.panels.backward import BackwardPanel
from gui.panels.console import ConsolePanel
from gui.panels.data import DataPanel
from gui.panels.devices import DevicesPanel
from gui.panels.editor import EditorPanel
from gui.panels.graph import GraphPanel
from gui.panels.inspector import InspectorPanel
from gui.panels.tensor_view import TensorViewPanel
from gui.session import Session
from gui.state import States
from gui.status_bar import StatusBar


@dataclass(frozen=True)
class Panel:
    name: str  # the window's attribute for it
    title: str
    cls: type  # built as cls(states, actions)
    area: str  # "centre" (stacked top to bottom), "left", "right", "bottom": docks of one
    # side are tabs, the first one in front


PANELS = [
    Panel("backward", "Backward", BackwardPanel, "centre"),
    Panel("graph", "Graph", GraphPanel, "centre"),
    Panel("editor", "Code", EditorPanel, "left"),
    Panel("inspector", "Inspector", InspectorPanel, "right"),
    Panel("tensor_view", "Tensor", TensorViewPanel, "right"),
    Panel("data", "Data", DataPanel, "right"),
    Panel("devices", "Devices", DevicesPanel, "right"),
    Panel("console", "Output", ConsolePanel, "bottom"),
]
AREAS = {"left": QtCore.Qt.LeftDockWidgetArea, "right": QtCore.Qt.RightDockWidgetArea,
         "bottom": QtCore.Qt.BottomDockWidgetArea}
DEFAULT_SIZE = (1600, 1000)  # shrunk to the screen
CODE_COLUMNS = 62  # the code dock shows this many columns when the window is wide enough
DEFAULT_DOCK_HEIGHTS = {"Output": 140}


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, session: Session | None = None, start_kernel: bool = True,
                 existing: str | None = None):  # a running kernel's connection file: attach to it
        super().__init__()
        self.states = States()
        self.session = session or Session(parent=self)
        self.actions = Actions(self.states, self.session, self)
        self.files = ScriptFiles(self.states, self)
        self.docks: dict[str, QtWidgets.QDockWidget] = {}

        centre = QtWidgets.QWidget()
        centre_box = QtWidgets.QVBoxLayout(centre)
        centre_box.setContentsMargins(0, 0, 0, 0)
        centre_box.setSpacing(0)
        for spec in PANELS:
            panel = spec.cls(self.states, self.actions)
            setattr(self, spec.name, panel)
            if spec.area == "centre":
                centre_box.addWidget(panel, 1 if spec.name == "graph" else 0)
            else:
                dock = QtWidgets.QDockWidget(spec.title, self)
                dock.setObjectName(spec.title)
                dock.setWidget(panel)
                self.addDockWidget(AREAS[spec.area], dock)
                first = next((d for d in self.docks.values() if self.dockWidgetArea(d) == AREAS[spec.area]), None)
                if first is not None:
                    self.tabifyDockWidget(first, dock)
                self.docks[spec.title] = dock
        for dock in {self.dockWidgetArea(d): d for d in reversed(self.docks.values())}.values():
            dock.raise_()  # the first of each side in front
        self.setCentralWidget(centre)
        self.setStatusBar(StatusBar(self.states, self.actions, self.files, self))
        bar = self.statusBar()
        self.status_label, self.warning_label, self.restart_button = (
            bar.status_label, bar.warning_label, bar.restart_button)

        self._build_menus()
        s = self.states
        s.script.file_changed.connect(self._update_title)
        s.settings.changed.connect(self._on_settings)
        self.files.loaded.connect(self.actions.run_now)
        self.files.message.connect(s.kernel.event)
        self.files.recoverable_changed.connect(lambda: self.files.fill_recover_menu(self.recover_menu))

        self._restore()
        s.kernel.attached_changed.connect(lambda where: self.restart_act.setEnabled(not where))  # not ours
        if existing is not None:
            s.kernel.set_status("connecting…")
            QtCore.QTimer.singleShot(0, lambda: self.session.attach(existing))
        elif start_kernel:
            s.kernel.set_status("starting kernel…")
            QtCore.QTimer.singleShot(0, self.session.start)

    # --- menus ------------------------------------------------------------------------
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

    def _build_menus(self) -> None:
        bar, files, actions, s = self.menuBar(), self.files, self.actions, self.states
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&New", files.new_file, "Ctrl+N")
        self._action(file_menu, "&Open…", files.open_dialog, "Ctrl+O")
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recover_menu = file_menu.addMenu("Re&cover")
        self._action(file_menu, "&Save", files.save, "Ctrl+S")
        self._action(file_menu, "Save &As…", files.save_as, "Ctrl+Shift+S")
        file_menu.addSeparator()
        self._action(file_menu, "Connect to &kernel…", actions.connect_to_kernel,
                     tip="Attach to a running Jupyter kernel by its connection file")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, "Ctrl+Q")

        run_menu = bar.addMenu("&Run")
        self.run_act = self._action(run_menu, "&Run now", actions.run_now, "Ctrl+Return",
                                    tip="Run the script now (Ctrl+Enter)")
        self.interrupt_act = self._action(run_menu, "&Interrupt", actions.interrupt,
                                          tip="Stop a running script (Esc in the editor)")
        self.live_act = self._action(run_menu, "&Live mode", actions.set_live, checkable=True,
                                     tip="Run the script 300 ms after you stop typing")
        self.step_act = self._action(run_menu, "&Step Through Statements", actions.step_through, "F10",
                                     checkable=True, tip="Run the script one statement at a time "
                                     "(→ next, ← back); the graph grows as it goes")
        self.step_act.setShortcutContext(QtCore.Qt.ApplicationShortcut)
        s.forward.changed.connect(lambda: self.step_act.setChecked(s.forward.active))
        run_menu.addSeparator()
        self.restart_act = self._action(run_menu, "Restart &kernel", actions.restart_kernel,
                                        tip="Start a fresh Python kernel")

        view_menu = bar.addMenu("&View")
        self.saved_act = self._action(view_menu, "&Saved tensors", s.view.set_show_saved, checkable=True)
        self.dot_act = self._action(view_menu, "Lay out with Graphviz &dot", s.view.set_use_dot,
                                    checkable=True,
                                    tip="Graphviz's layout instead of the built-in one (not stable across edits)")
        self.dot_act.setEnabled(dot_available())
        self._action(view_menu, "&Fit graph\tF", self.graph.fit)
        find = self._action(view_menu, "Find &node…", self.graph.focus_search, "Ctrl+Shift+F")
        find.setShortcutContext(QtCore.Qt.ApplicationShortcut)  # from the editor too
        view_menu.addSeparator()
        self.lecture = LectureMode(self.states, actions, self, view_menu, self.docks)
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        s.view.changed.connect(self._on_view)

        tensor_menu = bar.addMenu("&Tensor")
        self.new_tensor_act = self._action(tensor_menu, "&New tensor…", lambda: NewTensorDialog.open_for(self),
                                           "Ctrl+Shift+N", tip="Write a line that makes a tensor, with a preview")
        self.new_tensor_act.setShortcutContext(QtCore.Qt.ApplicationShortcut)  # from the editor too

        files.fill_examples_menu(bar.addMenu("E&xamples"))

        tools = self.addToolBar("Run")
        tools.setObjectName("RunToolbar")
        tools.setToolButtonStyle(QtCore.Qt.ToolButtonTextOnly)
        for act in (self.run_act, self.interrupt_act, self.live_act, self.step_act, self.restart_act,
                    self.saved_act):
            tools.addAction(act)

    def _on_view(self) -> None:
        self.saved_act.setChecked(self.states.view.show_saved)
        self.dot_act.setChecked(self.states.view.use_dot)

    def _on_settings(self) -> None:
        settings = self.states.settings
        self.live_act.setChecked(settings.live)
        self.recent_menu.clear()
        for p in settings.recent:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _=False, p=p: self.files.open_file(Path(p)))
        self.recent_menu.setEnabled(bool(settings.recent))

    def _update_title(self) -> None:
        script = self.states.script
        name = Path(script.path).name if script.path else "untitled"
        self.setWindowTitle(f"{name}{' *' if script.dirty else ''} — Torchscope")

    # --- settings ----------------------------------------------------------------------
    def _restore(self) -> None:
        settings = self.files.settings
        geometry, state = settings.value("geometry"), settings.value("state")
        if not (isinstance(geometry, QtCore.QByteArray) and self.restoreGeometry(geometry)):
            self._default_size()
        if not (isinstance(state, QtCore.QByteArray) and self.restoreState(state)):
            QtCore.QTimer.singleShot(100, self, self._default_dock_sizes)
        for key, value in (("geometry", geometry), ("state", state)):
            if value is not None and not isinstance(value, QtCore.QByteArray):
                settings.remove(key)
                self.states.kernel.event.emit(f"The saved window {key} in settings.ini could not be "
                                              "read; the default layout is used.")
        self.files.restore()
        self.states.view.set_use_dot(self.states.view.use_dot and dot_available())
        self._on_view()
        self._on_settings()
        self._update_title()

    def _default_size(self) -> None:
        """First launch: as big as DEFAULT_SIZE, but never bigger than the screen."""
        screen = (self.screen() or QtGui.QGuiApplication.primaryScreen()).availableGeometry()
        self.resize(min(DEFAULT_SIZE[0], screen.width()), min(DEFAULT_SIZE[1], screen.height() - 40))
        self.move(screen.topLeft())

    def _default_dock_sizes(self) -> None:
        """First launch: CODE_COLUMNS of code where the window is wide enough (at most
        36% of it), the rest to the graph and the right-hand tabs (inspector, tensor,
        data, devices). resizeDocks only takes once the window has been laid out,
        hence the timer."""
        editor = self.editor.editor
        code = CODE_COLUMNS * editor.fontMetrics().horizontalAdvance("M") + editor.line_number_area_width() + 30
        width = self.width()
        self.resizeDocks([self.docks["Code"], self.docks["Inspector"]],
                         [min(code, int(width * 0.36)), min(400, int(width * 0.25))], QtCore.Qt.Horizontal)
        self.resizeDocks([self.docks[t] for t in DEFAULT_DOCK_HEIGHTS], list(DEFAULT_DOCK_HEIGHTS.values()),
                         QtCore.Qt.Vertical)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if not self.files.may_close():
            event.ignore()
            return
        self.files.settings.setValue("geometry", self.saveGeometry())
        self.files.settings.setValue("state", self.saveState())
        self.files.close_down()
        self.graph.worker.shutdown()
        self.session.shutdown()
        super().closeEvent(event)
