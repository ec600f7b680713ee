"""The export contract does not drift: every bundled example (and three scripts with
--backward) exports the same JSON keys and values, and the same DOT text, as the
files recorded before the restructure (tests/core/golden/). New keys may be added
(the contract grows by new keys only); none may change or go. Edges of the new kinds
("view", "data": issue 9) are new entries, not changed ones, so the comparison takes
autograd edges only. The .dot files were recorded again when tensor nodes began to
show their values (issue 9): `python main.py EXAMPLE --export tests/core/golden/NAME.dot`."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLES = sorted((ROOT / "resources" / "examples").glob("*.py"))
sys.path.insert(0, str(GOLDEN))
from backward_scripts import SCRIPTS  # noqa: E402


def assert_contains(now, before, where="$"):
    """`now` holds every key and value of `before` (objects may gain keys)."""
    if isinstance(before, dict):
        assert isinstance(now, dict), where
        for k, v in before.items():
            assert k in now, f"{where}.{k} is gone"
            assert_contains(now[k], v, f"{where}.{k}")
    elif isinstance(before, list):
        assert isinstance(now, list) and len(now) == len(before), where
        for i, (a, b) in enumerate(zip(now, before)):
            assert_contains(a, b, f"{where}[{i}]")
    else:
        assert now == before, f"{where}: {now!r} != {before!r}"


def autograd_only(data: dict) -> dict:
    return {**data, "edges": [e for e in data["edges"] if "kind" not in e]}


def export(out: Path, script: Path, *extra: str) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--export", str(out), str(script),
                           *extra], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("example", [p for p in EXAMPLES if (GOLDEN / f"{p.stem}.json").exists()],
                         ids=lambda p: p.stem)
def test_example_exports_as_before(example, tmp_path):
    export(tmp_path / "g.json", example.relative_to(ROOT))
    export(tmp_path / "g.dot", example.relative_to(ROOT))
    assert_contains(autograd_only(json.loads((tmp_path / "g.json").read_text())),
                    json.loads((GOLDEN / f"{example.stem}.json").read_text()))
    assert (tmp_path / "g.dot").read_text() == (GOLDEN / f"{example.stem}.dot").read_text()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_backward_exports_as_before(name, tmp_path):
    root, code = SCRIPTS[name]
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    export(tmp_path / "g.json", script, "--backward", root)
    assert_contains(autograd_only(json.loads((tmp_path / "g.json").read_text())),
                    json.loads((GOLDEN / f"{name}.json").read_text()))
