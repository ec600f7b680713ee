"""The script on disk: autosave, New/Open/Save, recent files, and the settings file.

The editor's text is saved every few seconds and on quit to an autosave file,
whether or not the user saved it to a .py file, and restored on the next launch.
The persistent part of every state object goes to settings.ini.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from gui.state import States

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = PROJECT_ROOT / "resources" / "examples"
AUTOSAVE_MS = 2000


def settings_dir() -> Path:
    """Where settings and the autosaved text live ($TORCHSCOPE_HOME overrides)."""
    home = os.environ.get("TORCHSCOPE_HOME")
    if home:
        return Path(home)
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.AppConfigLocation)
    return Path(base or Path.home() / ".config") / "torchscope"


def example_title(path: Path) -> str:
    """An example's menu title: its first comment line, else its file name."""
    first = path.read_text(encoding="utf-8").splitlines()[:1]
    if first and first[0].startswith("#"):
        return first[0].lstrip("# ").strip()
    return path.stem


class ScriptFiles(QtCore.QObject):
    loaded = QtCore.Signal()  # a new text was put in the editor (open, new, example)
    message = QtCore.Signal(str)  # a sentence for the status bar and the output pane

    def __init__(self, states: States, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.states = states
        self.window = parent
        self.home = settings_dir()
        self.home.mkdir(parents=True, exist_ok=True)
        self.autosave_path = self.home / "autosave.py"
        self.settings = QtCore.QSettings(str(self.home / "settings.ini"), QtCore.QSettings.IniFormat)
        self.autosave_dirty = False
        states.script.document.contentsChanged.connect(self._mark_autosave)
        self.timer = QtCore.QTimer(self, interval=AUTOSAVE_MS)
        self.timer.timeout.connect(self.autosave)
        self.timer.start()

    def _mark_autosave(self) -> None:
        self.autosave_dirty = True

    # --- launch and quit --------------------------------------------------------------
    def restore(self) -> None:
        """The states as last saved, and the text as last typed (or the first example)."""
        try:
            self.states.from_dict(json.loads(self.settings.value("states", "{}")))
        except (TypeError, ValueError):
            pass
        script = self.states.script
        path, dirty = script.path, script.dirty
        if self.autosave_path.exists():
            script.set_text(self.autosave_path.read_text(encoding="utf-8"))
        else:
            script.set_text((EXAMPLES_DIR / "01_computation_graph.py").read_text(encoding="utf-8"))
        script.set_file(path, dirty)
        self.autosave_dirty = False

    def save_all(self) -> None:
        """On quit: the text and every state's persistent part."""
        self.autosave_dirty = True
        self.autosave()
        self.settings.setValue("states", json.dumps(self.states.as_dict()))
        self.settings.sync()
        self.timer.stop()

    def autosave(self) -> None:
        if not self.autosave_dirty:
            return
        tmp = self.autosave_path.with_suffix(".tmp")
        tmp.write_text(self.states.script.text(), encoding="utf-8")
        tmp.replace(self.autosave_path)  # atomic: a crash mid-write keeps the old copy
        self.settings.setValue("states", json.dumps(self.states.as_dict()))
        self.autosave_dirty = False

    # --- files ------------------------------------------------------------------------
    def new_file(self) -> None:
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
        self._load(text, None if example else str(path))
        if not example:
            self.states.settings.add_recent(str(path))
        return True

    def _load(self, text: str, path: str | None) -> None:
        self.states.script.set_text(text)
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
