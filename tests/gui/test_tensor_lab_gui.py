"""The tensor chapter in the window: a real run's graph (from the kernel's runner, in
process) drawn and inspected as a user clicks through it."""
from __future__ import annotations

import pytest

from core.kernel.runner import Runner
from gui.actions import Actions
from gui.panels.graph import GraphPanel
from gui.panels.inspector import InspectorPanel
from gui.session import Session
from gui.state import States

SCRIPT = """import numpy as np
import torch
x = torch.arange(6.).reshape(2, 3)
v = x.t()
c = torch.cat([x, x])
x.add_(1)
a = np.ones(3)
t = torch.from_numpy(a)
"""


@pytest.fixture
def states():
    s = States()
    result = Runner().run(SCRIPT, "lab.py")
    assert result.error is None
    s.run.set_result(result)
    return s


def node(states, name):
    return next(n for n in states.run.graph.nodes if getattr(n, "name", None) == name)


def test_inspector_lists_every_attribute_of_the_tutorial(qtbot, states):
    inspector = InspectorPanel(states)
    qtbot.addWidget(inspector)
    states.selection.set(node(states, "v").id)
    text = inspector.toPlainText()
    for word in ("shape", "dtype", "device", "requires_grad", "is_leaf", "grad_fn", "grad",
                 "stride", "storage_offset", "is_contiguous()", "_version", "element_size()", "bytes"):
        assert word in text, word
    assert "(1, 3)" in text and "False" in text  # x.t(): strides swapped, not contiguous
    assert "1 (changed in place)" in text  # a view shares its base's version counter
    states.selection.set(node(states, "x").id)
    assert "add_ (line 6)" in inspector.toPlainText()
    states.selection.set(node(states, "c").id)
    assert "made by" in inspector.toPlainText() and "cat(…) on line 5" in inspector.toPlainText()


def test_an_array_is_a_node_that_names_its_tensor_twin(qtbot, states):
    inspector = InspectorPanel(states)
    qtbot.addWidget(inspector)
    states.selection.set(node(states, "a").id)
    text = inspector.toPlainText()
    assert "NumPy array" in text and "shares memory with" in text and "t" in text.split("shares memory with")[1]


def test_graph_draws_arrays_values_and_storage_edges(qtbot, states):
    panel = GraphPanel(states, Actions(states, Session()))
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: len(panel.scene.items_by_id) == 5, timeout=5000)
    lines = {item.lines[0]: item.lines for item in panel.scene.items_by_id.values()}
    assert lines["x"][-3:] == ["[1, 2, 3]", "[4, 5, 6]", "in place: add_"]
    assert "ndarray (3,) float64" in lines["a"]
    assert lines["c"][2] == "= cat(…)"
