"""Where a script runs: its own folder, current and first on sys.path, and nothing
of that left behind afterwards. Used by the runner and by the requests that read
the script's files later (a data batch)."""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def working_folder(cwd: str | None):
    """Run in `cwd` (when given), with it first on sys.path; afterwards the current
    directory and sys.path are what they were, whatever the script changed."""
    path = list(sys.path)
    try:
        before = os.getcwd()
    except OSError:  # the kernel's own folder was deleted
        before = None
    try:
        if cwd is not None:
            os.chdir(cwd)
            sys.path.insert(0, cwd)
        yield
    finally:
        sys.path[:] = path
        if before is not None:
            with contextlib.suppress(OSError):
                os.chdir(before)
