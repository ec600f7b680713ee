"""The graph panel: the run's autograd graph, drawn by `gui.graph_scene`.

It draws from the state objects (the run's graph, the selection, the backward step,
the view options and open modules, the theme) and does no tensor math. A graph with
modules folds what is inside closed modules into one box (a big one opens folded to
a readable depth); double-click opens a box, the bar above says what is open. Big
graphs and Graphviz are laid out off the GUI thread. The view fits the graph while
the user has not zoomed, and keeps the user's zoom while the graph stays alike.
"""
from __future__ import annotations

import gc
import html
from dataclasses import dataclass
from typing import Callable

from PySide6 import QtCore, QtGui, QtWidgets

from core.collapse import FOLD_ABOVE, collapse, drawn_as, readable_depth, scopes
from core.hooks import HOOKS
from core.labels import node_lines, run_error_text
from core.layout import Layout, LayoutCancelled, Metrics, alike, badge_sizes, dot_available, layout_graph, \
    layout_with_dot, positions_by_key
from core.model.backward import step_plan
from core.model.graph import Graph
from core.style import device_colour, graph_devices
from gui import theme
from gui.graph_scene import CHUNK, GraphScene, SceneData, StepOverlay, scene_data
from gui.layout_worker import LayoutWorker

SYNC_LAYOUT_LIMIT = 400  # nodes; bigger graphs are laid out in the worker
DOT_NODE_LIMIT = 1500  # past this, dot takes seconds: the built-in layout is used instead
MAX_FIT_ZOOM = 1.8
MIN_ZOOM, MAX_ZOOM = 0.005, 8.0


@dataclass(frozen=True)
class Request:
    """What to draw, read off the states when it is asked for: `prepare` works from
    this alone (in the layout worker for a big graph)."""
    graph: Graph  # the run's graph
    show_saved: bool
    fold: int | None  # GraphViewState.fold
    opened: frozenset[str]
    closed: frozenset[str]
    trace: object  # the recorded backward (its badges need room), or None
    metrics: Metrics
    previous: dict  # node key -> position in the last drawing
    dot: bool  # lay out with Graphviz when it is small enough


@dataclass
class Prepared:
    """A drawing made ready by `prepare`: all the GUI thread has left to do is make
    the items."""
    full: Graph  # the run's graph, with or without saved tensors
    shown: Graph  # what is drawn: closed modules as boxes
    drawn_as: dict[str, str]  # full graph's node id -> the id drawn
    auto_depth: int | None  # modules this deep start closed
    layout: Layout
    how: str  # "" for the built-in layout, else how it was laid out
    positions: dict  # node key -> position: the next drawing's `previous`
    counts: dict[str, int]  # tensors, ops, saved in the full graph; closed modules shown
    data: SceneData


class GraphCache:
    """What depends on the run's graph alone, made once per graph (folding a 20,000-node
    model again need not find every node's modules again). Safe from either thread."""

    def __init__(self):
        self._graph: Graph | None = None
        self._memo: dict = {}

    def get(self, graph: Graph, what: str, make: Callable[[], object]):
        if graph is not self._graph:
            self._graph, self._memo = graph, {}
        memo = self._memo
        if what not in memo:
            memo[what] = make()
        return memo[what]


def auto_depth(graph: Graph, fold: int | None, cache: GraphCache) -> int | None:
    """Modules this deep start closed: the fold asked for, or for a big graph the
    deepest that stays readable."""
    if fold is not None:
        return fold or None
    if len(graph.nodes) <= FOLD_ABOVE:
        return None
    return cache.get(graph, "readable", lambda: readable_depth(graph, home=cache.get(graph, "scopes",
                                                                                   lambda: scopes(graph))))


def prepare(req: Request, cancelled: Callable[[], bool], cache: GraphCache) -> Prepared:
    """Everything a drawing needs, from the request alone: the graph as shown (saved
    tensors or not, closed modules as boxes), its layout and its scene data. Raises
    LayoutCancelled when `cancelled()` turns true."""
    graph = req.graph
    if len(graph.nodes) > CHUNK:
        gc.freeze()  # see GraphScene.draw: the run's graph is long-lived, keep the collector off it
    full = graph if req.show_saved else cache.get(graph, "without_saved", graph.without_saved)
    depth = auto_depth(graph, req.fold, cache)

    def is_open(module: str) -> bool:
        return module in req.opened or (module not in req.closed
                                        and (depth is None or module.count(".") + 1 < depth))
    mapping: dict[str, str] = {}
    shown = full
    if full.modules:
        # the run graph's scopes serve `full` too: saved tensors only add entries of their own
        mapping = drawn_as(full, is_open, cache.get(graph, "scopes", lambda: scopes(graph)))
        shown = collapse(full, is_open, mapping)
    ids = {n.id for n in shown.nodes}
    below = {k: v for k, v in badge_sizes(full, req.trace, req.metrics).items() if k in ids}
    lines = {n.id: node_lines(n) for n in shown.nodes}
    how, layout = "", None
    if req.dot and len(shown.nodes) <= DOT_NODE_LIMIT:
        try:
            layout, how = layout_with_dot(shown, req.metrics, cancelled=cancelled), "laid out by Graphviz dot"
        except LayoutCancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - dot missing, timed out, crashed
            how = f"Graphviz dot failed ({type(exc).__name__}: {exc}); built-in layout used"
    if layout is None:
        layout = layout_graph(shown, req.previous, metrics=req.metrics, cancelled=cancelled, below=below,
                              lines=lines)
    if cancelled():
        raise LayoutCancelled
    counts = {k: 0 for k in ("tensor", "op", "saved")}
    for n in full.nodes:
        if n.kind in counts:
            counts[n.kind] += 1
    counts["module"] = sum(1 for n in shown.nodes if n.kind == "module")
    return Prepared(full, shown, mapping, depth, layout, how, positions_by_key(shown, layout) if not how else {},
                    counts, scene_data(shown, layout, lines=lines))


class GraphView(QtWidgets.QGraphicsView):
    """Wheel zooms about the cursor, drag pans, and a dimmed veil marks a stale graph."""

    hook_requested = QtCore.Signal(str, str)  # node id, hook kind (core.hooks.HOOKS)
    module_toggled = QtCore.Signal(str, bool)  # module name, open
    zoomed = QtCore.Signal()  # the user zoomed: keep their zoom
    resized = QtCore.Signal()

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
        add a gradient hook (written into the script as code); on a node made inside a
        module, close that module."""
        node = getattr(self.itemAt(event.pos()), "node", None)
        if node is None:
            return
        menu = QtWidgets.QMenu(self)
        if node.kind == "tensor" and node.name and node.requires_grad:
            menu.addSection(f"Gradient hook on {node.name}")
        elif node.kind == "op" and node.name != "AccumulateGrad":
            menu.addSection(f"Hook on {node.name}: the gradients it passes on")
        if not menu.isEmpty():
            for kind, (text, _) in HOOKS.items():
                act = menu.addAction(text.capitalize())
                act.triggered.connect(lambda _=False, k=kind: self.hook_requested.emit(node.id, k))
        module = getattr(node, "module", None)
        if node.kind == "module":
            menu.addAction(f"Open {node.name}").triggered.connect(
                lambda: self.module_toggled.emit(node.name, True))
        elif module:
            menu.addAction(f"Close {module}").triggered.connect(
                lambda: self.module_toggled.emit(module, False))
        if not menu.isEmpty():
            menu.exec(event.globalPos())

    def mouseDoubleClickEvent(self, event: QtGui.QMouseEvent) -> None:
        node = getattr(self.itemAt(event.position().toPoint()), "node", None)
        if node is not None and node.kind == "module":
            self.module_toggled.emit(node.name, True)
        else:
            super().mouseDoubleClickEvent(event)

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:
        self.zoom(1.15 ** (event.angleDelta().y() / 120.0))

    def zoom(self, factor: float, by_user: bool = True) -> None:
        """Zoom by `factor`, kept within [MIN_ZOOM, MAX_ZOOM] (a view already outside
        it is not pulled in by a jump)."""
        current = self.transform().m11()
        target = min(max(current * factor, min(MIN_ZOOM, current)), max(MAX_ZOOM, current))
        self.scale(target / current, target / current)
        self.scene().set_zoom(target)
        if by_user:
            self.zoomed.emit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.resized.emit()

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
    """The live autograd graph, with zoom, pan, fit, search, open/closed modules and a
    saved-tensors switch."""

    def __init__(self, states, actions, parent=None):
        super().__init__(parent)
        self.run, self.selection, self.backward = states.run, states.selection, states.backward
        self.view_state, self.theme = states.view, states.theme
        self.shown: Graph | None = None  # what is drawn (closed modules as boxes)
        self.full: Graph | None = None  # the run's graph, with or without saved tensors
        self.layout_: Layout | None = None
        self.previous: dict[str, tuple[float, float]] = {}  # key -> position, last drawing only
        self.drawn_as: dict[str, str] = {}  # full graph's node id -> the id drawn
        self.auto_depth: int | None = None  # modules this deep start closed (a big graph)
        self.cache = GraphCache()
        self.user_zoomed = False
        self._matches: list[str] = []
        self._match_index = -1
        self._fit_after_layout = False

        self.scene = GraphScene(self, self.theme.graph_font(), self.theme.graph_metrics())
        self.view = GraphView(self.scene)
        self.overlay = StepOverlay(self.scene)
        self.worker = LayoutWorker(self)
        self.worker.finished.connect(self._on_laid_out)
        self.worker.failed.connect(self._on_layout_failed)
        self.scene.drawn.connect(self._on_drawn)
        self.fit_when_drawn = False
        self.scene.selectionChanged.connect(self._on_scene_selection)
        self.view.zoomed.connect(lambda: setattr(self, "user_zoomed", True))
        self.refit = QtCore.QTimer(self, singleShot=True, interval=50)
        self.refit.timeout.connect(lambda: self.user_zoomed or self.fit())
        self.view.resized.connect(self.refit.start)
        self.view.module_toggled.connect(
            lambda name, on: (self.view_state.open_module if on else self.view_state.close_module)(name))

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
        self.fold_box = QtWidgets.QComboBox()
        self.fold_box.addItems(["Modules: auto", "Modules: all open"] + [f"Fold at depth {d}" for d in range(1, 7)])
        self.fold_box.setToolTip("Draw each nn.Module this deep as one box (double-click a box opens it)")
        self.fold_box.setFocusPolicy(QtCore.Qt.NoFocus)
        self.fold_box.activated.connect(lambda i: self.view_state.set_fold(None if i == 0 else i - 1))
        self.info = QtWidgets.QLabel("")
        self.crumbs = QtWidgets.QLabel("", textFormat=QtCore.Qt.RichText)
        self.crumbs.linkActivated.connect(self.view_state.close_module)
        self.crumbs.hide()
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.search, 2)
        bar.addWidget(self.saved_box)
        bar.addWidget(self.fold_box)
        bar.addLayout(buttons)
        bar.addWidget(self.info, 1, QtCore.Qt.AlignRight)
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(bar)
        box.addWidget(self.crumbs)
        box.addWidget(self.view, 1)
        self.legend = QtWidgets.QLabel(self._legend_text([]))
        self.legend.setWordWrap(True)
        self.legend.setContentsMargins(4, 0, 4, 0)
        self.legend.setTextFormat(QtCore.Qt.RichText)
        box.addWidget(self.legend)
        for key, slot in [("F", self.fit), ("+", lambda: self.view.zoom(1.25)),
                          ("=", lambda: self.view.zoom(1.25)), ("-", lambda: self.view.zoom(1 / 1.25))]:
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self.view)
            sc.setContext(QtCore.Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
        if actions is not None:
            self.view.hook_requested.connect(actions.add_hook)

        self.run.graph_changed.connect(self._on_graph)
        self.run.error_changed.connect(self._on_error)
        self.view_state.changed.connect(self._on_view_options)
        self.view_state.modules_changed.connect(self._on_modules)
        self.backward.step_changed.connect(self._on_step)
        self.backward.trace_changed.connect(lambda: self.run.graph is not None and self._relayout())
        self.selection.changed.connect(self._on_selection_state)
        self.selection.line_changed.connect(self._on_line)
        self.theme.changed.connect(self._on_theme)
        self.saved_box.setChecked(self.view_state.show_saved)
        if self.run.graph is not None:
            self._on_graph()

    @staticmethod
    def _legend_text(devices: list[str]) -> str:
        """Colour swatches and edge styles, so a student can read the drawing, and the
        stripe of each device other than the CPU the graph's tensors are on. One
        wrapped line of rich text: it takes the panel's width, however narrow."""
        entries = [(theme.STYLE[k][0], theme.STYLE[k][1], text) for k, text in theme.LEGEND]
        entries.append(("white", theme.RETAINS_GRAD_BORDER, "retains_grad"))
        swatches = [f"<span style='background-color:{fill}; color:{border}'>&nbsp;■■&nbsp;</span>"
                    f"&nbsp;{html.escape(text)}" for fill, border, text in entries]
        swatches += [f"<span style='color:{theme.EDGE_COLOUR[kind]}'>{dash}</span>&nbsp;{text}"
                     for kind, dash, text in (("view", "╌╌╌", "shares storage"), ("data", "┄┄┄", "made from (no autograd)"))]
        swatches += [f"<span style='color:{device_colour(d)}'>█</span>&nbsp;on&nbsp;{html.escape(d)}" for d in devices]
        return " &nbsp; ".join(swatches)

    # --- from the states ------------------------------------------------------------
    def _on_graph(self) -> None:
        """A new graph: nodes that were drawn before keep their place."""
        self.legend.setText(self._legend_text(graph_devices(self.run.graph)))
        self._on_error()
        self._relayout(fit=self.shown is None or not alike(self.run.graph, self.previous))

    def _on_error(self) -> None:
        """Dim the drawing while the code has an error (this is the last good graph)."""
        err = self.run.error
        self.view.stale_text = "" if err is None else run_error_text(err) + (
            "\n(the graph as it stood when the script stopped)" if err.phase == "run" and err.type != "SyntaxError"
            else "\n(showing the last good graph)")
        self.view.viewport().update()

    def _on_modules(self) -> None:
        """Modules opened, closed or folded to a depth: draw again (keeping places)."""
        if self.run.graph is None:
            return
        fold = self.view_state.fold
        self.fold_box.setCurrentIndex(0 if fold is None else fold + 1)
        self._relayout(fit=True)

    def _on_view_options(self) -> None:
        if self.saved_box.isChecked() != self.view_state.show_saved:
            self.saved_box.setChecked(self.view_state.show_saved)
        if self.run.graph is not None:
            self._relayout(fit=self.use_dot())

    def _on_theme(self) -> None:
        self.scene.font = self.theme.graph_font()
        self.scene.metrics = self.theme.graph_metrics()
        self.scene.edge_pen = self.theme.edge_pen()
        self.scene.border_width = self.theme.border_width()
        self.overlay.set_font(self.scene.font)
        self.view.banner_points = self.theme.points(theme.BANNER_POINTS)
        self.previous = {}
        if self.run.graph is not None:
            self._relayout(fit=True)

    def _on_step(self, index: int) -> None:
        """Draw one step of the recorded backward: only what changed since the last."""
        if self.layout_ is None or self.scene.is_drawing():
            return
        self.overlay.show(index)
        plan = self.overlay.plan
        if 0 <= index < len(plan):
            item = self.scene.items_by_id.get(self.drawn_as.get(plan[index].node, plan[index].node))
            if item is not None:
                self.view.ensureVisible(item, 80, 80)

    def _on_selection_state(self, node_id: str) -> None:
        item = self.scene.items_by_id.get(self.drawn_as.get(node_id, node_id))
        if item is not None and not item.isSelected():
            self.scene.blockSignals(True)
            self.scene.clearSelection()
            item.setSelected(True)
            self.scene.blockSignals(False)
            self.view.centerOn(item)

    def _on_line(self, line: int) -> None:
        """Outline the nodes the script's line `line` made."""
        for item in self.scene.items_by_id.values():
            linked = bool(line) and getattr(item.node, "line", None) == line
            if item.linked != linked:
                item.linked = linked
                item.update()

    def use_dot(self) -> bool:
        return self.view_state.use_dot and dot_available()

    # --- layout ---------------------------------------------------------------------------
    def _request(self) -> Request:
        v = self.view_state
        return Request(self.run.graph, v.show_saved, v.fold, frozenset(v.opened), frozenset(v.closed),
                       self.backward.trace, self.scene.metrics, dict(self.previous), self.use_dot())

    def _relayout(self, fit: bool = False) -> None:
        """Draw the run's graph again as the states say: a small one here and now, a big
        one (or any for Graphviz) prepared in the worker, the old drawing staying till then."""
        req = self._request()
        self._fit_after_layout = fit or self._fit_after_layout
        if len(req.graph.nodes) <= SYNC_LAYOUT_LIMIT and not req.dot:
            self.worker.cancel()
            self._draw(prepare(req, lambda: False, self.cache))
        else:
            count = len(req.graph.nodes) if req.show_saved else \
                sum(1 for n in req.graph.nodes if n.kind != "saved")
            self.info.setText(f"laying out {count} nodes…")
            self.worker.submit(lambda cancelled: prepare(req, cancelled, self.cache))

    def _on_laid_out(self, _number: int, result: Prepared) -> None:
        self._draw(result)

    def _on_layout_failed(self, _number: int, why: str) -> None:
        self.info.setText(f"could not lay out the graph ({why})")

    def _draw(self, p: Prepared) -> None:
        self.full, self.shown, self.layout_, self.drawn_as = p.full, p.shown, p.layout, p.drawn_as
        self.auto_depth = p.auto_depth
        self.view_state.drawn = p.shown
        self.info.setToolTip(p.how)
        if not p.how:
            self.previous = p.positions
        self.overlay.forget()  # scene.draw clears the scene, overlay items with it
        counts = p.counts
        self.info.setText(f"{counts['tensor']} tensors · {counts['op']} ops"
                          + (f" · {counts['saved']} saved" if self.view_state.show_saved else "")
                          + (f" · {counts['module']} closed modules" if counts["module"] else ""))
        self._show_crumbs()
        if self._fit_after_layout or not self.user_zoomed:
            self.fit_when_drawn = True
        self._fit_after_layout = False
        self.scene.draw(p.shown, p.layout, data=p.data)  # `drawn` (now, or a few turns later): _on_drawn
        if self.fit_when_drawn and self.scene.is_drawing():
            self.fit()  # the overview is there already

    def _on_drawn(self) -> None:
        """All node items are there: the backward step, selection and line marks."""
        full = self.full
        self.scene.blockSignals(True)
        trace = self.backward.trace
        self.overlay.set_plan(step_plan(full, trace) if trace is not None else [], self.drawn_as)
        self.overlay.show(self.backward.index)
        selected = self.drawn_as.get(self.selection.node_id, self.selection.node_id)
        if selected in self.scene.items_by_id:
            self.scene.items_by_id[selected].setSelected(True)
        self.scene.blockSignals(False)
        self._on_line(self.selection.line)
        if self.fit_when_drawn:
            self.fit()
        self.fit_when_drawn = False

    def _show_crumbs(self) -> None:
        """What is open, each with a link that closes it."""
        opened = sorted(m for m in (self.full.modules if self.full else {}) if
                        m in self.view_state.opened)
        self.crumbs.setVisible(bool(opened) or bool(self.shown and self.shown.by_kind("module")))
        links = " · ".join(f"<a href='{m}'>{m} ✕</a>" for m in opened)
        self.crumbs.setText("Modules: closed boxes open on double-click" + (f" — open: {links}" if links else ""))

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
        self.scene.set_zoom(self.view.transform().m11())
        self.user_zoomed = False

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _on_search_text(self, text: str) -> None:
        self._matches = self.find(text) if text else []
        self._match_index = -1
        if self._matches:
            self.find_next()

    def find(self, text: str) -> list[str]:
        """Ids drawn for the nodes whose label contains `text` (case-insensitive),
        also those inside closed modules (found as their module's box)."""
        needle = text.lower()
        found: list[str] = []
        for node in (self.full.nodes if self.full else []):
            drawn = self.drawn_as.get(node.id, node.id)
            if needle in node_lines(node)[0].lower() and drawn not in found:
                found.append(drawn)
        found += [n.id for n in (self.shown.by_kind("module") if self.shown else [])
                  if needle in n.name.lower() and n.id not in found]
        return [f for f in found if f in self.scene.items_by_id]

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
