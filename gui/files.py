"""The script on disk: autosave, recovery, New/Open/Save, recent files, settings.

Nothing typed is ever lost. Each window autosaves its text every few seconds to a
file of its own (`autosave/<id>.py`, with `<id>.json` for its file name), written
atomically under a unique temporary name and readable only by the user; a lock file
marks it as in use. At launch, the newest text that no running window holds comes
back into the editor and every other one is offered under File → Recover. A file
that cannot be read is moved aside (`.corrupt-<time>`) and the user is told; a
settings folder that cannot be made is replaced by a temporary one, also said.
"""
from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from core.examples import CHAPTERS, EXAMPLES_DIR, example_title
from gui.state import States

AUTOSAVE_MS = 2000
KEEP_RECOVERABLE = 20
_WINDOWS = itertools.count()  # windows made by this process (tests make many)


def settings_dir() -> Path:
    """Where settings and the autosaved text live ($TORCHSCOPE_HOME overrides)."""
    home = os.environ.get("TORCHSCOPE_HOME")
    if home:
        return Path(home)
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.AppConfigLocation)
    return Path(base or Path.home() / ".config") / "torchscope"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (a unique temporary file beside it, then a
    rename), readable by the user alone."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    return aside


@dataclass
class Recoverable:
    """The text a window left behind (it quit, or crashed)."""
    text_file: Path
    script: str | None  # the .py it was editing, if saved once
    saved_at: float
    dirty: bool = True  # it differs from that .py

    def title(self) -> str:
        name = Path(self.script).name if self.script else "untitled"
        return f"{name} — {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.saved_at))}"

    def forget(self) -> None:
        for p in (self.text_file, self.text_file.with_suffix(".json")):
            p.unlink(missing_ok=True)


class ScriptFiles(QtCore.QObject):
    loaded = QtCore.Signal()  # a new text was put in the editor (open, new, example, recover)
    message = QtCore.Signal(str)  # a sentence for the status bar and the output pane
    warning = QtCore.Signal(str)  # a lasting problem ("" when it is over): shown until solved
    recoverable_changed = QtCore.Signal()

    def __init__(self, states: States, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.states = states
        self.window = parent
        self.notes: list[str] = []  # said once the window is up (restore)
        self.home = self._make_home()
        self.autosave_dir = self.home / "autosave"
        self.autosave_dir.mkdir(mode=0o700, exist_ok=True)
        self.id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(_WINDOWS)}"
        self.autosave_path = self.autosave_dir / f"{self.id}.py"
        self.lock = QtCore.QLockFile(str(self.autosave_dir / f"{self.id}.lock"))
        self.lock.setStaleLockTime(0)
        self.lock.tryLock(0)
        self.settings = self._open_settings()
        states.script.scratch = str(self.home / "scratch")
        Path(states.script.scratch).mkdir(mode=0o700, exist_ok=True)
        self.recoverable: list[Recoverable] = []
        self.autosave_dirty = False
        self.autosave_failed = ""  # the reason, while autosave cannot write
        self.ask = ask_user  # replaced in tests
        states.script.document.contentsChanged.connect(self._mark_autosave)
        self.timer = QtCore.QTimer(self, interval=AUTOSAVE_MS)
        self.timer.timeout.connect(self.autosave)
        self.timer.start()

    def _make_home(self) -> Path:
        home = settings_dir()
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(home, 0o700)
            return home
        except OSError as exc:
            fallback = Path(tempfile.mkdtemp(prefix="torchscope-"))
            self.notes.append(f"The settings folder {home} cannot be used ({exc.strerror or exc}); "
                              f"this window keeps its settings and autosave in {fallback} instead.")
            return fallback

    def _open_settings(self) -> QtCore.QSettings:
        path = self.home / "settings.ini"
        settings = QtCore.QSettings(str(path), QtCore.QSettings.IniFormat)
        if settings.status() != QtCore.QSettings.NoError or path.is_dir():
            settings = None
            try:
                aside = move_aside(path)
                self.notes.append(f"{path} could not be read; it was moved to {aside.name} and the "
                                  "default settings are used.")
            except OSError as exc:
                self.notes.append(f"{path} could not be read ({exc}); the default settings are used.")
            settings = QtCore.QSettings(str(path), QtCore.QSettings.IniFormat)
        return settings

    def _mark_autosave(self) -> None:
        self.autosave_dirty = True

    # --- launch and quit --------------------------------------------------------------
    def restore(self) -> None:
        """The states as last saved, and the newest text no window holds (or the first
        example); every other such text under File → Recover."""
        for note in self.notes:
            self.message.emit(note)
        try:
            self.states.from_dict(json.loads(self.settings.value("states", "{}")))
        except (TypeError, ValueError, AttributeError):
            self.message.emit("The saved settings could not be read; the defaults are used.")
        found = self._left_behind()
        script = self.states.script
        if found:
            newest = found.pop(0)
            script.set_text(newest.text_file.read_text(encoding="utf-8"))
            script.set_file(newest.script, newest.script is None or newest.dirty)
            newest.forget()  # it lives on in this window's own autosave
        else:
            script.set_text((EXAMPLES_DIR / "01_computation_graph.py").read_text(encoding="utf-8"))
            script.set_file(None, False)
        for old in found[KEEP_RECOVERABLE:]:
            old.forget()
        self.recoverable = found[:KEEP_RECOVERABLE]
        self.recoverable_changed.emit()
        self.autosave_dirty = True
        self.autosave()

    def _left_behind(self) -> list[Recoverable]:
        """Texts whose window is gone, newest first; unreadable ones moved aside."""
        out = []
        candidates = sorted(self.autosave_dir.glob("*.py"))
        legacy = self.home / "autosave.py"  # one file for all windows, before 0.2
        if legacy.exists() or legacy.is_symlink():
            candidates.append(legacy)
        for path in candidates:
            if path == self.autosave_path:
                continue
            if path != legacy:
                lock = QtCore.QLockFile(str(path.with_suffix(".lock")))
                lock.setStaleLockTime(0)
                if not lock.tryLock(0):
                    continue  # another window is running with it
                lock.unlock()
            try:
                path.read_text(encoding="utf-8")
                meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8")) \
                    if path.with_suffix(".json").exists() else {}
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                self._set_aside(path, exc)
                continue
            out.append(Recoverable(path, meta.get("script") or None, path.stat().st_mtime,
                                   bool(meta.get("dirty", True))))
        return sorted(out, key=lambda r: r.saved_at, reverse=True)

    def _set_aside(self, path: Path, exc: Exception) -> None:
        why = "it is a folder" if path.is_dir() else ("it is not UTF-8 text" if isinstance(
            exc, UnicodeDecodeError) else str(exc))
        try:
            aside = move_aside(path)
            self.message.emit(f"An autosaved script could not be read ({why}); it was moved to "
                              f"{aside} and left untouched.")
        except OSError as err:
            self.message.emit(f"An autosaved script could not be read ({why}) nor moved aside ({err}).")

    def fill_recover_menu(self, menu: QtWidgets.QMenu) -> None:
        """File → Recover: one entry per text another window left behind."""
        menu.clear()
        for found in self.recoverable:
            act = menu.addAction(found.title())
            act.triggered.connect(lambda _=False, f=found: self.recover(f))
        menu.setEnabled(bool(self.recoverable))

    def fill_examples_menu(self, menu: QtWidgets.QMenu) -> None:
        """Examples: a submenu per chapter of the tutorial (core.examples.CHAPTERS)."""
        for chapter, names in CHAPTERS:
            chapter_menu = menu.addMenu(chapter)
            for name in names:
                path = EXAMPLES_DIR / name
                act = chapter_menu.addAction(example_title(path))
                act.triggered.connect(lambda _=False, p=path: self.open_file(p, example=True))

    def recover(self, found: Recoverable) -> None:
        if not self.confirm_replace():
            return
        try:
            text = found.text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.message.emit(f"Could not recover {found.title()}: {exc}")
            return
        self.states.script.set_text(text)
        self.states.script.set_file(found.script, True)
        found.forget()
        self.recoverable.remove(found)
        self.recoverable_changed.emit()
        self.loaded.emit()

    def autosave(self) -> bool:
        if not self.autosave_dirty:
            return not self.autosave_failed
        script = self.states.script
        try:
            write_private(self.autosave_path, script.text())
            write_private(self.autosave_path.with_suffix(".json"),
                          json.dumps({"script": script.path, "dirty": script.dirty}))
            self.settings.setValue("states", json.dumps(self.states.as_dict()))
        except OSError as exc:
            if not self.autosave_failed:
                self.warning.emit(f"Autosave cannot write to {self.autosave_dir} ({exc.strerror or exc}). "
                                  "Your text is only in this window: save it with File → Save As.")
            self.autosave_failed = str(exc)
            return False
        if self.autosave_failed:
            self.autosave_failed = ""
            self.warning.emit("")
        self.autosave_dirty = False
        return True

    def may_close(self) -> bool:
        """Save what can be saved. If the text is neither autosaved nor in its file,
        quitting must not discard it: offer Save As, or staying."""
        self.autosave_dirty = True
        saved = self.autosave()
        script = self.states.script
        if not saved and (script.dirty or not script.path):
            answer = self.ask(self.window, "Your text is not saved anywhere",
                              f"Autosave cannot write ({self.autosave_failed}), and the script is not "
                              "saved to a file. Save it before quitting?", ("Save As…", "Cancel"))
            if answer != "Save As…" or not self.save_as():
                return False
        return True

    def close_down(self) -> None:
        """The window is going: settings written (private), this window's lock let go."""
        self.timer.stop()
        self.settings.sync()
        try:
            os.chmod(self.home / "settings.ini", 0o600)
        except OSError:
            pass  # not written (a read-only folder): nothing to protect
        self.lock.unlock()

    # --- files ------------------------------------------------------------------------
    def confirm_replace(self) -> bool:
        """Before New, Open, an example or Recover: unsaved text is saved, dropped (it
        stays one Ctrl+Z away), or kept by cancelling."""
        script = self.states.script
        if not script.dirty:
            return True
        name = Path(script.path).name if script.path else "The untitled script"
        answer = self.ask(self.window, "Unsaved changes", f"{name} has changes that are not saved "
                          "to a file. Save them first?", ("Save", "Don't save", "Cancel"))
        if answer == "Save":
            return self.save()
        return answer == "Don't save"

    def new_file(self) -> None:
        if self.confirm_replace():
            self._load("import torch\n\n", None)

    def open_dialog(self) -> None:
        path = self.states.script.path
        start = str(Path(path).parent) if path else str(Path.home())
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Open script", start, "Python (*.py)")
        if path:
            self.open_file(Path(path))

    def open_file(self, path: Path, example: bool = False) -> bool:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.message.emit(f"Could not open {path}: {exc}")
            return False
        if not self.confirm_replace():
            return False
        self._load(text, None if example else str(path), str(path) if example else None)
        if not example:
            self.states.settings.add_recent(str(path))
        return True

    def _load(self, text: str, path: str | None, example: str | None = None) -> None:
        self.states.script.set_text(text)
        self.states.script.example = example
        self.states.script.set_file(path, False)
        self.loaded.emit()

    def save(self) -> bool:
        path = self.states.script.path
        return self.save_to(Path(path)) if path else self.save_as()

    def save_as(self) -> bool:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, "Save script as", str(Path.home()),
                                                        "Python (*.py)")
        if not path:
            return False
        if not path.endswith(".py"):
            path += ".py"
        return self.save_to(Path(path))

    def save_to(self, path: Path) -> bool:
        try:
            path.write_text(self.states.script.text(), encoding="utf-8")
        except OSError as exc:
            QtWidgets.QMessageBox.warning(self.window, "Save failed", f"Could not save {path}:\n{exc}")
            return False
        self.states.script.set_file(str(path), False)
        self.states.settings.add_recent(str(path))
        self.message.emit(f"Saved {path}")
        return True


def ask_user(parent, title: str, text: str, buttons: tuple[str, ...]) -> str:
    """A question with named buttons; returns the one pressed (the last on Esc)."""
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Warning, title, text, parent=parent)
    made = [box.addButton(b, QtWidgets.QMessageBox.RejectRole if b == "Cancel"
                          else QtWidgets.QMessageBox.AcceptRole) for b in buttons]
    box.setEscapeButton(made[-1])
    box.exec()
    clicked = box.clickedButton()
    return buttons[made.index(clicked)] if clicked in made else buttons[-1]
