"""New tensor…, driven as a user would: open it from the Tensor menu, pick linspace by
typing, fill the form, wait for the kernel's preview, Insert; the line is in the
script at the cursor, the graph gets its node after the run, and one Ctrl+Z takes
the line out again. Bad input shows a sentence in the dialog, never a crash."""
from __future__ import annotations

import re

import numpy as np
from PySide6 import QtCore, QtWidgets

from core.model.creation import CATALOGUE, code_line


def fill(qtbot, field: QtWidgets.QLineEdit, text: str) -> None:
    field.selectAll()
    qtbot.keyClick(field, QtCore.Qt.Key_Backspace)
    qtbot.keyClicks(field, text)


def open_dialog(win):
    from gui.new_tensor_dialog import NewTensorDialog

    win.new_tensor_act.trigger()
    dialog = win.findChild(NewTensorDialog)
    assert dialog is not None and dialog.isVisible()
    return dialog


def test_every_function_of_the_catalogue_builds_its_form_and_line(qtbot, home):
    from gui.main_window import MainWindow

    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    dialog = open_dialog(win)
    for f in CATALOGUE:
        dialog._select(f.name)
        assert dialog.function is f
        assert dialog.line() == code_line(f, {p.name: f.example(p.name) for p in f.parameters},
                                          dialog.name.text())
        assert "out" not in dialog.fields and ("size" in dialog.fields) == ("size" in [p.name for p in f.parameters])
    dialog._select("zeros")
    dialog.fields["dtype"].setCurrentText("int64")
    dialog.fields["requires_grad"].setChecked(True)
    assert dialog.line().endswith("torch.zeros(2, 3, dtype=torch.int64, requires_grad=True)")
    fill(qtbot, dialog.fields["size"], "2,, 3")
    assert not dialog.insert_button.isEnabled() and "shape" in dialog.code.text()


def test_new_tensor_inserts_one_line_at_the_cursor(qtbot, window):
    win = window
    qtbot.waitUntil(lambda: win.states.run.graph is not None and win.session.answered_run == win.session.run_id,
                    timeout=60_000)
    editor = win.editor.editor
    original = win.editor.text()
    k = next(i for i, text in enumerate(original.split("\n")) if re.match(r"\w+ = ", text))  # x = …
    cursor = editor.textCursor()
    cursor.setPosition(editor.document().findBlockByNumber(k).position() + 3)  # inside it
    editor.setTextCursor(cursor)

    dialog = open_dialog(win)
    qtbot.keyClicks(dialog.search, "linsp")
    assert dialog.function.name == "linspace"
    fill(qtbot, dialog.fields["start"], "0")
    fill(qtbot, dialog.fields["end"], "1")
    fill(qtbot, dialog.fields["steps"], "5")
    name = dialog.name.text()
    assert name not in re.findall(r"\w+", original)
    line = f"{name} = torch.linspace(0, 1, steps=5)"
    state = win.states.new_tensor
    qtbot.waitUntil(lambda: state.reply is not None and state.reply.code == line, timeout=30_000)
    assert state.reply.error == "" and state.reply.shape == [5]
    assert np.allclose(state.reply.values, [0, 0.25, 0.5, 0.75, 1])
    assert "0.2500" in dialog.result.toPlainText() and not dialog.problem.isVisible()

    qtbot.mouseClick(dialog.insert_button, QtCore.Qt.LeftButton)
    lines = win.editor.text().split("\n")
    assert lines[k + 1] == line  # below the cursor's line
    assert lines[:k + 1] + lines[k + 2:] == original.split("\n")
    assert editor.textCursor().blockNumber() == k + 1 and not dialog.isVisible()
    qtbot.waitUntil(lambda: any(getattr(n, "name", None) == name for n in win.states.run.graph.nodes),
                    timeout=60_000)

    editor.undo()
    assert win.editor.text() == original


def test_bad_input_says_what_is_wrong_in_the_dialog(qtbot, window):
    win = window
    dialog = open_dialog(win)
    qtbot.keyClicks(dialog.search, "linspace")
    fill(qtbot, dialog.fields["steps"], "-1")
    state = win.states.new_tensor
    qtbot.waitUntil(lambda: state.reply is not None and "steps=-1" in state.reply.code, timeout=60_000)
    assert "non-negative" in dialog.problem.text() and dialog.problem.isVisible()
    fill(qtbot, dialog.fields["steps"], "")
    assert "steps is needed" in dialog.code.text() and not dialog.insert_button.isEnabled()
    dialog.search.clear()
    qtbot.keyClicks(dialog.search, "zeros")
    fill(qtbot, dialog.fields["size"], "100000, 100000")
    qtbot.waitUntil(lambda: state.reply is not None and "100000" in state.reply.code, timeout=30_000)
    assert "too big to preview" in dialog.problem.text()
    assert win.session.is_ready  # the kernel is still there


def test_the_dialog_follows_the_lecture_zoom(qtbot, home):
    """Ctrl+= in a lecture makes the dialog's text bigger too: its labels, the
    monospace fields (which carry their own font), the group headers, and the fields
    of a function picked after the zoom."""
    from gui.main_window import MainWindow

    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    dialog = open_dialog(win)
    body, mono = dialog.font().pointSizeF(), dialog.code.font().pointSizeF()
    field = dialog.fields["start"].font().pointSizeF()
    header = dialog.list.item(0).font().pointSizeF()
    assert body > 0 and mono > 0 and dialog.list.item(0).data(QtCore.Qt.UserRole) is None
    win.states.theme.set_scale(2.0)
    assert dialog.font().pointSizeF() == 2 * body and dialog.summary.font().pointSizeF() == 2 * body
    assert dialog.code.font().pointSizeF() == 2 * mono and dialog.result.font().pointSizeF() == 2 * mono
    assert dialog.fields["start"].font().pointSizeF() == 2 * field
    assert dialog.list.item(0).font().pointSizeF() == 2 * header and dialog.list.item(0).font().bold()
    dialog._select("zeros")  # a form built after the zoom
    assert dialog.fields["size"].font().pointSizeF() == 2 * field
    assert dialog.fields["dtype"].font().pointSizeF() == 2 * body
    win.states.theme.set_scale(1.0)
    assert dialog.code.font().pointSizeF() == mono and dialog.fields["size"].font().pointSizeF() == field
    assert dialog.font().pointSizeF() == body
