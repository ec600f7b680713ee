"""The drawing of a graph: nodes, edges, and a backward step on top.

Used by the graph panel and by the headless SVG/PNG export, so a file shows exactly
what the window shows. Built to stay fast at tens of thousands of nodes: nodes too
small to read are painted as plain boxes (or not at all), edges live in one path per
horizontal band so that only the bands on screen are painted, and stepping a
backward changes only what that step changes.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from core.labels import badge_text, node_lines, node_tooltip
from core.layout import DEFAULT_METRICS, Box, Layout, Metrics
from core.model.backward import StepInfo
from core.model.graph import Graph
from core.style import style_of
from gui import theme

EDGE_CELL = (2400.0, 600.0)  # scene units: edges are grouped by cells this big
CHUNK = 1500  # node items made per event-loop turn (a bigger graph is drawn over several)
DETAIL_PX = 5.0  # below this line height on screen a big graph shows only its overview
LABEL_LOD = 0.3  # below this zoom labels are unreadable: boxes only
SPECK_PX = 2.0  # a node smaller than this on screen is not painted at all


class NodeItem(QtWidgets.QGraphicsItem):
    """One node: a rounded box with its label lines. Painted by hand (cheap for 30,000)."""

    def __init__(self, node, box: Box, font: QtGui.QFont, metrics: Metrics, border_width: float = 1.6):
        super().__init__()
        self.node = node
        self.lines = node_lines(node)
        self.rect = QtCore.QRectF(-box.w / 2, -box.h / 2, box.w, box.h)
        self.font = font
        self.metrics = metrics
        self.border_width = border_width
        fill, border = theme.STYLE[style_of(node)]
        self.fill = QtGui.QColor(fill)
        self.border = QtGui.QColor(border)
        self.setPos(box.x, box.y)
        self.setFlag(QtWidgets.QGraphicsItem.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        self.hide_grad = False  # stepping a backward: this leaf's .grad is not reached yet
        self.linked = False  # made by the script line the editor's cursor is on

    def hoverEnterEvent(self, event) -> None:
        if not self.toolTip():  # built on first hover: 30,000 nodes need not pay for it
            self.setToolTip(node_tooltip(self.node))
        super().hoverEnterEvent(event)

    def boundingRect(self) -> QtCore.QRectF:
        return self.rect.adjusted(-3, -3, 3, 3)

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod * self.rect.height() < SPECK_PX:
            return
        node = self.node
        if lod < LABEL_LOD:  # zoomed far out: text would be unreadable specks
            painter.fillRect(self.rect, QtGui.QColor(theme.SELECTED) if self.isSelected() else self.border)
            painter.fillRect(self.rect.adjusted(3, 3, -3, -3), self.fill)
            return
        pen = QtGui.QPen(self.border, self.border_width)
        if node.kind == "tensor" and node.retains_grad:
            pen = QtGui.QPen(QtGui.QColor(theme.RETAINS_GRAD_BORDER), 2 * self.border_width)
        if (node.kind == "saved" and node.freed) or (node.kind == "tensor" and node.cut):
            pen.setStyle(QtCore.Qt.DashLine)
        if node.kind == "module":
            pen.setWidthF(2 * self.border_width)
        if self.linked:
            pen = QtGui.QPen(QtGui.QColor(theme.LINKED), 3.5, QtCore.Qt.DashLine)
        if self.isSelected():
            pen = QtGui.QPen(QtGui.QColor(theme.SELECTED), 3.5)
        painter.setPen(pen)
        painter.setBrush(self.fill)
        radius = 14 if node.kind == "op" else 5
        painter.drawRoundedRect(self.rect, radius, radius)
        painter.setFont(self.font)
        painter.setPen(QtGui.QColor(theme.TEXT))
        top = self.rect.top() + self.metrics.pad_y
        line_h = self.metrics.line_h
        for i, line in enumerate(self.lines):
            if self.hide_grad and line.startswith("grad "):
                line = "grad …"
            if i == 0 and node.kind in ("tensor", "module"):
                bold = QtGui.QFont(self.font)
                bold.setBold(True)
                painter.setFont(bold)
            elif i == 1:
                painter.setFont(self.font)
            r = QtCore.QRectF(self.rect.left(), top + i * line_h, self.rect.width(), line_h)
            painter.drawText(r, QtCore.Qt.AlignCenter, line)


def add_edge(path: QtGui.QPainterPath, src: Box, dst: Box) -> None:
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
    """The drawing of one Graph at one Layout.

    A big graph is drawn first as an overview (one filled path per node colour, painted
    in C++), then its node items are added a chunk per event-loop turn, so the window
    never stalls; `drawn` fires when all are there. Zoomed out so far that a node is a
    few pixels, only the overview is shown (30,000 Python paint calls a frame would be
    too slow, and so would stroking 30,000 edges: at that size they are a grey smear
    anyway); edges are grouped by cells of the drawing, so panning paints only those
    on screen."""

    drawn = QtCore.Signal()

    def __init__(self, parent=None, font: QtGui.QFont | None = None,
                 metrics: Metrics = DEFAULT_METRICS, edge_pen: tuple[str, float] = (theme.EDGE, 1.4),
                 border_width: float = 1.6):
        super().__init__(parent)
        self.font = font or theme.Theme().graph_font()
        self.metrics = metrics
        self.edge_pen = edge_pen
        self.border_width = border_width
        self.items_by_id: dict[str, NodeItem] = {}
        self.layout: Layout | None = None
        self.overview: list[QtWidgets.QGraphicsPathItem] = []
        self.edges: list[QtWidgets.QGraphicsPathItem] = []  # one path per cell of the drawing
        self.detailed = True  # node items shown (not just the overview)
        self._pending: list = []  # nodes whose items are still to be made
        self._pending_edges: list = []
        self._chunks = QtCore.QTimer(self, singleShot=True, interval=0)
        self._chunks.timeout.connect(self._add_chunk)
        self.setBackgroundBrush(QtGui.QColor("white"))

    def draw(self, graph: Graph, layout: Layout, at_once: bool = False) -> None:
        """Draw `graph`: at once when small or `at_once` (then `drawn` has fired on
        return), else the overview now and the node items over the next turns."""
        self._chunks.stop()
        self.clear()
        self.items_by_id, self.overview, self.edges, self.detailed = {}, [], [], True
        self.layout = layout
        big = len(graph.nodes) > CHUNK and not at_once
        # No BSP index: rebuilding it for 30,000 items (a Python boundingRect each) stalls
        # the window longer than scanning them when painting does.
        self.setItemIndexMethod(QtWidgets.QGraphicsScene.NoIndex)
        self._pending_edges = list(graph.edges)
        if not big:
            self._add_edges(len(self._pending_edges))
        if big:
            self._draw_overview(graph, layout)
        every = list(layout.boxes.values()) + list(layout.below.values())
        rect = QtCore.QRectF()
        if every:
            left = min(b.x - b.w / 2 for b in every)
            top = min(b.y - b.h / 2 for b in every)
            right = max(b.x + b.w / 2 for b in every)
            bottom = max(b.y + b.h / 2 for b in every)
            rect = QtCore.QRectF(left, top, right - left, bottom - top)
        self.setSceneRect(rect.adjusted(-30, -30, 30, 30))
        self._pending = list(graph.nodes)
        if big:
            self._chunks.start()
        else:
            rest, self._pending = self._pending, []
            self._add_nodes(rest)
            self.drawn.emit()

    def _draw_overview(self, graph: Graph, layout: Layout) -> None:
        paths: dict[str, QtGui.QPainterPath] = {}
        for node in graph.nodes:
            b = layout.boxes[node.id]
            paths.setdefault(style_of(node), QtGui.QPainterPath()).addRect(
                b.x - b.w / 2, b.y - b.h / 2, b.w, b.h)
        for style, path in paths.items():
            fill, border = theme.STYLE[style]
            pen = QtGui.QPen(QtGui.QColor(border), 1.0)
            pen.setCosmetic(True)
            item = self.addPath(path, pen, QtGui.QBrush(QtGui.QColor(fill)))
            item.setZValue(0.9)
            item.setVisible(not self.detailed)
            self.overview.append(item)

    def _add_edges(self, count: int) -> None:
        """The next `count` edges, into one path per cell of the drawing."""
        edges, self._pending_edges = self._pending_edges[:count], self._pending_edges[count:]
        boxes = self.layout.boxes
        cells: dict[tuple[int, int], QtGui.QPainterPath] = {}
        for e in edges:
            if e.src in boxes and e.dst in boxes:
                src = boxes[e.src]
                cell = (int(src.x // EDGE_CELL[0]), int(src.y // EDGE_CELL[1]))
                add_edge(cells.setdefault(cell, QtGui.QPainterPath()), src, boxes[e.dst])
        colour, width = self.edge_pen
        pen = QtGui.QPen(QtGui.QColor(colour), width)
        pen.setCosmetic(True)  # as wide on screen at any zoom: edges stay visible when fitted
        for path in cells.values():
            item = self.addPath(path, pen)
            item.setVisible(self.detailed)
            self.edges.append(item)

    def _add_chunk(self) -> None:
        if self._pending_edges:
            self._add_edges(4 * CHUNK)
        else:
            chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            self._add_nodes(chunk)
        if self._pending or self._pending_edges:
            self._chunks.start()
        else:
            self.drawn.emit()

    def _add_nodes(self, nodes) -> None:
        boxes = self.layout.boxes
        for node in nodes:
            item = NodeItem(node, boxes[node.id], self.font, self.metrics, self.border_width)
            item.setVisible(self.detailed)
            self.addItem(item)
            self.items_by_id[node.id] = item

    def is_drawing(self) -> bool:
        return bool(self._pending or self._pending_edges)

    def set_zoom(self, scale: float) -> None:
        """Node items when they are big enough to read, else only the overview."""
        detailed = not self.overview or scale * self.metrics.line_h >= DETAIL_PX
        if detailed != self.detailed:
            self.detailed = detailed
            for item in list(self.items_by_id.values()) + self.edges:
                item.setVisible(detailed)
            for item in self.overview:
                item.setVisible(not detailed)


class StepOverlay:
    """A recorded backward drawn over a GraphScene: the node the engine runs now
    (a ring), the edges its gradient leaves by, the edges it already flowed along,
    and each reached node's gradient in the room the layout kept under it.

    It holds the step plan and the index shown, and moving to another step changes
    only what lies between the two (a step costs the same at 30 or 30,000 nodes)."""

    def __init__(self, scene: GraphScene):
        self.scene = scene
        self.plan: list[StepInfo] = []
        self.drawn_as: dict[str, str] = {}  # plan's node ids -> ids drawn (a module's box)
        self.index = -1
        self.done: dict[int, QtWidgets.QGraphicsPathItem] = {}  # step -> its edges, once flowed
        self.badges: dict[str, QtWidgets.QGraphicsItem] = {}
        self.active: list[QtWidgets.QGraphicsItem] = []  # the ring and the edges of this step
        self.current_badge: str | None = None
        self.set_font(scene.font)

    @property
    def items(self) -> list[QtWidgets.QGraphicsItem]:
        return list(self.done.values()) + list(self.badges.values()) + self.active

    def set_font(self, font: QtGui.QFont) -> None:
        self.font = QtGui.QFont(font)
        self.font.setBold(True)
        self.font.setPixelSize(max(9, font.pixelSize() - 1))

    def set_plan(self, plan: list[StepInfo], drawn_as: dict[str, str] | None = None) -> None:
        """A new recording or a new drawing: start from nothing shown."""
        self.clear()
        self.plan, self.drawn_as = plan, drawn_as or {}
        for info in plan:
            item = self._item(info.leaf) if info.leaf else None
            if item is not None:
                item.hide_grad = True
                item.update()

    def clear(self) -> None:
        """Take everything off the drawing."""
        for item in self.items:
            self.scene.removeItem(item)
        for item in self.scene.items_by_id.values():
            if item.hide_grad:
                item.hide_grad = False
                item.update()
        self.forget()

    def forget(self) -> None:
        """The scene was cleared (its items are gone): start from nothing."""
        self.done, self.badges, self.active = {}, {}, []
        self.plan, self.index, self.current_badge = [], -1, None

    def _id(self, node_id: str | None) -> str | None:
        return self.drawn_as.get(node_id, node_id) if node_id else None

    def _item(self, node_id: str | None):
        return self.scene.items_by_id.get(self._id(node_id)) if node_id else None

    def show(self, index: int) -> None:
        """Draw the state after step `index` (-1: before the first)."""
        index = max(-1, min(index, len(self.plan) - 1))
        for item in self.active:
            self.scene.removeItem(item)
        self.active = []
        if self.index >= 0:
            self._show_done(self.index, True)  # the step that was current is done now…
        if index > self.index:
            for k in range(self.index + 1, index + 1):
                self._set_step(k, shown=True)
        else:
            for k in range(index + 1, self.index + 1):
                self._set_step(k, shown=False)
        self.index = index
        if index >= 0:
            self._show_done(index, False)  # …and the current one's edges are drawn active
            self._draw_active(self.plan[index])
        self._recolour_badges(index)

    def _set_step(self, k: int, shown: bool) -> None:
        """Step `k`'s marks on (it has run) or off (it has not yet)."""
        info = self.plan[k]
        self._show_done(k, shown)
        item = self._item(info.leaf) if info.leaf else None
        if item is not None and item.hide_grad == shown:
            item.hide_grad = not shown
            item.update()
        for node_id, badge in info.badges.items():
            if self._id(node_id) != node_id:
                continue  # inside a closed module: the box lights up instead
            if shown:
                self._add_badge(node_id, badge)
            else:
                old = self.badges.pop(node_id, None)
                if old is not None:
                    self.scene.removeItem(old)

    def _show_done(self, k: int, shown: bool) -> None:
        item = self.done.get(k)
        if item is None and shown:
            item = self.done[k] = self._edges(self.plan[k].edges, theme.STEP_DONE, 3.0)
        if item is not None:
            item.setVisible(shown)

    def _edges(self, edges, colour: str, width: float) -> QtWidgets.QGraphicsPathItem:
        boxes = self.scene.layout.boxes
        path = QtGui.QPainterPath()
        for src, dst in edges:
            src, dst = self._id(src), self._id(dst)
            if src != dst and src in boxes and dst in boxes:
                add_edge(path, boxes[src], boxes[dst])
        pen = QtGui.QPen(QtGui.QColor(colour), width)
        pen.setCapStyle(QtCore.Qt.RoundCap)
        item = self.scene.addPath(path, pen)
        item.setZValue(0.5)
        return item

    def _draw_active(self, info: StepInfo) -> None:
        self.active.append(self._edges(info.edges, theme.STEP_ACTIVE, 5.0))
        b = self.scene.layout.boxes.get(self._id(info.node))
        if b is not None:
            ring = self.scene.addRect(QtCore.QRectF(b.x - b.w / 2 - 5, b.y - b.h / 2 - 5, b.w + 10, b.h + 10),
                                      QtGui.QPen(QtGui.QColor(theme.STEP_ACTIVE), 4),
                                      QtGui.QBrush(QtGui.QColor(*theme.STEP_RING_FILL)))
            ring.setZValue(0.8)
            self.active.append(ring)

    def _add_badge(self, node_id: str, badge) -> None:
        old = self.badges.pop(node_id, None)
        if old is not None:
            self.scene.removeItem(old)
        box = self.scene.layout.boxes.get(node_id)
        if box is None:
            return
        text = badge_text(badge)
        label = QtWidgets.QGraphicsSimpleTextItem(text)
        label.setFont(self.font)
        label.setBrush(QtGui.QColor(theme.BADGE_TEXT_QUIET if badge.kind == "not_kept" else theme.BADGE_TEXT))
        rect = label.boundingRect().adjusted(-4, -2, 4, 2)
        back = self.scene.addRect(rect, QtGui.QPen(QtGui.QColor(theme.STEP_DONE), 1.5),
                                  QtGui.QBrush(QtGui.QColor(theme.BADGE_FILL)))
        label.setParentItem(back)
        room = self.scene.layout.below.get(node_id)  # kept free by the layout
        top = room.y - room.h / 2 if room is not None else box.y + box.h / 2 + 8
        back.setPos(box.x - rect.width() / 2 + 4, top + 2)
        back.setZValue(2)
        back.setToolTip(text)
        back.badge = badge
        self.badges[node_id] = back

    def _recolour_badges(self, index: int) -> None:
        """The badge of the node run now is drawn in the active colours."""
        current = self.plan[index].node if 0 <= index < len(self.plan) else None
        for node_id, now in ((self.current_badge, False), (current, True)):
            back = self.badges.get(node_id) if node_id else None
            if back is None:
                continue
            back.setPen(QtGui.QPen(QtGui.QColor(theme.STEP_ACTIVE if now else theme.STEP_DONE), 1.5))
            back.childItems()[0].setBrush(QtGui.QColor(
                theme.BADGE_TEXT_CURRENT if now else
                theme.BADGE_TEXT_QUIET if back.badge.kind == "not_kept" else theme.BADGE_TEXT))
        self.current_badge = current


def add_badges(scene: GraphScene, badges: dict) -> list[QtWidgets.QGraphicsItem]:
    """Each badge (node id -> `Badge`) drawn in the room `scene.layout.below` kept for
    it, as the StepOverlay draws it at the end of a replay: the exported PNG's badges."""
    font = QtGui.QFont(scene.font)
    font.setBold(True)
    font.setPixelSize(max(9, scene.font.pixelSize() - 1))
    items = []
    for node_id, badge in badges.items():
        room = scene.layout.below.get(node_id)
        if room is None:
            continue
        back = scene.addRect(QtCore.QRectF(room.x - room.w / 2, room.y - room.h / 2, room.w, room.h),
                             QtGui.QPen(QtGui.QColor(theme.STEP_DONE), 1.5),
                             QtGui.QBrush(QtGui.QColor(theme.BADGE_FILL)))
        back.setZValue(2)
        label = QtWidgets.QGraphicsSimpleTextItem(badge_text(badge), back)
        label.setFont(font)
        label.setBrush(QtGui.QColor(theme.BADGE_TEXT_QUIET if badge.kind == "not_kept" else theme.BADGE_TEXT))
        r = label.boundingRect()
        label.setPos(room.x - r.width() / 2, room.y - r.height() / 2)
        items.append(back)
    return items


def render_graph(graph: Graph, fmt: str, scale: float = 2.0, trace=None, collapse: int | None = None) -> bytes:
    """`graph` as the bytes of an "svg" or "png" file (the caller writes the file), laid
    out as the panel lays it out (`core.export.drawing`): modules `collapse` deep and
    deeper closed, and the badges of `trace` at the end of its replay. SVG is written
    directly by `core.svg`; PNG is painted by the panel's own GraphScene in memory.
    Raises OSError when Qt cannot encode it."""
    from core.export import drawing
    from core.svg import to_svg

    if fmt not in ("svg", "png"):
        raise ValueError(f"cannot draw a graph as {fmt!r}")
    d = drawing(graph, trace, collapse)
    if fmt == "svg":
        return to_svg(d.graph, d.layout, d.badges).encode("utf-8")
    scene = GraphScene()
    scene.draw(d.graph, d.layout, at_once=True)
    add_badges(scene, d.badges)
    rect = scene.sceneRect()
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.WriteOnly)
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
    if not image.save(buffer, "PNG"):
        raise OSError("Qt could not encode the PNG")
    return bytes(buffer.data())
