"""Every bundled example is in the Examples table once, and every one runs from its
own folder without an error (offline: data examples read resources/data)."""
from __future__ import annotations

import pytest

from core.examples import CHAPTERS, EXAMPLES_DIR, example_paths, example_title
from core.kernel.runner import Runner


def test_every_example_file_is_listed_once():
    listed = [name for _, names in CHAPTERS for name in names]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(p.name for p in EXAMPLES_DIR.glob("*.py"))


@pytest.mark.parametrize("path", example_paths(), ids=lambda p: p.stem)
def test_every_example_runs(path):
    assert example_title(path) != path.stem, "the first line is a comment that titles it"
    result = Runner().run(path.read_text(encoding="utf-8"), str(path), timeout=120, cwd=str(EXAMPLES_DIR))
    assert result.error is None, result.error
