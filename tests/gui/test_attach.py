"""The window attached to a kernel it did not start: a real ipykernel that the test
starts itself (`python -m ipykernel_launcher -f FILE`, as a notebook server or a GPU
server would). Run a script and get its graph, interrupt an endless loop, refuse to
restart it, notice when it stops answering, and detach on close without killing it
(the test checks the process is alive afterwards, then kills it itself)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.connect import write_connection_file

from core import protocol
from gui.session import NOT_OURS, Session

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
GRAPH = """import torch
x = torch.randn(3, requires_grad=True)
w = torch.randn(3, requires_grad=True)
loss = (x * w).sum()
print("ran in", __import__("os").getpid())
"""
LOOP = """import torch
x = torch.ones(2, requires_grad=True)
while True:
    pass
"""


@pytest.fixture
def kernel(tmp_path):
    path, _ = write_connection_file(str(tmp_path / "kernel-test.json"))
    proc = subprocess.Popen([PYTHON, "-m", "ipykernel_launcher", "-f", path], cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    yield path, proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def events_of(session) -> list[str]:
    got: list[str] = []
    session.event.connect(got.append)
    return got


def run_and_wait(qtbot, win, code: str) -> object:
    got = []
    win.session.run_result.connect(got.append)
    win.editor.editor.setPlainText(code)
    win.actions.run_now()
    qtbot.waitUntil(lambda: bool(got) and win.session.answered_run == win.session.run_id, timeout=60_000)
    win.session.run_result.disconnect(got.append)
    return got[-1]


def test_the_window_attaches_runs_interrupts_and_detaches_without_killing(qtbot, home, kernel):
    from gui.main_window import MainWindow

    path, proc = kernel
    win = MainWindow(existing=path)
    qtbot.addWidget(win)
    win.show()
    events = events_of(win.session)
    with qtbot.waitSignal(win.session.ready, timeout=90_000):
        pass
    assert not win.session.owns_kernel
    assert win.session.kernel_pid() == proc.pid
    qtbot.waitUntil(lambda: f"attached: pid {proc.pid}" in win.status_label.text())
    assert not win.restart_act.isEnabled()

    # A script runs over there and its graph comes back.
    result = run_and_wait(qtbot, win, GRAPH)
    assert result.error is None
    names = {n.name for n in result.graph.by_kind("tensor")}
    assert {"x", "w", "loss"} <= names
    qtbot.waitUntil(lambda: f"ran in {proc.pid}" in win.states.run.stdout)

    # An endless loop is interrupted through the control channel; the kernel stays.
    stopped = []
    win.session.run_result.connect(stopped.append)
    win.editor.editor.setPlainText(LOOP)
    win.actions.run_now()
    qtbot.waitUntil(lambda: win.session.current is not None and win.session.current.started, timeout=30_000)
    qtbot.wait(500)
    win.actions.interrupt()
    qtbot.waitUntil(lambda: win.session.state == "idle", timeout=10_000)
    assert stopped and stopped[-1].error.type == "KeyboardInterrupt" and stopped[-1].error.line in (3, 4)
    assert win.session.kernel_pid() == proc.pid

    # Restart is refused in words; nothing happens to the kernel.
    win.actions.restart_kernel()
    assert events[-1] == NOT_OURS
    assert win.session.state == "idle" and proc.poll() is None

    # It still works after the interrupt.
    assert run_and_wait(qtbot, win, GRAPH).error is None

    # Stopped (SIGSTOP): the heartbeat misses it; no Restart offered, then it is back.
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        qtbot.waitUntil(lambda: win.session.frozen, timeout=15_000)
        assert any("attached kernel has not answered" in e for e in events)
        assert not win.restart_button.isVisibleTo(win)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    qtbot.waitUntil(lambda: not win.session.frozen, timeout=15_000)

    # Closing the window detaches: the kernel lives on.
    win.close()
    assert win.session.state == "stopped"
    qtbot.wait(1000)
    assert proc.poll() is None, "closing the window must not kill an attached kernel"


def test_a_session_attaches_again_and_only_its_own_kernel_is_stopped(qtbot, kernel):
    """A window with a kernel of its own connects to another: its own kernel is shut
    down (it started it), the attached one is detached from, never stopped."""
    path, proc = kernel
    session = Session()
    with qtbot.waitSignal(session.ready, timeout=90_000):
        session.start()
    own_pid = session.kernel_pid()
    assert session.owns_kernel
    with qtbot.waitSignal(session.ready, timeout=90_000):
        assert session.attach(path)
    assert session.kernel_pid() == proc.pid
    qtbot.waitUntil(lambda: not _alive(own_pid), timeout=15_000)
    session.shutdown()
    qtbot.wait(500)
    assert proc.poll() is None

    # Attached again by a fresh session: the kernel side is sent again and works.
    again = Session()
    with qtbot.waitSignal(again.ready, timeout=90_000):
        assert again.attach(path)
    got = []
    again.run_result.connect(got.append)
    again.run(GRAPH)
    qtbot.waitUntil(lambda: bool(got), timeout=60_000)
    assert got[-1].error is None
    again.shutdown()
    assert proc.poll() is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_bad_connection_file_is_a_sentence_and_keeps_the_session(qtbot, tmp_path):
    session = Session()
    events = events_of(session)
    assert not session.attach(str(tmp_path / "kernel-nope.json"))
    assert events and events[-1].startswith("Could not connect:") and "no such connection file" in events[-1]
    (tmp_path / "bad.json").write_text("not json")
    assert not session.attach(str(tmp_path / "bad.json"))
    assert "not a kernel connection file" in events[-1]
    assert session.state == "stopped" and session.owns_kernel


def test_a_version_mismatch_is_reported_not_crashed_on(qtbot, kernel, monkeypatch):
    path, proc = kernel
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", protocol.PROTOCOL_VERSION + 97)
    session = Session()
    events = events_of(session)
    assert session.attach(path)
    qtbot.waitUntil(lambda: session.state == "broken", timeout=90_000)
    assert any("version mismatch" in e and "speaks protocol" in e for e in events)
    session.restart()  # refused: not ours
    assert events[-1] == NOT_OURS and session.state == "broken"
    session.shutdown()
    assert proc.poll() is None


def test_connect_to_kernel_is_in_the_file_menu(qtbot, home, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    from gui.main_window import MainWindow

    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    file_menu = win.menuBar().actions()[0].menu()
    connect = next(a for a in file_menu.actions() if a.text() == "Connect to &kernel…")
    # The dialog answers with a file that is no kernel's: one sentence in the status bar.
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(tmp_path / "kernel-nope.json"), ""))
    events = events_of(win.session)
    connect.trigger()
    assert events and "no such connection file" in events[-1]
    assert win.restart_act.isEnabled()
    win.states.kernel.set_attached("attached: kernel-1.json at 127.0.0.1:5555")
    assert not win.restart_act.isEnabled()
    assert "attached: kernel-1.json" in win.status_label.text()


def test_a_kernel_its_owner_restarts_gets_torchscope_loaded_again(qtbot, home, kernel, tmp_path):
    """A notebook's Restart: a new process on the same connection file. The window
    tells it by its messages (another session id, or "starting"), loads its side into
    it again and sends the text again: the user's next run just works."""
    from gui.main_window import MainWindow

    path, proc = kernel
    win = MainWindow(existing=path)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.session.ready, timeout=90_000):
        pass
    assert run_and_wait(qtbot, win, GRAPH).error is None
    os.killpg(proc.pid, signal.SIGKILL)  # what the notebook's manager does, then starts anew
    proc.wait(10)
    again = subprocess.Popen([PYTHON, "-m", "ipykernel_launcher", "-f", path], cwd=tmp_path,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        qtbot.wait(3000)  # the new kernel is up; whatever it said may have been missed
        result = run_and_wait(qtbot, win, GRAPH)
        assert result.error is None and f"ran in {again.pid}" in result.stdout
        assert win.session.kernel_pid() == again.pid
    finally:
        win.close()
        os.killpg(again.pid, signal.SIGKILL)
        again.wait(10)
