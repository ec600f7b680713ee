"""New tensor…: a dialog that writes one line of ordinary PyTorch into the script.

It opens as a palette (Ctrl+Shift+N, from anywhere): type a few letters of a creation
function, pick it, fill its form (the shape, the values, its own parameters, dtype,
device, requires_grad), and the kernel shows what the line makes, live. Insert writes
that line at the editor's cursor, named with a name the script does not use yet.

The script stays the truth (DESIGN.md, rule 7): the dialog keeps nothing of its own
that the script does not say. The form is built from the catalogue in
core/model/creation.py (no torch here); the preview runs in the kernel apart from the
script's namespace (the script's tensors a line names stand in by shape, dtype and
values), through `actions`, and the answer comes back in `states.new_tensor`.
"""
from __future__ import annotations

import ast
import html

from PySide6 import QtCore, QtGui, QtWidgets

from core.model.creation import (ADVANCED, COURSE, DEVICES, DTYPES, Function, StandIn, code_line,
                                 fresh_name, function)
from core.model.tensors import VALUES_LIMIT
from gui import theme

PREVIEW_DEBOUNCE_MS = 150
DEFAULT_CHOICE = "default"
NOT_NAMES = {"torch", "np", "numpy"}


class NewTensorDialog(QtWidgets.QDialog):
    """The New tensor dialog: built from its states and actions, and the editor whose
    cursor Insert writes at."""

    def __init__(self, states, actions, editor: QtWidgets.QPlainTextEdit, parent=None):
        super().__init__(parent)
        self.states, self.actions, self.editor = states, actions, editor
        self.setWindowTitle("New tensor")
        self.function: Function = function("linspace")
        self.fields: dict[str, QtWidgets.QWidget] = {}
        self.debounce = QtCore.QTimer(self, singleShot=True, interval=PREVIEW_DEBOUNCE_MS)
        self.debounce.timeout.connect(self._ask_preview)

        self.search = QtWidgets.QLineEdit(placeholderText="Type a function: linspace, randn…")
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._focus_form)
        self.search.installEventFilter(self)
        self.list = QtWidgets.QListWidget()
        self.list.setMinimumWidth(170)
        for group, names in COURSE:
            header = QtWidgets.QListWidgetItem(group)
            header.setFlags(QtCore.Qt.NoItemFlags)
            font = header.font()
            font.setBold(True)
            header.setFont(font)
            header.setForeground(QtGui.QColor(theme.NOTE))
            self.list.addItem(header)
            for name in names:
                item = QtWidgets.QListWidgetItem(f"  {name}")
                item.setData(QtCore.Qt.UserRole, name)
                item.setToolTip(function(name).summary)
                self.list.addItem(item)
        self.list.currentItemChanged.connect(self._on_picked)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.search)
        left.addWidget(self.list, 1)

        self.signature = QtWidgets.QLabel(wordWrap=True, textInteractionFlags=QtCore.Qt.TextSelectableByMouse)
        self.signature.setFont(theme.monospace())
        self.summary = QtWidgets.QLabel(wordWrap=True)
        self.summary.setStyleSheet(f"color: {theme.NOTE}")
        self.form_box = QtWidgets.QWidget()
        self.form = QtWidgets.QFormLayout(self.form_box)
        self.form.setContentsMargins(0, 4, 0, 4)
        self.name = QtWidgets.QLineEdit()
        self.name.setFont(theme.monospace())
        self.name.textEdited.connect(self._changed)
        self.name.returnPressed.connect(self.insert)
        self.code = QtWidgets.QLabel(textInteractionFlags=QtCore.Qt.TextSelectableByMouse, wordWrap=True)
        self.code.setFont(theme.monospace())
        self.result = QtWidgets.QPlainTextEdit(readOnly=True)
        self.result.setFont(theme.monospace())
        self.result.setLineWrapMode(QtWidgets.QPlainTextEdit.NoWrap)
        self.result.setMinimumHeight(150)
        self.problem = QtWidgets.QLabel(wordWrap=True)
        self.problem.setStyleSheet(f"color: {theme.ERROR}")
        self.problem.hide()
        self.insert_button = QtWidgets.QPushButton("Insert")
        self.insert_button.setToolTip("Write this line into the script at the editor's cursor (Enter)")
        self.insert_button.setAutoDefault(False)
        self.insert_button.clicked.connect(self.insert)
        close = QtWidgets.QPushButton("Close")
        close.setAutoDefault(False)
        close.clicked.connect(self.reject)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.insert_button)
        buttons.addWidget(close)

        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.signature)
        right.addWidget(self.summary)
        right.addWidget(self.form_box)
        name_row = QtWidgets.QFormLayout()
        name_row.addRow("name", self.name)
        right.addLayout(name_row)
        right.addWidget(_caption("Line"))
        right.addWidget(self.code)
        right.addWidget(_caption("Preview"))
        right.addWidget(self.result, 1)
        right.addWidget(self.problem)
        right.addLayout(buttons)

        layout = QtWidgets.QHBoxLayout(self)
        layout.addLayout(left)
        layout.addLayout(right, 1)
        self.resize(900, 620)

        states.new_tensor.changed.connect(self._show_preview)
        self._base_points = self.font().pointSizeF()
        self._select("linspace")
        states.theme.changed.connect(self._on_theme)
        self._on_theme()

    # --- lecture zoom ------------------------------------------------------------------------------
    def _on_theme(self) -> None:
        """Every text at the lecture zoom (theme.scale), as the panels' are. Each widget
        is set by hand: those with their own font (the monospace fields, the bold
        captions) do not inherit the dialog's, nor do labels with a style sheet once
        polished. Each is scaled from the size it was made with (the dialog's, unless
        it has its own), so fields built after a zoom are not scaled twice."""
        scale = self.states.theme.scale
        font = self.font()
        font.setPointSizeF(self._base_points * scale)
        self.setFont(font)
        for w in self.findChildren(QtWidgets.QWidget):
            base = w.property("ts_base_points")
            if base is None:
                base = w.font().pointSizeF() if w.testAttribute(QtCore.Qt.WA_SetFont) else self._base_points
                w.setProperty("ts_base_points", base)
            own = w.font()
            own.setPointSizeF(base * scale)
            w.setFont(own)
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(QtCore.Qt.UserRole) is None:  # a group header: bold, the list's size
                header = item.font()
                header.setPointSizeF(self._base_points * scale)
                item.setFont(header)

    # --- opening --------------------------------------------------------------------------------
    @classmethod
    def open_for(cls, window) -> NewTensorDialog:
        """Show the window's dialog (made on first use) with the search box ready."""
        dialog = window.findChild(cls)
        if dialog is None:
            dialog = cls(window.states, window.actions, window.editor.editor, window)
        dialog.name.setText(fresh_name(window.states.script.text()))
        dialog._changed()
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        dialog.search.setFocus()
        dialog.search.selectAll()
        return dialog

    # --- picking a function ------------------------------------------------------------------------
    def _select(self, name: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(QtCore.Qt.UserRole) == name:
                self.list.setCurrentRow(i)
                return

    def _filter(self, text: str) -> None:
        text = text.strip().lower().removeprefix("torch.")
        first = None
        for i in range(self.list.count()):
            item = self.list.item(i)
            name = item.data(QtCore.Qt.UserRole)
            if name is not None:
                item.setHidden(bool(text) and text not in name)
                first = first or (None if item.isHidden() else item)
        for i in range(self.list.count()):  # a group header shows while one of its own does
            item = self.list.item(i)
            if item.data(QtCore.Qt.UserRole) is None:
                j = i + 1
                shown = False
                while j < self.list.count() and self.list.item(j).data(QtCore.Qt.UserRole) is not None:
                    shown = shown or not self.list.item(j).isHidden()
                    j += 1
                item.setHidden(not shown)
        current = self.list.currentItem()
        if first is not None and (current is None or current.isHidden()):
            self.list.setCurrentItem(first)

    def eventFilter(self, watched, event) -> bool:
        """Up and Down in the search box move through the list."""
        if watched is self.search and event.type() == QtCore.QEvent.KeyPress and \
                event.key() in (QtCore.Qt.Key_Up, QtCore.Qt.Key_Down):
            step = 1 if event.key() == QtCore.Qt.Key_Down else -1
            row = self.list.currentRow() + step
            while 0 <= row < self.list.count():
                item = self.list.item(row)
                if not item.isHidden() and item.data(QtCore.Qt.UserRole) is not None:
                    self.list.setCurrentRow(row)
                    break
                row += step
            return True
        return super().eventFilter(watched, event)

    def _focus_form(self) -> None:
        first = next(iter(self.fields.values()), None)
        (first or self.name).setFocus()

    def _on_picked(self, item, _previous=None) -> None:
        name = item.data(QtCore.Qt.UserRole) if item is not None else None
        if name is None:
            return
        self.function = function(name)
        self._build_form()
        self._changed()

    # --- the form ------------------------------------------------------------------------------------
    def _build_form(self) -> None:
        f = self.function
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields.clear()
        self.signature.setText(f.signature())
        self.summary.setText(f.summary + ".")
        for p in f.parameters:
            if p.name in ADVANCED:
                continue
            label = "shape" if p.name == "size" else p.name
            if p.name == "dtype":
                widget = _combo(DTYPES)
            elif p.name == "device":
                widget = _combo(DEVICES)
            elif p.type == "bool":
                widget = QtWidgets.QCheckBox()
                widget.setChecked(p.default == "True")
                widget.toggled.connect(self._changed)
            else:
                widget = QtWidgets.QLineEdit(self._start_value(p.name))
                widget.setFont(theme.monospace())
                widget.setPlaceholderText(f"default: {p.default}" if p.default is not None else "needed")
                widget.textEdited.connect(self._changed)
                widget.returnPressed.connect(self.insert)
            if isinstance(widget, QtWidgets.QComboBox):
                widget.currentIndexChanged.connect(self._changed)
            widget.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Fixed)
            widget.setMinimumWidth(200)  # every row's hint starts at the same place
            tip = f"{p.meaning}.\n{p.type or 'any'}" + (f", default {p.default}" if p.default else ", needed")
            widget.setToolTip(tip)
            hint = QtWidgets.QLabel(p.meaning)
            hint.setStyleSheet(f"color: {theme.MUTED}")
            hint.setToolTip(tip)
            row = QtWidgets.QHBoxLayout()
            row.addWidget(widget, 2)
            row.addWidget(hint, 3)
            self.form.addRow(label, row)
            self.fields[p.name] = widget
        hidden = [p.name for p in f.parameters if p.name in ADVANCED]
        if hidden:
            note = QtWidgets.QLabel(f"also: {', '.join(hidden)} (type them into the script)")
            note.setStyleSheet(f"color: {theme.MUTED}")
            self.form.addRow("", note)
        if hasattr(self, "_base_points"):
            self._on_theme()  # the new fields at the zoom of the rest

    def _start_value(self, parameter: str) -> str:
        """The form's first value: for a `_like` function's input, the script's latest
        named tensor (what a lecturer means); else the catalogue's example."""
        if parameter == "input" and self.function.name.endswith("_like"):
            graph = self.states.run.graph
            named = [n for n in (graph.nodes if graph is not None else [])
                     if n.kind == "tensor" and n.name and n.name.isidentifier()]
            if named:
                return max(named, key=lambda n: n.line or 0).name
        return self.function.example(parameter)

    def arguments(self) -> dict[str, str]:
        """What the form says, as Python source per parameter ("" for the default)."""
        out = {}
        for name, widget in self.fields.items():
            if isinstance(widget, QtWidgets.QComboBox):
                choice = widget.currentText()
                out[name] = "" if choice == DEFAULT_CHOICE else (
                    f"torch.{choice}" if name == "dtype" else f'"{choice}"')
            elif isinstance(widget, QtWidgets.QCheckBox):
                out[name] = "True" if widget.isChecked() else "False"
            else:
                out[name] = widget.text()
        return out

    def line(self) -> str:
        """The line Insert writes; raises ValueError saying which field is wrong."""
        return code_line(self.function, self.arguments(), self.name.text().strip())

    def _changed(self, *_) -> None:
        try:
            line = self.line()
        except ValueError as exc:
            self.code.setText(f"<span style='color:{theme.ERROR}'>{html.escape(str(exc))}</span>")
            self.insert_button.setEnabled(False)
            self.debounce.stop()
            self.states.new_tensor.ask("")
            return
        self.code.setText(html.escape(line))
        self.insert_button.setEnabled(True)
        self.debounce.start()

    # --- the preview ------------------------------------------------------------------------------------
    def _ask_preview(self) -> None:
        try:
            line = self.line()
        except ValueError:
            return
        self.actions.preview_tensor(line, self._stand_ins(line))

    def _stand_ins(self, line: str) -> list[StandIn]:
        """The script's tensors (of its last run) that the line names."""
        graph = self.states.run.graph
        if graph is None:
            return []
        tree = ast.parse(line)
        target = tree.body[0].targets[0].id
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - NOT_NAMES - {target}
        out = []
        for node in graph.nodes:
            if node.kind == "tensor" and node.name in names:
                names.discard(node.name)
                values = self.states.run.values.get(node.id)
                preview = values.preview if values is not None else None
                whole = preview is not None and values.numel == preview.size and values.numel <= VALUES_LIMIT
                out.append(StandIn(node.name, list(node.shape), node.dtype, preview if whole else None))
        return out

    def _show_preview(self) -> None:
        state = self.states.new_tensor
        reply = state.reply
        problem = state.message or (reply.error if reply is not None else "")
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        if not state.code:
            self.result.setPlainText("")
        elif reply is None:
            self.result.setPlainText("" if state.message else "previewing…")
        elif reply.error:
            self.result.setPlainText("")
        else:
            shape = f"({', '.join(str(n) for n in reply.shape)}{',' if len(reply.shape) == 1 else ''})"
            head = (f"shape {shape} · {reply.numel} element{'s' if reply.numel != 1 else ''} · "
                    f"{reply.dtype} · {reply.device}" + (" · requires_grad" if reply.requires_grad else ""))
            note = f"\n({reply.note})" if reply.note else ""
            self.result.setPlainText(f"{head}{note}\n\n{reply.text}")

    # --- inserting -------------------------------------------------------------------------------------
    def insert(self) -> None:
        """Write the line at the editor's cursor (one undo step), run, and close."""
        try:
            line = self.line()
        except ValueError as exc:
            self.problem.setText(str(exc))
            self.problem.show()
            return
        cursor = self.editor.textCursor()
        self.actions.insert_line(line, cursor)
        self.editor.setTextCursor(cursor)
        self.accept()
        self.editor.setFocus()


def _caption(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label


def _combo(choices) -> QtWidgets.QComboBox:
    combo = QtWidgets.QComboBox()
    combo.addItems([DEFAULT_CHOICE, *choices])
    return combo
