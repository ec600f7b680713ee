"""The code editor panel: where the user types the PyTorch script that Torchscope runs.

It is used in lecture halls on a projector, so the defaults are large and plain: a
13 pt monospace font that zooms with Ctrl+= / Ctrl+- (Ctrl+0 resets), line numbers,
Python syntax colours on a light background and a subtle current-line highlight.

The panel never runs code itself (DESIGN.md, rule 2). It only tells the window what
the user asked for, through three signals:

- ``text_edited``: the user changed the text (the session debounces it and reruns);
- ``run_requested``: Ctrl+Enter;
- ``interrupt_requested``: Esc, or Ctrl+C with nothing selected (like a terminal).

When a run fails, the session calls ``set_error(line, message)``: the line gets a red
wavy underline and a red dot in the gutter, and hovering it shows the message
(DESIGN.md, rule 4: every error shows at the right place).
"""

from __future__ import annotations

import builtins
import keyword
import re

from PySide6 import QtCore, QtGui, QtWidgets

from gui import theme

DEFAULT_POINT_SIZE = theme.EDITOR_POINTS
MIN_POINT_SIZE = 6
MAX_POINT_SIZE = 72
INDENT = "    "
ZOOM_STEPS = {"zoom_in": 1, "zoom_out": -1, "zoom_reset": 0}

CURRENT_LINE_COLOR = QtGui.QColor(theme.EDITOR_CURRENT_LINE)
LINKED_LINE_COLOR = QtGui.QColor(theme.LINKED_LINE)
STEP_LINE_COLOR = QtGui.QColor(theme.STEP_LINE)
ERROR_COLOR = QtGui.QColor(theme.EDITOR_ERROR)
GUTTER_BACKGROUND = QtGui.QColor(theme.GUTTER_BACKGROUND)
GUTTER_TEXT = QtGui.QColor(theme.GUTTER_TEXT)
GUTTER_CURRENT_TEXT = QtGui.QColor(theme.GUTTER_CURRENT_TEXT)


def _char_format(color: str, bold: bool = False, italic: bool = False) -> QtGui.QTextCharFormat:
    fmt = QtGui.QTextCharFormat()
    fmt.setForeground(QtGui.QColor(color))
    if bold:
        fmt.setFontWeight(QtGui.QFont.Weight.Bold)
    fmt.setFontItalic(italic)
    return fmt


class PythonHighlighter(QtGui.QSyntaxHighlighter):
    """Colours Python source one line (block) at a time.

    Words (keywords, builtins, numbers, decorators, ``self``, the name after
    ``def``/``class``) are coloured first; strings and comments are scanned last, left
    to right, so a ``#`` inside a string is not a comment and a keyword inside a
    string or comment takes the string's or comment's colour. A triple-quoted string
    that is still open at the end of a line is remembered in the block state, so the
    next line starts inside it.
    """

    # Block states: outside any string, or inside an open triple-quoted string.
    NORMAL, IN_TRIPLE_DOUBLE, IN_TRIPLE_SINGLE = 0, 1, 2
    _STATE_OF_QUOTE = {'"""': IN_TRIPLE_DOUBLE, "'''": IN_TRIPLE_SINGLE}
    _QUOTE_OF_STATE = {IN_TRIPLE_DOUBLE: '"""', IN_TRIPLE_SINGLE: "'''"}

    KEYWORD = _char_format(*theme.SYNTAX["keyword"])
    BUILTIN = _char_format(*theme.SYNTAX["builtin"])
    SELF = _char_format(*theme.SYNTAX["self"])
    NUMBER = _char_format(*theme.SYNTAX["number"])
    DECORATOR = _char_format(*theme.SYNTAX["decorator"])
    DEFINITION = _char_format(*theme.SYNTAX["definition"])
    STRING = _char_format(*theme.SYNTAX["string"])
    COMMENT = _char_format(*theme.SYNTAX["comment"])

    _WORD_RULES = [
        (re.compile(r"\b(?:%s)\b" % "|".join(keyword.kwlist)), KEYWORD),
        (
            re.compile(r"\b(?:%s)\b" % "|".join(n for n in dir(builtins) if not n.startswith("_"))),
            BUILTIN,
        ),
        (re.compile(r"\bself\b"), SELF),
        (
            re.compile(
                r"\b0[xX][0-9a-fA-F_]+\b|\b0[oO][0-7_]+\b|\b0[bB][01_]+\b"
                r"|\b[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9]+)?[jJ]?\b"
                r"|(?<![\w.])\.[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?[jJ]?\b"
            ),
            NUMBER,
        ),
    ]
    # Rules whose group 1 is the part to colour.
    _GROUP_RULES = [
        (re.compile(r"^\s*(@[\w.]+)"), DECORATOR),
        (re.compile(r"\b(?:def|class)\s+(\w+)"), DEFINITION),
    ]
    # The next string opening (with its r/b/u/f prefix) or comment.
    _STRING_OR_COMMENT = re.compile(r"""#|(?:(?<!\w)[rRbBuUfF]{1,2})?("{3}|'{3}|"|')""")

    def highlightBlock(self, text: str) -> None:
        for pattern, fmt in self._WORD_RULES:
            for match in pattern.finditer(text):
                self._set_format(text, match.start(), match.end(), fmt)
        for pattern, fmt in self._GROUP_RULES:
            for match in pattern.finditer(text):
                self._set_format(text, match.start(1), match.end(1), fmt)
        self._highlight_strings_and_comments(text)

    def _highlight_strings_and_comments(self, text: str) -> None:
        self.setCurrentBlockState(self.NORMAL)
        start = 0
        open_quote = self._QUOTE_OF_STATE.get(self.previousBlockState())
        if open_quote is not None:
            end = text.find(open_quote)
            if end == -1:
                self._set_format(text, 0, len(text), self.STRING)
                self.setCurrentBlockState(self.previousBlockState())
                return
            start = end + 3
            self._set_format(text, 0, start, self.STRING)

        while True:
            match = self._STRING_OR_COMMENT.search(text, start)
            if match is None:
                return
            if match.group(0) == "#":
                self._set_format(text, match.start(), len(text), self.COMMENT)
                return
            quote = match.group(1)
            if len(quote) == 3:
                end = text.find(quote, match.end())
                if end == -1:
                    self._set_format(text, match.start(), len(text), self.STRING)
                    self.setCurrentBlockState(self._STATE_OF_QUOTE[quote])
                    return
                end += 3
            else:
                end = match.end()
                while end < len(text) and text[end] != quote:
                    end += 2 if text[end] == "\\" else 1
                end = min(end + 1, len(text))  # include the closing quote if any
            self._set_format(text, match.start(), end, self.STRING)
            start = end

    def _set_format(self, text: str, start: int, end: int, fmt: QtGui.QTextCharFormat) -> None:
        # Qt counts UTF-16 code units, Python counts code points; they differ after
        # characters outside the BMP (an emoji in a print string, say).
        utf16_start = len(text[:start].encode("utf-16-le")) // 2
        utf16_length = len(text[start:end].encode("utf-16-le")) // 2
        self.setFormat(utf16_start, utf16_length, fmt)


class LineNumberArea(QtWidgets.QWidget):
    """The gutter: line numbers and the error marker. The editor paints it."""

    def __init__(self, editor: CodeEditor) -> None:
        super().__init__(editor)
        self._editor = editor

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(self._editor.line_number_area_width(), 0)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        self._editor.paint_line_number_area(event)


class CodeEditor(QtWidgets.QPlainTextEdit):
    """A plain-text editor for Python with a gutter, colours and error marking.

    Follows Qt's "Code Editor Example" for the gutter. Key handling:
    Tab inserts four spaces; Enter keeps the line's indentation (four more after a
    line ending in ``:``); Ctrl+Enter emits ``run_requested``; Esc emits
    ``escape_pressed`` (the panel decides between closing the find bar and
    interrupting); Ctrl+C with no selection emits ``interrupt_requested``.
    """

    run_requested = QtCore.Signal()
    interrupt_requested = QtCore.Signal()
    escape_pressed = QtCore.Signal()
    zoom_requested = QtCore.Signal(int)  # +1, -1, 0 (reset): the theme's one zoom

    def __init__(self, parent: QtWidgets.QWidget | None = None,
                 document: QtGui.QTextDocument | None = None) -> None:
        super().__init__(parent)
        if document is not None:
            self.setDocument(document)
        self._error_line: int | None = None
        self._error_message = ""
        self._linked_line: int | None = None
        self._step_lines: tuple[int, int] | None = None
        self.line_number_area = LineNumberArea(self)

        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        font.setPointSize(DEFAULT_POINT_SIZE)
        self.setFont(font)
        self.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.highlighter = PythonHighlighter(self.document())

        self.blockCountChanged.connect(self._update_line_number_area_width)
        self.updateRequest.connect(self._update_line_number_area)
        self.cursorPositionChanged.connect(self._update_extra_selections)
        self.textChanged.connect(self._update_extra_selections)
        self._font_changed()
        self._update_extra_selections()

    # --- font size -----------------------------------------------------------------

    def font_size(self) -> float:
        return self.font().pointSizeF()

    def set_font_size(self, points: float) -> None:
        """Sets the editor font size in points, kept between 6 and 72."""
        font = self.font()
        font.setPointSizeF(max(MIN_POINT_SIZE, min(MAX_POINT_SIZE, points)))
        self.setFont(font)

    def changeEvent(self, event: QtCore.QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QtCore.QEvent.Type.FontChange:  # our zoom keys or Ctrl+wheel
            self._font_changed()

    def _font_changed(self) -> None:
        self.setTabStopDistance(4 * self.fontMetrics().horizontalAdvance(" "))
        self._update_line_number_area_width()
        self.line_number_area.update()

    # --- error marking ---------------------------------------------------------------

    def set_error(self, line: int, message: str) -> None:
        """Marks 1-based ``line`` as the error line, with ``message`` as its tooltip.

        A line past the end (Python reports some syntax errors one line after the
        last) is clamped to the last line. Only the line number is stored: the mark
        stays on that line number until the next ``set_error``/``clear_error``.
        """
        self._error_line = max(1, min(line, self.blockCount()))
        self._error_message = message
        self._update_extra_selections()
        self.line_number_area.update()

    def clear_error(self) -> None:
        self._error_line = None
        self._error_message = ""
        self._update_extra_selections()
        self.line_number_area.update()

    def error_line(self) -> int | None:
        return self._error_line

    def set_step_lines(self, lines: tuple[int, int] | None) -> None:
        """Mark the statement the forward pass has just run (1-based, inclusive)."""
        self._step_lines = lines
        self._update_extra_selections()
        if lines:
            self.set_linked_line(None)
            first = self.firstVisibleBlock().blockNumber()
            if not first <= lines[0] - 1 <= first + 5:
                self.verticalScrollBar().setValue(max(0, lines[0] - 4))

    def set_linked_line(self, line: int | None) -> None:
        """Tint 1-based `line` (the line that made the node selected in the graph) and
        scroll it into view, without moving the cursor."""
        self._linked_line = line
        self._update_extra_selections()
        if line:
            first = self.firstVisibleBlock().blockNumber()
            visible = max(1, int(self.viewport().height() / max(1, self.fontMetrics().lineSpacing())))
            if not first <= line - 1 < first + visible - 1:
                self.verticalScrollBar().setValue(max(0, line - 1 - visible // 3))

    def _update_extra_selections(self) -> None:
        selections = []
        if self._step_lines:
            start = self.document().findBlockByNumber(self._step_lines[0] - 1)
            end = self.document().findBlockByNumber(self._step_lines[1] - 1)
            if start.isValid():
                mark = QtWidgets.QTextEdit.ExtraSelection()
                mark.format.setBackground(STEP_LINE_COLOR)
                mark.format.setProperty(QtGui.QTextFormat.Property.FullWidthSelection, True)
                mark.cursor = QtGui.QTextCursor(start)
                last = end if end.isValid() else start
                mark.cursor.setPosition(last.position() + last.length() - 1,
                                        QtGui.QTextCursor.MoveMode.KeepAnchor)
                selections.append(mark)
        linked = self.document().findBlockByNumber(self._linked_line - 1) if self._linked_line else None
        if linked is not None and linked.isValid():
            mark = QtWidgets.QTextEdit.ExtraSelection()
            mark.format.setBackground(LINKED_LINE_COLOR)
            mark.format.setProperty(QtGui.QTextFormat.Property.FullWidthSelection, True)
            mark.cursor = QtGui.QTextCursor(linked)
            selections.append(mark)

        current = QtWidgets.QTextEdit.ExtraSelection()
        current.format.setBackground(CURRENT_LINE_COLOR)
        current.format.setProperty(QtGui.QTextFormat.Property.FullWidthSelection, True)
        current.cursor = self.textCursor()
        current.cursor.clearSelection()
        selections.append(current)

        block = self._error_block()
        if block is not None:
            error = QtWidgets.QTextEdit.ExtraSelection()
            error.format.setUnderlineStyle(QtGui.QTextCharFormat.UnderlineStyle.WaveUnderline)
            error.format.setUnderlineColor(ERROR_COLOR)
            error.cursor = QtGui.QTextCursor(block)
            error.cursor.movePosition(
                QtGui.QTextCursor.MoveOperation.EndOfBlock, QtGui.QTextCursor.MoveMode.KeepAnchor
            )
            selections.append(error)

        self.setExtraSelections(selections)

    def _error_block(self) -> QtGui.QTextBlock | None:
        if self._error_line is None:
            return None
        block = self.document().findBlockByNumber(self._error_line - 1)
        return block if block.isValid() else None

    def event(self, event: QtCore.QEvent) -> bool:
        if event.type() == QtCore.QEvent.Type.ToolTip:
            # Hovering the text arrives here from the viewport, hovering the gutter
            # from the line number area; the global position serves both.
            self._show_error_tooltip(event)
            return True
        if event.type() == QtCore.QEvent.Type.ShortcutOverride and self._command(event):
            # Our keys win over window-wide shortcuts while the editor has focus.
            event.accept()
            return True
        return super().event(event)

    def _show_error_tooltip(self, event: QtGui.QHelpEvent) -> None:
        block = self._error_block()
        if block is not None:
            y = self.viewport().mapFromGlobal(event.globalPos()).y()
            rect = self.blockBoundingGeometry(block).translated(self.contentOffset())
            if rect.top() <= y < rect.bottom():
                QtWidgets.QToolTip.showText(event.globalPos(), self._error_message, self)
                return
        QtWidgets.QToolTip.hideText()
        event.ignore()

    # --- keys ------------------------------------------------------------------------

    def _command(self, event: QtGui.QKeyEvent) -> str | None:
        """The editor command a key press stands for, or None for ordinary typing."""
        key = event.key()
        ctrl = bool(event.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier)
        if key in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
            return "run" if ctrl else "newline"
        if key == QtCore.Qt.Key.Key_Escape and event.modifiers() == QtCore.Qt.KeyboardModifier.NoModifier:
            return "escape"
        if event.matches(QtGui.QKeySequence.StandardKey.Copy) and not self.textCursor().hasSelection():
            return "interrupt"
        if ctrl and key in (QtCore.Qt.Key.Key_Equal, QtCore.Qt.Key.Key_Plus):
            return "zoom_in"
        if ctrl and key == QtCore.Qt.Key.Key_Minus:
            return "zoom_out"
        if ctrl and key == QtCore.Qt.Key.Key_0:
            return "zoom_reset"
        if key == QtCore.Qt.Key.Key_Tab and event.modifiers() == QtCore.Qt.KeyboardModifier.NoModifier:
            return "tab"
        return None

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        command = self._command(event)
        if command is None:
            super().keyPressEvent(event)
            return
        if command == "run":
            self.run_requested.emit()
        elif command == "escape":
            self.escape_pressed.emit()
        elif command == "interrupt":
            self.interrupt_requested.emit()
        elif command in ZOOM_STEPS:
            self.zoom_requested.emit(ZOOM_STEPS[command])
        elif command == "tab":
            self.insertPlainText(INDENT)
        elif command == "newline":
            self._insert_newline()
        self.ensureCursorVisible()
        event.accept()

    def _insert_newline(self) -> None:
        # Also used for Shift+Enter, which QPlainTextEdit would turn into a
        # U+2028 line separator that Python cannot parse.
        cursor = self.textCursor()
        line = cursor.block().text()
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if line[: cursor.positionInBlock()].rstrip().endswith(":"):
            indent += INDENT
        self.insertPlainText("\n" + indent)

    # --- line number area (Qt's Code Editor Example) -----------------------------

    def line_number_area_width(self) -> int:
        metrics = self.fontMetrics()
        digits = max(2, len(str(self.blockCount())))
        marker = metrics.height()  # room for the error dot
        return marker + digits * metrics.horizontalAdvance("9") + metrics.horizontalAdvance(" ")

    def _update_line_number_area_width(self, _block_count: int = 0) -> None:
        self.setViewportMargins(self.line_number_area_width(), 0, 0, 0)

    def _update_line_number_area(self, rect: QtCore.QRect, dy: int) -> None:
        if dy:
            self.line_number_area.scroll(0, dy)
        else:
            self.line_number_area.update(0, rect.y(), self.line_number_area.width(), rect.height())
        if rect.contains(self.viewport().rect()):
            self._update_line_number_area_width()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        rect = self.contentsRect()
        self.line_number_area.setGeometry(
            QtCore.QRect(rect.left(), rect.top(), self.line_number_area_width(), rect.height())
        )

    def paint_line_number_area(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self.line_number_area)
        painter.fillRect(event.rect(), GUTTER_BACKGROUND)
        metrics = self.fontMetrics()
        width = self.line_number_area.width()
        current_number = self.textCursor().blockNumber()

        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                if self._error_line == number + 1:
                    diameter = metrics.height() * 0.5
                    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
                    painter.setPen(QtCore.Qt.PenStyle.NoPen)
                    painter.setBrush(ERROR_COLOR)
                    center = QtCore.QPointF(metrics.height() / 2, top + metrics.height() / 2)
                    painter.drawEllipse(center, diameter / 2, diameter / 2)
                painter.setPen(GUTTER_CURRENT_TEXT if number == current_number else GUTTER_TEXT)
                painter.drawText(
                    0,
                    top,
                    width - metrics.horizontalAdvance(" ") // 2,
                    metrics.height(),
                    QtCore.Qt.AlignmentFlag.AlignRight,
                    str(number + 1),
                )
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()


class FindBar(QtWidgets.QWidget):
    """A one-line find bar under the editor: type to search, "n of m" to see where.

    Enter finds the next match, Shift+Enter the previous one, both wrapping around
    the document. Esc (or the close button) hides the bar and gives the focus back
    to the editor. Matching is case-insensitive, like QPlainTextEdit.find's default.
    """

    def __init__(self, editor: QtWidgets.QPlainTextEdit, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._editor = editor

        self.line_edit = QtWidgets.QLineEdit()
        self.line_edit.setPlaceholderText("Find")
        self.previous_button = QtWidgets.QPushButton("Previous")
        self.next_button = QtWidgets.QPushButton("Next")
        self.close_button = QtWidgets.QToolButton()
        self.close_button.setText("\u2715")
        self.close_button.setToolTip("Close (Esc)")
        self.status_label = QtWidgets.QLabel()

        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self.line_edit, 1)
        layout.addWidget(self.status_label)
        layout.addWidget(self.previous_button)
        layout.addWidget(self.next_button)
        layout.addWidget(self.close_button)

        self.line_edit.textEdited.connect(self._find_as_you_type)
        self.next_button.clicked.connect(self.find_next)
        self.previous_button.clicked.connect(self.find_previous)
        self.close_button.clicked.connect(self.close_bar)

    def open(self) -> None:
        self.show()
        self.line_edit.setFocus()
        self.line_edit.selectAll()

    def close_bar(self) -> None:
        self.hide()
        self._editor.setFocus()

    def find_next(self) -> bool:
        return self._find(backward=False)

    def find_previous(self) -> bool:
        return self._find(backward=True)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        # The line edit passes Enter and Esc on to us.
        if event.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
            if event.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier:
                self.find_previous()
            else:
                self.find_next()
        elif event.key() == QtCore.Qt.Key.Key_Escape:
            self.close_bar()
        else:
            super().keyPressEvent(event)

    def _find_as_you_type(self) -> None:
        # Search again from the start of the current match, so typing more letters
        # grows the match in place instead of jumping to the next one.
        cursor = self._editor.textCursor()
        cursor.setPosition(cursor.selectionStart())
        self._editor.setTextCursor(cursor)
        self.find_next()

    def _find(self, backward: bool) -> bool:
        term = self.line_edit.text()
        if not term:
            self.status_label.clear()
            return False
        flags = QtGui.QTextDocument.FindFlag.FindBackward if backward else QtGui.QTextDocument.FindFlag(0)
        found = self._editor.find(term, flags)
        if not found:  # wrap around
            before = self._editor.textCursor()
            cursor = QtGui.QTextCursor(self._editor.document())
            cursor.movePosition(
                QtGui.QTextCursor.MoveOperation.End if backward else QtGui.QTextCursor.MoveOperation.Start
            )
            self._editor.setTextCursor(cursor)
            found = self._editor.find(term, flags)
            if not found:
                self._editor.setTextCursor(before)
        self._show_status(term, found)
        return found

    def _show_status(self, term: str, found: bool) -> None:
        if not found:
            self.status_label.setText("not found")
            self.status_label.setStyleSheet(f"color: {ERROR_COLOR.name()};")
            return
        current = self._editor.textCursor().selectionStart()
        document = self._editor.document()
        total = index = 0
        match = document.find(term, 0)
        while not match.isNull():
            total += 1
            if match.selectionStart() == current:
                index = total
            match = document.find(term, match)
        self.status_label.setText(f"{index} of {total}")
        self.status_label.setStyleSheet("")


class EditorPanel(QtWidgets.QWidget):
    """The editor as the main window docks it: a CodeEditor on the script's
    document (`ScriptState`), with a FindBar below.

    ``text_edited`` fires only for the user's changes (typing, paste, undo), never for
    ``set_text``, so loading a saved script does not trigger a run by itself.
    Ctrl+Enter runs, Esc (or Ctrl+C with nothing selected) interrupts, through actions.
    """

    text_edited = QtCore.Signal()
    run_requested = QtCore.Signal()
    interrupt_requested = QtCore.Signal()

    def __init__(self, states, actions, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.script = states.script
        self.theme = states.theme

        self.editor = CodeEditor(self, document=self.script.document)
        self.find_bar = FindBar(self.editor, self)
        self.find_bar.hide()

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.find_bar)

        self.script.edited.connect(self.text_edited)
        self.script.error_changed.connect(self._on_error)
        self.selection = states.selection
        self.selection.line_changed.connect(self._on_linked_line)
        self.forward = states.forward
        self.forward.changed.connect(lambda: self.editor.set_step_lines(self.forward.lines()))
        self.editor.cursorPositionChanged.connect(self._on_cursor)
        self.theme.changed.connect(self._on_theme)
        self.editor.run_requested.connect(self.run_requested)
        self.editor.interrupt_requested.connect(self.interrupt_requested)
        self.editor.escape_pressed.connect(self._on_escape)
        self.editor.zoom_requested.connect(self.theme.zoom)
        if actions is not None:
            self.run_requested.connect(actions.run_now)
            self.interrupt_requested.connect(actions.interrupt)
            actions.goto_line.connect(self.goto_line)

        find = QtGui.QShortcut(QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.Find), self)
        find.setContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.activated.connect(self.show_find)
        self._on_theme()

    def text(self) -> str:
        return self.script.text()

    def set_text(self, text: str) -> None:
        """Replaces the whole script without emitting ``text_edited`` (one undo step)."""
        self.script.set_text(text)
        cursor = self.editor.textCursor()
        cursor.movePosition(QtGui.QTextCursor.MoveOperation.Start)
        self.editor.setTextCursor(cursor)

    def _on_error(self) -> None:
        if self.script.error_line is None:
            self.editor.clear_error()
        else:
            self.editor.set_error(self.script.error_line, self.script.error_message)

    def _on_linked_line(self, line: int) -> None:
        if line != self.editor.textCursor().blockNumber() + 1:  # not the user's own line
            self.editor.set_linked_line(line or None)
        else:
            self.editor.set_linked_line(None)

    def _on_cursor(self) -> None:
        """The user put the cursor on a line: the graph shows what that line made."""
        self.selection.set_line(self.editor.textCursor().blockNumber() + 1)

    def _on_theme(self) -> None:
        self.editor.set_font_size(self.theme.points(DEFAULT_POINT_SIZE))

    def set_error(self, line: int, message: str) -> None:
        self.script.set_error(line, message)

    def clear_error(self) -> None:
        self.script.set_error(None)

    def error_line(self) -> int | None:
        return self.editor.error_line()

    def show_find(self) -> None:
        self.find_bar.open()

    def goto_line(self, line: int) -> None:
        """Puts the cursor at the start of 1-based ``line`` (clamped) and centres it."""
        line = max(1, min(line, self.editor.blockCount()))
        cursor = QtGui.QTextCursor(self.editor.document().findBlockByNumber(line - 1))
        self.editor.setTextCursor(cursor)
        self.editor.centerCursor()
        self.editor.setFocus()

    def _on_escape(self) -> None:
        if self.find_bar.isVisible():
            self.find_bar.close_bar()
        else:
            self.interrupt_requested.emit()
