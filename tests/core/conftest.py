"""Fixtures for the engine tests: a fresh `Runner` per test (it keeps the last
run's namespace, as the kernel does between requests)."""
import sys
from pathlib import Path

import pytest

from core.kernel.runner import Runner

# the helpers next to the tests (wire_check), whatever pytest's import mode
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def runner() -> Runner:
    return Runner()
