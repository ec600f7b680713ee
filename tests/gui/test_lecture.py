"""The lecture hall: step keys from anywhere but the text being typed, one zoom for
every text, presentation mode, and a default window that fits a small screen."""
from __future__ import annotations

import pytest
from PySide6 import QtCore, QtWidgets

from core.model.run import RunResult
from gui.main_window import MainWindow
from test_panels import seed_graph, seed_trace


@pytest.fixture
def win(qtbot, home):
    w = MainWindow(start_kernel=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.states.run.set_result(RunResult(seed_graph()))
    w.states.backward.set_roots(seed_graph())
    w.states.backward.set_trace(seed_trace())
    return w


@pytest.mark.parametrize("where", ["graph", "slider", "inspector", "root box"])
def test_step_keys_work_wherever_the_focus_is(qtbot, win, where):
    widget = {"graph": win.graph.view, "slider": win.backward.slider, "inspector": win.inspector,
              "root box": win.backward.root_box}[where]
    widget.setFocus()
    qtbot.keyClick(widget, QtCore.Qt.Key_Right)
    assert win.states.backward.index == 0
    qtbot.keyClick(widget, QtCore.Qt.Key_PageDown)  # a presenter's clicker
    assert win.states.backward.index == 1
    qtbot.keyClick(widget, QtCore.Qt.Key_PageUp)
    qtbot.keyClick(widget, QtCore.Qt.Key_Home)
    assert win.states.backward.index == -1
    qtbot.keyClick(widget, QtCore.Qt.Key_End)
    assert win.states.backward.index == 1


def test_step_keys_leave_the_editor_and_text_boxes_alone(qtbot, win):
    win.editor.set_text("abc")
    win.editor.editor.setFocus()
    qtbot.keyClick(win.editor.editor, QtCore.Qt.Key_End)
    qtbot.keyClick(win.editor.editor, QtCore.Qt.Key_Left)
    assert win.states.backward.index == -1
    assert win.editor.editor.textCursor().position() == 2
    win.graph.search.setFocus()
    qtbot.keyClick(win.graph.search, QtCore.Qt.Key_Right)
    assert win.states.backward.index == -1


def test_no_destructive_button_takes_the_step_keys(qtbot, win):
    """→ used to move focus onto Zero grads, and Space then pressed it."""
    for button in (win.backward.zero_button, win.backward.backward_button):
        assert button.focusPolicy() == QtCore.Qt.NoFocus
    zeroed = []
    win.backward.zero_button.clicked.connect(lambda: zeroed.append(1))
    win.graph.view.setFocus()
    for key in (QtCore.Qt.Key_Right, QtCore.Qt.Key_Tab, QtCore.Qt.Key_Right, QtCore.Qt.Key_Space):
        qtbot.keyClick(QtWidgets.QApplication.focusWidget(), key)
    assert zeroed == []


def test_find_node_from_the_editor(qtbot, win):
    win.editor.editor.setFocus()
    qtbot.keyClick(win.editor.editor, QtCore.Qt.Key_F, QtCore.Qt.ControlModifier | QtCore.Qt.ShiftModifier)
    assert QtWidgets.QApplication.focusWidget() is win.graph.search


def test_view_menu_shows_shortcuts(win):
    view = next(a.menu() for a in win.menuBar().actions() if a.text() == "&View")
    texts = {a.text().split("\t")[0]: (a.shortcut().toString() or a.text().partition("\t")[2])
             for a in view.actions() if a.text()}
    assert texts["&Fit graph"] == "F"
    assert texts["Find &node…"] == "Ctrl+Shift+F"
    assert texts["Zoom &In"] == "Ctrl+=" and texts["&Reset Zoom"] == "Ctrl+0"
    assert texts["&Presentation Mode"] == "F5"


def fonts(win):
    return (win.editor.editor.font().pointSizeF(), win.console.font().pointSizeF(),
            win.inspector.font().pointSizeF(), win.backward.font().pointSizeF(),
            win.graph.scene.font.pixelSize(), win.tensor_view.hover.font().pointSizeF(),
            win.tensor_view.font().pointSizeF(), win.data.font().pointSizeF(), win.devices.tree.font().pointSizeF())


def test_one_zoom_for_everything_and_it_persists(qtbot, win, home):
    before = fonts(win)
    qtbot.keyClick(win.graph.view, QtCore.Qt.Key_Equal, QtCore.Qt.ControlModifier)
    qtbot.keyClick(win.editor.editor, QtCore.Qt.Key_Equal, QtCore.Qt.ControlModifier)
    scale = win.states.theme.scale
    assert scale == pytest.approx(1.15 ** 2, rel=0.01)
    for b, a in zip(before, fonts(win)):
        assert a == pytest.approx(b * scale, rel=0.15)
    win.close()
    again = MainWindow(start_kernel=False)
    qtbot.addWidget(again)
    assert again.states.theme.scale == pytest.approx(scale)
    qtbot.keyClick(again.editor.editor, QtCore.Qt.Key_0, QtCore.Qt.ControlModifier)
    assert again.states.theme.scale == 1.0


def test_presentation_mode(qtbot, win):
    before = fonts(win)
    qtbot.keyClick(win.graph.view, QtCore.Qt.Key_F5)
    assert win.isFullScreen() or win.windowState() & QtCore.Qt.WindowFullScreen
    assert not win.docks["Inspector"].isVisible() and not win.docks["Output"].isVisible()
    assert win.docks["Code"].isVisible()
    assert win.states.theme.high_contrast and win.states.theme.scale >= 1.6
    for b, a in zip(before, fonts(win)):
        assert a >= b * 1.4
    qtbot.keyClick(win.graph.view, QtCore.Qt.Key_F5)
    assert win.docks["Inspector"].isVisible() and win.states.theme.scale == 1.0
    assert not win.states.theme.high_contrast


def test_the_default_window_fits_a_small_screen(qtbot, home):
    w = MainWindow(start_kernel=False)
    qtbot.addWidget(w)
    screen = w.screen().availableGeometry()
    assert w.width() <= screen.width() and w.height() <= screen.height()
