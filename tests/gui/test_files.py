"""Nothing typed is lost and the app always starts: autosave that cannot write, two
windows on one settings folder, recovery, unsaved text before New/Open, private
files, and broken files at launch. Real files in a temporary folder (a path under a
regular file stands for a folder that cannot be written: the tests run as root, for
whom permission bits do not stop a write)."""
from __future__ import annotations

import stat
import threading

import pytest

from gui.main_window import MainWindow

SCRIPT = "import torch; mine = torch.ones(2)"


def window(qtbot, answers=None):
    """A window without a kernel; `answers` are what the user clicks in questions."""
    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    asked = []

    def ask(parent, title, text, buttons):
        asked.append((title, text, buttons))
        return answers.pop(0) if answers else buttons[-1]
    win.files.ask = ask
    win.asked = asked
    return win


def type_into(qtbot, win, text):
    win.editor.editor.selectAll()
    qtbot.keyClicks(win.editor.editor, text)


def test_autosave_that_cannot_write_warns_once_and_quit_keeps_the_text(qtbot, home, tmp_path):
    win = window(qtbot, answers=["Cancel"])
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    win.files.autosave_path = blocker / "autosave.py"  # every write fails: ENOTDIR
    events = []
    win.states.kernel.event.connect(events.append)
    type_into(qtbot, win, "x = 1")
    assert not win.files.autosave()
    win.files.autosave_dirty = True
    win.files.autosave()
    assert sum("Autosave cannot write" in e for e in events) == 1  # warned once, not every 2 s
    assert win.warning_label.isVisibleTo(win) and "Save As" in win.warning_label.text()
    assert not win.close()  # quit refused: the user pressed Cancel
    assert win.asked and win.asked[0][2] == ("Save As…", "Cancel")
    assert win.isVisible() or win.editor.text() == "x = 1"
    saved = tmp_path / "kept.py"
    win.files.save_as = lambda: win.files.save_to(saved)
    win.files.ask = lambda *a: "Save As…"
    assert win.close()
    assert saved.read_text() == "x = 1"


def test_two_windows_keep_their_own_text_and_both_come_back(qtbot, home):
    first, second = window(qtbot), window(qtbot)
    assert first.files.autosave_path != second.files.autosave_path
    type_into(qtbot, first, "first = 1")
    type_into(qtbot, second, "second = 2")
    first.files.autosave()
    second.files.autosave()
    second.close()
    first.close()  # the last to quit no longer overwrites the other's text
    again = window(qtbot, answers=["Don't save"])
    texts = {again.editor.text()} | {f.text_file.read_text() for f in again.files.recoverable}
    assert {"first = 1", "second = 2"} <= texts
    assert again.recover_menu.isEnabled() and len(again.recover_menu.actions()) == 1
    other = again.files.recoverable[0]
    expected = other.text_file.read_text()
    again.recover_menu.actions()[0].trigger()
    assert again.editor.text() == expected and not again.files.recoverable


def test_a_running_windows_text_is_not_taken_by_a_new_one(qtbot, home):
    first = window(qtbot)
    type_into(qtbot, first, "still open")
    first.files.autosave()
    second = window(qtbot)
    assert second.editor.text() != "still open"
    assert all(f.text_file != first.files.autosave_path for f in second.files.recoverable)


def test_autosave_is_atomic_under_a_reader(qtbot, home):
    """A reader never sees a missing or empty file while the window saves 300 times."""
    win = window(qtbot)
    type_into(qtbot, win, SCRIPT)
    path = win.files.autosave_path
    win.files.autosave()
    bad = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            try:
                if path.read_text() != SCRIPT:
                    bad.append("changed")
            except FileNotFoundError:
                bad.append("missing")
    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(300):
        win.files.autosave_dirty = True
        assert win.files.autosave()
    stop.set()
    reader.join()
    assert bad == []
    assert not list(path.parent.glob("*.tmp"))


def test_files_are_private(qtbot, home):
    win = window(qtbot)
    type_into(qtbot, win, SCRIPT)
    win.files.autosave()
    win.close()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "autosave").stat().st_mode) == 0o700
    for p in list((home / "autosave").glob("*.py")) + [home / "settings.ini"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


@pytest.mark.parametrize("answer, replaced", [("Cancel", False), ("Don't save", True)])
def test_an_example_over_unsaved_text_asks_first(qtbot, home, answer, replaced):
    win = window(qtbot, answers=[answer])
    type_into(qtbot, win, "precious = 1")
    chapters = [a.menu() for m in win.menuBar().actions() if m.text() == "E&xamples" for a in m.menu().actions()]
    examples = [a for c in chapters if c for a in c.actions()]  # grouped by the tutorial's chapters
    examples[0].trigger()
    assert win.asked and win.asked[0][0] == "Unsaved changes"
    assert (win.editor.text() != "precious = 1") == replaced
    if replaced:
        win.editor.editor.undo()  # dropped text is one Ctrl+Z away
        assert win.editor.text() == "precious = 1"


def test_new_file_over_unsaved_text_can_save_it(qtbot, home, tmp_path):
    win = window(qtbot, answers=["Save"])
    type_into(qtbot, win, "precious = 2")
    target = tmp_path / "p.py"
    win.files.save_as = lambda: win.files.save_to(target)
    win.files.new_file()
    assert target.read_text() == "precious = 2" and win.editor.text() == "import torch\n\n"


def test_unreadable_autosave_is_moved_aside_and_the_window_opens(qtbot, home):
    (home / "autosave").mkdir(parents=True)
    (home / "autosave" / "old-1.py").write_bytes(b"x = '\xff\xfe'\n")
    (home / "autosave" / "old-2.py").mkdir()
    (home / "autosave.py").write_bytes(b"\xff")
    events = []
    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    assert "x = 1" not in win.editor.text() and win.editor.text()  # the first example
    names = sorted(p.name for p in (home / "autosave").iterdir())
    assert any(n.startswith("old-1.py.corrupt-") for n in names)
    assert any(n.startswith("old-2.py.corrupt-") for n in names)
    assert any(p.name.startswith("autosave.py.corrupt-") for p in home.iterdir())
    text = win.console.toPlainText()
    assert "not UTF-8" in text and "is a folder" in text
    del events


def test_garbage_geometry_is_ignored_and_said(qtbot, home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.ini").write_text("[General]\ngeometry=garbage\nstate=also garbage\nstates=not json\n")
    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    assert win.width() > 0
    assert "window geometry" in win.console.toPlainText()


def test_a_settings_folder_that_cannot_be_made_falls_back(qtbot, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TORCHSCOPE_HOME", str(blocker / "home"))
    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    assert win.files.home != blocker / "home" and win.files.home.is_dir()
    assert "cannot be used" in win.console.toPlainText()
    type_into(qtbot, win, "ok = 1")
    assert win.files.autosave()
    win.close()


def test_legacy_single_autosave_comes_back(qtbot, home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "autosave.py").write_text("legacy = 1\n")
    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    assert win.editor.text() == "legacy = 1\n"
