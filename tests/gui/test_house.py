"""The rules of the house that a test can see: the window never imports torch, panels
are one file each in the panel table, the shell stays small, and the kernel side is
loaded under a private name (a user's own `core` package stays theirs)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_window_imports_no_torch():
    code = ("import json, sys, time\nt = time.perf_counter()\nimport gui.main_window\n"
            "print(json.dumps({'s': time.perf_counter() - t, 'mods': sorted(sys.modules)}))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    mods = json.loads(res.stdout.strip().splitlines()[-1])["mods"]
    assert not [m for m in mods if m.split(".")[0] in ("torch", "torchvision")]
    assert not [m for m in mods if m.startswith("core.kernel")]


def test_no_gui_file_imports_torch_or_the_kernel_side():
    for path in sorted((ROOT / "gui").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("torch", "torchvision"), f"{path}: {name}"
                assert not name.startswith("core.kernel"), f"{path}: {name}"


def test_every_panel_file_is_one_row_of_the_panel_table():
    from gui.main_window import PANELS

    modules = {spec.cls.__module__ for spec in PANELS}
    files = {f"gui.panels.{p.stem}" for p in (ROOT / "gui" / "panels").glob("*.py") if p.stem != "__init__"}
    assert modules == files
    assert len(modules) == len(PANELS)  # one panel, one file


def test_the_shell_stays_small():
    assert len((ROOT / "gui" / "main_window.py").read_text().splitlines()) <= 250


def test_panels_are_built_from_state_alone(qtbot):
    """Every panel of the table can be made with hand-made states and no kernel."""
    from gui.actions import Actions
    from gui.main_window import PANELS
    from gui.session import Session
    from gui.state import States

    states = States()
    actions = Actions(states, Session())
    for spec in PANELS:
        panel = spec.cls(states, actions)
        qtbot.addWidget(panel)


def test_a_users_own_core_package_is_not_shadowed(qtbot, home, tmp_path):
    """A script saved next to its own `core` package imports that one."""
    from gui.main_window import MainWindow

    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("MARK = 'the user\\'s own core'\n")
    script = tmp_path / "script.py"
    script.write_text("import torch, core\nprint(core.MARK)\nx = torch.ones(1, requires_grad=True)\n"
                      "y = x * 3\n")
    win = MainWindow()
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.session.ready, timeout=60_000):
        win.show()
    win.files.ask = lambda *a: "Don't save"
    with qtbot.waitSignal(win.session.run_result, timeout=30_000) as blocker:
        win.files.open_file(script)
    assert blocker.args[0].error is None, blocker.args[0].error
    assert "the user's own core" in win.console.toPlainText()
    assert "MulBackward0" in {i.lines[0] for i in win.graph.scene.items_by_id.values()}
    win.session.shutdown()
