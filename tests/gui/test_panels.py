"""Each panel on hand-made state, no kernel (as napari tests QtDims(Dims(ndim=4))):
set the state, look at what is drawn; click, look at the state."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from core.model.backward import BackwardStep, BackwardTrace, GradInfo
from core.model.graph import Edge, Graph, OpNode, TensorNode
from core.model.run import RunError, RunResult
from core.model.tensors import Stats, TensorValues
from core.style import device_colour
from gui.actions import Actions
from gui.panels.backward import BackwardPanel
from gui.panels.console import ConsolePanel
from gui.panels.graph import GraphPanel
from gui.panels.inspector import InspectorPanel
from gui.session import Session
from gui.state import States


def tensor(id, name, leaf=True, grad_fn=None, grad=None, shape=(1,)):
    return TensorNode(id=id, key=f"t:{name}", name=name, shape=list(shape), dtype="float32",
                      device="cpu", requires_grad=True, is_leaf=leaf, grad_fn=grad_fn,
                      retains_grad=False, grad=None if grad is None else np.array(grad, np.float32),
                      has_grad=grad is not None)


def seed_graph() -> Graph:
    """x -> AccumulateGrad -> MulBackward0 -> y (y = x * 2)."""
    return Graph([tensor("t0", "x", grad=[2.0]), tensor("t1", "y", leaf=False, grad_fn="MulBackward0"),
                  OpNode("op0", "k0", "MulBackward0"), OpNode("op1", "k1", "AccumulateGrad")],
                 [Edge("t0", "op1"), Edge("op1", "op0"), Edge("op0", "t1")])


def grad(v):
    return GradInfo([1], "float32", abs(v), v, v, np.array([v], np.float32))


def seed_trace() -> BackwardTrace:
    return BackwardTrace("t1", "y", [
        BackwardStep(0, "op0", "MulBackward0", [grad(1.0)], [grad(2.0)]),
        BackwardStep(1, "op1", "AccumulateGrad", [grad(2.0)], [], leaf="t0", leaf_grad=grad(2.0))])


@pytest.fixture
def states():
    return States()


@pytest.fixture
def actions(states):
    return Actions(states, Session())


def labels(panel):
    return {item.lines[0] for item in panel.scene.items_by_id.values()}


def test_graph_panel_draws_the_run_state(qtbot, states, actions):
    panel = GraphPanel(states, actions)
    qtbot.addWidget(panel)
    assert labels(panel) == set()
    states.run.set_result(RunResult(seed_graph()))
    assert labels(panel) == {"x", "y", "MulBackward0", "AccumulateGrad"}
    assert "2 tensors · 2 ops" in panel.info.text()
    assert "grad [2]" in panel.scene.items_by_id["t0"].lines


def test_tensors_off_the_cpu_carry_their_device_stripe_and_legend(qtbot, states, actions):
    panel = GraphPanel(states, actions)
    qtbot.addWidget(panel)
    graph = seed_graph()
    graph.nodes[0].device = "cuda:1"
    states.run.set_result(RunResult(graph))
    items = panel.scene.items_by_id
    assert items["t0"].stripe.name() == device_colour("cuda:1")
    assert items["t1"].stripe is None and items["op0"].stripe is None
    assert "on&nbsp;cuda:1" in panel.legend.text() and device_colour("cuda:1") in panel.legend.text()
    image = QtGui.QImage(panel.view.viewport().size(), QtGui.QImage.Format_RGB32)
    image.fill(QtCore.Qt.white)
    panel.view.viewport().render(image)
    rgb = image.convertToFormat(QtGui.QImage.Format_RGB888)
    pixels = np.frombuffer(rgb.constBits(), np.uint8)[:rgb.height() * rgb.bytesPerLine()]
    pixels = pixels.reshape(rgb.height(), rgb.bytesPerLine())[:, :rgb.width() * 3].reshape(rgb.height(), -1, 3)
    stripe = QtGui.QColor(device_colour("cuda:1"))
    assert (np.abs(pixels.astype(int) - [stripe.red(), stripe.green(), stripe.blue()]).sum(axis=2) < 30).sum() > 50
    states.run.set_result(RunResult(seed_graph()))  # back on the CPU: no stripe, no legend entry
    assert panel.scene.items_by_id["t0"].stripe is None and "cuda" not in panel.legend.text()


def test_device_stripes_show_in_the_overview_of_a_big_graph(qtbot):
    """Zoomed out, a big graph is one path per colour: the stripes are one more each."""
    from core.layout import layout_graph
    from gui.graph_scene import GraphScene, scene_data
    nodes = [tensor(f"t{i}", f"x{i}") for i in range(1600)]
    for n in nodes[::2]:
        n.device = "cuda:0"
    graph = Graph(nodes, [])
    layout = layout_graph(graph)
    data = scene_data(graph, layout, overview=True)
    green = device_colour("cuda:0")
    assert list(data.stripes) == [green] and data.stripes[green].elementCount() == 5 * 800
    scene = GraphScene()
    scene.draw(graph, layout, data=data)
    assert any(item.brush().color().name() == green for item in scene.overview)


def test_graph_panel_dims_with_the_error_and_keeps_the_graph(qtbot, states, actions):
    panel = GraphPanel(states, actions)
    qtbot.addWidget(panel)
    states.run.set_result(RunResult(seed_graph()))
    states.run.set_result(RunResult(None, error=RunError("NameError", "name 'q' is not defined", 3)))
    assert labels(panel) == {"x", "y", "MulBackward0", "AccumulateGrad"}
    assert panel.view.stale_text.startswith("Line 3: NameError")
    states.run.set_result(RunResult(seed_graph()))
    assert panel.view.stale_text == ""


def test_selection_state_and_clicks_agree(qtbot, states, actions):
    panel = GraphPanel(states, actions)
    qtbot.addWidget(panel)
    panel.resize(600, 400)
    panel.show()
    states.run.set_result(RunResult(seed_graph()))
    states.selection.set("t1")
    assert panel.selected_id() == "t1"
    item = panel.scene.items_by_id["t0"]
    point = panel.view.mapFromScene(item.sceneBoundingRect().center())
    qtbot.mouseClick(panel.view.viewport(), QtCore.Qt.LeftButton, pos=point)
    assert states.selection.node_id == "t0"


def test_backward_step_is_drawn_from_the_backward_state(qtbot, states, actions):
    panel = GraphPanel(states, actions)
    qtbot.addWidget(panel)
    states.run.set_result(RunResult(seed_graph()))
    states.backward.set_trace(seed_trace())
    assert panel.overlay.index == -1
    states.backward.step_forward()
    assert panel.overlay.plan[panel.overlay.index].node == "op0"
    states.backward.to_end()
    texts = {item.childItems()[0].text() for item in panel.overlay.items if item.childItems()}
    assert {"∂ [1]", "grad [2]", "grad not kept"} <= texts


def test_backward_bar_draws_and_steps_the_state(qtbot, states, actions):
    bar = BackwardPanel(states, actions)
    qtbot.addWidget(bar)
    states.backward.set_roots(seed_graph())
    assert bar.root_box.currentText() == "y"
    assert "Press Backward" in bar.step_label.text()
    states.backward.set_trace(seed_trace())
    assert "2 steps" in bar.step_label.text()
    qtbot.mouseClick(bar.buttons["forward"], QtCore.Qt.LeftButton)
    assert states.backward.index == 0 and bar.step_label.text() == "step 1/2: MulBackward0"
    qtbot.mouseClick(bar.buttons["end"], QtCore.Qt.LeftButton)
    assert states.backward.index == 1 and "done" in bar.step_label.text()
    bar.retain_box.setChecked(True)
    assert states.backward.options.retain_graph


def test_backward_bar_refuses_on_a_stale_graph(qtbot, states, actions):
    bar = BackwardPanel(states, actions)
    qtbot.addWidget(bar)
    states.run.set_result(RunResult(seed_graph()))
    states.backward.set_roots(seed_graph())
    states.run.set_result(RunResult(None, error=RunError("NameError", "oops", 2)))
    qtbot.mouseClick(bar.backward_button, QtCore.Qt.LeftButton)
    assert bar.note.isVisibleTo(bar) and "fix the error first" in bar.note.text()


def test_inspector_shows_the_selected_tensor_values(qtbot, states):
    inspector = InspectorPanel(states)
    qtbot.addWidget(inspector)
    assert "Click a node" in inspector.toPlainText()
    result = RunResult(seed_graph(), values={"t0": TensorValues(
        numel=1, stats=Stats(3.0, 3.0, 3.0, 0.0), preview=np.array([3.0], np.float32),
        grad_stats=Stats(2.0, 2.0, 2.0, 0.0), grad_preview=np.array([2.0], np.float32))})
    states.run.set_result(result)
    states.selection.set("t0")
    text = inspector.toPlainText()
    assert "is_leaf" in text and "3 / 3" in text and "[2.]" in text
    states.selection.set("op0")
    assert "autograd node" in inspector.toPlainText()


def test_console_shows_output_error_and_events(qtbot, states):
    console = ConsolePanel(states)
    qtbot.addWidget(console)
    states.run.set_result(RunResult(seed_graph(), stdout="hello\n"))
    assert "hello" in console.toPlainText()
    states.run.set_result(RunResult(None, stdout="", error=RunError(
        "RuntimeError", "a leaf Variable that requires grad is being used in an in-place operation.", 3,
        traceback="Traceback …")))
    assert "torch.no_grad" in console.toPlainText()
    states.kernel.event.emit("Kernel restarted.")
    assert "Kernel restarted." in console.toPlainText()


def test_one_scale_for_every_text(qtbot, states, actions):
    from gui.panels.editor import EditorPanel

    panels = [EditorPanel(states, actions), ConsolePanel(states), InspectorPanel(states),
              BackwardPanel(states, actions), GraphPanel(states, actions)]
    for p in panels:
        qtbot.addWidget(p)
    states.run.set_result(RunResult(seed_graph()))
    editor, console, inspector, bar, graph = panels
    before = (editor.editor.font().pointSizeF(), console.font().pointSizeF(), inspector.font().pointSizeF(),
              bar.font().pointSizeF(), graph.scene.font.pixelSize(), graph.layout_.boxes["t0"].w)
    states.theme.set_scale(2.0)
    after = (editor.editor.font().pointSizeF(), console.font().pointSizeF(), inspector.font().pointSizeF(),
             bar.font().pointSizeF(), graph.scene.font.pixelSize(), graph.layout_.boxes["t0"].w)
    for b, a in zip(before, after):
        assert a == pytest.approx(2 * b, rel=0.15), (before, after)


def chain_graph(n: int) -> Graph:
    nodes = [tensor("t0", "x")]
    edges = []
    prev = "t0"
    for i in range(n):
        nodes.append(OpNode(f"op{i}", f"k{i}", "AddBackward0"))
        edges.append(Edge(prev, f"op{i}"))
        prev = f"op{i}"
    return Graph(nodes, edges)


def test_a_big_graph_is_laid_out_off_the_gui_thread(qtbot, states, actions):
    """A 3,000-node graph: the state change returns at once, the old drawing stays
    until the worker is done, and a newer graph cancels the older layout."""
    panel = GraphPanel(states, actions)
    qtbot.addWidget(panel)
    states.run.set_result(RunResult(seed_graph()))
    t = time.perf_counter()
    states.run.set_result(RunResult(chain_graph(2999)))
    states.run.set_result(RunResult(chain_graph(3000)))
    assert time.perf_counter() - t < 0.2
    assert "laying out 3001 nodes" in panel.info.text()
    assert labels(panel) == {"x", "y", "MulBackward0", "AccumulateGrad"}
    qtbot.waitUntil(lambda: len(panel.scene.items_by_id) == 3001, timeout=60_000)  # made in chunks


def test_line_and_node_point_at_each_other(qtbot, home):
    """Clicking a node tints the line that made it; the cursor on a line outlines the
    nodes that line made."""
    from gui.main_window import MainWindow

    win = MainWindow(start_kernel=False)
    qtbot.addWidget(win)
    win.show()
    win.editor.set_text("import torch\nx = torch.ones(1, requires_grad=True)\ny = x * 2\n")
    graph = seed_graph()
    graph.nodes[0].line, graph.nodes[1].line, graph.nodes[2].line = 2, 3, 3
    win.states.run.set_result(RunResult(graph))
    win.states.selection.set("t0")
    assert win.states.selection.line == 2
    assert win.editor.editor._linked_line == 2
    assert any(sel.cursor.blockNumber() == 1 for sel in win.editor.editor.extraSelections())
    editor = win.editor.editor
    editor.setFocus()
    cursor = editor.textCursor()
    cursor.setPosition(editor.document().findBlockByNumber(2).position())
    editor.setTextCursor(cursor)
    linked = {i.node.id for i in win.graph.scene.items_by_id.values() if i.linked}
    assert linked == {"t1", "op0"}


def test_the_root_follows_the_script_until_the_user_picks_one(states):
    def graph(*names_shapes):
        return Graph([TensorNode(f"t{i}", f"t:{n}", n, list(shape), "float32", "cpu", True, False,
                                 "MulBackward0", False) for i, (n, shape) in enumerate(names_shapes)])
    b = states.backward
    b.set_roots(graph(("y", (3,))))
    assert b.options.root == "y"
    b.set_roots(graph(("y", (3,)), ("z", (3,)), ("out", ())))
    assert b.options.root == "out"  # the last scalar, not the first tensor it saw
    g = graph(("y", (3,)), ("loss", ()), ("extra", ()))
    b.set_roots(g, BackwardTrace("t1", "loss"))
    assert b.options.root == "loss"  # the tensor the script's own backward() ran on
    b.choose_root("y")
    b.set_roots(graph(("y", (3,)), ("out", ()), ("more", ())))
    assert b.options.root == "y"  # the user's pick stays while it exists
    b.set_roots(graph(("q", ())))
    assert b.options.root == "q"


def test_modules_fold_open_and_light_up_when_stepping(qtbot, states, actions):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "collapse_cases", Path(__file__).resolve().parents[1] / "core" / "test_collapse.py")
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    net = cases.net
    panel = GraphPanel(states, actions)
    qtbot.addWidget(panel)
    panel.resize(800, 600)
    panel.show()
    states.run.set_result(RunResult(net()))
    assert not any(i.node.kind == "module" for i in panel.scene.items_by_id.values())  # small: open
    panel.fold_box.activated.emit(3)  # fold at depth 2
    boxes = {i.node.name: i for i in panel.scene.items_by_id.values() if i.node.kind == "module"}
    assert set(boxes) == {"model.fc1", "model.act", "model.fc2"}
    # a backward step inside a closed module lights its box; search finds what is inside
    states.backward.set_trace(BackwardTrace("loss", "loss", [
        BackwardStep(0, "mean", "MeanBackward0", [grad(1.0)], [grad(1.0)]),
        BackwardStep(1, "mm2", "AddmmBackward0", [grad(1.0)], [grad(1.0)])]))
    states.backward.to_end()
    boxes = {i.node.name: i for i in panel.scene.items_by_id.values() if i.node.kind == "module"}
    ring = [i for i in panel.overlay.active if isinstance(i, QtWidgets.QGraphicsRectItem)]
    assert ring and ring[0].sceneBoundingRect().contains(boxes["model.fc2"].sceneBoundingRect().center())
    assert panel.find("AddmmBackward0") and set(panel.find("Addmm")) <= {"m:model.fc1#0", "m:model.fc2#0"}
    # double-click opens a box, and the bar offers to close it again
    view = panel.view
    point = view.mapFromScene(boxes["model.fc1"].sceneBoundingRect().center())
    qtbot.mouseDClick(view.viewport(), QtCore.Qt.LeftButton, pos=point)
    assert "model.fc1" in states.view.opened
    assert "AddmmBackward0" in {i.node.name for i in panel.scene.items_by_id.values() if i.node.kind == "op"}
    assert "model.fc1 ✕" in panel.crumbs.text()
    panel.crumbs.linkActivated.emit("model.fc1")
    assert "model.fc1" not in states.view.opened
