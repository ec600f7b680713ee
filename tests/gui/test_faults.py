"""The window under faults, with a real kernel: frozen kernels, scripts that ignore
interrupts or read input, output streamed while a script runs, Backward after a
restart, the folder a script runs in, odd tensors."""
from __future__ import annotations

import os
import signal
import time

from PySide6 import QtCore


def labels(win) -> set[str]:
    return {item.lines[0] for item in win.graph.scene.items_by_id.values()}


def load(qtbot, win, code: str, timeout=30_000):
    win.editor.set_text(code)
    with qtbot.waitSignal(win.session.run_result, timeout=timeout) as blocker:
        win.actions.run_now()
    return blocker.args[0]


def test_a_frozen_kernel_is_said_and_restart_is_offered(qtbot, window):
    win = window
    load(qtbot, win, "import torch\nx = torch.ones(1, requires_grad=True)\ny = x * 2\n")
    os.kill(win.session.kernel_pid(), signal.SIGSTOP)
    qtbot.waitUntil(lambda: win.restart_button.isVisibleTo(win), timeout=15_000)
    assert "frozen" in win.console.toPlainText()
    with qtbot.waitSignal(win.session.ready, timeout=60_000):
        qtbot.mouseClick(win.restart_button, QtCore.Qt.LeftButton)
    assert not win.restart_button.isVisibleTo(win)
    assert "MulBackward0" in labels(win)  # the last graph stays
    load(qtbot, win, "import torch\nx = torch.ones(1, requires_grad=True)\nz = x.sin()\n")
    assert "SinBackward0" in labels(win)


def test_a_script_that_ignores_interrupts_is_stopped_by_a_restart(qtbot, window):
    win = window
    load(qtbot, win, "import torch\nx = torch.ones(1, requires_grad=True)\ny = x * 2\n")
    stubborn = ("import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
                "    except KeyboardInterrupt:\n        pass\n")
    win.live_act.setChecked(False)
    win.editor.set_text(stubborn)
    win.actions.run_now()
    qtbot.waitUntil(lambda: win.session.current is not None and win.session.current.started, timeout=10_000)
    qtbot.wait(200)
    t = time.monotonic()
    with qtbot.waitSignal(win.session.ready, timeout=60_000):
        qtbot.keyClick(win.editor.editor, QtCore.Qt.Key_Escape)
    assert time.monotonic() - t < 30
    assert "ignored the interrupt" in win.console.toPlainText()
    assert win.editor.text() == stubborn and "MulBackward0" in labels(win)


def test_input_in_a_script_says_why_instead_of_hanging(qtbot, window):
    result = load(qtbot, window, "name = input('your name? ')\n", timeout=15_000)
    assert result.error is not None and "cannot read input" in result.error.message
    assert window.editor.error_line() == 1


def test_output_is_shown_while_the_script_runs(qtbot, window):
    win = window
    win.live_act.setChecked(False)
    win.editor.set_text("import time\nfor epoch in range(3):\n    print('epoch', epoch, flush=True)\n"
                        "    time.sleep(0.7)\n")
    win.actions.run_now()
    qtbot.waitUntil(lambda: "epoch 0" in win.console.toPlainText(), timeout=15_000)
    assert win.session.is_running()  # seen before the run ended
    assert "epoch 2" not in win.console.toPlainText()
    qtbot.waitUntil(lambda: not win.session.is_running(), timeout=15_000)
    assert "epoch 2" in win.console.toPlainText()


def test_backward_after_an_automatic_restart_says_to_run_again(qtbot, window):
    win = window
    load(qtbot, win, "import torch\nx = torch.ones(1, requires_grad=True)\ny = x * 2\n")
    with qtbot.waitSignal(win.session.ready, timeout=60_000):
        os.kill(win.session.kernel_pid(), signal.SIGKILL)
    qtbot.mouseClick(win.backward.backward_button, QtCore.Qt.LeftButton)
    assert "run the script again" in win.backward.note.text()
    assert "MulBackward0" in labels(win)  # nothing wiped


def test_a_saved_script_runs_in_its_own_folder(qtbot, window, tmp_path):
    win = window
    (tmp_path / "numbers.txt").write_text("1 2 3")
    (tmp_path / "helper.py").write_text("K = 7\n")
    script = tmp_path / "script.py"
    script.write_text("import os, helper\nprint(os.getcwd())\nprint(open('numbers.txt').read(), helper.K)\n")
    win.files.ask = lambda *a: "Don't save"
    with qtbot.waitSignal(win.session.run_result, timeout=30_000) as blocker:
        win.files.open_file(script)
    result = blocker.args[0]
    assert result.error is None, result.error
    assert str(tmp_path) in result.stdout and "1 2 3 7" in result.stdout
    assert f"Ran in {tmp_path}, the script's folder" in win.console.toPlainText()


def test_an_unsaved_script_runs_in_a_scratch_folder(qtbot, window, home):
    result = load(qtbot, window, "import os\nprint(os.getcwd())\n")
    assert str(home / "scratch") in result.stdout
    assert "scratch folder" in window.console.toPlainText()


def test_complex_and_sparse_tensors_are_drawn(qtbot, window):
    result = load(qtbot, window, (
        "import torch\nz = torch.tensor([1 + 2j], requires_grad=True)\n"
        "loss = (z * z.conj()).real.sum()\nloss.backward()\n"
        "i = torch.tensor([[0, 1], [1, 0]])\nv = torch.tensor([1., 2.], requires_grad=True)\n"
        "s = torch.sparse_coo_tensor(i, v, (2, 2))\ny = s.to_dense().sum()\ny.backward()\n"))
    assert result.error is None, result.error
    assert {"z", "loss", "v", "y"} <= labels(window) and not window.graph.view.stale_text


def test_the_forward_pass_statement_by_statement(qtbot, window):
    """F10 runs the first statement; → grows the graph one statement at a time, ← goes
    back; the statement just run is marked in the editor; an edit ends the mode."""
    win = window
    code = "import torch\nx = torch.ones(2, requires_grad=True)\ny = x * 2\nz = y.exp()\n"
    load(qtbot, win, code)
    win.graph.view.setFocus()  # the step keys act wherever the focus is, but in text

    def step(key):
        with qtbot.waitSignal(win.session.run_result, timeout=30_000):
            qtbot.keyClick(win.graph.view, key)
    step(QtCore.Qt.Key_F10)
    assert win.states.forward.active and win.step_act.isChecked()
    assert labels(win) == set() or "x" not in labels(win)
    step(QtCore.Qt.Key_Right)
    assert "x" in labels(win) and "y" not in labels(win)
    assert win.editor.editor._step_lines == (2, 2)
    step(QtCore.Qt.Key_Right)
    assert {"x", "y", "MulBackward0"} <= labels(win)
    step(QtCore.Qt.Key_Left)
    assert "y" not in labels(win) and win.states.forward.index == 2
    step(QtCore.Qt.Key_End)
    assert "z" in labels(win) and win.editor.editor._step_lines == (4, 4)
    win.editor.editor.setFocus()
    qtbot.keyClicks(win.editor.editor, "#")
    assert not win.states.forward.active and win.editor.editor._step_lines is None
