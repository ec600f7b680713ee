"""The output pane: the run's stdout and stderr, its error, and kernel events."""
from __future__ import annotations

import html
import os

from PySide6 import QtGui, QtWidgets

from core.labels import run_error_details
from gui import theme


class ConsolePanel(QtWidgets.QTextEdit):
    def __init__(self, states, actions=None, parent=None):
        super().__init__(parent)
        self.run, self.script, self.theme = states.run, states.script, states.theme
        self.setReadOnly(True)
        self.setPlaceholderText("Output of your script (print, warnings, errors) appears here.")
        self.run.output_changed.connect(self.show_run)
        self.run.output_appended.connect(self.append_output)
        states.kernel.event.connect(self.add_event)
        self.theme.changed.connect(self._on_theme)
        self._on_theme()

    def _on_theme(self) -> None:
        self.setFont(theme.monospace(self.theme.points(theme.OUTPUT_POINTS)))

    def show_run(self) -> None:
        """Replace the pane with the output of the latest run."""
        run = self.run
        parts = []
        if run.cwd:
            parts.append(f"<p style='color:{theme.MUTED}; margin:0'>{html.escape(self.folder_line(run.cwd))}</p>")
        if run.stdout:
            parts.append(f"<pre style='margin:0'>{html.escape(run.stdout)}</pre>")
        if run.stderr:
            parts.append(f"<pre style='margin:0; color:{theme.STDERR}'>{html.escape(run.stderr)}</pre>")
        if run.error is not None:
            parts.append(f"<pre style='margin:0; color:{theme.ERROR}'><b>"
                         f"{html.escape(run_error_details(run.error))}</b></pre>")
        self.setHtml("".join(parts))
        self.moveCursor(QtGui.QTextCursor.End)

    def folder_line(self, cwd: str) -> str:
        scratch = self.script.scratch and os.path.abspath(cwd) == os.path.abspath(self.script.scratch)
        return (f"Ran in {cwd} (a scratch folder: save the script to run it in its own folder)" if scratch
                else f"Ran in {cwd}, the script's folder")

    def append_output(self, stream: str, text: str, first: bool = False) -> None:
        """What a running script prints, as it prints it (the run's end replaces it all)."""
        if first:
            self.clear()
        cursor = self.textCursor()
        cursor.movePosition(QtGui.QTextCursor.End)
        fmt = QtGui.QTextCharFormat()
        fmt.setForeground(QtGui.QColor(theme.STDERR if stream == "stderr" else theme.TEXT))
        cursor.insertText(text, fmt)
        self.setTextCursor(cursor)
        self.ensureCursorVisible()

    def add_event(self, text: str) -> None:
        self.append(f"<p style='color:{theme.EVENT}'><i>{html.escape(text)}</i></p>")
