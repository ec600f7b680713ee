"""The graph panel: draws the run's Graph at the positions core.layout gives.

`GraphScene` is the drawing (also used by the headless SVG/PNG export, so a file
shows exactly what the window shows); `GraphPanel` is the view with its toolbar:
zoom, pan, fit, search, saved tensors on/off. It draws from the state objects
(the run's graph, the selection, the backward step, the view options, the theme)
and does no tensor math. Big graphs and Graphviz are laid out off the GUI thread.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from core.hooks import HOOKS
from core.labels import badge_text, node_lines, node_tooltip, run_error_text
from core.layout import (DEFAULT_METRICS, Layout, Metrics, dot_available, layout_graph,
                         layout_with_dot, positions_by_key)
from core.model.graph import Graph
from core.style import style_of
from gui import theme
from gui.layout_worker import LayoutWorker

SYNC_LAYOUT_LIMIT = 400  # nodes; bigger graphs are laid out in the worker
DOT_NODE_LIMIT = 1500  # past this, dot takes seconds: the built-in layout is used instead
MAX_FIT_ZOOM = 1.8


class NodeItem(QtWidgets.QGraphicsItem):
    """One node: a rounded box with its label lines. Painted by hand (cheap for 3,000)."""

    def __init__(self, node, box, font: QtGui.QFont, metrics: Metrics):
        super().__init__()
        self.node = node
        self.lines = node_lines(node)
        self.rect = QtCore.QRectF(-box.w / 2, -box.h / 2, box.w, box.h)
        self.font = font
        self.metrics = metrics
        fill, border = theme.STYLE[style_of(node)]
        self.fill = QtGui.QColor(fill)
        self.border = QtGui.QColor(border)
        self.setPos(box.x, box.y)
        self.setFlag(QtWidgets.QGraphicsItem.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        self.hide_grad = False  # stepping a backward: this leaf's .grad is not reached yet

    def hoverEnterEvent(self, event) -> None:
        if not self.toolTip():  # built on first hover: 3,000 nodes need not pay for it
            self.setToolTip(node_tooltip(self.node))
        super().hoverEnterEvent(event)

    def boundingRect(self) -> QtCore.QRectF:
        return self.rect.adjusted(-3, -3, 3, 3)

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        node = self.node
        pen = QtGui.QPen(self.border, 1.6)
        if node.kind == "tensor" and node.retains_grad:
            pen = QtGui.QPen(QtGui.QColor(theme.RETAINS_GRAD_BORDER), 3.2)
        if (node.kind == "saved" and node.freed) or (node.kind == "tensor" and node.cut):
            pen.setStyle(QtCore.Qt.DashLine)
        if self.isSelected():
            pen = QtGui.QPen(QtGui.QColor(theme.SELECTED), 3.5)
        painter.setPen(pen)
        painter.setBrush(self.fill)
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < 0.3:  # zoomed far out: text would be unreadable specks
            painter.drawRect(self.rect)
            return
        radius = 14 if node.kind == "op" else 5
        painter.drawRoundedRect(self.rect, radius, radius)
        painter.setFont(self.font)
        painter.setPen(QtGui.QColor(theme.TEXT))
        top = self.rect.top() + self.metrics.pad_y
        line_h = self.metrics.line_h
        for i, line in enumerate(self.lines):
            if self.hide_grad and line.startswith("grad "):
                line = "grad …"
            if i == 0 and node.kind == "tensor":
                bold = QtGui.QFont(self.font)
                bold.setBold(True)
                painter.setFont(bold)
            elif i == 1:
                painter.setFont(self.font)
            r = QtCore.QRectF(self.rect.left(), top + i * line_h, self.rect.width(), line_h)
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

    def __init__(self, parent=None, font: QtGui.QFont | None = None,
                 metrics: Metrics = DEFAULT_METRICS):
        super().__init__(parent)
        self.font = font or theme.Theme().graph_font()
        self.metrics = metrics
        self.items_by_id: dict[str, NodeItem] = {}
        self.setBackgroundBrush(QtGui.QColor("white"))
        self.setItemIndexMethod(QtWidgets.QGraphicsScene.NoIndex)

    def draw(self, graph: Graph, layout: Layout) -> None:
        self.clear()
        self.items_by_id = {}
        for node in graph.nodes:
            item = NodeItem(node, layout.boxes[node.id], self.font, self.metrics)
            self.addItem(item)
            self.items_by_id[node.id] = item
        # All edges in one path item: 4,000 items would cost more to build and clear.
        edges = QtGui.QPainterPath()
        boxes = layout.boxes
        for e in graph.edges:
            if e.src in boxes and e.dst in boxes:
                add_edge(edges, boxes[e.src], boxes[e.dst])
        self.addPath(edges, QtGui.QPen(QtGui.QColor(theme.EDGE), 1.4))
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

    def __init__(self, scene: "GraphScene"):
        self.scene = scene
        self.items: list[QtWidgets.QGraphicsItem] = []
        self.set_font(scene.font)

    def set_font(self, font: QtGui.QFont) -> None:
        self.font = QtGui.QFont(font)
        self.font.setBold(True)
        self.font.setPixelSize(max(9, font.pixelSize() - 1))

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
        for edges, colour, width in ((view.done_edges, theme.STEP_DONE, 3.0),
                                     (view.active_edges, theme.STEP_ACTIVE, 5.0)):
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
                                      QtGui.QPen(QtGui.QColor(theme.STEP_ACTIVE), 4),
                                      QtGui.QBrush(QtGui.QColor(*theme.STEP_RING_FILL)))
            ring.setZValue(0.8)
            self.items.append(ring)
        for node_id, badge in view.badges.items():
            if node_id in boxes:
                self.items.append(self._badge(boxes[node_id], badge, node_id == view.current))

    def _badge(self, box, badge, current: bool) -> QtWidgets.QGraphicsItem:
        text = badge_text(badge)
        label = QtWidgets.QGraphicsSimpleTextItem(text)
        label.setFont(self.font)
        colour = (theme.BADGE_TEXT_CURRENT if current else
                  theme.BADGE_TEXT_QUIET if badge.kind == "not_kept" else theme.BADGE_TEXT)
        label.setBrush(QtGui.QColor(colour))
        rect = label.boundingRect().adjusted(-4, -2, 4, 2)
        back = self.scene.addRect(rect, QtGui.QPen(QtGui.QColor(theme.STEP_ACTIVE if current else theme.STEP_DONE), 1.5),
                                  QtGui.QBrush(QtGui.QColor(theme.BADGE_FILL)))
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
        self.banner_points = float(theme.BANNER_POINTS)

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
        painter.fillRect(area, QtGui.QColor(*theme.STALE_VEIL))
        painter.setPen(QtGui.QColor(theme.ERROR))
        font = QtGui.QFont(painter.font())
        font.setPointSizeF(self.banner_points)
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(area.adjusted(10, 10, -10, -10),
                         QtCore.Qt.AlignTop | QtCore.Qt.AlignHCenter | QtCore.Qt.TextWordWrap,
                         self.stale_text)
        painter.restore()


class GraphPanel(QtWidgets.QWidget):
    """The live autograd graph, with zoom, pan, fit, search and a saved-tensors switch.

    Draws `states.run.graph` (dimmed with the error while `states.run` is stale), the
    backward step of `states.backward`, the selection of `states.selection`, as
    `states.view` and `states.theme` say."""

    def __init__(self, states, actions, parent=None):
        super().__init__(parent)
        self.run, self.selection, self.backward = states.run, states.selection, states.backward
        self.view_state, self.theme = states.view, states.theme
        self.actions = actions
        self.shown: Graph | None = None  # what is drawn (without saved tensors, maybe)
        self.layout_: Layout | None = None
        self.previous: dict[str, tuple[float, float]] = {}  # key -> position, last drawing only
        self.step_view = None  # core.model.backward.StepView drawn on top, or None
        self._matches: list[str] = []
        self._match_index = -1
        self._fit_after_layout = False

        self.scene = GraphScene(self, self.theme.graph_font(), self.theme.graph_metrics())
        self.view = GraphView(self.scene)
        self.overlay = StepOverlay(self.scene)
        self.worker = LayoutWorker(self)
        self.worker.finished.connect(self._on_laid_out)
        self.worker.failed.connect(self._on_layout_failed)
        self.scene.selectionChanged.connect(self._on_scene_selection)

        self.search = QtWidgets.QLineEdit(placeholderText="Find node (Ctrl+Shift+F)")
        self.search.setClearButtonEnabled(True)
        self.search.returnPressed.connect(self.find_next)
        self.search.textChanged.connect(self._on_search_text)
        self.saved_box = QtWidgets.QCheckBox("Saved tensors")
        self.saved_box.setToolTip("Show the tensors each grad_fn saved for backward (_saved_*)")
        self.saved_box.toggled.connect(self.view_state.set_show_saved)
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
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(bar)
        box.addWidget(self.view, 1)
        box.addWidget(self._legend())
        for key, slot in [("F", self.fit), ("+", lambda: self.view.zoom(1.25)),
                          ("=", lambda: self.view.zoom(1.25)), ("-", lambda: self.view.zoom(1 / 1.25)),
                          ("Ctrl+Shift+F", self.focus_search)]:
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self.view if len(key) == 1 else self)
            sc.setContext(QtCore.Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
        b = self.backward
        for key, slot in [("Space", b.toggle_play), ("Right", b.step_forward), ("Left", b.step_back),
                          ("Home", b.to_start), ("End", b.to_end)]:
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.setContext(QtCore.Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
        if actions is not None:
            self.view.hook_requested.connect(actions.add_hook)

        self.run.graph_changed.connect(self._on_graph)
        self.run.error_changed.connect(self._on_error)
        self.view_state.changed.connect(self._on_view_options)
        self.backward.step_changed.connect(self._on_step)
        self.backward.trace_changed.connect(lambda: self._on_step(self.backward.index))
        self.selection.changed.connect(self._on_selection_state)
        self.theme.changed.connect(self._on_theme)
        self.saved_box.setChecked(self.view_state.show_saved)
        if self.run.graph is not None:
            self._on_graph()

    @staticmethod
    def _legend() -> QtWidgets.QWidget:
        """A row of colour swatches, so a student can read the drawing."""
        row = QtWidgets.QWidget()
        box = QtWidgets.QGridLayout(row)
        box.setContentsMargins(4, 0, 4, 0)
        box.setHorizontalSpacing(6)
        entries = [(theme.STYLE[k][0], theme.STYLE[k][1], text) for k, text in theme.LEGEND]
        entries.append(("white", theme.RETAINS_GRAD_BORDER, "retains_grad (gold border)"))
        for i, (fill, border, text) in enumerate(entries):
            swatch = QtWidgets.QLabel()
            swatch.setFixedSize(22, 14)
            swatch.setStyleSheet(f"QLabel {{ background-color: {fill}; border: 2px solid {border}; }}")
            box.addWidget(swatch, i // 4, 2 * (i % 4))
            box.addWidget(QtWidgets.QLabel(text), i // 4, 2 * (i % 4) + 1)
        box.setColumnStretch(8, 1)
        return row

    # --- from the states ------------------------------------------------------------
    def _on_graph(self) -> None:
        """A new graph: nodes that were drawn before keep their place."""
        first = self.shown is None
        self._on_error()
        self._relayout(fit=first)

    def _on_error(self) -> None:
        """Dim the drawing while the code has an error (this is the last good graph)."""
        err = self.run.error
        self.view.stale_text = "" if err is None else f"{run_error_text(err)}\n(showing the last good graph)"
        self.view.viewport().update()

    def _on_view_options(self) -> None:
        if self.saved_box.isChecked() != self.view_state.show_saved:
            self.saved_box.setChecked(self.view_state.show_saved)
        if self.run.graph is not None:
            self._relayout(fit=self.use_dot())

    def _on_theme(self) -> None:
        self.scene.font = self.theme.graph_font()
        self.scene.metrics = self.theme.graph_metrics()
        self.overlay.set_font(self.scene.font)
        self.view.banner_points = self.theme.points(theme.BANNER_POINTS)
        self.previous = {}
        if self.run.graph is not None:
            self._relayout(fit=True)

    def _on_step(self, index: int) -> None:
        """Draw one step of a recorded backward (none when nothing is recorded)."""
        self.step_view = self.backward.view(self.shown)
        if self.step_view is None:
            self.overlay.clear()
        elif self.layout_ is not None:
            self.overlay.show(self.step_view, self.layout_.boxes)
            if self.step_view.current in self.scene.items_by_id:
                self.view.ensureVisible(self.scene.items_by_id[self.step_view.current], 80, 80)

    def _on_selection_state(self, node_id: str) -> None:
        item = self.scene.items_by_id.get(node_id)
        if item is not None and not item.isSelected():
            self.scene.clearSelection()
            item.setSelected(True)
            self.view.centerOn(item)

    def use_dot(self) -> bool:
        return self.view_state.use_dot and dot_available()

    # --- layout ---------------------------------------------------------------------------
    def _relayout(self, fit: bool = False) -> None:
        graph = self.run.graph
        shown = graph if self.view_state.show_saved else graph.without_saved()
        metrics, previous = self.scene.metrics, dict(self.previous)
        if self.use_dot() and len(shown.nodes) <= DOT_NODE_LIMIT:
            def job(cancelled):
                return shown, layout_with_dot(shown, metrics, cancelled=cancelled), "laid out by Graphviz dot"
        else:
            def job(cancelled):
                return shown, layout_graph(shown, previous, metrics=metrics, cancelled=cancelled), ""
        self._fit_after_layout = fit or self._fit_after_layout
        if len(shown.nodes) <= SYNC_LAYOUT_LIMIT and not self.use_dot():
            self.worker.cancel()
            self._draw(*job(lambda: False))
        else:
            self.info.setText(f"laying out {len(shown.nodes)} nodes…")
            self.worker.submit(job)

    def _on_laid_out(self, _number: int, result) -> None:
        self._draw(*result)

    def _on_layout_failed(self, _number: int, why: str) -> None:
        """Graphviz failed or timed out: the built-in layout instead, and why."""
        graph = self.run.graph
        shown = graph if self.view_state.show_saved else graph.without_saved()
        self._draw(shown, layout_graph(shown, self.previous, metrics=self.scene.metrics),
                   f"Graphviz dot failed ({why}); built-in layout used")

    def _draw(self, shown: Graph, layout: Layout, how: str) -> None:
        selected = self.selection.node_id
        self.shown, self.layout_ = shown, layout
        self.info.setToolTip(how)
        if not how:
            self.previous = positions_by_key(shown, layout)
        self.scene.blockSignals(True)
        self.overlay.items = []  # scene.clear() below deletes them
        self.scene.draw(shown, layout)
        self.step_view = self.backward.view(shown)
        if self.step_view is not None:
            self.overlay.show(self.step_view, layout.boxes)
        if selected in self.scene.items_by_id:
            self.scene.items_by_id[selected].setSelected(True)
        self.scene.blockSignals(False)
        counts = {k: len(shown.by_kind(k)) for k in ("tensor", "op", "saved")}
        self.info.setText(f"{counts['tensor']} tensors · {counts['op']} ops"
                          + (f" · {counts['saved']} saved" if self.view_state.show_saved else ""))
        if self._fit_after_layout or (len(shown.nodes) < 150 and not self._all_visible()):
            self.fit()
        self._fit_after_layout = False

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

    def _on_scene_selection(self) -> None:
        self.selection.set(self.selected_id())


def render_graph(graph: Graph, fmt: str, scale: float = 2.0) -> bytes:
    """`graph` as the bytes of an "svg" or "png" file, drawn by the panel's own
    GraphScene in memory (the caller writes the file). Raises OSError when Qt cannot
    encode it."""
    from PySide6 import QtSvg

    if fmt not in ("svg", "png"):
        raise ValueError(f"cannot draw a graph as {fmt!r}")
    scene = GraphScene()
    scene.draw(graph, layout_graph(graph, metrics=scene.metrics))
    rect = scene.sceneRect()
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.WriteOnly)
    if fmt == "svg":
        gen = QtSvg.QSvgGenerator()
        gen.setOutputDevice(buffer)
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
    if not painter.isActive():
        raise OSError(f"Qt could not start drawing the {fmt.upper()}")
    scene.render(painter, QtCore.QRectF(), rect)
    painter.end()
    if fmt == "png" and not image.save(buffer, "PNG"):
        raise OSError("Qt could not encode the PNG")
    return bytes(buffer.data())
