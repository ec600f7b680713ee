"""Rule 1 of the house: core/ never imports Qt, pyqtgraph or gui."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"
FORBIDDEN = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "qtpy", "pyqtgraph", "gui")

CORE_FILES = sorted(CORE.rglob("*.py"))
CORE_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in CORE_FILES)


def forbidden_imports(source: str, filename: str = "<src>") -> list[str]:
    """Every import (anywhere in the file, even inside a function) of a forbidden package."""
    bad = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from ..gui import x / from .. import gui
                names = [node.module or ""] + ([a.name for a in node.names] if not node.module else [])
            else:
                names = [node.module or ""]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module")))):
            names = [node.args[0].value]
        else:
            continue
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                bad.append(f"{filename}:{node.lineno}: {name}")
    return bad


def test_core_has_modules():
    assert {"core.graph", "core.probe", "core.protocol", "core.tensors"} <= set(CORE_MODULES)


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_forbidden_import_lines(path):
    assert forbidden_imports(path.read_text(), str(path)) == []


@pytest.mark.parametrize("snippet", [
    "from PySide6.QtCore import Signal",
    "import pyqtgraph as pg",
    "def f():\n    import qtpy.QtWidgets\n",
    "from gui.session import Session",
    "import gui",
    "from ..gui import panels",
    "from .. import gui",
    "import importlib\nimportlib.import_module('PySide6.QtGui')",
])
def test_static_check_catches_forbidden_imports(snippet):
    assert forbidden_imports(snippet)


@pytest.mark.parametrize("snippet", [
    "import torch", "from core.graph import Graph", "import guitar", "from typing import Any",
])
def test_static_check_allows_other_imports(snippet):
    assert forbidden_imports(snippet) == []


CHECK = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules
             if m.split('.')[0] in {forbidden!r})
print(json.dumps({{"imported": sorted(m for m in sys.modules if m.startswith("core")), "bad": bad}}))
"""


def run_check(modules):
    code = CHECK.format(modules=modules, forbidden=FORBIDDEN)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_importing_core_pulls_in_no_qt():
    out = run_check(CORE_MODULES)
    assert set(CORE_MODULES) <= set(out["imported"])
    assert out["bad"] == []


def test_subprocess_check_sees_qt_when_it_is_imported():
    # the same check, fed a module that does import Qt, must report it
    out = run_check(["core.graph", "PySide6.QtCore"])
    assert "PySide6" in out["bad"]
