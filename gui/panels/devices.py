"""The devices panel: the machine the kernel runs on, live, and where the script's
tensors live.

At the top, the current values in large text (readable from the back of a lecture
hall): CPU, RAM, the kernel's memory, and each GPU's utilization and memory; or, on a
machine without a GPU, the one sentence that says why, with the real exception.
Below, the last 60 s as plots (pyqtgraph): CPU, RAM, and per GPU its utilization and
its memory with the kernel's share and torch's allocated and reserved bytes. At the
bottom, per device, the script's named tensors and parameters on it (name, shape,
bytes; each storage counted once in the device's total), from the run's graph.

It draws `states.devices` (the samples the kernel's sampler pushes) and
`states.run.graph`. Shown, it asks `actions` to start the sampler; hidden, to pause
it. Plots and numbers are redrawn at most every REDRAW_MS (each redraw draws every sample).
"""
from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core.labels import parallel_lines
from core.model.devices import format_bytes, placement
from gui import theme

REDRAW_MS = 1000  # one redraw a second (as a task manager), however fast samples come: the idle cost stays small
RATES_HZ = [2.0, 5.0, 10.0]
GIB = float(1 << 30)
PLOT_HEIGHT = 150  # px per plot
VALUE_POINTS = 20  # the large numbers, at scale 1
CAPTION_POINTS = 10
COLOURS = {"cpu": "#1565c0", "kernel": "#e65100", "window": "#6a1b9a", "used": "#1565c0",
           "reserved": "#2e7d32", "allocated": "#c62828", "util": "#00838f"}
NO_GPU_STYLE = ("background:#fff8e1; border:1px solid #ffb300; border-radius:4px; padding:6px;"
                f" color:{theme.TEXT}")


class Tile(QtWidgets.QLabel):
    """One current value: a caption and a large number."""

    def __init__(self, caption: str, parent=None):
        super().__init__(parent)
        self.caption = caption
        self.setTextFormat(QtCore.Qt.RichText)
        self.setAlignment(QtCore.Qt.AlignLeft | QtCore.Qt.AlignTop)
        self.setWordWrap(True)  # a narrow dock wraps the details, never widens the window
        self.setSizePolicy(QtWidgets.QSizePolicy.Preferred, QtWidgets.QSizePolicy.Minimum)
        self.value = ""
        self.detail = ""
        self.scale = 1.0

    def show_value(self, value: str, detail: str = "", colour: str = theme.TEXT, force: bool = False) -> None:
        if not force and (value, detail) == (self.value, self.detail):
            return  # a rich-text label lays itself out again on every setText
        self.value, self.detail = value, detail
        s = self.scale
        self.setText(
            f"<span style='font-size:{CAPTION_POINTS * s:.0f}pt; color:{theme.KEY_TEXT}'>"
            f"{html.escape(self.caption)}</span>&nbsp; "
            f"<span style='font-size:{VALUE_POINTS * s:.0f}pt; color:{colour}'><b>"
            f"{html.escape(value).replace(' ', '&nbsp;')}</b></span>"
            + (f"<br><span style='font-size:{CAPTION_POINTS * s:.0f}pt; color:{theme.MUTED}'>"
               f"{html.escape(detail)}</span>" if detail else ""))


def _plot(layout: pg.GraphicsLayoutWidget, title: str, unit: str, y_max: float | None = None) -> pg.PlotItem:
    p = layout.addPlot(title=f"<span style='color:{theme.TEXT}'>{html.escape(title)}</span>")
    p.setMenuEnabled(False)
    p.setMouseEnabled(x=False, y=False)
    p.hideButtons()
    # no grid: an axis with grid lines spans the whole plot and repaints with every curve update
    p.setXRange(-60, 0, padding=0)
    p.setLabel("left", unit)
    for axis in ("left", "bottom"):
        p.getAxis(axis).setTextPen(theme.TEXT)
        p.getAxis(axis).setPen("#999999")
    if y_max is not None:
        p.setYRange(0, y_max, padding=0.02)
    p.addLegend(offset=(4, 4), labelTextColor=theme.TEXT, brush=(255, 255, 255, 200))
    layout.nextRow()
    return p


def _curve(plot: pg.PlotItem, name: str, colour: str, style=QtCore.Qt.SolidLine) -> pg.PlotDataItem:
    return plot.plot([], [], name=name, pen=pg.mkPen(colour, width=2, style=style))


class DevicesPanel(QtWidgets.QWidget):
    def __init__(self, states, actions, parent=None):
        super().__init__(parent)
        self.states, self.actions = states, actions
        self.devices, self.run, self.theme = states.devices, states.run, states.theme
        self.gpu_plots: dict[int, tuple] = {}
        self._ram_range = 0
        self.gpu_tiles: dict[int, tuple[Tile, Tile]] = {}

        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        head = QtWidgets.QHBoxLayout()
        self.where = QtWidgets.QLabel("Waiting for the kernel…")
        self.where.setStyleSheet(f"color:{theme.MUTED}")
        self.where.setWordWrap(True)
        head.addWidget(self.where, 1)
        self.rate = QtWidgets.QComboBox()
        self.rate.setToolTip("How often the kernel samples its devices")
        for hz in RATES_HZ:
            self.rate.addItem(f"{hz:g} Hz", hz)
        self.rate.activated.connect(lambda i: self.actions.set_sample_rate(self.rate.itemData(i)))
        head.addWidget(self.rate)
        outer.addLayout(head)

        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        content = QtWidgets.QWidget()
        scroll.setWidget(content)
        outer.addWidget(scroll, 1)
        outer = QtWidgets.QVBoxLayout(content)  # everything below scrolls in a short dock
        outer.setContentsMargins(0, 0, 0, 0)
        self.tiles_box = QtWidgets.QVBoxLayout()
        self.tiles_box.setSpacing(2)
        self.cpu_tile, self.ram_tile, self.kernel_tile = Tile("CPU"), Tile("RAM"), Tile("kernel")
        for tile in (self.cpu_tile, self.ram_tile, self.kernel_tile):
            self.tiles_box.addWidget(tile)
        outer.addLayout(self.tiles_box)

        self.no_gpu = QtWidgets.QLabel()
        self.no_gpu.setWordWrap(True)
        self.no_gpu.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.no_gpu.setStyleSheet(NO_GPU_STYLE)
        self.no_gpu.hide()
        outer.addWidget(self.no_gpu)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("w")
        self.plots.setFixedHeight(2 * PLOT_HEIGHT)
        self.plots.ci.setSpacing(2)
        self.cpu_plot = _plot(self.plots, "CPU, last 60 s", "%", 100)
        self.cpu_curve = _curve(self.cpu_plot, "all cores", COLOURS["cpu"])
        self.kernel_cpu_curve = _curve(self.cpu_plot, "kernel", COLOURS["kernel"])
        self.ram_plot = _plot(self.plots, "RAM", "GiB")
        self.ram_curve = _curve(self.ram_plot, "used", COLOURS["used"])
        self.rss_curve = _curve(self.ram_plot, "kernel", COLOURS["kernel"])
        self.window_curve = _curve(self.ram_plot, "window", COLOURS["window"], QtCore.Qt.DashLine)
        outer.addWidget(self.plots)

        self.parallel = QtWidgets.QLabel()  # what the script's nn.DataParallel did with the batch
        self.parallel.setWordWrap(True)
        self.parallel.setTextFormat(QtCore.Qt.RichText)
        self.parallel.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.parallel.hide()
        outer.addWidget(self.parallel)
        self.tensors_title = QtWidgets.QLabel("<b>Where the tensors live</b>")
        outer.addWidget(self.tensors_title)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["tensor", "shape", "bytes", "shares storage with"])
        self.tree.header().setStretchLastSection(True)
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setContextMenuPolicy(QtCore.Qt.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._tree_menu)
        self.tree.setMinimumHeight(160)
        outer.addWidget(self.tree, 1)

        self.redraw_timer = QtCore.QTimer(self, singleShot=True, interval=REDRAW_MS)
        self.redraw_timer.timeout.connect(self.redraw)
        self.devices.sampled.connect(self._on_sampled)
        self.devices.inventory_changed.connect(self._on_inventory)
        self.devices.rate_changed.connect(self._on_rate)
        self.run.graph_changed.connect(self.show_placement)
        self.theme.changed.connect(self._on_theme)
        self._on_rate(self.devices.rate_hz)
        self._on_theme()
        self._on_inventory()
        self.show_placement()

    # --- visibility: sampling only while seen -------------------------------------------
    # A dock behind another tab stays "visible" to Qt (no hideEvent), covered: what
    # counts is whether any of it is on screen, checked after each show, hide and
    # tab switch (the dock's visibilityChanged).
    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        QtCore.QTimer.singleShot(0, self._check_seen)

    def hideEvent(self, event: QtGui.QHideEvent) -> None:
        super().hideEvent(event)
        QtCore.QTimer.singleShot(0, self._check_seen)

    def event(self, event: QtCore.QEvent) -> bool:
        if event.type() == QtCore.QEvent.ParentChange and isinstance(self.parentWidget(), QtWidgets.QDockWidget):
            self.parentWidget().visibilityChanged.connect(lambda _: QtCore.QTimer.singleShot(0, self._check_seen))
        return super().event(event)

    def _check_seen(self) -> None:
        seen = self.isVisible() and not self.visibleRegion().isEmpty()
        if seen != self.devices.wanted and self.actions is not None:
            self.actions.set_sampling(seen)

    # --- state -> widgets -----------------------------------------------------------------
    def _on_rate(self, hz: float) -> None:
        i = self.rate.findData(hz)
        if i < 0:
            self.rate.addItem(f"{hz:g} Hz", hz)
            i = self.rate.count() - 1
        self.rate.setCurrentIndex(i)

    def _on_theme(self) -> None:
        s = self.theme.scale
        for tile in self._tiles():
            tile.scale = s
            tile.show_value(tile.value, tile.detail, force=True)
        font = self.tree.font()
        font.setPointSizeF(theme.OUTPUT_POINTS * s)
        self.tree.setFont(font)
        self.no_gpu.setFont(font)
        self.parallel.setFont(font)

    def _tiles(self) -> list[Tile]:
        return [self.cpu_tile, self.ram_tile, self.kernel_tile] + [t for pair in self.gpu_tiles.values() for t in pair]

    def _on_inventory(self) -> None:
        inv = self.devices.inventory
        if inv is None:
            return
        cpu = inv.cpu
        self.where.setText(f"Kernel on {inv.hostname} (pid {inv.pid}), torch {inv.torch} — "
                           f"{cpu.model}, {cpu.cores} cores, {format_bytes(cpu.memory_total)} RAM")
        self.no_gpu.setVisible(bool(inv.cuda_error))
        plain, _, detail = (inv.cuda_error or "").partition(" (")
        self.no_gpu.setText(f"<b>{html.escape(plain)}</b>" + (
            f"<br><span style='color:{theme.MUTED}; font-size:small'>({html.escape(detail)}</span>"
            if detail else ""))
        known = {g.index for g in inv.cuda}
        for index in list(self.gpu_plots):
            if index not in known:
                for p in self.gpu_plots.pop(index)[:2]:
                    self.plots.removeItem(p)
                for tile in self.gpu_tiles.pop(index):
                    tile.deleteLater()
        for g in inv.cuda:
            if g.index in self.gpu_plots:
                continue
            util = _plot(self.plots, f"GPU {g.index} {g.name}: utilization", "%", 100)
            memory = _plot(self.plots, f"GPU {g.index}: memory", "GiB",
                           g.memory_total / GIB if g.memory_total else None)
            self.gpu_plots[g.index] = (
                util, memory, _curve(util, "util", COLOURS["util"]),
                _curve(memory, "used (all processes)", COLOURS["used"]),
                _curve(memory, "kernel", COLOURS["kernel"]),
                _curve(memory, "torch reserved", COLOURS["reserved"], QtCore.Qt.DashLine),
                _curve(memory, "torch allocated", COLOURS["allocated"]))
            tiles = (Tile(f"GPU {g.index}"), Tile(f"GPU {g.index} memory"))
            for tile in tiles:
                tile.scale = self.theme.scale
                self.tiles_box.addWidget(tile)
            self.gpu_tiles[g.index] = tiles
        self.plots.setFixedHeight(PLOT_HEIGHT * (2 + 2 * len(inv.cuda)))
        self.redraw()
        self._show_parallel(self.run.graph)  # its words depend on the GPUs there are

    def _on_sampled(self) -> None:
        if not self.redraw_timer.isActive():
            self.redraw_timer.start()

    def redraw(self) -> None:
        """The values in large text and the plots, from the samples in the state."""
        samples = self.devices.samples
        inv = self.devices.inventory
        if not samples or inv is None:
            return
        last = samples[-1]
        t = np.fromiter((s.time for s in samples), float, len(samples)) - last.time
        cores = max(inv.cpu.cores, 1)
        self.cpu_curve.setData(t, np.fromiter((s.cpu_mean for s in samples), float, len(samples)))
        kernel_cpu = np.array([np.nan if s.kernel_cpu is None else s.kernel_cpu / cores for s in samples])
        self.kernel_cpu_curve.setData(t, kernel_cpu, connect="finite")
        self.ram_curve.setData(t, np.fromiter((s.memory_used / GIB for s in samples), float, len(samples)))
        self.rss_curve.setData(t, np.fromiter((s.kernel_rss / GIB for s in samples), float, len(samples)))
        window = np.array([np.nan if s.window_rss is None else s.window_rss / GIB for s in samples])
        self.window_curve.setData(t, window, connect="finite")
        if self._ram_range != last.memory_total:
            self._ram_range = last.memory_total
            self.ram_plot.setYRange(0, last.memory_total / GIB, padding=0.02)

        per_core = " ".join(f"{c:.0f}" for c in last.cpu_percent[:32])
        self.cpu_tile.show_value(f"{last.cpu_mean:.0f} %", f"per core: {per_core}")
        self.ram_tile.show_value(f"{last.memory_used / GIB:.1f} / {last.memory_total / GIB:.1f} GiB",
                                 f"{100.0 * last.memory_used / max(last.memory_total, 1):.0f} % used")
        kernel_detail = f"kernel CPU {last.kernel_cpu:.0f} % of a core" if last.kernel_cpu is not None else ""
        if last.window_rss is not None:
            kernel_detail += f"; window {format_bytes(last.window_rss)}"
        self.kernel_tile.show_value(format_bytes(last.kernel_rss), kernel_detail, COLOURS["kernel"])

        for index, (util_plot, mem_plot, util, used, kernel, reserved, allocated) in self.gpu_plots.items():
            series = [next((g for g in s.gpus if g.index == index), None) for s in samples]

            def column(name: str, scale: float = 1.0) -> np.ndarray:
                return np.array([np.nan if g is None or getattr(g, name) is None else getattr(g, name) / scale
                                 for g in series])

            util.setData(t, column("util"), connect="finite")
            used.setData(t, column("memory_used", GIB), connect="finite")
            kernel.setData(t, column("process_memory", GIB), connect="finite")
            reserved.setData(t, column("torch_reserved", GIB), connect="finite")
            allocated.setData(t, column("torch_allocated", GIB), connect="finite")
            g = series[-1]
            tiles = self.gpu_tiles[index]
            if g is None:
                continue
            util_text = "n/a" if g.util is None else f"{g.util:.0f} %"
            extra = [f"{g.temperature:.0f} °C" if g.temperature is not None else "",
                     f"{g.power:.0f} W" if g.power is not None else ""]
            name = next((i.name for i in inv.cuda if i.index == index), "")
            tiles[0].show_value(util_text, ", ".join(e for e in [name] + extra if e) + (
                f" (util: {g.notes['util']})" if "util" in g.notes else ""),
                                COLOURS["util"])
            mem = (f"{format_bytes(g.memory_used)} / {format_bytes(g.memory_total)}"
                   if g.memory_used is not None else "n/a")
            torch_part = (f"torch {format_bytes(g.torch_allocated)} allocated, "
                          f"{format_bytes(g.torch_reserved)} reserved" if g.torch_allocated is not None else
                          g.notes.get("torch", ""))
            own = ("kernel " + format_bytes(g.process_memory) if g.process_memory is not None
                   else "kernel: " + g.notes.get("process_memory", "n/a"))
            tiles[1].show_value(mem, f"{own}; {torch_part}")

    # --- where the tensors live --------------------------------------------------------------
    def show_placement(self) -> None:
        graph = self.run.graph
        self.tree.clear()
        places = placement(graph)
        if not places:
            self.tree.addTopLevelItem(QtWidgets.QTreeWidgetItem(["Run a script: its named tensors appear here."]))
        for p in places:
            word = "tensor" if p.count == 1 else "tensors"
            top = QtWidgets.QTreeWidgetItem([f"{p.device}: {p.count} {word}", "", format_bytes(p.bytes), ""])
            bold = top.font(0)
            bold.setBold(True)
            for col in range(3):
                top.setFont(col, bold)
            top.setToolTip(2, "every storage on this device counted once")
            top.setData(0, QtCore.Qt.UserRole, p.device)
            for t in p.tensors:
                shape = "(" + ", ".join(str(s) for s in t.shape) + (",)" if len(t.shape) == 1 else ")")
                size = format_bytes(t.bytes)
                if t.storage_bytes != t.bytes:
                    size += f" (storage {format_bytes(t.storage_bytes)})"
                item = QtWidgets.QTreeWidgetItem([t.name, f"{shape} {t.dtype}", size, ", ".join(t.shares_with)])
                item.setData(0, QtCore.Qt.UserRole, t.name)
                top.addChild(item)
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)
        for col in range(4):
            self.tree.resizeColumnToContents(col)
        self._show_parallel(graph)

    def _show_parallel(self, graph) -> None:
        """nn.DataParallel in the script: what its latest forward did with the GPUs this
        kernel has (which replica got which rows), or what it would do."""
        inv = self.devices.inventory
        n = len(inv.cuda) if inv is not None else 0
        latest = {f.module: f for f in self.run.parallel}  # each module's latest forward
        lines = [line for f in latest.values() for line in parallel_lines(f, n)]
        idle = [name for name, kind in (graph.modules.items() if graph else [])
                if kind == "DataParallel" and name not in latest]
        if idle:  # wrapped, never called
            lines.append(f"{', '.join(idle)}: an nn.DataParallel not called yet. "
                         + (f"Each forward will cut the batch into {n} slices along dim 0, one per GPU, and "
                            "gather the outputs on cuda:0." if n >= 2 else
                            "With N GPUs each forward would cut the batch into N slices, one per GPU."))
        self.parallel.setText("<b>nn.DataParallel: the batch over the GPUs</b><br>" + "<br>".join(
            html.escape(line, quote=False).replace("  ", "&nbsp;" * 4) for line in lines))
        self.parallel.setVisible(bool(lines))

    def _tree_menu(self, pos: QtCore.QPoint) -> None:
        item = self.tree.itemAt(pos)
        move = getattr(self.actions, "move_to_device", None)
        if item is None or item.parent() is None or move is None:
            return
        name = item.data(0, QtCore.Qt.UserRole)
        inv = self.devices.inventory
        targets = ["cpu"] + [f"cuda:{g.index}" for g in (inv.cuda if inv else [])]
        menu = QtWidgets.QMenu(self)
        base = name.split(".")[0]
        for device in targets:
            act = menu.addAction(f"Move {base} to {device}")
            act.triggered.connect(lambda _=False, d=device: move(base, d))
        menu.exec(self.tree.viewport().mapToGlobal(pos))

