"""The graph panel: draws a core Graph at the positions core.layout gives.

`GraphScene` is the drawing (also used by the headless SVG/PNG export, so a file
shows exactly what the window shows); `GraphPanel` is the view with its toolbar:
zoom, pan, fit, search, saved tensors on/off. It does no tensor math and no
layout of its own.
"""
from __future__ import annotations

import subprocess

from PySide6 import QtCore, QtGui, QtWidgets

from core.graph import Graph
from core.hooks import HOOKS
from core.style import LEGEND, RETAINS_GRAD_BORDER, STYLE, style_of
from core.layout import (CHAR_W, LINE_H, PAD_Y, Layout, dot_available, layout_graph, layout_with_dot,
                         node_lines, positions_by_key)

EDGE_COLOUR = "#555555"
SELECT_COLOUR = "#e53935"
DOT_NODE_LIMIT = 1500  # past this, dot takes seconds: the built-in layout is used instead
MAX_FIT_ZOOM = 1.8


def tooltip_of(node) -> str:
    if node.kind == "op":
        return f"{node.name}\nautograd node (grad_fn)"
    if node.kind == "saved":
        state = "freed by backward()" if node.freed else f"shape {tuple(node.shape)}, {node.dtype}"
        return f"saved tensor '{node.name}'\n{state}"
    return "\n".join([
        node.name or "(unnamed leaf)", f"shape {tuple(node.shape)}", f"dtype {node.dtype}",
        f"device {node.device}", f"requires_grad {node.requires_grad}", f"is_leaf {node.is_leaf}",
        f"grad_fn {node.grad_fn}", f"retains_grad {node.retains_grad}"]
        + ([f"cut off from the graph by {node.cut}: no history"] if node.cut else []))


def node_font() -> QtGui.QFont:
    """A monospace font whose advance fits core.layout's CHAR_W."""
    font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
    font.setStyleHint(QtGui.QFont.Monospace)
    size = 14
    while size > 6:
        font.setPixelSize(size)
        if QtGui.QFontMetricsF(font).horizontalAdvance("M") <= CHAR_W:
            break
        size -= 1
    return font


class NodeItem(QtWidgets.QGraphicsItem):
    """One node: a rounded box with its label lines. Painted by hand (cheap for 3,000)."""

    def __init__(self, node, box, font: QtGui.QFont):
        super().__init__()
        self.node = node
        self.lines = node_lines(node)
        self.rect = QtCore.QRectF(-box.w / 2, -box.h / 2, box.w, box.h)
        self.font = font
        fill, border = STYLE[style_of(node)]
        self.fill = QtGui.QColor(fill)
        self.border = QtGui.QColor(border)
        self.setPos(box.x, box.y)
        self.setFlag(QtWidgets.QGraphicsItem.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        self.hide_grad = False  # stepping a backward: this leaf's .grad is not reached yet

    def hoverEnterEvent(self, event) -> None:
        if not self.toolTip():  # built on first hover: 3,000 nodes need not pay for it
            self.setToolTip(tooltip_of(self.node))
        super().hoverEnterEvent(event)

    def boundingRect(self) -> QtCore.QRectF:
        return self.rect.adjusted(-3, -3, 3, 3)

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        node = self.node
        pen = QtGui.QPen(self.border, 1.6)
        if node.kind == "tensor" and node.retains_grad:
            pen = QtGui.QPen(QtGui.QColor(RETAINS_GRAD_BORDER), 3.2)
        if (node.kind == "saved" and node.freed) or (node.kind == "tensor" and node.cut):
            pen.setStyle(QtCore.Qt.DashLine)
        if self.isSelected():
            pen = QtGui.QPen(QtGui.QColor(SELECT_COLOUR), 3.5)
        painter.setPen(pen)
        painter.setBrush(self.fill)
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < 0.3:  # zoomed far out: text would be unreadable specks
            painter.drawRect(self.rect)
            return
        radius = 14 if node.kind == "op" else 5
        painter.drawRoundedRect(self.rect, radius, radius)
        painter.setFont(self.font)
        painter.setPen(QtGui.QColor("#111111"))
        top = self.rect.top() + PAD_Y
        for i, line in enumerate(self.lines):
            if self.hide_grad and line.startswith("grad "):
                line = "grad …"
            if i == 0 and node.kind == "tensor":
                bold = QtGui.QFont(self.font)
                bold.setBold(True)
                painter.setFont(bold)
            elif i == 1:
                painter.setFont(self.font)
            r = QtCore.QRectF(self.rect.left(), top + i * LINE_H, self.rect.width(), LINE_H)
            painter.drawText(r, QtCore.Qt.AlignCenter, line)


def add_edge(path: QtGui.QPainterPath, src, dst) -> None:
    """Add to `path` a cubic curve from the bottom of `src` to the top of `dst`,
    with an arrowhead."""
    x0, y0 = src.x, src.y + src.h / 2
    x1, y1 = dst.x, dst.y - dst.h / 2
    bend = max(20.0, (y1 - y0) / 2)
    path.moveTo(x0, y0)
    path.cubicTo(x0, y0 + bend, x1, y1 - bend, x1, y1)
    path.moveTo(x1 - 5, y1 - 9)
    path.lineTo(x1, y1)
    path.lineTo(x1 + 5, y1 - 9)



class GraphScene(QtWidgets.QGraphicsScene):
    """The drawing of one Graph at one Layout."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.font = node_font()
        self.items_by_id: dict[str, NodeItem] = {}
        self.setBackgroundBrush(QtGui.QColor("white"))
        self.setItemIndexMethod(QtWidgets.QGraphicsScene.NoIndex)

    def draw(self, graph: Graph, layout: Layout) -> None:
        self.clear()
        self.items_by_id = {}
        for node in graph.nodes:
            item = NodeItem(node, layout.boxes[node.id], self.font)
            self.addItem(item)
            self.items_by_id[node.id] = item
        # All edges in one path item: 4,000 items would cost more to build and clear.
        edges = QtGui.QPainterPath()
        boxes = layout.boxes
        for e in graph.edges:
            if e.src in boxes and e.dst in boxes:
                add_edge(edges, boxes[e.src], boxes[e.dst])
        self.edges_item = self.addPath(edges, QtGui.QPen(QtGui.QColor(EDGE_COLOUR), 1.4))
        rect = QtCore.QRectF()
        if boxes:
            left = min(b.x - b.w / 2 for b in boxes.values())
            top = min(b.y - b.h / 2 for b in boxes.values())
            right = max(b.x + b.w / 2 for b in boxes.values())
            bottom = max(b.y + b.h / 2 for b in boxes.values())
            rect = QtCore.QRectF(left, top, right - left, bottom - top)
        self.setSceneRect(rect.adjusted(-30, -30, 30, 30))


class StepOverlay:
    """The drawing of one backward step on top of a GraphScene: the node being
    run, the edges its gradient leaves by, and each reached node's gradient."""

    ACTIVE = "#ff6d00"
    DONE = "#ffb74d"

    def __init__(self, scene: "GraphScene"):
        self.scene = scene
        self.items: list[QtWidgets.QGraphicsItem] = []
        self.font = QtGui.QFont(scene.font)
        self.font.setBold(True)
        self.font.setPixelSize(max(9, scene.font.pixelSize() - 1))

    def clear(self) -> None:
        for item in self.items:
            if item.scene() is self.scene:
                self.scene.removeItem(item)
        self.items = []
        for item in self.scene.items_by_id.values():
            if item.hide_grad:
                item.hide_grad = False
                item.update()

    def show(self, view, boxes) -> None:
        self.clear()
        for node_id in view.pending_leaves:
            item = self.scene.items_by_id.get(node_id)
            if item is not None:
                item.hide_grad = True
                item.update()
        for edges, colour, width in ((view.done_edges, self.DONE, 3.0),
                                     (view.active_edges, self.ACTIVE, 5.0)):
            path = QtGui.QPainterPath()
            for src, dst in edges:
                if src in boxes and dst in boxes:
                    add_edge(path, boxes[src], boxes[dst])
            if not path.isEmpty():
                pen = QtGui.QPen(QtGui.QColor(colour), width)
                pen.setCapStyle(QtCore.Qt.RoundCap)
                item = self.scene.addPath(path, pen)
                item.setZValue(0.5)
                self.items.append(item)
        if view.current in boxes:
            b = boxes[view.current]
            ring = self.scene.addRect(QtCore.QRectF(b.x - b.w / 2 - 6, b.y - b.h / 2 - 6, b.w + 12, b.h + 12),
                                      QtGui.QPen(QtGui.QColor(self.ACTIVE), 4),
                                      QtGui.QBrush(QtGui.QColor(255, 109, 0, 60)))
            ring.setZValue(0.8)
            self.items.append(ring)
        for node_id, text in view.badges.items():
            if node_id in boxes:
                self.items.append(self._badge(boxes[node_id], text, node_id == view.current))

    def _badge(self, box, text: str, current: bool) -> QtWidgets.QGraphicsItem:
        label = QtWidgets.QGraphicsSimpleTextItem(text)
        label.setFont(self.font)
        quiet = text.startswith("grad not kept")
        label.setBrush(QtGui.QColor("#bf360c" if current else "#9e9e9e" if quiet else "#6d4c41"))
        rect = label.boundingRect().adjusted(-4, -2, 4, 2)
        back = self.scene.addRect(rect, QtGui.QPen(QtGui.QColor(self.ACTIVE if current else self.DONE), 1.5),
                                  QtGui.QBrush(QtGui.QColor("#fff8e1")))
        label.setParentItem(back)
        # Under the node, in the gap between rows, so it never hides a neighbour.
        back.setPos(box.x - rect.width() / 2 + 4, box.y + box.h / 2 + 5)
        back.setZValue(2)
        back.setToolTip(text)
        return back


class GraphView(QtWidgets.QGraphicsView):
    """Wheel zooms about the cursor, drag pans, and a dimmed veil marks a stale graph."""

    hook_requested = QtCore.Signal(str, str)  # node id, hook kind (core.hooks.HOOKS)

    def __init__(self, scene: GraphScene):
        super().__init__(scene)
        self.setRenderHints(QtGui.QPainter.Antialiasing | QtGui.QPainter.TextAntialiasing)
        self.setDragMode(QtWidgets.QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QtWidgets.QGraphicsView.AnchorUnderMouse)
        self.setViewportUpdateMode(QtWidgets.QGraphicsView.SmartViewportUpdate)
        self.stale_text = ""

    def contextMenuEvent(self, event: QtGui.QContextMenuEvent) -> None:
        """Right-click a tensor that requires grad, or the grad_fn of a named tensor:
        add a gradient hook (written into the script as code)."""
        item = self.itemAt(event.pos())
        node = getattr(item, "node", None)
        if node is None:
            return
        if node.kind == "tensor" and node.name and node.requires_grad:
            title = f"Gradient hook on {node.name}"
        elif node.kind == "op" and node.name != "AccumulateGrad":
            title = f"Hook on {node.name}: the gradients it passes on"
        else:
            return
        menu = QtWidgets.QMenu(self)
        menu.addSection(title)
        for kind, (text, _) in HOOKS.items():
            act = menu.addAction(text.capitalize())
            act.triggered.connect(lambda _=False, k=kind: self.hook_requested.emit(node.id, k))
        menu.exec(event.globalPos())

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        self.zoom(1.15 ** steps)

    def zoom(self, factor: float) -> None:
        current = self.transform().m11()
        factor = max(0.02 / current, min(8.0 / current, factor))
        self.scale(factor, factor)

    def drawForeground(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        if not self.stale_text:
            return
        painter.save()
        painter.resetTransform()
        area = QtCore.QRectF(self.viewport().rect())
        painter.fillRect(area, QtGui.QColor(255, 255, 255, 150))
        painter.setPen(QtGui.QColor("#b71c1c"))
        font = QtGui.QFont(painter.font())
        font.setPointSize(12)
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(area.adjusted(10, 10, -10, -10),
                         QtCore.Qt.AlignTop | QtCore.Qt.AlignHCenter, self.stale_text)
        painter.restore()


class GraphPanel(QtWidgets.QWidget):
    """The live autograd graph, with zoom, pan, fit, search and a saved-tensors switch."""

    node_selected = QtCore.Signal(str)  # node id, or "" when nothing is selected

    def __init__(self, parent=None):
        super().__init__(parent)
        self.graph: Graph | None = None  # the whole graph of the last good run
        self.shown: Graph | None = None  # what is drawn (without saved tensors, maybe)
        self.layout_: Layout | None = None
        self.previous: dict[str, tuple[float, float]] = {}
        self.show_saved = False
        self.use_dot = False  # lay out with Graphviz dot instead of core.layout
        self._matches: list[str] = []
        self._match_index = -1

        self.scene = GraphScene(self)
        self.view = GraphView(self.scene)
        self.overlay = StepOverlay(self.scene)
        self.step_view = None  # core.backward.StepView drawn on top, or None
        self.scene.selectionChanged.connect(self._on_selection)

        self.search = QtWidgets.QLineEdit(placeholderText="Find node (Ctrl+Shift+F)")
        self.search.setClearButtonEnabled(True)
        self.search.returnPressed.connect(self.find_next)
        self.search.textChanged.connect(self._on_search_text)
        self.saved_box = QtWidgets.QCheckBox("Saved tensors")
        self.saved_box.setToolTip("Show the tensors each grad_fn saved for backward (_saved_*)")
        self.saved_box.toggled.connect(self.set_show_saved)
        buttons = QtWidgets.QHBoxLayout()
        for text, tip, slot in [("−", "Zoom out (-)", lambda: self.view.zoom(1 / 1.25)),
                                ("+", "Zoom in (+)", lambda: self.view.zoom(1.25)),
                                ("Fit", "Fit the graph (F)", self.fit)]:
            b = QtWidgets.QToolButton(text=text, toolTip=tip)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        self.info = QtWidgets.QLabel("")
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.search, 2)
        bar.addWidget(self.saved_box)
        bar.addLayout(buttons)
        bar.addWidget(self.info, 1, QtCore.Qt.AlignRight)
        legend = self._legend()
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(bar)
        box.addWidget(self.view, 1)
        box.addWidget(legend)
        for key, slot in [("F", self.fit), ("+", lambda: self.view.zoom(1.25)),
                          ("=", lambda: self.view.zoom(1.25)), ("-", lambda: self.view.zoom(1 / 1.25)),
                          ("Ctrl+Shift+F", self.focus_search)]:
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self.view if len(key) == 1 else self)
            sc.setContext(QtCore.Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)

    @staticmethod
    def _legend() -> QtWidgets.QWidget:
        """A row of colour swatches, so a student can read the drawing."""
        row = QtWidgets.QWidget()
        box = QtWidgets.QGridLayout(row)
        box.setContentsMargins(4, 0, 4, 0)
        box.setHorizontalSpacing(6)
        entries = [(STYLE[k][0], STYLE[k][1], text) for k, text in LEGEND]
        entries.append(("#ffffff", RETAINS_GRAD_BORDER, "retains_grad (gold border)"))
        for i, (fill, border, text) in enumerate(entries):
            swatch = QtWidgets.QLabel()
            swatch.setFixedSize(22, 14)
            swatch.setStyleSheet(f"QLabel {{ background-color: {fill}; border: 2px solid {border}; }}")
            box.addWidget(swatch, i // 4, 2 * (i % 4))
            box.addWidget(QtWidgets.QLabel(text), i // 4, 2 * (i % 4) + 1)
        box.setColumnStretch(8, 1)
        return row

    # --- the model ------------------------------------------------------------
    def show_graph(self, graph: Graph) -> None:
        """Draw a new graph; nodes that were drawn before keep their place."""
        first = self.graph is None
        self.graph = graph
        self.set_stale("")
        self._redraw()
        if first or (len(self.shown.nodes) < 150 and not self._all_visible()):
            self.fit()

    def set_stale(self, message: str) -> None:
        """Dim the drawing (the code has an error; this is the last good graph)."""
        self.view.stale_text = message
        self.view.viewport().update()

    def set_use_dot(self, on: bool) -> None:
        self.use_dot = on and dot_available()
        if self.graph is not None:
            self._redraw()
            self.fit()

    def set_show_saved(self, on: bool) -> None:
        self.show_saved = on
        if self.saved_box.isChecked() != on:
            self.saved_box.setChecked(on)
        if self.graph is not None:
            self._redraw()

    def _redraw(self) -> None:
        selected = self.selected_id()
        self.shown = self.graph if self.show_saved else self.graph.without_saved()
        self.layout_ = None
        if self.use_dot and len(self.shown.nodes) <= DOT_NODE_LIMIT:
            try:
                self.layout_ = layout_with_dot(self.shown)
                self.info.setToolTip("laid out by Graphviz dot")
            except (OSError, subprocess.SubprocessError) as exc:
                self.info.setToolTip(f"Graphviz dot failed ({exc}); built-in layout used")
        if self.layout_ is None:
            self.layout_ = layout_graph(self.shown, self.previous)
            self.previous.update(positions_by_key(self.shown, self.layout_))
        self.scene.blockSignals(True)
        self.overlay.items = []  # scene.clear() below deletes them
        self.scene.draw(self.shown, self.layout_)
        if self.step_view is not None:
            self.overlay.show(self.step_view, self.layout_.boxes)
        if selected and selected in self.scene.items_by_id:
            self.scene.items_by_id[selected].setSelected(True)
        self.scene.blockSignals(False)
        counts = {k: len(self.shown.by_kind(k)) for k in ("tensor", "op", "saved")}
        self.info.setText(f"{counts['tensor']} tensors · {counts['op']} ops"
                          + (f" · {counts['saved']} saved" if self.show_saved else ""))

    def show_step(self, view) -> None:
        """Draw one step of a recorded backward (None: no stepping)."""
        self.step_view = view
        if view is None:
            self.overlay.clear()
        elif self.layout_ is not None:
            self.overlay.show(view, self.layout_.boxes)
            if view.current in self.scene.items_by_id:
                self.view.ensureVisible(self.scene.items_by_id[view.current], 80, 80)

    # --- navigation -------------------------------------------------------------
    def fit(self) -> None:
        rect = self.scene.sceneRect()
        if rect.isEmpty():
            return
        self.view.fitInView(rect, QtCore.Qt.KeepAspectRatio)
        if self.view.transform().m11() > MAX_FIT_ZOOM:  # a tiny graph stays readable, not poster-sized
            self.view.resetTransform()
            self.view.scale(MAX_FIT_ZOOM, MAX_FIT_ZOOM)
            self.view.centerOn(rect.center())

    def _all_visible(self) -> bool:
        visible = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        return visible.contains(self.scene.itemsBoundingRect())

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _on_search_text(self, text: str) -> None:
        self._matches = self.find(text) if text else []
        self._match_index = -1
        if self._matches:
            self.find_next()

    def find(self, text: str) -> list[str]:
        """Ids of drawn nodes whose label contains `text` (case-insensitive)."""
        needle = text.lower()
        return [nid for nid, item in self.scene.items_by_id.items()
                if any(needle in line.lower() for line in item.lines[:1])]

    def find_next(self) -> None:
        if not self._matches:
            self._matches = self.find(self.search.text()) if self.search.text() else []
        if not self._matches:
            return
        self._match_index = (self._match_index + 1) % len(self._matches)
        self.select(self._matches[self._match_index])

    def select(self, node_id: str) -> None:
        item = self.scene.items_by_id.get(node_id)
        if item is None:
            return
        self.scene.clearSelection()
        item.setSelected(True)
        self.view.centerOn(item)

    def selected_id(self) -> str:
        items = self.scene.selectedItems()
        return items[0].node.id if items else ""

    def _on_selection(self) -> None:
        self.node_selected.emit(self.selected_id())


def render_graph(graph: Graph, path: str, scale: float = 2.0) -> None:
    """Write `graph` as .svg or .png, drawn by the panel's own GraphScene."""
    from PySide6 import QtSvg

    scene = GraphScene()
    scene.draw(graph, layout_graph(graph))
    rect = scene.sceneRect()
    if path.endswith(".svg"):
        gen = QtSvg.QSvgGenerator()
        gen.setFileName(path)
        gen.setSize(rect.size().toSize())
        gen.setViewBox(QtCore.QRectF(0, 0, rect.width(), rect.height()))
        gen.setTitle("Torchscope autograd graph")
        painter = QtGui.QPainter(gen)
    else:
        # QImage sides stop at 32,767 px: a 3,000-node chain is drawn smaller, not refused.
        scale = min(scale, 30_000 / max(rect.width(), rect.height(), 1.0))
        image = QtGui.QImage((rect.size() * scale).toSize(), QtGui.QImage.Format_ARGB32)
        image.fill(QtGui.QColor("white"))
        painter = QtGui.QPainter(image)
        painter.setRenderHints(QtGui.QPainter.Antialiasing | QtGui.QPainter.TextAntialiasing)
    scene.render(painter, QtCore.QRectF(), rect)
    painter.end()
    if not path.endswith(".svg"):
        if not image.save(path):
            raise OSError(f"could not write {path}")
