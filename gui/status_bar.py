"""The status bar: the kernel's status, a lasting warning (autosave cannot write),
Restart when the kernel is frozen, the last run's timings, and passing messages."""
from __future__ import annotations

from PySide6 import QtWidgets

from gui import theme
from gui.state import States


class StatusBar(QtWidgets.QStatusBar):
    def __init__(self, states: States, actions, files, parent=None):
        super().__init__(parent)
        self.states = states
        self.status_label = QtWidgets.QLabel()
        self.timing_label = QtWidgets.QLabel()
        self.warning_label = QtWidgets.QLabel(wordWrap=True)
        self.warning_label.setStyleSheet(f"color: {theme.ERROR}; font-weight: bold;")
        self.warning_label.hide()
        self.restart_button = QtWidgets.QPushButton("Restart kernel")
        self.restart_button.clicked.connect(actions.restart_kernel)
        self.restart_button.hide()
        self.addWidget(self.status_label, 1)
        self.addWidget(self.warning_label, 3)
        self.addPermanentWidget(self.restart_button)
        self.addPermanentWidget(self.timing_label)
        states.kernel.status_changed.connect(self._show_status)
        states.kernel.attached_changed.connect(self._show_status)
        states.kernel.event.connect(lambda text: self.showMessage(text, 8000))
        # Restart is offered only for a kernel the app started; an attached one is not ours.
        states.kernel.frozen_changed.connect(
            lambda frozen: self.restart_button.setVisible(frozen and not states.kernel.attached))
        states.run.output_changed.connect(self._show_timings)
        files.warning.connect(self._on_warning)

    def _show_status(self) -> None:
        kernel = self.states.kernel
        where = f" ({kernel.attached})" if kernel.attached else ""
        self.status_label.setText(f"Kernel{where}: {kernel.status}")

    def _on_warning(self, text: str) -> None:
        self.warning_label.setText(text)
        self.warning_label.setVisible(bool(text))
        if text:
            self.states.kernel.event.emit(text)

    def _show_timings(self) -> None:
        t = self.states.run.timings
        self.timing_label.setText(f"run {t.get('exec', 0) * 1000:.0f} ms · trace {t.get('trace', 0) * 1000:.0f} ms")
