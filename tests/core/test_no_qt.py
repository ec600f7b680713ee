"""Rule 1 of the house: core/ never imports Qt, pyqtgraph or gui. Rule 2: only the
kernel side (core.kernel) imports torch; what the window reads is torch-free. And
the modules of core/ import each other without a cycle."""
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
    assert {"core.model.graph", "core.model.tensors", "core.model.backward", "core.model.run",
            "core.kernel.runner", "core.kernel.trace", "core.kernel.tensors", "core.kernel.record",
            "core.kernel.serve", "core.protocol", "core.labels", "core.layout", "core.export",
            "core.style", "core.hooks"} <= set(CORE_MODULES)
    # the modules the restructure removed stay removed
    assert not {"core.graph", "core.probe", "core.tensors", "core.backward"} & set(CORE_MODULES)


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
    "import torch", "from core.model.graph import Graph", "from .model import graph",
    "import guitar", "from typing import Any",
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
    out = run_check(["core.model.graph", "PySide6.QtCore"])
    assert "PySide6" in out["bad"]


# --- the window's side of core/ needs no torch ---------------------------------------------

WINDOW_SIDE = sorted([m for m in CORE_MODULES if m.startswith("core.model")]
                     + ["core.labels", "core.layout", "core.protocol", "core.export", "core.style",
                        "core.hooks"])

TORCH_CHECK = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ("torch", "torchvision"))))
"""


def torch_modules_after_importing(modules) -> list[str]:
    res = subprocess.run([sys.executable, "-c", TORCH_CHECK.format(modules=modules)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_window_side_modules_do_not_import_torch():
    assert {"core.model.graph", "core.model.run", "core.protocol"} <= set(WINDOW_SIDE)
    assert torch_modules_after_importing(WINDOW_SIDE) == []


def test_torch_check_sees_torch_when_it_is_imported():
    assert "torch" in torch_modules_after_importing(["core.model.graph", "core.kernel.tensors"])


# --- no import cycle among the modules of core/ ---------------------------------------------

def module_name(path: Path, root: Path = ROOT) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def core_imports(path: Path, known: set[str], root: Path = ROOT) -> set[str]:
    """The core modules `path` imports (anywhere in the file), relative imports resolved:
    `from ..model.graph import X` -> core.model.graph; `from . import trace` ->
    core.kernel.trace when that is a module, else the package itself."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            # `import core.model.graph` also runs core and core.model: the deepest known
            # module is the one that matters for a cycle between modules.
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph(files, root: Path = ROOT) -> dict[str, set[str]]:
    known = {module_name(p, root) for p in files}
    return {module_name(p, root): core_imports(p, known, root) for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as [a, b, ..., a], or None: depth-first search with colours."""
    colour = {n: 0 for n in graph}  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n):
        colour[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if colour.get(m, 2) == 1:
                return stack[stack.index(m):] + [m]
            if colour.get(m) == 0:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        colour[n] = 2
        return None

    for n in sorted(graph):
        if colour[n] == 0:
            found = visit(n)
            if found:
                return found
    return None


def test_core_imports_are_resolved():
    graph = import_graph(CORE_FILES)
    assert set(graph) == set(CORE_MODULES)
    assert "core.model.graph" in graph["core.protocol"]  # from .model.graph import ...
    assert "core.model.backward" in graph["core.kernel.record"]  # from ..model.backward import ...
    assert "core.kernel.runner" in graph["core.kernel.serve"]
    assert "core.labels" in graph["core.layout"]
    assert all(m in graph for deps in graph.values() for m in deps)


def test_no_import_cycle_in_core():
    assert find_cycle(import_graph(CORE_FILES)) is None


def test_cycle_check_finds_a_cycle(tmp_path):
    pkg = tmp_path / "core"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub.b import f\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (pkg / "c.py").write_text("import core.a\n")
    graph = import_graph(sorted(pkg.rglob("*.py")), root=tmp_path)
    assert graph["core.a"] == {"core.sub.b"} and graph["core.sub.b"] == {"core.c"}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"core.a", "core.sub.b", "core.c"}
