"""The output pane: the run's stdout and stderr, its error, and kernel events."""
from __future__ import annotations

import html

from PySide6 import QtGui, QtWidgets

from core.labels import run_error_details
from gui import theme


class ConsolePanel(QtWidgets.QTextEdit):
    def __init__(self, states, actions=None, parent=None):
        super().__init__(parent)
        self.run, self.theme = states.run, states.theme
        self.setReadOnly(True)
        self.setPlaceholderText("Output of your script (print, warnings, errors) appears here.")
        self.run.output_changed.connect(self.show_run)
        states.kernel.event.connect(self.add_event)
        self.theme.changed.connect(self._on_theme)
        self._on_theme()

    def _on_theme(self) -> None:
        self.setFont(theme.monospace(self.theme.points(theme.OUTPUT_POINTS)))

    def show_run(self) -> None:
        """Replace the pane with the output of the latest run."""
        run = self.run
        parts = []
        if run.stdout:
            parts.append(f"<pre style='margin:0'>{html.escape(run.stdout)}</pre>")
        if run.stderr:
            parts.append(f"<pre style='margin:0; color:{theme.STDERR}'>{html.escape(run.stderr)}</pre>")
        if run.error is not None:
            parts.append(f"<pre style='margin:0; color:{theme.ERROR}'><b>"
                         f"{html.escape(run_error_details(run.error))}</b></pre>")
        self.setHtml("".join(parts))
        self.moveCursor(QtGui.QTextCursor.End)

    def add_event(self, text: str) -> None:
        self.append(f"<p style='color:{theme.EVENT}'><i>{html.escape(text)}</i></p>")
