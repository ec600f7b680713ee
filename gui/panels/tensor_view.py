"""The tensor view: the selected tensor's values as a picture.

A one-line summary in the spirit of lovely-tensors, then the picture the kernel sent
(`core.model.tensor_view.TensorView`): a bar or line plot for 0-d and 1-d tensors, a
heatmap with a colour bar for the rest (sliders pick the slice, two menus the dims
drawn), images or a grid for (C,H,W) and (N,C,H,W), a histogram of all the values,
and the storage strip: which part of the storage each named view covers. It draws
what the kernel answered and asks for more only through `actions`; the export of
`--tensor NAME` draws the same widgets (`render_png`).
"""
from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core.model.tensor_view import (COMPLEX_PARTS, GONE, HEATMAP, IMAGE, INDICES, SHAPE_ONLY, VALUES,
                                    StorageLayout, TensorView, format_number)
from gui import theme

NAN_COLOUR = (255, 0, 255)  # magenta: in neither colour map
POS_INF_COLOUR = (255, 159, 0)  # orange
NEG_INF_COLOUR = (0, 229, 255)  # cyan
DIVERGING = pg.ColorMap(pos=[0.0, 0.25, 0.5, 0.75, 1.0],
                        color=[(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130),
                               (178, 24, 43)], name="diverging")
SEQUENTIAL = pg.colormap.get("viridis")  # lightness rises with the value
BOOLEAN = pg.ColorMap(pos=[0.0, 1.0], color=[(40, 40, 40), (255, 235, 59)], name="bool")
BAR_LIMIT = 64  # 1-d tensors up to this long are bars, longer ones a line
LISTED = 64  # values written out under a 1-d plot
WRITTEN_CELLS = 100  # heatmaps with at most this many cells have their values written in
VIEW_COLOURS = ["#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#e53935"]


def _colour_html(text: str) -> str:
    """The summary with its alarms in red, as lovely-tensors prints them."""
    words = []
    for w in html.escape(text).split(" "):
        if w in ("NaN!", "+Inf!", "-Inf!"):
            words.append(f"<b style='color:{theme.ERROR}'>{w}</b>")
        elif w == "all_zeros":
            words.append(f"<span style='color:{theme.MUTED}'>{w}</span>")
        else:
            words.append(w)
    return " ".join(words)


def non_finite_overlay(data: np.ndarray) -> np.ndarray | None:
    """RGBA pixels for the nan/+inf/-inf cells of a heatmap (None: none)."""
    if data.dtype.kind != "f":
        return None
    bad = ~np.isfinite(data)
    if not bad.any():
        return None
    rgba = np.zeros(data.shape + (4,), np.uint8)
    for mask, colour in ((np.isnan(data), NAN_COLOUR), (data == np.inf, POS_INF_COLOUR),
                         (data == -np.inf, NEG_INF_COLOUR)):
        rgba[mask] = (*colour, 255)
    return rgba


def colour_map(view: TensorView) -> pg.ColorMap:
    if view.dtype == "bool":
        return BOOLEAN
    return DIVERGING if view.diverging else SEQUENTIAL


class StorageStrip(QtWidgets.QWidget):
    """The storage as a row of cells and, under it, one row per named view showing
    the cells it covers (with each element's position in the view while they fit)."""

    ROW_H = 22
    NAME_W = 120

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_: StorageLayout | None = None
        self.version: int | None = None
        self.scale = 1.0  # the lecture zoom (scale_fonts)
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addStretch(1)
        self.captions = QtWidgets.QLabel()
        self.captions.setFont(theme.monospace(9))
        self.captions.setWordWrap(True)
        self.captions.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        box.addWidget(self.captions)

    def set_layout(self, layout: StorageLayout | None, version: int | None = None) -> None:
        self.layout_, self.version = layout, version
        self.setVisible(layout is not None)
        if layout is not None:
            self.captions.setText("<br>".join(
                f"<span style='color:{VIEW_COLOURS[k % len(VIEW_COLOURS)]}'>{html.escape(self.caption(k))}</span>"
                for k in range(len(layout.views))))
            self.layout().setContentsMargins(0, 20 + (1 + len(layout.views)) * self.ROW_H, 0, 2)
        self.update()

    def caption(self, i: int) -> str:
        lay = self.layout_
        v = lay.views[i]
        shape = "(" + ", ".join(map(str, v.shape)) + ("," if len(v.shape) == 1 else "") + ")"
        stride = "(" + ", ".join(map(str, v.stride)) + ("," if len(v.stride) == 1 else "") + ")"
        span = f"elements {v.span[0]}…{v.span[1]}" if v.span else "no elements"
        text = (f"{v.name}: shape {shape}, offset {v.offset}, stride {stride}, {span}, "
                + ("contiguous" if v.contiguous else "not contiguous"))
        if i == 0 and self.version is not None:
            text += f", version {self.version}"
        return text

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        lay = self.layout_
        if lay is None:
            return
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.Antialiasing, False)
        font = theme.monospace(9 * self.scale)
        p.setFont(font)
        fm = QtGui.QFontMetrics(font)
        p.setPen(QtGui.QColor(theme.TEXT))
        kind = f"{lay.length:,} elements × {lay.element_size} B = {lay.nbytes:,} B"
        if not lay.exact:
            kind += f"; a cell is {math.ceil(lay.length / len(lay.views[0].cells)):,} elements"
        p.drawText(4, 14, f"storage {kind}")
        n = len(lay.views[0].cells) if lay.views and lay.views[0].cells is not None else 0
        if not n:
            return
        x0, w = self.NAME_W, max(1.0, (self.width() - self.NAME_W - 8) / n)
        y = 20
        p.drawText(4, y + self.ROW_H - 7, "storage")
        for i in range(n):
            rect = QtCore.QRectF(x0 + i * w, y, w, self.ROW_H - 4)
            p.fillRect(rect, QtGui.QColor("#eceff1"))
            if w >= 4:
                p.setPen(QtGui.QColor("#b0bec5"))
                p.drawRect(rect)
            if lay.values is not None and i < lay.values.size and w >= fm.horizontalAdvance("0.00") + 2:
                p.setPen(QtGui.QColor(theme.TEXT))
                p.drawText(rect, QtCore.Qt.AlignCenter, format_number(float(lay.values.reshape(-1)[i].real
                                                                            if np.iscomplexobj(lay.values)
                                                                            else lay.values.reshape(-1)[i])))
        for k, v in enumerate(lay.views):
            y += self.ROW_H
            colour = QtGui.QColor(VIEW_COLOURS[k % len(VIEW_COLOURS)])
            p.setPen(colour)
            p.drawText(QtCore.QRectF(4, y, self.NAME_W - 8, self.ROW_H - 4),
                       QtCore.Qt.AlignVCenter | QtCore.Qt.AlignLeft, fm.elidedText(v.name, QtCore.Qt.ElideRight,
                                                                                  self.NAME_W - 8))
            cells = v.cells if v.cells is not None else np.zeros(0)
            light = QtGui.QColor(colour)
            light.setAlpha(90)
            for i in range(min(n, cells.size)):
                if cells[i] == -1:
                    continue
                rect = QtCore.QRectF(x0 + i * w, y, w, self.ROW_H - 4)
                p.fillRect(rect, light)
                if lay.exact and cells[i] >= 0 and w >= fm.horizontalAdvance(str(int(cells[i]))) + 4:
                    p.setPen(QtGui.QColor(theme.TEXT))
                    p.drawText(rect, QtCore.Qt.AlignCenter, str(int(cells[i])))
        p.end()


class TensorPicture(QtWidgets.QWidget):
    """The summary, the picture and the histogram: what the export draws too."""

    hovered = QtCore.Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.view: TensorView | None = None
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        self.caption = QtWidgets.QLabel()  # where a tensor without a name came from
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet(f"color: {theme.NOTE}")
        box.addWidget(self.caption)
        self.summary = QtWidgets.QLabel()
        self.summary.setFont(theme.monospace(11))
        self.summary.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        box.addWidget(self.summary)
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {theme.STDERR}")
        box.addWidget(self.note)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.canvas.setMinimumHeight(220)
        box.addWidget(self.canvas, 1)
        self.plot = self.canvas.addPlot(row=0, col=0)
        self.plot.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.plot.addItem(self.overlay)
        self.bar = pg.ColorBarItem(values=(0, 1), colorMap=SEQUENTIAL, interactive=False,
                                   colorMapMenu=False, width=18)
        self.bar.setImageItem(self.image, insert_in=self.plot)
        self._cmap = None  # the colour map the image's lookup table was made from
        self._axis_text: dict[str, str] = {}  # the plot's axis labels as last set
        self.bar.axis.setTextPen(pg.mkPen("#222"))
        self.bar.axis.setPen(pg.mkPen("#444"))
        self.curve = pg.PlotDataItem()
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#1e88e5")
        self.points = pg.ScatterPlotItem(size=5, brush="#1e88e5", pen=None)
        for item in (self.curve, self.bars, self.points):
            self.plot.addItem(item)
        self.hist = self.canvas.addPlot(row=1, col=0)
        self.hist.setMenuEnabled(False)
        self.hist.setMaximumHeight(130)
        self.hist.setMouseEnabled(False, False)
        self.hist_curve = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=(30, 136, 229, 120),
                                          pen=pg.mkPen("#1565c0"))
        self.hist.addItem(self.hist_curve)
        self.legend = QtWidgets.QLabel()
        box.addWidget(self.legend)
        self.values = QtWidgets.QLabel()
        self.values.setFont(theme.monospace(10))
        self.values.setWordWrap(True)
        self.values.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        box.addWidget(self.values)
        for plot in (self.plot, self.hist):
            for axis in ("left", "bottom"):
                plot.getAxis(axis).setPen(pg.mkPen("#444"))
                plot.getAxis(axis).setTextPen(pg.mkPen("#222"))
        self.canvas.scene().sigMouseMoved.connect(self._on_mouse)
        self.cell_texts: list = []
        self.draw(None, "")

    # --- drawing ---------------------------------------------------------------------------
    def draw(self, view: TensorView | None, message: str) -> None:
        old, self.view = self.view, view
        if (view is not None and old is not None and view.kind == HEATMAP == old.kind
                and (view.node_id, view.identity, view.dims, view.step, view.complex_part)
                == (old.node_id, old.identity, old.dims, old.step, old.complex_part)
                and np.shape(view.data) == np.shape(old.data) and not self.cell_texts):
            # a slider step: the same tensor, another slice; axes and histogram stay
            self._draw_heatmap(view)
            return
        for item in self.cell_texts:
            self.plot.removeItem(item)
        self.cell_texts = []
        for item in (self.curve, self.bars, self.points):
            item.setVisible(False)
        self.image.setVisible(False)
        self.overlay.setVisible(False)
        self.bar.setVisible(False)
        self.legend.setVisible(False)
        self.values.setVisible(False)
        self.caption.setText(html.escape(view.caption) if view is not None else "")
        self.caption.setVisible(bool(view is not None and view.caption))
        if view is None or view.kind in (GONE, SHAPE_ONLY):
            self.summary.setText(_colour_html(view.summary) if view is not None else "")
            self.note.setText(html.escape(view.note if view is not None else message))
            self.note.setVisible(bool(view.note if view is not None else message))
            self.canvas.setVisible(False)
            return
        self.canvas.setVisible(True)
        self.summary.setText(_colour_html(view.summary))
        self.note.setText(html.escape(view.note))
        self.note.setVisible(bool(view.note))
        self.plot.invertY(view.kind in (HEATMAP, IMAGE))
        self.plot.setAspectLocked(view.kind in (HEATMAP, IMAGE))
        self.plot.showGrid(x=view.kind in (VALUES, INDICES), y=view.kind in (VALUES, INDICES), alpha=0.3)
        if view.kind == VALUES:
            self._draw_values(view)
        elif view.kind == HEATMAP:
            self._draw_heatmap(view)
        elif view.kind == IMAGE:
            self._draw_image(view)
        elif view.kind == INDICES:
            self._draw_indices(view)
        self._draw_histogram(view)
        self.plot.autoRange(padding=0.02)

    def _labels(self, view: TensorView) -> None:
        if view.kind in (HEATMAP,) and len(view.dims) == 2:
            self._axis_labels(f"dim {view.dims[0]}", f"dim {view.dims[1]}")
        elif view.kind == VALUES:
            self._axis_labels("value", "index" if view.shape else "")
        else:
            self._axis_labels("", "")

    def _axis_labels(self, left: str, bottom: str) -> None:
        """setLabel lays the plot out again even for the same text: only on a change."""
        for side, text in (("left", left), ("bottom", bottom)):
            if self._axis_text.get(side) != text:
                self.plot.setLabel(side, text)
                self._axis_text[side] = text

    def _draw_values(self, view: TensorView) -> None:
        data = np.asarray(view.data)
        if data.dtype == bool:
            data = data.astype(np.uint8)
        step = view.step[0] if view.step else 1
        xs = np.arange(data.size) * step
        ys = data.astype(np.float64)
        if data.size <= BAR_LIMIT:
            self.bars.setOpts(x=xs, height=np.nan_to_num(ys, nan=0.0, posinf=0.0, neginf=0.0),
                              width=0.8 * step, brush="#1e88e5")
            self.bars.setVisible(True)
        else:
            self.curve.setData(xs, ys, connect="finite", pen=pg.mkPen("#1e88e5", width=1.5))
            self.curve.setVisible(True)
        shown = data[:LISTED]
        with np.printoptions(precision=4, suppress=True, linewidth=80, threshold=LISTED + 1):
            text = np.array2string(shown)
        if not view.shape:
            text = f"value: {shown[0]}"
        elif data.size > LISTED or step > 1:
            text += f"\n… the first {min(LISTED, data.size)} values" + (f" of every {step}th" if step > 1 else "")
        self.values.setText(html.escape(text).replace("\n", "<br>").join(("<pre>", "</pre>")))
        self.values.setVisible(True)
        self._labels(view)

    def _draw_heatmap(self, view: TensorView) -> None:
        data = np.asarray(view.data)
        if data.dtype == bool:
            data = data.astype(np.float32)
        elif data.dtype.kind != "f":
            data = data.astype(np.float64)
        lo, hi = view.colour_range or [0.0, 1.0]
        sr, sc = (view.step + [1, 1])[:2]
        rows, cols = data.shape
        # cell (i, j) centred on its index, so the axes' ticks name rows and columns
        rect = QtCore.QRectF(-0.5 * sc, -0.5 * sr, cols * sc, rows * sr)
        cmap = colour_map(view)
        if cmap is not self._cmap:  # its lookup table (and the bar's picture) made once per map
            self.bar.setColorMap(cmap)
            self._cmap = cmap
        self.image.setImage(data, autoLevels=False, levels=(lo, hi))
        self.image.setRect(rect)
        self.bar.setLevels((lo, hi))
        self.image.setVisible(True)
        self.bar.setVisible(True)
        overlay = non_finite_overlay(data)
        if overlay is not None:
            self.overlay.setImage(overlay, autoLevels=False, levels=(0, 255))
            self.overlay.setRect(rect)
            self.overlay.setVisible(True)
        if rows * cols <= WRITTEN_CELLS:
            for r in range(rows):
                for c in range(cols):
                    v = data[r, c]
                    t = (v - lo) / (hi - lo) if hi > lo and math.isfinite(v) else 0.5
                    dark = t < 0.6 if not view.diverging else abs(t - 0.5) > 0.3
                    item = pg.TextItem(_value(view.data[r, c]), color="w" if dark else "k", anchor=(0.5, 0.5))
                    item.setFont(theme.monospace(9))
                    item.setPos(c * sc, r * sr)
                    self.plot.addItem(item)
                    self.cell_texts.append(item)
        self._legend(view)
        self._labels(view)

    def _legend(self, view: TensorView) -> None:
        s = view.stats
        if s is None or not (s.nan or s.pos_inf or s.neg_inf):
            return
        parts = []
        for count, colour, word in ((s.nan, NAN_COLOUR, "nan"), (s.pos_inf, POS_INF_COLOUR, "+inf"),
                                    (s.neg_inf, NEG_INF_COLOUR, "-inf")):
            if count:
                parts.append(f"<span style='color:rgb{colour}'>■</span> {word} ({count:,})")
        self.legend.setText("&nbsp;&nbsp;".join(parts))
        self.legend.setVisible(True)

    def _draw_image(self, view: TensorView) -> None:
        if view.unnormalized:  # the picture is not the raw values: say so where the values are
            self.legend.setText(html.escape(f"Shown {view.unnormalized}; the summary and histogram "
                                            "are of the raw values."))
            self.legend.setVisible(True)
        data = np.asarray(view.data)
        self.image.setImage(data, autoLevels=False, levels=(0, 255), lut=None)
        self._cmap = None  # the heatmap's lookup table is gone
        # again: the colour bar's (0, 1), deferred while the item had no data, would
        # otherwise win on the first image drawn and make it black and white
        self.image.setLevels((0, 255))
        step = view.step[0] if view.step else 1
        self.image.setRect(QtCore.QRectF(0, 0, data.shape[1] * step, data.shape[0] * step))
        self.image.setVisible(True)
        self._labels(view)

    def _draw_indices(self, view: TensorView) -> None:
        idx = np.asarray(view.data)
        if idx.ndim == 2 and idx.shape[1] >= 2:
            self.points.setData(x=idx[:, -1], y=idx[:, -2])
            self._axis_labels(f"dim {len(view.shape) - 2}", f"dim {len(view.shape) - 1}")
        else:
            self.points.setData(x=idx.reshape(-1), y=np.asarray(view.values, dtype=np.float64))
        self.points.setVisible(True)
        self.plot.invertY(idx.ndim == 2 and idx.shape[1] >= 2)

    def _draw_histogram(self, view: TensorView) -> None:
        self.hist.setVisible(view.hist_counts is not None)
        if view.hist_counts is None:
            return
        self.hist_curve.setData(np.asarray(view.hist_edges), np.asarray(view.hist_counts, dtype=np.float64))
        what = "histogram" + (f" (from a sample of {view.hist_sample:,} values)" if view.hist_sample else "")
        self.hist.setTitle(f"<span style='color:#333'>{what}</span>", size="9pt")
        self.hist.autoRange()

    # --- hover ------------------------------------------------------------------------------
    def _on_mouse(self, pos) -> None:
        view = self.view
        if view is None or view.kind not in (HEATMAP, IMAGE, VALUES) or view.data is None:
            return
        if not self.plot.sceneBoundingRect().contains(pos):
            return
        p = self.plot.vb.mapSceneToView(pos)
        self.hovered.emit(hover_text(view, p.x(), p.y()))


def hover_text(view: TensorView, x: float, y: float) -> str:
    """`x[0, 2, 17, 40] = 0.532`: the element under the mouse, by its full index."""
    data = np.asarray(view.data)
    if view.kind == VALUES:
        step = view.step[0] if view.step else 1
        i = int(round(x / step))
        if not view.shape:
            return f"{view.name} = {data.reshape(-1)[0]}"
        if 0 <= i < data.size:
            return f"{view.name}[{i * step}] = {_value(data[i])}"
        return ""
    if view.kind == HEATMAP:
        sr, sc = (view.step + [1, 1])[:2]
        r, c = math.floor(y / sr + 0.5), math.floor(x / sc + 0.5)
        if not (0 <= r < data.shape[0] and 0 <= c < data.shape[1]):
            return ""
        index = list(view.index)
        index[view.dims[0]], index[view.dims[1]] = r * sr, c * sc
        return f"{view.name}[{', '.join(map(str, index))}] = {_value(data[r, c])}"
    step = view.step[0] if view.step else 1
    r, c = int(y // step), int(x // step)
    if not (0 <= r < data.shape[0] and 0 <= c < data.shape[1]):
        return ""
    if len(view.shape) == 4:
        h, w = math.ceil(view.shape[2] / step), math.ceil(view.shape[3] / step)
        cols = math.ceil(math.sqrt(view.first[0])) if view.first and view.first[0] else 1
        n = (r // (h + 2)) * cols + c // (w + 2)
        yy, xx = r % (h + 2), c % (w + 2)
        if yy >= h or xx >= w or n >= (view.first[0] if view.first else 0):
            return ""
        return f"{view.name}[{n}, :, {yy * step}, {xx * step}] = {_pixel(data[r, c])}"
    return f"{view.name}[:, {r * step}, {c * step}] = {_pixel(data[r, c])}"


def _value(v) -> str:
    v = v.item() if hasattr(v, "item") else v
    return str(v) if isinstance(v, (bool, int)) else format_number(float(v)) if not isinstance(v, float) \
        else (f"{v:.6g}" if math.isfinite(v) else format_number(v))


def _pixel(v) -> str:
    v = np.asarray(v).reshape(-1)
    return str(int(v[0])) if v.size == 1 else "(" + ", ".join(str(int(c)) for c in v) + ")"


def scale_fonts(root: QtWidgets.QWidget, scale: float) -> None:
    """The lecture zoom for a panel whose widgets set fonts of their own: each one's
    font at `scale` times the size it was made with (remembered on first use), and
    the painted storage strip's text too."""
    for w in [root, *root.findChildren(QtWidgets.QWidget)]:
        base = w.property("base_points") or w.font().pointSizeF()
        w.setProperty("base_points", base)
        font = w.font()
        font.setPointSizeF(base * scale)
        w.setFont(font)
        if isinstance(w, StorageStrip):
            w.scale = scale
            w.updateGeometry()
            w.update()


class TensorViewPanel(QtWidgets.QWidget):
    """The selected tensor's values: summary, picture, sliders, histogram, storage."""

    def __init__(self, states, actions=None, parent=None):
        super().__init__(parent)
        self.state = states.tensor_view
        self.actions = actions
        states.theme.changed.connect(lambda: scale_fonts(self, states.theme.scale))
        self.sliders: list[tuple[int, QtWidgets.QSlider, QtWidgets.QLabel]] = []
        self._shape_key = None
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.picture = TensorPicture()
        box.addWidget(self.picture, 1)
        self.hover = QtWidgets.QLabel(" ")
        self.hover.setFont(theme.monospace(10))
        box.addWidget(self.hover)
        self.picture.hovered.connect(self.hover.setText)

        controls = QtWidgets.QHBoxLayout()
        controls.setContentsMargins(4, 0, 4, 0)
        self.mode = QtWidgets.QPushButton()
        self.mode.clicked.connect(self._toggle_mode)
        controls.addWidget(self.mode)
        self.unnormalize = QtWidgets.QCheckBox("Un-normalized")
        self.unnormalize.setToolTip("Undo the pipeline's Normalize for display (x·std + mean, clipped to "
                                    "0..1); off: the raw values, scaled to their range")
        self.unnormalize.toggled.connect(lambda on: on != self.state.unnormalize and self._ask(unnormalize=on))
        controls.addWidget(self.unnormalize)
        self.part = QtWidgets.QComboBox()
        self.part.addItems(COMPLEX_PARTS)
        self.part.activated.connect(lambda i: self._ask(part=COMPLEX_PARTS[i]))
        controls.addWidget(self.part)
        self.rows_label = QtWidgets.QLabel("rows")
        self.rows = QtWidgets.QComboBox()
        self.cols_label = QtWidgets.QLabel("columns")
        self.cols = QtWidgets.QComboBox()
        for w in (self.rows_label, self.rows, self.cols_label, self.cols):
            controls.addWidget(w)
        self.rows.activated.connect(lambda i: self._pick_dims(i, None))
        self.cols.activated.connect(lambda i: self._pick_dims(None, i))
        controls.addStretch(1)
        box.addLayout(controls)
        self.slider_box = QtWidgets.QGridLayout()
        self.slider_box.setContentsMargins(4, 0, 4, 0)
        box.addLayout(self.slider_box)
        self.strip = StorageStrip()
        box.addWidget(self.strip)
        self.state.changed.connect(self.redraw)
        self.state.wanted.connect(self._come_forward)
        self.redraw()

    def _come_forward(self) -> None:
        """A tile double-clicked in the Data tab: this panel's tab comes to the front."""
        dock = self.parentWidget()
        if isinstance(dock, QtWidgets.QDockWidget):
            dock.show()
            dock.raise_()

    def redraw(self) -> None:
        view = self.state.view
        self.picture.draw(view, self.state.message)
        self.hover.setText(" ")
        self.strip.set_layout(view.storage if view is not None else None,
                              view.version if view is not None else None)
        heat = view is not None and view.kind == HEATMAP
        self.mode.setVisible(view is not None and view.image_possible)
        if view is not None and view.image_possible:
            self.mode.setText("Heatmap of one channel" if view.kind == IMAGE else "Show as images")
        self.unnormalize.setVisible(bool(view is not None and view.kind == IMAGE and view.normalize))
        self.unnormalize.blockSignals(True)
        self.unnormalize.setChecked(self.state.unnormalize)
        self.unnormalize.blockSignals(False)
        self.part.setVisible(bool(view is not None and view.complex_part))
        if view is not None and view.complex_part:
            self.part.setCurrentIndex(COMPLEX_PARTS.index(view.complex_part))
        many = heat and len(view.shape) >= 3
        for w in (self.rows_label, self.rows, self.cols_label, self.cols):
            w.setVisible(many)
        if many:
            for combo, d in ((self.rows, view.dims[0]), (self.cols, view.dims[1])):
                combo.blockSignals(True)
                combo.clear()
                combo.addItems([f"dim {i} ({s})" for i, s in enumerate(view.shape)])
                combo.setCurrentIndex(d)
                combo.blockSignals(False)
        self._sliders(view if heat else None)

    def _sliders(self, view: TensorView | None) -> None:
        wanted = [] if view is None else [d for d in range(len(view.shape)) if d not in view.dims]
        key = None if view is None else (view.node_id, tuple(view.shape), tuple(wanted))
        if key != self._shape_key:
            self._shape_key = key
            while self.slider_box.count():
                item = self.slider_box.takeAt(0)
                if item.widget() is not None:
                    item.widget().deleteLater()
            self.sliders = []
            for row, d in enumerate(wanted):
                name = QtWidgets.QLabel(f"dim {d}")
                slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
                slider.setRange(0, max(view.shape[d] - 1, 0))
                slider.setPageStep(1)
                value = QtWidgets.QLabel()
                value.setFont(theme.monospace(10))
                slider.valueChanged.connect(self._slid)
                self.slider_box.addWidget(name, row, 0)
                self.slider_box.addWidget(slider, row, 1)
                self.slider_box.addWidget(value, row, 2)
                self.sliders.append((d, slider, value))
        if view is None:
            return
        for d, slider, value in self.sliders:
            slider.blockSignals(True)
            slider.setValue(view.index[d] if d < len(view.index) else 0)
            slider.blockSignals(False)
            value.setText(f"{slider.value()} / {view.shape[d] - 1}")

    def _slid(self) -> None:
        view = self.state.view
        if view is None:
            return
        index = list(self.state.index or view.index or [0] * len(view.shape))
        for d, slider, value in self.sliders:
            index[d] = slider.value()
            value.setText(f"{slider.value()} / {view.shape[d] - 1}")
        self._ask(index=index)

    def _pick_dims(self, rows: int | None, cols: int | None) -> None:
        view = self.state.view
        if view is None or len(view.dims) != 2:
            return
        dims = list(view.dims)
        if rows is not None:
            dims = [rows, dims[1] if dims[1] != rows else dims[0]]
        if cols is not None:
            dims = [dims[0] if dims[0] != cols else dims[1], cols]
        self._ask(dims=dims)

    def _toggle_mode(self) -> None:
        view = self.state.view
        if view is not None:
            self._ask(mode="heatmap" if view.kind == IMAGE else "image")

    def _ask(self, **options) -> None:
        if self.actions is not None:
            self.actions.tensor_view_options(**options)


def render_png(view: TensorView, size: tuple[int, int] = (900, 760)) -> bytes:
    """The picture part of the panel (summary, picture, histogram) as PNG bytes, drawn
    by the same widgets: what `--export OUT.png --tensor NAME` writes."""
    picture = TensorPicture()
    picture.setAttribute(QtCore.Qt.WA_DontShowOnScreen)
    picture.resize(*size)
    picture.show()
    QtWidgets.QApplication.processEvents()
    picture.draw(view, "")
    QtWidgets.QApplication.processEvents()
    picture.draw(view, "")  # autoRange again, now that the plots have their sizes
    image = picture.grab().toImage()
    picture.close()
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.WriteOnly)
    image.save(buf, "PNG")
    return bytes(buf.data())
