"""The output pane: the run's stdout and stderr, its error, and kernel events."""
from __future__ import annotations

import html

from PySide6 import QtGui, QtWidgets


class ConsolePanel(QtWidgets.QTextEdit):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
        font.setPointSize(11)
        self.setFont(font)
        self.setPlaceholderText("Output of your script (print, warnings, errors) appears here.")

    def show_run(self, stdout: str, stderr: str, error_text: str = "") -> None:
        """Replace the pane with the output of the latest run."""
        parts = []
        if stdout:
            parts.append(f"<pre style='margin:0'>{html.escape(stdout)}</pre>")
        if stderr:
            parts.append(f"<pre style='margin:0; color:#a04000'>{html.escape(stderr)}</pre>")
        if error_text:
            parts.append(f"<pre style='margin:0; color:#b71c1c'><b>{html.escape(error_text)}</b></pre>")
        self.setHtml("".join(parts))
        self.moveCursor(QtGui.QTextCursor.End)

    def add_event(self, text: str) -> None:
        self.append(f"<p style='color:#1565c0'><i>{html.escape(text)}</i></p>")
