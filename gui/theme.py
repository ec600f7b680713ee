"""Colours and fonts in one place, and one scale factor that every text follows.

Node colours are shared with the .dot export, so they live in `core.style`; every
other colour the window paints is here. `Theme.scale` multiplies every font size:
the editor, graph labels, badges, inspector, output and bars (lecture mode will
set it large).
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui

from core.layout import Metrics
from core.style import EDGE_COLOUR, EDGE_DASH, LEGEND, RETAINS_GRAD_BORDER, STYLE  # noqa: F401  (node colours)

# The graph
EDGE = "#555555"
SELECTED = "#e53935"
TEXT = "#111111"
STEP_ACTIVE = "#ff6d00"  # the node the engine runs now, and the edges it sends gradient by
STEP_DONE = "#ffb74d"
STEP_RING_FILL = (255, 109, 0, 60)
BADGE_FILL = "#fff8e1"
BADGE_TEXT = "#6d4c41"
BADGE_TEXT_CURRENT = "#bf360c"
BADGE_TEXT_QUIET = "#9e9e9e"
STALE_VEIL = (255, 255, 255, 150)
ERROR = "#b71c1c"
NOTE = "#37474f"
EVENT = "#1565c0"
STDERR = "#a04000"
MUTED = "#777777"
KEY_TEXT = "#555555"

# The editor
EDITOR_CURRENT_LINE = "#eef3fb"
LINKED_LINE = "#d7f2ee"  # the line that made the node selected in the graph
STEP_LINE = "#ffe0b2"  # the statement the forward pass has just run
LINKED = "#00897b"  # the graph's outline of the nodes the editor's line made
EDITOR_ERROR = "#d32f2f"
GUTTER_BACKGROUND = "#f3f3f3"
GUTTER_TEXT = "#9a9a9a"
GUTTER_CURRENT_TEXT = "#333333"
SYNTAX = {  # colour, bold, italic
    "keyword": ("#0033b3", True, False), "builtin": ("#7a3e9d", False, False),
    "self": ("#94558d", False, True), "number": ("#1750eb", False, False),
    "decorator": ("#9e6a03", False, False), "definition": ("#00627a", True, False),
    "string": ("#067d17", False, False), "comment": ("#8c8c8c", False, True),
}

# Font sizes at scale 1
EDITOR_POINTS = 13
OUTPUT_POINTS = 11
GRAPH_LABEL_PIXELS = 14  # the largest monospace size whose advance fits GRAPH_CHAR_W
GRAPH_CHAR_W = 8.0
GRAPH_LINE_H = 17.0
BANNER_POINTS = 12
MIN_SCALE, MAX_SCALE = 0.5, 4.0
ZOOM_STEP = 1.15


def monospace(points: float | None = None) -> QtGui.QFont:
    font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
    font.setStyleHint(QtGui.QFont.Monospace)
    if points:
        font.setPointSizeF(points)
    return font


class Theme(QtCore.QObject):
    """The scale factor (a state object: panels subscribe to `changed`)."""

    changed = QtCore.Signal()

    def __init__(self, scale: float = 1.0, parent=None):
        super().__init__(parent)
        self.scale = scale
        self.high_contrast = False  # presentation mode: black edges, thicker lines

    def set_high_contrast(self, on: bool) -> None:
        if on != self.high_contrast:
            self.high_contrast = on
            self.changed.emit()

    def edge_pen(self) -> tuple[str, float]:
        """Colour and width of the graph's edges."""
        return ("#000000", 2.4) if self.high_contrast else (EDGE, 1.4)

    def border_width(self) -> float:
        return 2.6 if self.high_contrast else 1.6

    def set_scale(self, scale: float) -> None:
        scale = max(MIN_SCALE, min(MAX_SCALE, scale))
        if scale != self.scale:
            self.scale = scale
            self.changed.emit()

    def zoom(self, steps: int) -> None:
        """Ctrl+= (+1) and Ctrl+- (-1), from anywhere; 0 resets."""
        self.set_scale(round(self.scale * ZOOM_STEP ** steps, 3) if steps else 1.0)

    def points(self, base: float) -> float:
        return base * self.scale

    def graph_font(self) -> QtGui.QFont:
        """A monospace font whose advance fits `graph_metrics().char_w`."""
        font = monospace()
        char_w = GRAPH_CHAR_W * self.scale
        size = int(GRAPH_LABEL_PIXELS * self.scale)
        while size > 6:
            font.setPixelSize(size)
            if QtGui.QFontMetricsF(font).horizontalAdvance("M") <= char_w:
                break
            size -= 1
        return font

    def graph_metrics(self) -> Metrics:
        s = self.scale
        return Metrics(char_w=GRAPH_CHAR_W * s, line_h=GRAPH_LINE_H * s, pad_x=12.0 * s, pad_y=8.0 * s)

    def as_dict(self) -> dict:
        return {"scale": self.scale}

    def from_dict(self, d: dict) -> None:
        try:
            self.set_scale(float(d.get("scale", 1.0)))
        except (TypeError, ValueError):
            pass
