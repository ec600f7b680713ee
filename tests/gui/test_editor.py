"""The editor panel, driven the way a user drives it: keys and mouse hovers via qtbot."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from gui.panels.editor import DEFAULT_POINT_SIZE, EditorPanel, PythonHighlighter
from gui.state import States

Qt = QtCore.Qt


@pytest.fixture
def panel(qtbot):
    panel = EditorPanel(States(), None)
    qtbot.addWidget(panel)
    panel.resize(700, 500)
    panel.show()
    qtbot.waitExposed(panel)
    panel.editor.setFocus()
    return panel


def recorder(signal):
    calls = []
    signal.connect(lambda: calls.append(True))
    return calls


# --- text_edited ------------------------------------------------------------------


def test_typing_emits_text_edited_once_per_keystroke(panel, qtbot):
    edited = recorder(panel.text_edited)
    qtbot.keyClicks(panel.editor, "x = 1")
    assert panel.text() == "x = 1"
    assert len(edited) == len("x = 1")


def test_highlighting_a_multiline_string_does_not_emit_extra_text_edited(panel, qtbot):
    panel.set_text('a = 1\nb = 2\nc = 3')
    edited = recorder(panel.text_edited)
    panel.editor.moveCursor(QtGui.QTextCursor.MoveOperation.Start)
    qtbot.keyClicks(panel.editor, '"""')  # re-colours every line below as a string
    assert len(edited) == 3


def test_set_text_does_not_emit_text_edited(panel):
    edited = recorder(panel.text_edited)
    panel.set_text("first = 1")  # into an empty editor
    panel.set_text("second = 2")  # over existing text
    assert panel.text() == "second = 2"
    assert edited == []


def test_set_text_over_existing_text_can_be_undone(panel, qtbot):
    qtbot.keyClicks(panel.editor, "typed = 1")
    panel.set_text("loaded = 2")
    qtbot.keyClick(panel.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.text() == "typed = 1"


def test_set_text_into_empty_editor_starts_a_fresh_undo_history(panel):
    panel.set_text("restored = 1")
    assert not panel.editor.document().isUndoAvailable()


# --- run / interrupt keys ---------------------------------------------------------


@pytest.mark.parametrize("key", [Qt.Key.Key_Return, Qt.Key.Key_Enter])
def test_ctrl_enter_emits_run_requested_and_inserts_nothing(panel, qtbot, key):
    panel.set_text("x = 1")
    run = recorder(panel.run_requested)
    qtbot.keyClick(panel.editor, key, Qt.KeyboardModifier.ControlModifier)
    assert len(run) == 1
    assert panel.text() == "x = 1"


def test_escape_emits_interrupt_requested(panel, qtbot):
    interrupts = recorder(panel.interrupt_requested)
    qtbot.keyClick(panel.editor, Qt.Key.Key_Escape)
    assert len(interrupts) == 1


def test_ctrl_c_without_selection_emits_interrupt_requested(panel, qtbot):
    panel.set_text("while True: pass")
    interrupts = recorder(panel.interrupt_requested)
    qtbot.keyClick(panel.editor, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert len(interrupts) == 1


def test_ctrl_c_with_selection_copies_and_does_not_interrupt(panel, qtbot):
    panel.set_text("weights = 1")
    panel.editor.selectAll()
    interrupts = recorder(panel.interrupt_requested)
    QtWidgets.QApplication.clipboard().clear()
    qtbot.keyClick(panel.editor, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert interrupts == []
    assert QtWidgets.QApplication.clipboard().text() == "weights = 1"


# --- error marking ----------------------------------------------------------------


def wave_selections(editor):
    return [
        s
        for s in editor.extraSelections()
        if s.format.underlineStyle() == QtGui.QTextCharFormat.UnderlineStyle.WaveUnderline
    ]


def test_set_error_underlines_the_whole_line(panel):
    panel.set_text("a = 1\nb = a / 0\nc = 3")
    panel.set_error(2, "boom")
    assert panel.error_line() == 2
    [selection] = wave_selections(panel.editor)
    assert selection.cursor.blockNumber() == 1
    assert selection.cursor.selectedText() == "b = a / 0"


def test_set_error_past_the_end_marks_the_last_line(panel):
    panel.set_text("a = (1,\nb = 2")
    panel.set_error(3, "unexpected EOF")
    assert panel.error_line() == 2


def test_error_mark_survives_typing_and_clear_error_removes_it(panel, qtbot):
    panel.set_text("a = 1\nb = 2")
    panel.set_error(2, "boom")
    qtbot.keyClicks(panel.editor, "x")  # any edit rebuilds the extra selections
    assert len(wave_selections(panel.editor)) == 1
    panel.clear_error()
    assert panel.error_line() is None
    assert wave_selections(panel.editor) == []


def hover(widget, point):
    """Sends the tooltip event Qt sends after the mouse rests on ``point``."""
    event = QtGui.QHelpEvent(QtCore.QEvent.Type.ToolTip, point, widget.mapToGlobal(point))
    QtWidgets.QApplication.sendEvent(widget, event)


def line_center(editor, line):
    block = editor.document().findBlockByNumber(line - 1)
    rect = editor.blockBoundingGeometry(block).translated(editor.contentOffset())
    return rect.center().toPoint()


def test_hovering_the_error_line_shows_the_message(panel, qtbot):
    panel.set_text("a = 1\nb = a / 0\nc = 3")
    panel.set_error(2, "ZeroDivisionError: division by zero")
    editor = panel.editor

    hover(editor.viewport(), line_center(editor, 1))
    assert not QtWidgets.QToolTip.isVisible()

    hover(editor.viewport(), line_center(editor, 2))
    qtbot.waitUntil(QtWidgets.QToolTip.isVisible)
    assert QtWidgets.QToolTip.text() == "ZeroDivisionError: division by zero"
    QtWidgets.QToolTip.hideText()


def test_hovering_the_gutter_marker_shows_the_message(panel, qtbot):
    panel.set_text("a = 1\nb = a / 0")
    panel.set_error(2, "boom")
    editor = panel.editor
    y = line_center(editor, 2).y()
    hover(editor.line_number_area, QtCore.QPoint(5, y))
    qtbot.waitUntil(QtWidgets.QToolTip.isVisible)
    assert QtWidgets.QToolTip.text() == "boom"
    QtWidgets.QToolTip.hideText()


def test_gutter_paints_a_red_marker_on_the_error_line(panel):
    panel.set_text("a = 1\nb = 2")
    area = panel.editor.line_number_area
    y = line_center(panel.editor, 2).y()
    marker = QtCore.QPoint(panel.editor.fontMetrics().height() // 2, y)

    def marker_color():
        return area.grab().toImage().pixelColor(marker * area.devicePixelRatioF())

    assert marker_color().red() < 200 or marker_color().green() > 150
    panel.set_error(2, "boom")
    color = marker_color()
    assert color.red() > 150 and color.green() < 100


# --- find bar ---------------------------------------------------------------------


def test_ctrl_f_opens_the_find_bar_and_typing_selects_the_match(panel, qtbot):
    panel.set_text("x = 1\nloss = x * 2\nloss.backward()")
    assert not panel.find_bar.isVisible()
    qtbot.keyClick(panel.editor, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert panel.find_bar.isVisible()
    qtbot.waitUntil(panel.find_bar.line_edit.hasFocus)

    qtbot.keyClicks(panel.find_bar.line_edit, "loss")
    cursor = panel.editor.textCursor()
    assert cursor.selectedText() == "loss"
    assert cursor.blockNumber() == 1
    assert panel.find_bar.status_label.text() == "1 of 2"


def test_enter_and_shift_enter_step_through_matches_with_wrap_around(panel, qtbot):
    panel.set_text("loss = 1\nloss = 2\nloss = 3")
    panel.show_find()
    line_edit = panel.find_bar.line_edit
    qtbot.keyClicks(line_edit, "loss")
    assert panel.editor.textCursor().blockNumber() == 0

    qtbot.keyClick(line_edit, Qt.Key.Key_Return)
    assert panel.editor.textCursor().blockNumber() == 1
    qtbot.keyClick(line_edit, Qt.Key.Key_Return)
    qtbot.keyClick(line_edit, Qt.Key.Key_Return)  # wraps to the top
    assert panel.editor.textCursor().blockNumber() == 0
    assert panel.find_bar.status_label.text() == "1 of 3"

    qtbot.keyClick(line_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)  # wraps to the end
    assert panel.editor.textCursor().blockNumber() == 2
    assert panel.editor.textCursor().selectedText() == "loss"
    assert panel.find_bar.status_label.text() == "3 of 3"


def test_find_reports_not_found_and_keeps_the_cursor(panel, qtbot):
    panel.set_text("x = 1\ny = 2")
    panel.goto_line(2)
    panel.show_find()
    qtbot.keyClicks(panel.find_bar.line_edit, "grad")
    assert panel.find_bar.status_label.text() == "not found"
    assert panel.editor.textCursor().blockNumber() == 1
    assert not panel.editor.textCursor().hasSelection()


def test_escape_in_find_bar_closes_it_and_returns_focus_to_the_editor(panel, qtbot):
    interrupts = recorder(panel.interrupt_requested)
    panel.show_find()
    qtbot.waitUntil(panel.find_bar.line_edit.hasFocus)
    qtbot.keyClick(panel.find_bar.line_edit, Qt.Key.Key_Escape)
    assert not panel.find_bar.isVisible()
    qtbot.waitUntil(panel.editor.hasFocus)
    assert interrupts == []


def test_escape_in_editor_closes_an_open_find_bar_instead_of_interrupting(panel, qtbot):
    interrupts = recorder(panel.interrupt_requested)
    panel.show_find()
    qtbot.keyClick(panel.editor, Qt.Key.Key_Escape)
    assert not panel.find_bar.isVisible()
    assert interrupts == []


# --- typing help ------------------------------------------------------------------


def test_enter_after_a_colon_indents_by_four_spaces(panel, qtbot):
    qtbot.keyClicks(panel.editor, "def f():")
    qtbot.keyClick(panel.editor, Qt.Key.Key_Return)
    assert panel.text() == "def f():\n    "


def test_enter_keeps_the_current_indentation(panel, qtbot):
    panel.set_text("def f():\n    x = 1")
    panel.editor.moveCursor(QtGui.QTextCursor.MoveOperation.End)
    qtbot.keyClick(panel.editor, Qt.Key.Key_Return)
    qtbot.keyClicks(panel.editor, "return x")
    assert panel.text() == "def f():\n    x = 1\n    return x"


def test_shift_enter_inserts_a_plain_newline(panel, qtbot):
    qtbot.keyClicks(panel.editor, "a = 1")
    qtbot.keyClick(panel.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(panel.editor, "b = 2")
    assert panel.text() == "a = 1\nb = 2"
    assert "\u2028" not in panel.editor.document().toRawText()


def test_tab_inserts_four_spaces(panel, qtbot):
    qtbot.keyClick(panel.editor, Qt.Key.Key_Tab)
    assert panel.text() == "    "
    assert panel.editor.hasFocus()


def test_goto_line_moves_the_cursor(panel):
    panel.set_text("\n".join(f"x{i} = {i}" for i in range(200)))
    panel.goto_line(150)
    editor = panel.editor
    assert editor.textCursor().blockNumber() == 149
    middle = editor.viewport().height() / 2
    assert abs(editor.cursorRect().center().y() - middle) < 2 * editor.fontMetrics().height()


# --- look ---------------------------------------------------------------------------


def test_line_number_area_has_a_positive_width_that_grows_with_the_line_count(panel):
    area = panel.editor.line_number_area
    assert area.width() > 0
    assert panel.editor.viewportMargins().left() == area.width()
    narrow = area.width()
    panel.set_text("\n" * 1000)
    assert area.width() > narrow


def test_default_font_is_monospace_13pt_and_zooms_with_ctrl_keys(panel, qtbot):
    editor = panel.editor
    assert editor.font().pointSizeF() == DEFAULT_POINT_SIZE
    metrics = editor.fontMetrics()  # QFontInfo.fixedPitch() misreports some mono fonts
    assert metrics.horizontalAdvance("iiii") == metrics.horizontalAdvance("WWWW")
    gutter = editor.line_number_area.width()
    edited = recorder(panel.text_edited)

    qtbot.keyClick(editor, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(editor, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert editor.font().pointSizeF() == pytest.approx(DEFAULT_POINT_SIZE * 1.15 ** 2, rel=0.01)
    assert editor.line_number_area.width() > gutter

    qtbot.keyClick(editor, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert editor.font().pointSizeF() == pytest.approx(DEFAULT_POINT_SIZE * 1.15, rel=0.01)
    qtbot.keyClick(editor, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert editor.font().pointSizeF() == DEFAULT_POINT_SIZE
    assert panel.text() == ""
    assert edited == []  # zooming is not an edit


def test_current_line_is_highlighted(panel):
    panel.set_text("a = 1\nb = 2")
    panel.goto_line(2)
    full_width = [
        s
        for s in panel.editor.extraSelections()
        if s.format.property(QtGui.QTextFormat.Property.FullWidthSelection)
    ]
    assert [s.cursor.blockNumber() for s in full_width] == [1]


def color_at(editor, line, column):
    """The foreground the highlighter gave the character at 1-based line, 0-based column."""
    block = editor.document().findBlockByNumber(line - 1)
    for fmt in block.layout().formats():
        if fmt.start <= column < fmt.start + fmt.length:
            return fmt.format.foreground().color()
    return None


def test_syntax_colours(panel):
    editor = panel.editor
    panel.set_text(
        "@torch.no_grad()\n"
        "def step(self, x=0.5):\n"
        '    s = "# not a comment"  # a comment\n'
        '    doc = """first\n'
        "    if inside string\n"
        '    last"""\n'
        "    return len(x)  # don't\n"
    )
    kinds = PythonHighlighter
    assert color_at(editor, 1, 0) == kinds.DECORATOR.foreground().color()
    assert color_at(editor, 2, 0) == kinds.KEYWORD.foreground().color()  # def
    assert color_at(editor, 2, 4) == kinds.DEFINITION.foreground().color()  # step
    assert color_at(editor, 2, 9) == kinds.SELF.foreground().color()
    assert color_at(editor, 2, 18) == kinds.NUMBER.foreground().color()  # 0.5
    line3 = '    s = "# not a comment"  # a comment'
    assert color_at(editor, 3, line3.index("# not")) == kinds.STRING.foreground().color()
    assert color_at(editor, 3, line3.index("# a comment")) == kinds.COMMENT.foreground().color()
    assert color_at(editor, 5, 4) == kinds.STRING.foreground().color()  # "if" inside """..."""
    assert color_at(editor, 6, 8) == kinds.STRING.foreground().color()  # closing quotes
    assert color_at(editor, 7, 4) == kinds.KEYWORD.foreground().color()  # return, after the string
    assert color_at(editor, 7, 11) == kinds.BUILTIN.foreground().color()  # len
    line7 = "    return len(x)  # don't"
    assert color_at(editor, 7, len(line7) - 1) == kinds.COMMENT.foreground().color()  # not a string


def test_colours_stay_aligned_after_an_emoji(panel):
    panel.set_text('print("🔥", 42)')
    text = 'print("🔥", 42)'
    utf16_column = len(text[: text.index("42")].encode("utf-16-le")) // 2
    number = PythonHighlighter.NUMBER.foreground().color()
    assert color_at(panel.editor, 1, utf16_column) == number
    assert color_at(panel.editor, 1, utf16_column - 1) != number  # the space before 42
    closing_quote = len(text[: text.index('",')].encode("utf-16-le")) // 2
    assert color_at(panel.editor, 1, closing_quote) == PythonHighlighter.STRING.foreground().color()
