"""The whole app, driven as a user would: type, wait for the kernel, look at the graph."""
import os
import signal

from PySide6 import QtCore



def labels(win) -> set[str]:
    """The first line drawn on each node of the graph panel."""
    return {item.lines[0] for item in win.graph.scene.items_by_id.values()}


def type_text(qtbot, widget, text: str) -> None:
    """Type like a person: Enter for each newline (the editor indents by itself)."""
    for i, line in enumerate(text.split("\n")):
        if i:
            qtbot.keyClick(widget, QtCore.Qt.Key_Return)
            widget.moveCursor(widget.textCursor().MoveOperation.StartOfLine,
                              widget.textCursor().MoveMode.KeepAnchor)
            widget.textCursor().removeSelectedText()
        if line:
            qtbot.keyClicks(widget, line)


def type_and_wait(qtbot, win, text: str, timeout=30_000) :
    """Replace the editor text by typing it, and wait for the snapshot of that text."""
    editor = win.editor.editor
    editor.selectAll()
    got = []
    win.session.run_result.connect(got.append)
    type_text(qtbot, editor, text)
    assert win.editor.text() == text
    qtbot.waitUntil(lambda: bool(got) and not win.actions.debounce.isActive()
                    and win.session.answered_run == win.session.run_id, timeout=timeout)
    win.session.run_result.disconnect(got.append)
    return got[-1]


def append_text(qtbot, win, text: str) -> None:
    editor = win.editor.editor
    editor.moveCursor(editor.textCursor().MoveOperation.End)
    type_text(qtbot, editor, text)


def wait_for_graph_with(qtbot, win, label: str, timeout=30_000):
    qtbot.waitUntil(lambda: label in labels(win), timeout=timeout)


def test_window_is_up_before_the_kernel(qtbot, home):
    from gui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    assert "starting kernel" in win.status_label.text()
    with qtbot.waitSignal(win.session.ready, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: "ready" in win.status_label.text() or "running" in win.status_label.text())
    win.session.shutdown()


def test_typing_draws_the_new_node(qtbot, window):
    win = window
    # The default script is the seed example: its graph appears without typing.
    wait_for_graph_with(qtbot, win, "MulBackward0")
    assert {"x", "w", "a", "b", "y", "AccumulateGrad"} <= labels(win)
    append_text(qtbot, win, "\nq = y.exp()\n")
    wait_for_graph_with(qtbot, win, "ExpBackward0")
    assert "q" in labels(win)


def test_nodes_stay_put_when_a_line_is_added(qtbot, window):
    win = window
    wait_for_graph_with(qtbot, win, "MulBackward0")
    before = {item.node.key: item.pos() for item in win.graph.scene.items_by_id.values()}
    append_text(qtbot, win, "\nk = torch.ones(2, requires_grad=True)\nm = (k * y).sum()\n")
    wait_for_graph_with(qtbot, win, "SumBackward0")
    after = {item.node.key: item.pos() for item in win.graph.scene.items_by_id.values()}
    kept = set(before) & set(after)
    assert len(kept) >= 10
    moved = max((after[k] - before[k]).manhattanLength() for k in kept)
    assert moved <= 20, moved


def test_error_marks_its_line_and_draws_what_was_built(qtbot, window):
    win = window
    wait_for_graph_with(qtbot, win, "MulBackward0")
    good = labels(win)
    snap = type_and_wait(qtbot, win, "import torch\nx = torch.ones(2, requires_grad=True)\n"
                                    "y = x * 2\nz = y @ torch.ones(3)\n")
    assert snap.error is not None and snap.error.line == 4
    assert win.editor.error_line() == 4
    # what the script had built when it failed is drawn, dimmed, with the error on it
    assert labels(win) == {"x", "y", "MulBackward0", "AccumulateGrad"} and labels(win) != good
    assert win.graph.view.stale_text.startswith("Line 4: RuntimeError")
    assert "RuntimeError" in win.console.toPlainText()
    type_and_wait(qtbot, win, "import torch\nx = torch.ones(2, requires_grad=True)\nx = (\n")
    assert labels(win) == {"x", "y", "MulBackward0", "AccumulateGrad"}  # a syntax error keeps it
    snap = type_and_wait(qtbot, win, "import torch\nx = torch.ones(2, requires_grad=True)\ny = x * 2\n")
    assert snap.error is None
    assert win.editor.error_line() is None and not win.graph.view.stale_text


def test_syntax_error_marks_its_line(qtbot, window):
    snap = type_and_wait(qtbot, window, "import torch\n\nx = torch.ones(2\n")
    assert snap.error.type == "SyntaxError"
    assert window.editor.error_line() == 3


def test_interrupt_stops_an_infinite_loop(qtbot, window):
    win = window
    wait_for_graph_with(qtbot, win, "MulBackward0")
    win.live_act.setChecked(False)
    win.editor.set_text("x = 0\nwhile True:\n    x += 1\n")
    with qtbot.waitSignal(win.session.run_result, timeout=10_000) as blocker:
        win.actions.run_now()
        qtbot.waitUntil(win.session.is_running, timeout=5_000)
        qtbot.wait(300)
        qtbot.keyClick(win.editor.editor, QtCore.Qt.Key_Escape)
    snap = blocker.args[0]
    assert snap.error.type == "KeyboardInterrupt"
    assert snap.error.line in (2, 3)
    # The kernel is still usable after the interrupt.
    win.live_act.setChecked(True)
    type_and_wait(qtbot, win, "import torch\nv = torch.ones(1, requires_grad=True)\nu = v.sin()\n")
    wait_for_graph_with(qtbot, win, "SinBackward0")


def test_new_text_interrupts_a_running_script(qtbot, window):
    win = window
    wait_for_graph_with(qtbot, win, "MulBackward0")
    win.editor.set_text("while True:\n    pass\n")
    win.actions.run_now()
    qtbot.waitUntil(win.session.is_running, timeout=5_000)
    qtbot.wait(300)
    type_and_wait(qtbot, win, "import torch\nv = torch.ones(1, requires_grad=True)\nu = v.cos()\n")
    wait_for_graph_with(qtbot, win, "CosBackward0", timeout=10_000)


def test_killed_kernel_restarts_and_the_text_survives(qtbot, window):
    win = window
    wait_for_graph_with(qtbot, win, "MulBackward0")
    text = win.editor.text()
    old_pid = win.session.kernel_pid()
    with qtbot.waitSignal(win.session.ready, timeout=60_000):
        os.kill(old_pid, signal.SIGKILL)
    assert win.session.kernel_pid() != old_pid
    assert win.editor.text() == text
    assert "MulBackward0" in labels(win)  # the last good graph stays
    assert "kernel died" in win.console.toPlainText().lower()
    append_text(qtbot, win, "\nq2 = y.tanh()\n")
    wait_for_graph_with(qtbot, win, "TanhBackward0")


def test_script_that_kills_its_kernel(qtbot, window):
    win = window
    wait_for_graph_with(qtbot, win, "MulBackward0")
    win.live_act.setChecked(False)
    win.editor.set_text("import os\nos._exit(1)\n")
    with qtbot.waitSignal(win.session.ready, timeout=60_000):
        win.actions.run_now()
    assert "while running your code" in win.console.toPlainText()
    assert win.editor.text() == "import os\nos._exit(1)\n"


def test_text_restored_after_closing_and_reopening(qtbot, home):
    from gui.main_window import MainWindow

    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    win.editor.editor.selectAll()
    type_text(qtbot, win.editor.editor, "import torch\nrestored = torch.zeros(3)\n")
    win.close()
    again = MainWindow(start_kernel=False)
    qtbot.addWidget(again)
    assert again.editor.text() == "import torch\nrestored = torch.zeros(3)\n"
    again.close()


def test_autosave_writes_while_typing(qtbot, home):
    from gui.main_window import MainWindow

    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    qtbot.keyClicks(win.editor.editor, "# typed")
    qtbot.waitUntil(lambda: win.files.autosave_path.exists()
                    and "# typed" in win.files.autosave_path.read_text(), timeout=5_000)


def test_clicking_a_node_fills_the_inspector(qtbot, window):
    win = window
    wait_for_graph_with(qtbot, win, "MulBackward0")
    win.graph.search.setText("w")
    qtbot.waitUntil(lambda: "is_leaf" in win.inspector.toPlainText())
    text = win.inspector.toPlainText()
    assert "requires_grad" in text and "True" in text
    assert "5." in text  # w.grad == 5 after y.backward()


def test_saved_tensors_toggle(qtbot, window):
    win = window
    wait_for_graph_with(qtbot, win, "MulBackward0")
    assert not any(l.startswith("saved") for l in labels(win))
    win.graph.saved_box.setChecked(True)
    assert any(l.startswith("saved") for l in labels(win))


def test_graphviz_layout_can_be_chosen_and_is_remembered(qtbot, window):
    import shutil

    from gui.main_window import MainWindow

    win = window
    wait_for_graph_with(qtbot, win, "MulBackward0")
    if shutil.which("dot") is None:
        assert not win.dot_act.isEnabled()
        return
    win.dot_act.setChecked(True)
    assert win.graph.use_dot()
    qtbot.waitUntil(lambda: "dot" in win.graph.info.toolTip(), timeout=10_000)  # laid out off the GUI thread
    assert "MulBackward0" in labels(win)
    win.close()
    again = MainWindow(start_kernel=False)
    qtbot.addWidget(again)
    assert again.states.view.use_dot and again.dot_act.isChecked()
    again.close()


def test_two_runs_right_after_ready_always_draw(qtbot, window):
    """The start-up race: a second run within 50 ms of `ready` interrupted the
    bootstrap and nothing was drawn again. Twenty fresh kernels, each drawing."""
    win = window
    for i in range(20):
        if i:
            with qtbot.waitSignal(win.session.ready, timeout=60_000):
                win.actions.restart_kernel()
        win.editor.set_text(f"import torch\nv = torch.ones(1, requires_grad=True)\nu{i} = v.exp()\n")
        win.actions.run_now()
        qtbot.wait(20)
        win.editor.set_text(f"import torch\nv = torch.ones(1, requires_grad=True)\nw{i} = v.sin()\n")
        win.actions.run_now()
        qtbot.waitUntil(lambda: f"w{i}" in labels(win), timeout=30_000)
        assert "SinBackward0" in labels(win)


def test_interrupting_a_torch_loop_leaves_the_kernel_usable(qtbot, window):
    """Every torch call of the loop passes through the run's CallTracker (a
    TorchFunctionMode): an interrupt lands inside it sooner or later."""
    win = window
    win.live_act.setChecked(False)
    win.editor.set_text("import torch\nx = torch.zeros(3)\nwhile True:\n    x = x + 0\n")
    with qtbot.waitSignal(win.session.run_result, timeout=20_000) as blocker:
        win.actions.run_now()
        qtbot.waitUntil(win.session.is_running, timeout=5_000)
        qtbot.wait(3000)
        win.actions.interrupt()
    assert blocker.args[0].error.type == "KeyboardInterrupt"
    win.live_act.setChecked(True)
    type_and_wait(qtbot, win, "import torch\nv = torch.ones(1, requires_grad=True)\nu = v.sin()\n")
    wait_for_graph_with(qtbot, win, "SinBackward0", timeout=20_000)
