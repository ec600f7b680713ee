"""Lecture hall: one zoom for every text, a presentation mode, and step keys that
work wherever the focus is (but inside text the user types).

Zoom In/Out/Reset (Ctrl+= / Ctrl+- / Ctrl+0) change `Theme.scale`, which every panel
follows and which persists. Presentation mode (F5) goes full screen with a large
scale and high contrast, hides the docks a projector does not need, and lets a
presenter clicker (PageDown / PageUp) step the backward pass.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from gui.state import States

PRESENTATION_SCALE = 1.6
PRESENTATION_HIDDEN = ("Inspector", "Tensor", "Data", "Devices", "Output")  # docks a projector does without
# (View → a dock brings one back: the Data tab for the data chapter)
TEXT_INPUTS = (QtWidgets.QPlainTextEdit, QtWidgets.QTextEdit, QtWidgets.QLineEdit,
               QtWidgets.QAbstractSpinBox)


class StepKeys(QtCore.QObject):
    """←/→, Home/End, Space and PageUp/PageDown step the recorded backward from
    anywhere in the window, except while typing in a text field (the editor, the
    search box, the gradient box) or in an open menu or list."""

    def __init__(self, states: States, actions, window: QtWidgets.QWidget):
        super().__init__(window)
        b = states.backward
        self.backward, self.forward = b, states.forward
        self.window = window
        self.keys = {QtCore.Qt.Key_Right: b.step_forward, QtCore.Qt.Key_PageDown: b.step_forward,
                     QtCore.Qt.Key_Left: b.step_back, QtCore.Qt.Key_PageUp: b.step_back,
                     QtCore.Qt.Key_Home: b.to_start, QtCore.Qt.Key_End: b.to_end,
                     QtCore.Qt.Key_Space: b.toggle_play}
        # stepping through statements: the same keys move through the script
        self.statement_keys = {
            QtCore.Qt.Key_Right: lambda: actions.statement(1), QtCore.Qt.Key_PageDown: lambda: actions.statement(1),
            QtCore.Qt.Key_Left: lambda: actions.statement(-1), QtCore.Qt.Key_PageUp: lambda: actions.statement(-1),
            QtCore.Qt.Key_Home: lambda: actions.statement(to=1),
            QtCore.Qt.Key_End: lambda: actions.statement(to=len(self.forward.statements))}
        QtWidgets.QApplication.instance().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() != QtCore.QEvent.ShortcutOverride and event.type() != QtCore.QEvent.KeyPress:
            return False
        keys = self.statement_keys if self.forward.active else self.keys
        slot = keys.get(event.key())
        if (slot is None or event.modifiers() & ~QtCore.Qt.KeypadModifier
                or (self.backward.trace is None and not self.forward.active)):
            return False
        focus = QtWidgets.QApplication.focusWidget() or (obj if isinstance(obj, QtWidgets.QWidget) else None)
        typing = isinstance(focus, TEXT_INPUTS) and not getattr(focus, "isReadOnly", lambda: False)()
        if (focus is None or focus.window() is not self.window or typing
                or QtWidgets.QApplication.activePopupWidget() is not None):
            return False
        if event.type() == QtCore.QEvent.ShortcutOverride:
            event.accept()  # the key is ours: no menu shortcut, no button, takes it
            return True
        slot()
        return True


class LectureMode(QtCore.QObject):
    """The View menu's zoom and presentation actions."""

    def __init__(self, states: States, actions, window: QtWidgets.QMainWindow, menu: QtWidgets.QMenu,
                 docks: dict[str, QtWidgets.QDockWidget]):
        super().__init__(window)
        self.theme = states.theme
        self.window, self.docks = window, docks
        self.before: dict | None = None  # what presentation mode changed, to put back
        self.step_keys = StepKeys(states, actions, window)
        for text, key, steps in [("Zoom &In", "Ctrl+=", 1), ("Zoom &Out", "Ctrl+-", -1),
                                 ("&Reset Zoom", "Ctrl+0", 0)]:
            act = QtGui.QAction(text, window)
            act.setShortcuts([QtGui.QKeySequence(key)] + ([QtGui.QKeySequence("Ctrl++")]
                                                           if key == "Ctrl+=" else []))
            act.setShortcutContext(QtCore.Qt.ApplicationShortcut)
            act.triggered.connect(lambda _=False, n=steps: self.theme.zoom(n))
            menu.addAction(act)
        self.present_act = QtGui.QAction("&Presentation Mode", window, checkable=True)
        self.present_act.setShortcut(QtGui.QKeySequence("F5"))
        self.present_act.setShortcutContext(QtCore.Qt.ApplicationShortcut)
        self.present_act.toggled.connect(self.present)
        menu.addAction(self.present_act)

    def present(self, on: bool) -> None:
        if on and self.before is None:
            self.before = {"scale": self.theme.scale, "full": self.window.isFullScreen(),
                           "shown": {t: d.isVisible() for t, d in self.docks.items()}}
            for title in PRESENTATION_HIDDEN:
                self.docks[title].hide()
            self.theme.set_high_contrast(True)
            self.theme.set_scale(max(self.theme.scale, PRESENTATION_SCALE))
            self.window.showFullScreen()
            # the code at the large size needs room: about 40% of the screen
            QtCore.QTimer.singleShot(150, self.window, lambda: self.window.resizeDocks(
                [self.docks["Code"]], [int(self.window.width() * 0.4)], QtCore.Qt.Horizontal))
        elif not on and self.before is not None:
            before, self.before = self.before, None
            self.theme.set_high_contrast(False)
            self.theme.set_scale(before["scale"])
            for title, shown in before["shown"].items():
                self.docks[title].setVisible(shown)
            if not before["full"]:
                self.window.showNormal()
