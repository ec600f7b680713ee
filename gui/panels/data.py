"""The data panel: the script's datasets and loaders, a preview batch as a grid of
pictures with each label under its tile, and the transform pipeline as a strip of
stages for one sample (as TensorBoard's image dashboard and fastai's show_batch do).

It draws `DataState` only; the pictures come from the kernel on request (Next,
Previous, picking another loader), never on every keystroke.
"""
from __future__ import annotations

import html
import math

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from gui import theme

GAP = 6  # pixels between tiles
STAGE_HEIGHT = 96  # a stage's picture, in pixels
ZOOM_TEXT = {0.0: "Fit", 1.0: "1× (actual size)", 2.0: "2×", 3.0: "3×", 4.0: "4×", 6.0: "6×", 8.0: "8×"}


def tile_images(images: np.ndarray, channel: int = 0) -> list[QtGui.QImage]:
    """One QImage per tile of a uint8 (N, C, H, W) batch: grey for C=1, RGB for C=3,
    RGBA for C=4, else channel `channel` alone in grey. The batch is made
    channel-last once, a channel at a time (transposing tile by tile, or the whole
    (N, C, H, W) in one go, is several times slower)."""
    n, c, h, w = images.shape
    if c in (3, 4):
        pixels = np.empty((n, h, w, c), np.uint8)
        for i in range(c):
            pixels[..., i] = images[:, i]
        fmt = QtGui.QImage.Format_RGB888 if c == 3 else QtGui.QImage.Format_RGBA8888
    else:
        pixels = np.ascontiguousarray(images[:, min(channel, c - 1)])
        fmt = QtGui.QImage.Format_Grayscale8
    line = pixels[0].strides[0] if n else w
    # each copy owns its pixels: the array goes away
    return [QtGui.QImage(pixels[k].data, w, h, line, fmt).copy() for k in range(n)]


class BatchGrid(QtWidgets.QWidget):
    """The tiles of a batch, each with its label under it; hover tells, click picks,
    double-click opens the tile full size in the Tensor tab (a single click keeps the
    grid on screen: the Tensor tab shares the dock with this one)."""

    opened = QtCore.Signal(int)  # a tile double-clicked

    def __init__(self, data, parent=None):
        super().__init__(parent)
        self.data = data
        self.images: list[QtGui.QImage] = []
        self._source: tuple | None = None  # (batch, channel) the images were made from
        self.setMouseTracking(True)
        self.available = 400  # width the scroll area offers (for Fit)

    def rebuild(self) -> None:
        """Tiles made again only for another batch or channel (a click, a zoom: laid out)."""
        batch = self.data.batch
        source = (batch, self.data.channel)
        if self._source is None or source[0] is not self._source[0] or source[1] != self._source[1]:
            self.images = tile_images(batch.images, self.data.channel) if batch is not None and \
                batch.images is not None else []
            self._source = source
        self.relayout()

    def geometry_of(self) -> tuple[int, int, int, int, int]:
        """(columns, tile width, tile height, label height, tile count)."""
        n = len(self.images)
        if not n:
            return 1, 0, 0, 0, 0
        h, w = self.images[0].height(), self.images[0].width()
        label_h = self.fontMetrics().height() + 2
        zoom = self.data.zoom
        if zoom == 0.0:  # fit: a square-ish grid across the width
            cols = max(1, math.ceil(math.sqrt(n * h / max(w, 1))))
            tw = max(8, (self.available - GAP * (cols + 1)) // cols)
            zoom = tw / w
        tw, th = max(1, round(w * zoom)), max(1, round(h * zoom))
        cols = max(1, min(n, (self.available - GAP) // (tw + GAP)))
        return cols, tw, th, label_h, n

    def relayout(self) -> None:
        cols, tw, th, label_h, n = self.geometry_of()
        rows = math.ceil(n / cols) if n else 0
        self.setFixedSize(max(GAP + cols * (tw + GAP), 10), max(GAP + rows * (th + label_h + GAP), 10))
        self.update()

    def tile_at(self, pos: QtCore.QPoint) -> int:
        cols, tw, th, label_h, n = self.geometry_of()
        if not n:
            return -1
        col, row = (pos.x() - GAP) // (tw + GAP), (pos.y() - GAP) // (th + label_h + GAP)
        k = row * cols + col
        return k if 0 <= col < cols and 0 <= k < n else -1

    def paintEvent(self, event) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor("#ffffff"))
        cols, tw, th, label_h, n = self.geometry_of()
        batch = self.data.batch
        smooth = tw < (self.images[0].width() if self.images else 0)
        p.setRenderHint(QtGui.QPainter.SmoothPixmapTransform, smooth)  # upscaled: pixels stay square
        fm = self.fontMetrics()
        for k, image in enumerate(self.images):
            x, y = GAP + (k % cols) * (tw + GAP), GAP + (k // cols) * (th + label_h + GAP)
            p.drawImage(QtCore.QRect(x, y, tw, th), image)
            if k == self.data.tile:
                p.setPen(QtGui.QPen(QtGui.QColor(theme.SELECTED), 2))
                p.drawRect(x - 1, y - 1, tw + 1, th + 1)
            p.setPen(QtGui.QColor(theme.TEXT))
            label = batch.labels[k] if k < len(batch.labels) else ""
            p.drawText(QtCore.QRect(x - GAP // 2, y + th, tw + GAP, label_h), QtCore.Qt.AlignCenter,
                       fm.elidedText(label, QtCore.Qt.ElideRight, tw + GAP))
        p.end()

    def mouseMoveEvent(self, event) -> None:
        k = self.tile_at(event.position().toPoint())
        batch = self.data.batch
        if k < 0 or batch is None:
            QtWidgets.QToolTip.hideText()
            return
        QtWidgets.QToolTip.showText(event.globalPosition().toPoint(),
                                    tile_text(batch, k) + "\n(double-click: full size in the Tensor tab)", self)

    def mousePressEvent(self, event) -> None:
        k = self.tile_at(event.position().toPoint())
        if k >= 0:
            self.data.set_view(tile=k)

    def mouseDoubleClickEvent(self, event) -> None:
        k = self.tile_at(event.position().toPoint())
        if k >= 0 and self.data.batch is not None and self.data.batch.images is not None:
            self.data.set_view(tile=k)
            self.opened.emit(k)


def tile_text(batch, k: int) -> str:
    """What hovering a tile tells: where it is, its label, its tensor."""
    index = batch.indices[k] if k < len(batch.indices) else None
    where = f"tile {k} of batch {batch.index + 1}" + (f" · dataset[{index}]" if index is not None else "")
    label = batch.labels[k] if k < len(batch.labels) else ""
    target = batch.targets[k] if k < len(batch.targets) else None
    lines = [where, f"label: {label}" + (f"  ({target})" if isinstance(target, int) else "")]
    if batch.sample_shape:
        lines.append(f"image: {batch.dtypes[0] if batch.dtypes else ''} {list(batch.sample_shape)}")
    if k < len(batch.ranges):
        lo, hi = batch.ranges[k]
        lines.append(f"values {lo:.4g} … {hi:.4g}")
    return "\n".join(lines)


class StageStrip(QtWidgets.QWidget):
    """One sample through the pipeline: the picture (or value) after each step with
    its shape, dtype and range under it; the target's steps after a gap."""

    def __init__(self, data, parent=None):
        super().__init__(parent)
        self.data = data
        self.cells: list[tuple[object, QtGui.QImage | None]] = []  # (Stage, picture) ; None: a gap
        self.target_at = -1

    def rebuild(self) -> None:
        stages = self.data.stages
        self.cells = []
        if stages is not None:
            for s in stages.stages:
                self.cells.append((s, tile_images(s.image[None])[0] if s.image is not None else None))
            self.target_at = len(self.cells)
            for s in stages.target:
                self.cells.append((s, tile_images(s.image[None])[0] if s.image is not None else None))
        fm = self.fontMetrics()
        self.cell_w = max(150, fm.horizontalAdvance("M" * 16))
        self.setFixedSize(max(10, GAP + len(self.cells) * (self.cell_w + GAP) + 3 * GAP),
                          STAGE_HEIGHT + 4 * (fm.height() + 1) + 3 * GAP)
        self.update()

    def paintEvent(self, event) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor("#ffffff"))
        fm = self.fontMetrics()
        x = GAP
        for k, (stage, image) in enumerate(self.cells):
            if k == self.target_at and k:
                x += 3 * GAP
                p.setPen(QtGui.QPen(QtGui.QColor(theme.MUTED), 1, QtCore.Qt.DashLine))
                p.drawLine(x - 2 * GAP, GAP, x - 2 * GAP, self.height() - GAP)
            box = QtCore.QRect(x, GAP, self.cell_w, STAGE_HEIGHT)
            if image is not None:
                scale = min(box.width() / image.width(), box.height() / image.height())
                w, h = round(image.width() * scale), round(image.height() * scale)
                p.setRenderHint(QtGui.QPainter.SmoothPixmapTransform, scale < 1)
                p.drawImage(QtCore.QRect(x + (box.width() - w) // 2, GAP, w, h), image)
            else:
                p.setPen(QtGui.QColor(theme.ERROR if stage.error else theme.TEXT))
                p.drawRect(box.adjusted(0, 0, -1, -1))
                p.drawText(box.adjusted(4, 4, -4, -4), QtCore.Qt.TextWordWrap | QtCore.Qt.AlignCenter,
                           stage.error or stage.text)
            lines = [stage.title]
            if not stage.error:
                lines.append(f"{stage.dtype} {stage.shape}")
                if stage.low is not None:
                    lines.append(f"{stage.low:.3g} … {stage.high:.3g}")
            y = GAP + STAGE_HEIGHT + 2
            p.setPen(QtGui.QColor(theme.TEXT))
            for i, line in enumerate(lines):
                if i == 0:
                    font = p.font()
                    font.setBold(True)
                    p.setFont(font)
                p.drawText(QtCore.QRect(x, y, self.cell_w, fm.height()), QtCore.Qt.AlignHCenter,
                           fm.elidedText(line, QtCore.Qt.ElideRight, self.cell_w))
                if i == 0:
                    font.setBold(False)
                    p.setFont(font)
                y += fm.height() + 1
            x += self.cell_w + GAP
        p.end()

    def event(self, e) -> bool:
        if e.type() == QtCore.QEvent.ToolTip:
            k = (e.pos().x() - GAP) // (getattr(self, "cell_w", 150) + GAP)
            if 0 <= k < len(self.cells):
                stage = self.cells[k][0]
                QtWidgets.QToolTip.showText(e.globalPos(), stage.error or stage.title, self)
            return True
        return super().event(e)


class DataPanel(QtWidgets.QWidget):
    def __init__(self, states, actions=None, parent=None):
        super().__init__(parent)
        self.data, self.actions, self.theme = states.data, actions, states.theme
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)

        self.list = QtWidgets.QListWidget()
        self.list.setMaximumHeight(90)
        self.list.itemClicked.connect(lambda item: self._pick(item.data(QtCore.Qt.UserRole)))
        self.list.currentItemChanged.connect(
            lambda item, _: item is not None and self._pick(item.data(QtCore.Qt.UserRole)))
        box.addWidget(self.list)

        self.summary = QtWidgets.QLabel(wordWrap=True, textFormat=QtCore.Qt.RichText)
        self.summary.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        box.addWidget(self.summary)

        self.error = QtWidgets.QLabel(wordWrap=True)
        self.error.setStyleSheet(f"color: {theme.ERROR}")
        self.offline_button = QtWidgets.QPushButton("Use the offline copy")
        self.offline_button.setToolTip("Copy the FashionMNIST sample that ships with Torchscope into the "
                                       "folder the script reads, then run it again")
        self.offline_button.clicked.connect(lambda: actions and actions.use_offline_copy())
        error_row = QtWidgets.QHBoxLayout()
        error_row.addWidget(self.error, 1)
        error_row.addWidget(self.offline_button)
        box.addLayout(error_row)

        bar = QtWidgets.QHBoxLayout()
        self.prev_button = QtWidgets.QPushButton("◀ Prev", toolTip="The previous batch")
        self.next_button = QtWidgets.QPushButton("Next ▶", toolTip="The next batch")
        self.prev_button.clicked.connect(lambda: actions and actions.data_preview(self.data.index - 1))
        self.next_button.clicked.connect(lambda: actions and actions.data_preview(self.data.index + 1))
        self.position = QtWidgets.QLabel()
        self.position.setWordWrap(True)  # a narrow dock wraps it instead of widening
        self.zoom = QtWidgets.QComboBox()
        for z in self.data.ZOOMS:
            self.zoom.addItem(ZOOM_TEXT[z], z)
        self.zoom.currentIndexChanged.connect(lambda i: self.data.set_view(zoom=self.zoom.itemData(i)))
        self.actual = QtWidgets.QPushButton("Actual size")
        self.actual.clicked.connect(lambda: self.data.set_view(zoom=1.0))
        self.unnormalize = QtWidgets.QCheckBox("Un-normalized")
        self.unnormalize.setToolTip("Undo the pipeline's Normalize for display (x·std + mean); "
                                    "off: the raw values, scaled to the batch's range")
        self.unnormalize.toggled.connect(lambda on: actions and on != self.data.unnormalize
                                         and actions.set_unnormalize(on))
        self.channel = QtWidgets.QSpinBox(prefix="channel ")
        self.channel.valueChanged.connect(lambda c: c != self.data.channel and self.data.set_view(channel=c))
        for w in (self.prev_button, self.next_button, self.position):
            bar.addWidget(w)
        bar.addStretch(1)
        for w in (self.unnormalize, self.channel, self.zoom, self.actual):
            bar.addWidget(w)
        box.addLayout(bar)

        self.grid = BatchGrid(self.data)
        self.grid.opened.connect(self._open_tile)
        self.scroll = QtWidgets.QScrollArea()
        self.scroll.setWidget(self.grid)
        self.scroll.setAlignment(QtCore.Qt.AlignHCenter | QtCore.Qt.AlignTop)
        self.scroll.viewport().installEventFilter(self)
        box.addWidget(self.scroll, 1)

        self.detail = QtWidgets.QLabel(wordWrap=True)
        self.detail.setStyleSheet(f"color: {theme.NOTE}")
        box.addWidget(self.detail)

        strip_title = QtWidgets.QLabel("<b>Transforms, one sample step by step</b> "
                                       f"<span style='color:{theme.MUTED}'>(the label's steps after the dashed line)</span>")
        strip_title.setWordWrap(True)
        box.addWidget(strip_title)
        self.strip = StageStrip(self.data)
        self.strip_scroll = QtWidgets.QScrollArea()
        self.strip_scroll.setWidget(self.strip)
        self.strip_scroll.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        box.addWidget(self.strip_scroll)
        self.strip_error = QtWidgets.QLabel(wordWrap=True)
        self.strip_error.setStyleSheet(f"color: {theme.ERROR}")
        box.addWidget(self.strip_error)

        self.data.infos_changed.connect(self._on_infos)
        self.data.batch_changed.connect(self._on_batch)
        self.data.stages_changed.connect(self._on_stages)
        self.data.view_changed.connect(self._on_view)
        self.data.busy_changed.connect(lambda busy: self.position.setText(
            "loading…" if busy else self._position_text()))
        self.theme.changed.connect(self._on_theme)
        self._base_points = self.font().pointSizeF()
        self._on_infos()
        self._on_batch()
        self._on_stages()

    # --- drawing from the state ---------------------------------------------------------
    def _pick(self, name) -> None:
        if name and name != self.data.picked and self.actions is not None:
            self.actions.pick_data(name)

    def _open_tile(self, k: int) -> None:
        """Tile `k` of the batch shown, full size in the Tensor tab with its values."""
        batch = self.data.batch
        if self.actions is not None and batch is not None:
            self.actions.view_tile(batch.name, batch.index, k)

    def _on_theme(self) -> None:
        font = self.font()
        font.setPointSizeF(self._base_points * self.theme.scale)
        self.setFont(font)
        self.grid.relayout()
        self.strip.rebuild()

    def eventFilter(self, obj, event) -> bool:
        if obj is self.scroll.viewport() and event.type() == QtCore.QEvent.Resize:
            self.grid.available = max(100, event.size().width())
            self.grid.relayout()
        return False

    def _on_infos(self) -> None:
        data = self.data
        self.list.blockSignals(True)
        self.list.clear()
        for info in data.infos:
            if info.kind not in ("dataset", "loader"):
                continue
            item = QtWidgets.QListWidgetItem(list_text(info))
            item.setData(QtCore.Qt.UserRole, info.name)
            if info.error:
                item.setForeground(QtGui.QColor(theme.ERROR))
            self.list.addItem(item)
            if info.name == data.picked:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.list.setVisible(self.list.count() > 0)
        info = data.info()
        missing = data.missing()
        self.summary.setText(summary_html(info, data.infos) if info is not None else "" if missing else
                             f"<span style='color:{theme.MUTED}'>No Dataset or DataLoader in the script yet: "
                             "make one (Examples → Data) and its batches show here.</span>")
        errors = [f"line {i.error_line or i.line}: {i.error}" if (i.error_line or i.line) else i.error
                  for i in data.infos if i.error and (i.kind == "missing" or i.name == data.picked)]
        if data.message and missing is None:
            errors.append(data.message)
        self.error.setText("\n".join(errors))
        self.error.setVisible(bool(errors))
        self.offline_button.setVisible(missing is not None and bool(missing.offline))
        dock = self.parentWidget()
        if missing is not None and isinstance(dock, QtWidgets.QDockWidget):
            dock.raise_()  # a dataset that is not there: the fix is on this tab, bring it forward
        if missing is not None and missing.offline:
            self.offline_button.setToolTip(f"Copy {missing.offline} of {missing.type} into {missing.root}, "
                                           "then run the script again")
        normalize = info is not None and info.normalize is not None
        self.unnormalize.setVisible(normalize)

    def _position_text(self) -> str:
        batch, info = self.data.batch, self.data.info()
        if batch is None or info is None:
            return ""
        of = f" of {info.batches}" if info.kind == "loader" and info.batches is not None else ""
        n = len(batch.labels) or (len(batch.images) if batch.images is not None else 0)
        return f"batch {batch.index + 1}{of} · {n} {'images' if batch.images is not None else 'samples'}"

    def _on_batch(self) -> None:
        batch, info = self.data.batch, self.data.info()
        self.position.setText(self._position_text())
        has = batch is not None and not batch.error
        self.prev_button.setEnabled(has and batch.index > 0)
        self.next_button.setEnabled(has and (info is None or info.batches is None
                                             or batch.index + 1 < info.batches))
        channels = batch.images.shape[1] if has and batch.images is not None else 1
        self.channel.setVisible(channels not in (1, 3))
        self.channel.setRange(0, max(0, channels - 1))
        self.grid.rebuild()
        if batch is not None and batch.error:
            where = f"line {batch.error_line}: " if batch.error_line else ""
            self.detail.setStyleSheet(f"color: {theme.ERROR}")
            self.detail.setText(f"The batch could not be loaded: {where}{batch.error}")
        elif has:
            self.detail.setStyleSheet(f"color: {theme.NOTE}")
            self.detail.setText(batch_text(batch))
        else:
            self.detail.setText("")

    def _on_view(self) -> None:
        data = self.data
        self.zoom.blockSignals(True)
        self.zoom.setCurrentIndex(max(0, self.zoom.findData(data.zoom)))
        self.zoom.blockSignals(False)
        self.unnormalize.blockSignals(True)
        self.unnormalize.setChecked(data.unnormalize)
        self.unnormalize.blockSignals(False)
        batch = data.batch
        if batch is not None and batch.images is not None and data.channel != self.channel.value():
            self.channel.setValue(data.channel)
        self.grid.rebuild()
        if batch is not None and 0 <= data.tile < len(batch.labels or batch.images):
            self.detail.setStyleSheet(f"color: {theme.NOTE}")
            self.detail.setText(tile_text(batch, data.tile).replace("\n", " · "))

    def _on_stages(self) -> None:
        stages = self.data.stages
        self.strip.rebuild()
        text = ""
        if stages is not None:
            failed = [s for s in stages.stages + stages.target if s.error]
            if stages.error:
                text = (f"line {stages.error_line}: " if stages.error_line else "") + stages.error
            elif failed:
                text = f"The transform {failed[0].title} failed on sample {stages.index}: {failed[0].error}"
        self.strip_error.setText(text)
        self.strip_error.setVisible(bool(text))


def list_text(info) -> str:
    if info.kind == "loader":
        of = f" of {info.dataset or info.dataset_type}"
        return (f"{info.name} — DataLoader{of} · batch_size {info.batch_size} · "
                f"{info.batches if info.batches is not None else '?'} batches")
    size = f" · {info.len} samples" if info.len is not None else ""
    return f"{info.name} — {info.type}{size}"


def summary_html(info, infos) -> str:
    """The facts of the dataset or loader picked, in rows."""
    rows = []

    def row(key, value):
        rows.append(f"<tr><td style='color:{theme.KEY_TEXT}; padding-right:10px'>{html.escape(key)}</td>"
                    f"<td>{html.escape(str(value))}</td></tr>")

    if info.kind == "loader":
        row("dataset", f"{info.dataset or '(not named)'}: {info.dataset_type}")
        row("batches", f"{info.batches} batches of {info.batch_size}" + (", drop_last" if info.drop_last else ""))
        row("order", f"{'shuffle=True' if info.shuffle else 'in order'} ({info.sampler})"
            + (f", {info.num_workers} workers" if info.num_workers else ""))
    else:
        row("samples", info.len)
        if info.shapes:
            row("one sample", ", ".join(f"{d} {s}" for s, d in zip(info.shapes, info.dtypes)))
    if info.classes:
        row("classes", f"{len(info.classes)}: " + ", ".join(info.classes[:12]) + (" …" if len(info.classes) > 12 else ""))
    if info.root:
        row("root", info.root)
    if info.transforms:
        row("transform", " → ".join(info.transforms))
    if info.target_transforms:
        row("target_transform", " → ".join(info.target_transforms))
    title = f"<b>{html.escape(info.name)}</b> <span style='color:{theme.MUTED}'>{html.escape(info.type)}</span>"
    return f"{title}<table>{''.join(rows)}</table>"


def batch_text(batch) -> str:
    parts = ", ".join(f"{d} {s}" for s, d in zip(batch.shapes, batch.dtypes))
    values = f" · values {batch.low:.4g} … {batch.high:.4g}" if batch.low is not None else ""
    shown = f" · shown {batch.shown}" if batch.shown else ""
    return f"batch: {parts}{values}{shown} · click a tile for its values, double-click for the Tensor tab"


def render_batch(batch) -> bytes:
    """The PNG of a preview batch as the panel draws it: the tiles in a square-ish
    grid, each label under its tile (`torchscope --export OUT.png --batch NAME`)."""
    from gui.state import DataState

    data = DataState()
    data.set_batch(batch)
    grid = BatchGrid(data)
    grid.rebuild()
    n, h = len(grid.images), (batch.images.shape[2] if batch.images is not None else 28)
    data.zoom = float(max(1, round(96 / h))) if h < 96 else 1.0
    cols = max(1, math.ceil(math.sqrt(n)))
    grid.available = GAP + cols * (round(batch.images.shape[3] * data.zoom) + GAP) if n else 200
    grid.relayout()
    image = QtGui.QImage(grid.size(), QtGui.QImage.Format_RGB32)
    image.fill(QtGui.QColor("#ffffff"))
    grid.render(image)
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(buffer.data())
