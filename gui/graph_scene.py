"""The drawing of a graph: nodes, edges, and a backward step on top.

Used by the graph panel and by the headless SVG/PNG export, so a file shows exactly
what the window shows. Built to stay fast at tens of thousands of nodes: what a
drawing needs beyond the graph and its layout (label lines, edge geometry, the
overview) is plain data made off the GUI thread (`scene_data`); nodes too small to
read are painted as plain boxes (or not at all); the scene's index finds the nodes
on screen; edges are one `EdgeLayer` that strokes only the pieces on screen; and
stepping a backward changes only what that step changes.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core.labels import badge_text, node_lines, node_tooltip
from core.layout import DEFAULT_METRICS, Box, Layout, Metrics
from core.model.backward import StepInfo
from core.model.graph import Graph
from core.style import EDGE_COLOUR, EDGE_DASH, STRIPE_W, device_colour, style_of
from gui import theme

CHUNK = 1500  # node items made per event-loop turn (a bigger graph is drawn over several)
DETAIL_PX = 5.0  # below this line height on screen a big graph shows only its overview
LABEL_LOD = 0.3  # below this zoom labels are unreadable: boxes only
SPECK_PX = 2.0  # a node smaller than this on screen is not painted at all


class NodeItem(QtWidgets.QGraphicsItem):
    """One node: a rounded box with its label lines. Painted by hand (cheap for 30,000)."""

    def __init__(self, node, box: Box, font: QtGui.QFont, metrics: Metrics, border_width: float = 1.6,
                 lines: list[str] | None = None, look: "Look | None" = None):
        super().__init__()
        look = look or Look()
        self.node = node
        self.lines = node_lines(node) if lines is None else lines
        self.rect, self.bounds = look.rects(box.w, box.h)
        self.font = font
        self.metrics = metrics
        self.border_width = border_width
        self.fill, self.border = look.colours[style_of(node)]
        self.stripe = look.stripe(node.device) if node.kind == "tensor" else None  # not on the CPU
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
        return self.bounds

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod * self.rect.height() < SPECK_PX:
            return
        node = self.node
        if lod < LABEL_LOD:  # zoomed far out: text would be unreadable specks
            painter.fillRect(self.rect, QtGui.QColor(theme.SELECTED) if self.isSelected() else self.border)
            painter.fillRect(self.rect.adjusted(3, 3, -3, -3), self.fill)
            if self.stripe is not None:
                painter.fillRect(self._stripe_rect(), self.stripe)
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
        if self.stripe is not None:
            painter.fillRect(self._stripe_rect(), self.stripe)
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

    def _stripe_rect(self) -> QtCore.QRectF:
        """The device stripe: down the left side, inside the border."""
        inset = self.border_width
        return QtCore.QRectF(self.rect.left() + inset, self.rect.top() + inset,
                             STRIPE_W, self.rect.height() - 2 * inset)


class Look:
    """Qt objects many nodes share: one QColor pair per style, one rect per box size
    (30,000 nodes need not make 90,000 small objects for the garbage collector to walk)."""

    def __init__(self):
        self.colours = {k: (QtGui.QColor(fill), QtGui.QColor(border)) for k, (fill, border) in theme.STYLE.items()}
        self._rects: dict[tuple[float, float], tuple[QtCore.QRectF, QtCore.QRectF]] = {}
        self._stripes: dict[str, QtGui.QColor | None] = {}

    def stripe(self, device: str) -> QtGui.QColor | None:
        """The stripe colour of a tensor on `device`; None on the CPU."""
        if device not in self._stripes:
            colour = device_colour(device)
            self._stripes[device] = QtGui.QColor(colour) if colour else None
        return self._stripes[device]

    def rects(self, w: float, h: float) -> tuple[QtCore.QRectF, QtCore.QRectF]:
        """A node's rect (centred on its position) and its bounding rect (room for the pen)."""
        got = self._rects.get((w, h))
        if got is None:
            rect = QtCore.QRectF(-w / 2, -h / 2, w, h)
            got = self._rects[(w, h)] = (rect, rect.adjusted(-3, -3, 3, 3))
        return got


# --- edges ------------------------------------------------------------------------------
# An edge is one or more cubics from the bottom of its source to the top of its target
# (`core.layout.edge_rows`: down the lanes the layout kept when it skips rows), each
# leaving and arriving vertically, the last with an arrowhead. A cubic's x never turns
# back (x0, x0, x1, x1), which lets a frame cut out exactly the piece on screen.
ARROW = (5.0, 9.0)  # arrowhead: half its width, its length


def add_edge(path: QtGui.QPainterPath, layout: Layout, src: str, dst: str) -> None:
    """Add to `path` the edge from node `src` to node `dst` as `layout` draws it, with
    an arrowhead."""
    for x0, y0, x1, y1, bend, tip in layout.edge_rows(src, dst):
        path.moveTo(x0, y0)
        path.cubicTo(x0, y0 + bend, x1, y1 - bend, x1, y1)
        if tip:
            _add_arrow(path, x1, y1)


def _add_arrow(path: QtGui.QPainterPath, x: float, y: float) -> None:
    path.moveTo(x - ARROW[0], y - ARROW[1])
    path.lineTo(x, y)
    path.lineTo(x + ARROW[0], y - ARROW[1])


def edge_array(edges, layout: Layout) -> np.ndarray:
    """The edges between drawn boxes as rows of (x0, y0, x1, y1, bend, tip), see
    `core.layout.edge_rows`."""
    boxes = layout.boxes
    rows = []
    for e in edges:
        if e.src in boxes and e.dst in boxes:
            rows.extend(layout.edge_rows(e.src, e.dst))
    return np.array(rows, dtype=float).reshape(-1, 6)


class EdgeLayer(QtWidgets.QGraphicsItem):
    """Many edges drawn with one pen, as one item that paints only what is exposed.

    A frame strokes, of each edge that crosses the exposed rect, only the piece inside
    it (the exact same curve, cut at the rect's sides), and pieces that land on the
    same device pixels once: 10,000 edges fanning into one node from a million pixels
    away cost a handful of short strokes, not 10,000 million-pixel ones. A dashed pen
    (whose dashes must not crawl as the view pans) strokes whole edges instead."""

    GRID = 2.0  # device pixels are split this many times when telling pieces apart

    def __init__(self, ends: np.ndarray, pen: QtGui.QPen):
        super().__init__()
        self.ends = ends
        self.pen = pen
        self.cut = pen.style() == QtCore.Qt.SolidLine
        x0, y0, x1, y1, bend = ends[:, :5].T
        # each curve lies inside the hull of its control points
        self.lo_x, self.hi_x = np.minimum(x0, x1), np.maximum(x0, x1)
        self.lo_y, self.hi_y = np.minimum(y0, y1 - bend), np.maximum(y0 + bend, y1)
        self.bounds = QtCore.QRectF()
        if len(ends):
            self.bounds = QtCore.QRectF(QtCore.QPointF(self.lo_x.min(), self.lo_y.min()),
                                        QtCore.QPointF(self.hi_x.max(), self.hi_y.max())).adjusted(-8, -8, 8, 8)
        self._last: tuple | None = None  # (rect, transform) -> paths of the last frame
        self.setFlag(QtWidgets.QGraphicsItem.ItemUsesExtendedStyleOption)

    def boundingRect(self) -> QtCore.QRectF:
        return self.bounds

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        if not len(self.ends):
            return
        transform = painter.worldTransform()
        # What is on the device: the exposed rect can be the whole item (QWidget.render)
        rect = option.exposedRect & transform.inverted()[0].mapRect(
            QtCore.QRectF(0, 0, painter.device().width(), painter.device().height()))
        if painter.hasClipping():
            rect &= painter.clipBoundingRect()
        if rect.isEmpty():
            return
        painter.setPen(self.pen)
        painter.setBrush(QtCore.Qt.NoBrush)
        for path in self.visible_paths(rect, transform):
            painter.drawPath(path)

    def visible_paths(self, rect: QtCore.QRectF, transform: QtGui.QTransform) -> list[QtGui.QPainterPath]:
        """The pieces of the edges that `rect` (item coordinates) shows, as painted
        through `transform` (item -> device): a path per piece, then one of the
        arrowheads (stroked as one path, hundreds of overlapping curves cost the
        antialiasing rasterizer thirty times more than stroked one by one)."""
        t = transform
        pen_w = self.pen.widthF() / max(abs(t.m11()), abs(t.m22()), 1e-9) if self.pen.isCosmetic() \
            else self.pen.widthF()
        m = ARROW[1] + pen_w + 1.0
        left, top, right, bottom = rect.left() - m, rect.top() - m, rect.right() + m, rect.bottom() + m
        key = (left, top, right, bottom, t.m11(), t.m12(), t.m21(), t.m22(), t.dx(), t.dy())
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        hit = (self.hi_x >= left) & (self.lo_x <= right) & (self.hi_y >= top) & (self.lo_y <= bottom)
        e = self.ends[hit]
        paths = []
        if len(e):
            q = self._pieces(e, left, right) if self.cut else self._whole(e)
            ys = q[:, 1::2]
            q = q[(ys.max(axis=1) >= top) & (ys.min(axis=1) <= bottom)]
            # one stroke per distinct piece on the device's pixel grid
            dev = np.empty_like(q)
            dev[:, 0::2] = q[:, 0::2] * t.m11() + q[:, 1::2] * t.m21() + t.dx()
            dev[:, 1::2] = q[:, 0::2] * t.m12() + q[:, 1::2] * t.m22() + t.dy()
            _, first = np.unique(np.round(dev * self.GRID).astype(np.int64), axis=0, return_index=True)
            for x0, y0, c1x, c1y, c2x, c2y, x1, y1 in q[np.sort(first)].tolist():
                path = QtGui.QPainterPath(QtCore.QPointF(x0, y0))
                path.cubicTo(c1x, c1y, c2x, c2y, x1, y1)
                paths.append(path)
            tips = e[e[:, 5] > 0, 2:4]
            tips = tips[(tips[:, 0] >= left) & (tips[:, 0] <= right) & (tips[:, 1] >= top) & (tips[:, 1] <= bottom)]
            arrows = QtGui.QPainterPath()
            for x1, y1 in np.unique(tips, axis=0).tolist():
                _add_arrow(arrows, x1, y1)
            paths.append(arrows)
        self._last = (key, paths)
        return paths

    @staticmethod
    def _whole(e: np.ndarray) -> np.ndarray:
        """Control points (x0, y0, c1x, c1y, c2x, c2y, x1, y1) of whole edges."""
        x0, y0, x1, y1, bend = e[:, :5].T
        return np.stack([x0, y0, x0, y0 + bend, x1, y1 - bend, x1, y1], axis=1)

    @staticmethod
    def _pieces(e: np.ndarray, left: float, right: float) -> np.ndarray:
        """Control points of the piece of each edge between x = left and x = right:
        the same cubic restricted to the parameters [ta, tb] where it is there."""
        x0, y0, x1, y1, bend = e[:, :5].T
        dx = x1 - x0
        flat = dx == 0
        safe = np.where(flat, 1.0, dx)
        sa, sb = (left - x0) / safe, (right - x0) / safe
        s_lo = np.where(flat, 0.0, np.clip(np.minimum(sa, sb), 0.0, 1.0))
        s_hi = np.where(flat, 1.0, np.clip(np.maximum(sa, sb), 0.0, 1.0))
        # x(t) = x0 + dx * (3t² - 2t³); its inverse on [0, 1]: t = 1/2 - sin(asin(1 - 2s) / 3)
        ta = np.clip(0.5 - np.sin(np.arcsin(np.clip(1 - 2 * s_lo, -1, 1)) / 3), 0.0, 1.0)
        tb = np.clip(0.5 - np.sin(np.arcsin(np.clip(1 - 2 * s_hi, -1, 1)) / 3), 0.0, 1.0)
        ta = np.where(flat, 0.0, ta)
        tb = np.where(flat, 1.0, np.maximum(ta, tb))
        px = np.stack([x0, x0, x1, x1])
        py = np.stack([y0, y0 + bend, y1 - bend, y1])

        def at(t):  # point and derivative of the cubic at t
            u = 1 - t
            w = np.stack([u ** 3, 3 * u * u * t, 3 * u * t * t, t ** 3])
            d = np.stack([-3 * u * u, 3 * u * u - 6 * u * t, 6 * u * t - 3 * t * t, 3 * t * t])
            return (w * px).sum(0), (w * py).sum(0), (d * px).sum(0), (d * py).sum(0)

        ax, ay, adx, ady = at(ta)
        bx, by, bdx, bdy = at(tb)
        h = (tb - ta) / 3
        return np.stack([ax, ay, ax + h * adx, ay + h * ady, bx - h * bdx, by - h * bdy, bx, by], axis=1)


class OverviewItem(QtWidgets.QGraphicsPathItem):
    """Every box of one colour as one path, for a view zoomed out too far to read any:
    painted without antialiasing (its rects are axis-aligned; antialiased, filling
    30,000 of them took a tenth of a second a frame)."""

    def __init__(self, path: QtGui.QPainterPath, pen: QtGui.QPen, fill: QtGui.QColor):
        super().__init__(path)
        self.setPen(pen)
        self.setBrush(fill)

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        painter.setRenderHint(QtGui.QPainter.Antialiasing, False)
        super().paint(painter, option, widget)


# --- what a drawing needs, as plain data ---------------------------------------------------
@dataclass
class SceneData:
    """What `GraphScene.draw` needs beyond the graph and its layout, made by `scene_data`
    (in the layout worker for a big graph: Qt value types only, no items)."""
    lines: dict[str, list[str]]  # node id -> its label lines
    edges: np.ndarray  # rows of (x0, y0, x1, y1, bend, tip), see `edge_array`
    rect: QtCore.QRectF  # the scene rect: every box, the room kept under them, the lanes
    overview: dict[str, QtGui.QPainterPath] | None  # style -> every box of that style (a big graph)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # "view"/"data" -> their edges, as `edges`
    stripes: dict[str, QtGui.QPainterPath] = field(default_factory=dict)  # colour -> device stripes (overview)


def scene_data(graph: Graph, layout: Layout, overview: bool | None = None,
               lines: dict[str, list[str]] | None = None) -> SceneData:
    """`graph` at `layout` as plain drawing data. `overview`: build the one-path-per-
    colour overview (default: when the graph is big enough to be drawn in chunks)."""
    if overview is None:
        overview = len(graph.nodes) > CHUNK
    boxes = layout.boxes
    if lines is None:
        lines = {n.id: node_lines(n) for n in graph.nodes}
    paths: dict[str, QtGui.QPainterPath] | None = None
    stripes: dict[str, QtGui.QPainterPath] = {}
    if overview:
        paths = {}
        for node in graph.nodes:
            b = boxes[node.id]
            paths.setdefault(style_of(node), QtGui.QPainterPath()).addRect(b.x - b.w / 2, b.y - b.h / 2, b.w, b.h)
            colour = device_colour(node.device) if node.kind == "tensor" else None
            if colour:  # where the tensors live reads from afar too
                stripes.setdefault(colour, QtGui.QPainterPath()).addRect(b.x - b.w / 2, b.y - b.h / 2, STRIPE_W, b.h)
    every = list(boxes.values()) + list(layout.below.values()) + layout.lanes
    rect = QtCore.QRectF()
    if every:
        left = min(b.x - b.w / 2 for b in every)
        top = min(b.y - b.h / 2 for b in every)
        right = max(b.x + b.w / 2 for b in every)
        bottom = max(b.y + b.h / 2 for b in every)
        rect = QtCore.QRectF(left, top, right - left, bottom - top)
    autograd = [e for e in graph.edges if e.kind is None]
    extra = {kind: edge_array([e for e in graph.edges if e.kind == kind], layout) for kind in EDGE_DASH}
    return SceneData(lines, edge_array(autograd, layout), rect.adjusted(-30, -30, 30, 30), paths,
                     {kind: rows for kind, rows in extra.items() if len(rows)}, stripes)


class GraphScene(QtWidgets.QGraphicsScene):
    """The drawing of one Graph at one Layout.

    A big graph is drawn first as an overview (one filled path per node colour, painted
    in C++), then its node items are added a chunk per event-loop turn, so the window
    never stalls; `drawn` fires when all are there. Zoomed out so far that a node is a
    few pixels, only the overview is shown (30,000 Python paint calls a frame would be
    too slow, and so would stroking 30,000 edges: at that size they are a grey smear
    anyway). Closer in, the scene's BSP index hands the view only the nodes on screen,
    and the `EdgeLayer` strokes only the pieces of edges on screen."""

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
        self.edges: list[EdgeLayer] = []  # one layer per look of edge
        self.detailed = True  # node items shown (not just the overview)
        self._pending: list = []  # nodes whose items are still to be made
        self._data: SceneData | None = None
        self._look = Look()
        self._chunks = QtCore.QTimer(self, singleShot=True, interval=0)
        self._chunks.timeout.connect(self._add_chunk)
        self.setBackgroundBrush(QtGui.QColor("white"))

    def draw(self, graph: Graph, layout: Layout, at_once: bool = False, data: SceneData | None = None) -> None:
        """Draw `graph`: at once when small or `at_once` (then `drawn` has fired on
        return), else the overview now and the node items over the next turns.
        `data`: `scene_data(graph, layout)`, when made already (off the GUI thread)."""
        self._chunks.stop()
        self.clear()
        self.items_by_id, self.overview, self.edges, self.detailed = {}, [], [], True
        self.layout = layout
        big = len(graph.nodes) > CHUNK and not at_once
        if data is None:
            data = scene_data(graph, layout, overview=big)
        self._data = data
        if big:
            # What is alive now (the run's graph, its layout) lives as long as this
            # drawing: out of the collector's way, so that a full collection while the
            # items are made walks only them (else one walk of a 30,000-node graph's
            # objects stalls the window for a third of a second).
            gc.freeze()
        self.setSceneRect(data.rect)
        # A fixed index depth: the index grows a chunk at a time instead of being
        # rebuilt (a Python boundingRect per item) each time the item count doubles.
        self.setItemIndexMethod(QtWidgets.QGraphicsScene.BspTreeIndex)
        self.setBspTreeDepth(max(6, min(14, int(np.log2(max(len(graph.nodes), 1))) - 2)))
        self._look = Look()
        colour, width = self.edge_pen
        pen = QtGui.QPen(QtGui.QColor(colour), width)
        pen.setCosmetic(True)  # as wide on screen at any zoom: edges stay visible when fitted
        layer = EdgeLayer(data.edges, pen)
        if not at_once:
            # In a view, Qt keeps what was painted in a viewport-sized pixmap: a pan
            # scrolls it and asks only for the strip that came into view (a zoom paints
            # it all again). Not for a file: it is painted once.
            layer.setCacheMode(QtWidgets.QGraphicsItem.DeviceCoordinateCache)
        self.addItem(layer)
        self.edges.append(layer)
        for kind, rows in data.extra.items():  # shares storage (dashed), made from (dotted)
            extra_pen = QtGui.QPen(QtGui.QColor(EDGE_COLOUR[kind]), width * 1.2)
            extra_pen.setCosmetic(True)
            extra_pen.setDashPattern(list(EDGE_DASH[kind]))
            extra_layer = EdgeLayer(rows, extra_pen)
            self.addItem(extra_layer)
            self.edges.append(extra_layer)
        for style, path in (data.overview or {}).items():
            fill, border = theme.STYLE[style]
            # a zero-width pen is the same one-pixel outline, and spares the item stroking
            # 30,000 rects just to learn its bounding rect
            outline = QtGui.QPen(QtGui.QColor(border), 0.0)
            item = OverviewItem(path, outline, QtGui.QColor(fill))
            self.addItem(item)
            item.setZValue(0.9)
            item.setVisible(not self.detailed)
            self.overview.append(item)
        for colour, path in data.stripes.items():
            item = OverviewItem(path, QtGui.QPen(QtCore.Qt.NoPen), QtGui.QColor(colour))
            self.addItem(item)
            item.setZValue(0.95)
            item.setVisible(not self.detailed)
            self.overview.append(item)
        self._pending = list(graph.nodes)
        if big:
            self._chunks.start()
        else:
            rest, self._pending = self._pending, []
            self._add_nodes(rest)
            self.drawn.emit()

    def _add_chunk(self) -> None:
        chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
        self._add_nodes(chunk)
        # Index this chunk now (a query does it): left to the index's own timer, or to
        # the first paint away from the fitted view, all 30,000 would be indexed at once.
        self.items(QtCore.QRectF(self.sceneRect().topLeft(), QtCore.QSizeF(1, 1)),
                   QtCore.Qt.IntersectsItemBoundingRect)
        if self._pending:
            self._chunks.start()
        else:
            gc.freeze()  # the items live as long as the drawing, too
            self.drawn.emit()

    def _add_nodes(self, nodes) -> None:
        boxes, lines, look = self.layout.boxes, self._data.lines, self._look
        font, metrics, border_width, detailed = self.font, self.metrics, self.border_width, self.detailed
        for node in nodes:
            item = NodeItem(node, boxes[node.id], font, metrics, border_width, lines.get(node.id), look)
            if not detailed:
                item.setVisible(False)
            self.addItem(item)
            self.items_by_id[node.id] = item

    def is_drawing(self) -> bool:
        return bool(self._pending)

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
                add_edge(path, self.scene.layout, src, dst)
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
