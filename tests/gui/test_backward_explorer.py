"""The backward explorer, driven as a user would: press Backward, step, read the graph."""
from PySide6 import QtCore

SEED = ("import torch\nx = torch.tensor([2.], requires_grad=True)\n"
        "w = torch.tensor([1.], requires_grad=True)\na = torch.add(w, x)\n"
        "b = torch.add(w, 1)\ny = torch.mul(a, b)\n")


def load(qtbot, win, code: str):
    win.editor.set_text(code)
    with qtbot.waitSignal(win.session.run_result, timeout=30_000):
        win.actions.run_now()


def press_backward(qtbot, win, root="y", retain=False, zero_first=False):
    win.states.backward.choose_root(root)
    win.backward.retain_box.setChecked(retain)
    win.backward.zero_first_box.setChecked(zero_first)
    with qtbot.waitSignal(win.session.backward_result, timeout=30_000) as blocker:
        qtbot.mouseClick(win.backward.backward_button, QtCore.Qt.LeftButton)
    return blocker.args[0]


def node_named(win, name):
    return next(n for n in win.graph.shown.nodes if getattr(n, "name", None) == name)


def badge_texts(win) -> dict[str, str]:
    """node label -> the gradient badge drawn under it."""
    out = {}
    for back in win.graph.overlay.items:
        kids = back.childItems()
        if not kids:
            continue
        label = kids[0].text()
        pos = back.pos()
        for item in win.graph.scene.items_by_id.values():
            r = item.sceneBoundingRect()
            if abs(r.bottom() - pos.y()) < 12 and r.left() - 400 < pos.x() < r.right():
                if abs(r.center().x() - (pos.x() + back.rect().width() / 2 - 4)) < 3:
                    out[item.lines[0]] = label
    return out


def current_node_name(win):
    overlay = win.graph.overlay
    if overlay.index < 0:
        return None
    return win.graph.scene.items_by_id[overlay.plan[overlay.index].node].lines[0]


def test_step_forward_and_back_moves_the_highlight(qtbot, window):
    win = window
    load(qtbot, win, SEED)
    snap = press_backward(qtbot, win)
    assert [s.name for s in snap.backward.steps] == [
        "MulBackward0", "AddBackward0", "AddBackward0", "AccumulateGrad", "AccumulateGrad"]
    assert win.states.backward.index == -1 and current_node_name(win) is None
    win.graph.view.setFocus()
    qtbot.keyClick(win.graph.view, QtCore.Qt.Key_Right)
    assert win.states.backward.index == 0
    assert current_node_name(win) == "MulBackward0"
    assert badge_texts(win)["MulBackward0"] == "∂ [1]"
    qtbot.keyClick(win.graph.view, QtCore.Qt.Key_End)
    assert win.states.backward.index == 4
    badges = badge_texts(win)
    assert badges["w"] == "grad [5]" and badges["x"] == "grad [2]"
    assert badges["y"] == "grad not kept"
    qtbot.keyClick(win.graph.view, QtCore.Qt.Key_Left)
    assert win.states.backward.index == 3
    assert "x" not in badge_texts(win) or badge_texts(win)["x"] != "grad [2]"
    qtbot.keyClick(win.graph.view, QtCore.Qt.Key_Home)
    assert win.states.backward.index == -1 and current_node_name(win) is None
    assert win.backward.step_label.text().startswith("backward() of y: 5 steps")


def test_play_runs_to_the_end(qtbot, window):
    win = window
    load(qtbot, win, SEED)
    press_backward(qtbot, win)
    win.backward.speed_box.setCurrentIndex(3)
    qtbot.mouseClick(win.backward.buttons["play"], QtCore.Qt.LeftButton)
    assert win.states.backward.is_playing()
    qtbot.waitUntil(lambda: win.states.backward.index == 4 and not win.states.backward.is_playing(), timeout=5_000)


def test_second_backward_accumulates_and_zero_clears(qtbot, window):
    win = window
    load(qtbot, win, SEED)
    press_backward(qtbot, win, retain=True)
    snap = press_backward(qtbot, win, retain=True)
    assert node_named(win, "w").grad.tolist() == [10.0]  # 5 + 5: grads are not cleared
    assert [g.values.tolist() for g in snap.grad_history["w"]] == [[5.0], [10.0]]
    win.graph.search.setText("w")
    qtbot.waitUntil(lambda: "grad after each backward" in win.inspector.toPlainText())
    assert "[5] → [10]" in win.inspector.toPlainText()
    with qtbot.waitSignal(win.session.backward_result, timeout=30_000):
        qtbot.mouseClick(win.backward.zero_button, QtCore.Qt.LeftButton)
    assert node_named(win, "w").grad is None
    snap = press_backward(qtbot, win, retain=True)
    assert node_named(win, "w").grad.tolist() == [5.0]


def test_backward_twice_without_retain_graph_is_explained(qtbot, window):
    win = window
    load(qtbot, win, SEED)
    press_backward(qtbot, win)
    snap = press_backward(qtbot, win)
    assert "second time" in snap.backward.error
    note = win.backward.note.text()
    assert win.backward.note.isVisible() and "retain_graph=True" in note
    assert win.states.view.show_saved  # the freed saved tensors are drawn
    freed = [i for i in win.graph.scene.items_by_id.values() if i.node.kind == "saved"]
    assert freed and all(i.node.freed for i in freed)


def test_non_scalar_root_explains_the_gradient(qtbot, window):
    win = window
    load(qtbot, win, "import torch\nx = torch.tensor([1., 2., 3.], requires_grad=True)\ny = x * 2\n")
    win.states.backward.choose_root("y")
    assert win.backward.gradient_edit.isEnabled()
    assert "vector-Jacobian" in win.backward.note.text()
    win.backward.gradient_edit.setText("torch.tensor([0.1, 1.0, 0.0001])")
    press_backward(qtbot, win)
    grad = node_named(win, "x").grad.tolist()
    assert [round(g, 6) for g in grad] == [0.2, 2.0, 0.0002]


def test_inplace_on_leaf_is_explained_at_its_line(qtbot, window):
    win = window
    load(qtbot, win, "import torch\nx = torch.ones(2, requires_grad=True)\nx.add_(1)\n")
    assert win.editor.error_line() == 3
    assert "torch.no_grad" in win.console.toPlainText()


def test_hook_from_the_graph_is_code_and_changes_the_next_backward(qtbot, window):
    win = window
    load(qtbot, win, SEED)
    w_id = node_named(win, "w").id
    with qtbot.waitSignal(win.session.run_result, timeout=30_000):
        win.graph.view.hook_requested.emit(w_id, "scale")  # what the right-click menu sends
    assert "w.register_hook(lambda g: g * 0.5)" in win.editor.text()
    press_backward(qtbot, win)
    assert node_named(win, "w").grad.tolist() == [2.5]  # 5 scaled by the hook
    win.editor.editor.undo()
    assert "register_hook" not in win.editor.text()


def test_hook_on_an_op_node_goes_through_the_tensor_it_made(qtbot, window):
    win = window
    load(qtbot, win, SEED)
    mul = next(n for n in win.graph.shown.nodes if n.kind == "op" and n.name == "MulBackward0")
    with qtbot.waitSignal(win.session.run_result, timeout=30_000):
        win.graph.view.hook_requested.emit(mul.id, "zero")
    assert "y.grad_fn.register_hook(" in win.editor.text()
    press_backward(qtbot, win)
    assert node_named(win, "w").grad.tolist() == [0.0] and node_named(win, "x").grad.tolist() == [0.0]


def test_the_scripts_own_backward_is_ready_to_step(qtbot, window):
    win = window
    load(qtbot, win, SEED + "y.backward()\n")
    assert win.states.backward.trace is not None and len(win.states.backward.trace.steps) == 5
    assert win.states.backward.index == 4  # the script's backward is done: shown at its end
    assert "backward() of y: done" in win.backward.step_label.text()
    win.graph.view.setFocus()
    qtbot.keyClick(win.graph.view, QtCore.Qt.Key_Home)
    qtbot.keyClick(win.graph.view, QtCore.Qt.Key_Right)
    assert current_node_name(win) == "MulBackward0"


def test_backward_on_a_script_with_an_error_says_to_fix_it_first(qtbot, window):
    win = window
    load(qtbot, win, SEED)
    load(qtbot, win, SEED + "z = y @ torch.ones(3)\n")
    qtbot.mouseClick(win.backward.backward_button, QtCore.Qt.LeftButton)
    assert "fix the error first" in win.backward.note.text()


def test_a_training_loop_replays_its_last_call_and_can_show_another(qtbot, window):
    win = window
    loop = ("import torch\nw = torch.tensor([1.0], requires_grad=True)\n"
            "for i in range(5):\n    loss = (w * (i + 1)).sum()\n    loss.backward()\n")
    load(qtbot, win, loop)
    bar = win.backward
    assert bar.call_box.isVisibleTo(bar) and bar.call_box.count() == 5
    assert bar.call_box.currentText() == "call 5 of 5 · line 5"
    drawn = {n.id for n in win.graph.shown.nodes}
    assert all(s.node in drawn for s in win.states.backward.trace.steps)  # replay and graph agree
    with qtbot.waitSignal(win.session.run_result, timeout=30_000) as blocker:
        bar.call_box.activated.emit(1)  # call 2 of 5
    assert blocker.args[0].backward.call == 2
    assert bar.call_box.count() == 5 and bar.call_box.currentText() == "call 2 of 5 · line 5"
    assert node_named(win, "w").grad.tolist() == [3.0]  # the grads as they were after call 2
    drawn = {n.id for n in win.graph.shown.nodes}
    assert all(s.node in drawn for s in win.states.backward.trace.steps)
