"""State objects: the single source of truth each panel draws from.

Each is a QObject with signals for what changed, and `as_dict`/`from_dict` for what
persists. Panels read them and subscribe; `gui.actions` writes them (after the
user asks for something, or when the kernel answers). No panel holds state another
one needs, and no panel reaches into another (as glue's viewer states and napari's
`Dims` do it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from PySide6 import QtCore, QtGui, QtWidgets

from core.model.backward import BackwardTrace
from core.model.devices import DeviceInventory, DeviceSample, clamp_rate
from core.model.graph import Graph
from core.model.run import RunError, RunResult
from core.model.tensors import TensorValues
from core.model.tensor_view import COMPLEX_PARTS, MODES, TensorView, tile_id, tile_name
from core.protocol import BackwardRequest
from gui.theme import Theme

SPEEDS_MS = [1600, 800, 400, 200]  # play: one step every … (0.5×, 1×, 2×, 4×)


class ScriptState(QtCore.QObject):
    """The script: its text (the editor draws this document), its file, and the
    error mark of its last run."""

    edited = QtCore.Signal()  # the user changed the text (never for set_text)
    file_changed = QtCore.Signal()  # path or dirty flag
    error_changed = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.document = QtGui.QTextDocument(self)
        self.document.setDocumentLayout(QtWidgets.QPlainTextDocumentLayout(self.document))
        self.path: str | None = None
        self.dirty = False
        self.scratch: str = ""  # where an unsaved script runs
        # The bundled example this unsaved text came from: it runs as that file (its
        # __file__, so the data examples find resources/data), in the scratch folder.
        self.example: str | None = None
        self.error_line: int | None = None
        self.error_message = ""
        self._setting = False
        self.document.contentsChanged.connect(self._on_contents_changed)

    def text(self) -> str:
        return self.document.toPlainText()

    def set_text(self, text: str) -> None:
        """Replace the whole script without `edited`. Over existing text the
        replacement is one undo step (Ctrl+Z brings back what was typed); into an
        empty document the undo history starts fresh."""
        self._setting = True
        try:
            if self.document.isEmpty():
                self.document.setPlainText(text)
            else:
                cursor = QtGui.QTextCursor(self.document)
                cursor.beginEditBlock()
                cursor.select(QtGui.QTextCursor.SelectionType.Document)
                cursor.insertText(text)
                cursor.endEditBlock()
        finally:
            self._setting = False

    def _on_contents_changed(self) -> None:
        if not self._setting:
            if not self.dirty:
                self.set_file(self.path, True)
            self.edited.emit()

    def folder(self) -> str:
        """Where the script runs: its own folder once saved, else the scratch folder."""
        return os.path.dirname(os.path.abspath(self.path)) if self.path else self.scratch

    def set_file(self, path: str | None, dirty: bool) -> None:
        self.path, self.dirty = path, dirty
        if path is not None:
            self.example = None  # saved: it runs as itself
        self.file_changed.emit()

    def run_as(self) -> str:
        """The file name the script runs under (its `__file__`, its tracebacks)."""
        return self.path or self.example or "<editor>"

    def set_error(self, line: int | None, message: str = "") -> None:
        self.error_line, self.error_message = line, message
        self.error_changed.emit()

    def as_dict(self) -> dict:
        return {"path": self.path or "", "dirty": self.dirty}

    def from_dict(self, d: dict) -> None:
        self.set_file(d.get("path") or None, bool(d.get("dirty", False)))


class RunState(QtCore.QObject):
    """What the kernel answered last: the graph on screen with its tensors' values,
    the run's output, and its error (the graph then is what the script had built
    when it failed, or the last one when it built nothing; stale either way)."""

    graph_changed = QtCore.Signal()
    error_changed = QtCore.Signal()
    output_changed = QtCore.Signal()
    output_appended = QtCore.Signal(str, str, bool)  # stream, text, first: printed while the script runs
    values_changed = QtCore.Signal(str)  # node id

    def __init__(self, parent=None):
        super().__init__(parent)
        self.graph: Graph | None = None
        self.values: dict[str, TensorValues] = {}
        self.grad_history: dict[str, list] = {}
        self.error: RunError | None = None
        self.stdout = self.stderr = ""
        self.cwd = ""
        self.timings: dict[str, float] = {}
        self.parallel: list = []  # core.model.devices.ParallelForward of the last run

    def set_result(self, result: RunResult, output: bool = True) -> None:
        """A run (`output`), a Backward or Zero grads answered. With an error, the
        graph stays."""
        if output:
            self.stdout, self.stderr, self.timings = result.stdout, result.stderr, result.timings
            self.cwd = result.cwd
            self.parallel = result.parallel
        if result.graph is not None and (result.error is None or result.graph.nodes):
            # With an error: what the script had built when it failed, drawn dimmed
            # (a syntax error built nothing: the last graph stays).
            self.graph, self.values, self.grad_history = result.graph, result.values, result.grad_history
            self.graph_changed.emit()
        if result.error is not None or self.error is not None:
            self.error = result.error
            self.error_changed.emit()
        if output:
            self.output_changed.emit()

    def append_output(self, stream: str, text: str, first: bool = False) -> None:
        self.output_appended.emit(stream, text, first)

    def set_values(self, node_id: str, values: TensorValues) -> None:
        self.values[node_id] = values
        self.values_changed.emit(node_id)

    @property
    def stale(self) -> bool:
        return self.error is not None

    def as_dict(self) -> dict:
        return {"stdout": self.stdout, "stderr": self.stderr,
                "error": None if self.error is None else self.error.__dict__.copy()}


class KernelState(QtCore.QObject):
    """The kernel as the user sees it: a status word and sentences about events."""

    status_changed = QtCore.Signal(str)
    event = QtCore.Signal(str)
    frozen_changed = QtCore.Signal(bool)
    attached_changed = QtCore.Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.status = "stopped"
        self.frozen = False
        self.attached = ""  # where an attached kernel runs, in words; "" for the app's own

    def set_attached(self, where: str) -> None:
        self.attached = where
        self.attached_changed.emit(where)

    def set_frozen(self, frozen: bool) -> None:
        self.frozen = frozen
        self.frozen_changed.emit(frozen)

    def set_status(self, text: str) -> None:
        self.status = text
        self.status_changed.emit(text)

    def as_dict(self) -> dict:
        return {"status": self.status}


class SelectionState(QtCore.QObject):
    """The node selected in the graph, and the script line linked to it: the line
    that made the selected node, or the line the editor's cursor is on (the graph
    outlines the nodes that line made)."""

    changed = QtCore.Signal(str)  # node id, "" for none
    line_changed = QtCore.Signal(int)  # 1-based line, 0 for none

    def __init__(self, parent=None):
        super().__init__(parent)
        self.node_id = ""
        self.line = 0

    def set(self, node_id: str) -> None:
        if node_id != self.node_id:
            self.node_id = node_id
            self.changed.emit(node_id)

    def set_line(self, line: int | None) -> None:
        line = line or 0
        if line != self.line:
            self.line = line
            self.line_changed.emit(line)

    def as_dict(self) -> dict:
        return {"node_id": self.node_id}

    def from_dict(self, d: dict) -> None:
        self.set(d.get("node_id", ""))


@dataclass
class Note:
    text: str = ""
    error: bool = False


class BackwardState(QtCore.QObject):
    """The recorded backward on screen, the step shown, playback, the options of the
    next Backward, and the note under the bar."""

    roots_changed = QtCore.Signal()
    calls_changed = QtCore.Signal()
    trace_changed = QtCore.Signal()
    step_changed = QtCore.Signal(int)  # -1: before the first step
    playing_changed = QtCore.Signal(bool)
    note_changed = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.roots: list[str] = []  # named tensors with a grad_fn
        self.picked = ""  # the root the user chose; "" while the script's natural root is used
        self.shapes: dict[str, list[int]] = {}
        self.options = BackwardRequest("")  # the next Backward, as it will be asked for
        self.trace: BackwardTrace | None = None
        self.index = -1
        # the script's own backward calls: (k, line) of each recorded one, how many in
        # all, and which one is drawn (a training loop makes many)
        self.calls: list[tuple[int, int | None]] = []
        self.calls_total = 0
        self.call_shown = 0
        self.note = Note()
        self.speed = 1  # index into SPEEDS_MS
        self.timer = QtCore.QTimer(self, interval=SPEEDS_MS[self.speed])
        self.timer.timeout.connect(self._tick)

    # roots
    def set_roots(self, graph: Graph, trace: BackwardTrace | None = None) -> None:
        """Every named tensor made by an op. The root is the user's pick while it
        remains, else the script's natural root: the tensor its own backward() ran on,
        or the last scalar with a grad_fn, or the last tensor with one."""
        tensors = graph.by_kind("tensor")
        made = [n for n in tensors if n.name and n.grad_fn is not None]
        self.roots = [n.name for n in made]
        self.shapes = {n.name: n.shape for n in tensors if n.name}
        if self.picked not in self.roots:
            self.picked = ""
            own = next((n.name for n in made if trace is not None and n.id == trace.root), None)
            scalars = [n.name for n in made if all(s == 1 for s in n.shape)]
            self.options.root = own or (scalars[-1] if scalars else self.roots[-1] if self.roots else "")
        else:
            self.options.root = self.picked
        self.roots_changed.emit()
        self.explain_root()

    def choose_root(self, name: str) -> None:
        """The user picked `name` (in the box, or by clicking it in the graph)."""
        if name in self.roots:
            self.picked = name
            if name != self.options.root:
                self.options.root = name
                self.roots_changed.emit()
                self.explain_root()

    def root_is_scalar(self) -> bool:
        shape = self.shapes.get(self.options.root)
        return shape is not None and all(s == 1 for s in shape)

    def explain_root(self) -> None:
        name = self.options.root
        if name and name in self.shapes and not self.root_is_scalar():
            self.set_note(f"{name} is not a scalar: backward() needs the vector v of the "
                          "vector-Jacobian product vᵀ·J, one number per element (ones by default).")
        else:
            self.set_note("")

    def set_note(self, text: str, error: bool = False) -> None:
        self.note = Note(text, error)
        self.note_changed.emit()

    def set_calls(self, calls: list[tuple[int, int | None]], total: int, shown: int) -> None:
        self.calls, self.calls_total, self.call_shown = calls, total, shown
        self.calls_changed.emit()

    # the recording
    def set_trace(self, trace: BackwardTrace | None, at_end: bool = False) -> None:
        """A new recording: before its first step, or (`at_end`, the script's own
        backward, already done) at its last."""
        self.pause()
        self.trace = trace
        self.index = len(trace.steps) - 1 if (trace and at_end) else -1
        self.trace_changed.emit()
        self.step_changed.emit(self.index)

    def current_step(self, node_id: str):
        """The step at which `node_id` ran, up to the step shown."""
        if self.trace is None:
            return None
        return next((s for s in self.trace.steps[: self.index + 1] if s.node == node_id), None)

    # stepping
    def set_step(self, index: int) -> None:
        if self.trace is None:
            return
        index = max(-1, min(index, len(self.trace.steps) - 1))
        if index != self.index:
            self.index = index
            self.step_changed.emit(index)

    def step_forward(self) -> None:
        self.set_step(self.index + 1)

    def step_back(self) -> None:
        self.set_step(self.index - 1)

    def to_start(self) -> None:
        self.set_step(-1)

    def to_end(self) -> None:
        if self.trace:
            self.set_step(len(self.trace.steps) - 1)

    def toggle_play(self) -> None:
        if self.timer.isActive():
            self.pause()
        elif self.trace and self.trace.steps:
            if self.index >= len(self.trace.steps) - 1:
                self.set_step(-1)
            self.timer.start()
            self.playing_changed.emit(True)

    def pause(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self.playing_changed.emit(False)

    def is_playing(self) -> bool:
        return self.timer.isActive()

    def set_speed(self, i: int) -> None:
        self.speed = i
        self.timer.setInterval(SPEEDS_MS[i])

    def _tick(self) -> None:
        if self.trace is None or self.index >= len(self.trace.steps) - 1:
            self.pause()
        else:
            self.step_forward()

    def as_dict(self) -> dict:
        o = self.options
        return {"retain_graph": o.retain_graph, "create_graph": o.create_graph,
                "zero_first": o.zero_first, "speed": self.speed}

    def from_dict(self, d: dict) -> None:
        o = self.options
        o.retain_graph = bool(d.get("retain_graph", False))
        o.create_graph = bool(d.get("create_graph", False))
        o.zero_first = bool(d.get("zero_first", False))
        speed = d.get("speed", 1)
        self.set_speed(speed if speed in range(len(SPEEDS_MS)) else 1)
        self.roots_changed.emit()


class ForwardState(QtCore.QObject):
    """The forward pass, statement by statement: the script runs up to its k-th
    top-level statement, and the graph grows as k does (the seed's dynamic graph)."""

    changed = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.active = False
        self.statements: list[tuple[int, int]] = []  # (first line, last line) of each
        self.index = 0  # statements run (1..len)

    def start(self, statements: list[tuple[int, int]]) -> None:
        self.active, self.statements, self.index = True, statements, min(1, len(statements))
        self.changed.emit()

    def stop(self) -> None:
        if self.active:
            self.active, self.statements, self.index = False, [], 0
            self.changed.emit()

    def go(self, index: int) -> bool:
        """Move to statement `index` (clamped); whether it moved."""
        index = max(1, min(index, len(self.statements)))
        if not self.active or index == self.index:
            return False
        self.index = index
        self.changed.emit()
        return True

    def lines(self) -> tuple[int, int] | None:
        return self.statements[self.index - 1] if self.active and self.index else None


class GraphViewState(QtCore.QObject):
    """How the graph is drawn: saved tensors on or off, which layout engine, which
    modules are open (kept across edits: modules are known by name), and what the
    panel drew last (the graph with closed modules as boxes)."""

    changed = QtCore.Signal()
    modules_changed = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.show_saved = False
        self.use_dot = False
        self.opened: set[str] = set()  # modules the user opened
        self.closed: set[str] = set()  # modules the user closed
        self.fold: int | None = None  # fold modules this deep; None: only big graphs, readably; 0: open all
        self.drawn: Graph | None = None

    def set_fold(self, depth: int | None) -> None:
        """Fold every module `depth` deep (0: none; None: automatic), forgetting the
        modules opened or closed one by one."""
        self.fold, self.opened, self.closed = depth, set(), set()
        self.modules_changed.emit()

    def open_module(self, name: str) -> None:
        self.opened.add(name)
        self.closed.discard(name)
        self.modules_changed.emit()

    def close_module(self, name: str) -> None:
        """Close `name` and forget what was opened inside it."""
        self.opened = {m for m in self.opened if m != name and not m.startswith(name + ".")}
        self.closed.add(name)
        self.modules_changed.emit()

    def is_open(self, name: str, default: bool) -> bool:
        return name in self.opened or (name not in self.closed and default)

    def set_show_saved(self, on: bool) -> None:
        if on != self.show_saved:
            self.show_saved = on
            self.changed.emit()

    def set_use_dot(self, on: bool) -> None:
        if on != self.use_dot:
            self.use_dot = on
            self.changed.emit()

    def as_dict(self) -> dict:
        return {"show_saved": self.show_saved, "use_dot": self.use_dot, "fold": self.fold}

    def from_dict(self, d: dict) -> None:
        self.set_show_saved(bool(d.get("show_saved", False)))
        self.set_use_dot(bool(d.get("use_dot", False)))
        fold = d.get("fold")
        self.fold = fold if isinstance(fold, int) and 0 <= fold <= 12 else None


class SettingsState(QtCore.QObject):
    """Preferences that are not a panel's: live mode and the recent files."""

    changed = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.live = True
        self.recent: list[str] = []

    def set_live(self, on: bool) -> None:
        if on != self.live:
            self.live = on
            self.changed.emit()

    def add_recent(self, path: str, keep: int = 8) -> None:
        self.recent = [path] + [p for p in self.recent if p != path][:keep - 1]
        self.changed.emit()

    def as_dict(self) -> dict:
        return {"live": self.live, "recent": list(self.recent)}

    def from_dict(self, d: dict) -> None:
        self.live = bool(d.get("live", True))
        self.recent = [str(p) for p in d.get("recent", []) if isinstance(p, str)]
        self.changed.emit()


class DevicesState(QtCore.QObject):
    """The machine the kernel runs on (`inventory`), the last HISTORY_S seconds of
    the samples its sampler pushed, the sampling rate, and whether samples are
    wanted (the devices panel is visible)."""

    inventory_changed = QtCore.Signal()
    sampled = QtCore.Signal()  # a sample arrived
    rate_changed = QtCore.Signal(float)

    HISTORY_S = 60.0

    def __init__(self, parent=None):
        super().__init__(parent)
        self.inventory: DeviceInventory | None = None
        self.samples: list[DeviceSample] = []  # oldest first, within HISTORY_S of the latest
        self.rate_hz = 5.0
        self.wanted = False  # the panel is visible: the kernel should sample

    @property
    def latest(self) -> DeviceSample | None:
        return self.samples[-1] if self.samples else None

    def set_inventory(self, inventory: DeviceInventory) -> None:
        if self.inventory is not None and inventory.pid != self.inventory.pid:
            self.samples = []  # another kernel: its history is another story
        self.inventory = inventory
        self.inventory_changed.emit()

    def add_sample(self, sample: DeviceSample) -> None:
        self.add_samples([sample])

    def add_samples(self, samples: list[DeviceSample]) -> None:
        """Samples oldest first; one already older than the latest (the reply's
        sample behind pushed ones) is dropped."""
        new = [s for s in samples if not self.samples or s.time > self.samples[-1].time]
        if not new:
            return
        self.samples.extend(new)
        cut = self.samples[-1].time - self.HISTORY_S
        if self.samples[0].time < cut:
            self.samples = [s for s in self.samples if s.time >= cut]
        self.sampled.emit()

    def set_rate(self, hz: float) -> None:
        hz = clamp_rate(hz)
        if hz != self.rate_hz:
            self.rate_hz = hz
            self.rate_changed.emit(hz)

    def as_dict(self) -> dict:
        return {"rate_hz": self.rate_hz}

    def from_dict(self, d: dict) -> None:
        self.set_rate(d.get("rate_hz", 5.0))


class DataState(QtCore.QObject):
    """The data panel: the script's datasets, loaders and transforms (from the last
    run), the one picked, its preview batch and transform strip (fetched on request),
    and how the batch is shown (zoom, un-normalized, channel, the tile clicked)."""

    infos_changed = QtCore.Signal()
    batch_changed = QtCore.Signal()
    stages_changed = QtCore.Signal()
    view_changed = QtCore.Signal()  # zoom, unnormalize, channel, tile
    busy_changed = QtCore.Signal(bool)

    ZOOMS = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0]  # 0.0: fit the panel's width

    def __init__(self, parent=None):
        super().__init__(parent)
        self.infos: list = []  # core.model.data.DataInfo
        self.picked = ""  # name of the dataset or loader shown
        self.batch = None  # core.model.data.DataBatch
        self.index = 0  # the batch asked for
        self.stages = None  # core.model.data.Stages
        self.zoom = 0.0
        self.unnormalize = True
        self.channel = 0  # shown alone when the images have neither 1 nor 3 channels
        self.tile = -1  # the tile clicked (-1: none)
        self.busy = False
        self.message = ""  # the offline copy's outcome, in words

    def info(self, name: str | None = None):
        name = self.picked if name is None else name
        return next((i for i in self.infos if i.name == name), None)

    def missing(self):
        return next((i for i in self.infos if i.kind == "missing"), None)

    def set_infos(self, infos: list) -> bool:
        """A run's descriptions; True when the one picked changed (its pictures are old)."""
        before = self.info()
        self.infos = list(infos)
        shown = [i for i in self.infos if i.kind in ("loader", "dataset")]
        if self.info() is None or self.info().kind == "missing":
            self.picked = next((i.name for i in shown if i.kind == "loader"), shown[0].name if shown else "")
        after = self.info()
        self.infos_changed.emit()
        return before is None or after is None or _described(before) != _described(after)

    def pick(self, name: str) -> None:
        if name != self.picked:
            self.picked, self.index, self.tile = name, 0, -1
            self.infos_changed.emit()

    def set_batch(self, batch) -> None:
        self.batch, self.tile = batch, -1
        self.index = batch.index if batch is not None else 0
        if batch is not None and batch.images is not None and self.channel >= batch.images.shape[1]:
            self.channel = 0
        self.batch_changed.emit()

    def set_stages(self, stages) -> None:
        self.stages = stages
        self.stages_changed.emit()

    def set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busy_changed.emit(busy)

    def set_view(self, zoom: float | None = None, unnormalize: bool | None = None,
                 channel: int | None = None, tile: int | None = None) -> None:
        if zoom is not None:
            self.zoom = zoom
        if unnormalize is not None:
            self.unnormalize = unnormalize
        if channel is not None:
            self.channel = channel
        if tile is not None:
            self.tile = tile
        self.view_changed.emit()

    def as_dict(self) -> dict:
        return {"zoom": self.zoom, "unnormalize": self.unnormalize}

    def from_dict(self, d: dict) -> None:
        zoom = d.get("zoom", 0.0)
        self.zoom = zoom if zoom in self.ZOOMS else 0.0
        self.unnormalize = bool(d.get("unnormalize", True))
        self.view_changed.emit()


def _described(info) -> tuple:
    """What a preview depends on: a run that keeps it keeps the pictures on screen."""
    return (info.kind, info.type, info.len, info.transforms, info.target_transforms, info.batch_size,
            info.sampler, info.num_workers, info.root, info.error)


class TensorViewState(QtCore.QObject):
    """The tensor view: the tensor shown (a node id and the name the kernel knows it
    by), which two dims are drawn and where the sliders stand on the others, images
    or a heatmap, the complex part, and the kernel's last answer (`view`) or, when
    there is none, why (`message`)."""

    changed = QtCore.Signal()  # a new view or message
    wanted = QtCore.Signal()  # asked for from another tab (a data tile): the panel comes forward

    PLACEHOLDER = "Select a tensor in the graph to see its values."

    def __init__(self, parent=None):
        super().__init__(parent)
        self.node_id = ""
        self.name = ""
        self.view: TensorView | None = None
        self.message = self.PLACEHOLDER
        self.dims: list[int] | None = None  # None: the kernel's default
        self.index: list[int] | None = None
        self.mode = "auto"
        self.complex_part = "magnitude"
        self.identities: dict[str, str] = {}  # node id -> the kernel's identity of its tensor, this run
        # an image of a data preview batch instead of a named tensor: (loader, batch, tile)
        self.batch_of, self.batch, self.tile = "", 0, 0
        self.unnormalize = True  # images: undo a known Normalize for display

    def show(self, node_id: str, name: str) -> None:
        """Another tensor: its dims and sliders start over (the mode and part stay)."""
        self.batch_of = ""
        if (node_id, name) != (self.node_id, self.name):
            self.node_id, self.name = node_id, name
            self.dims = self.index = None
            if self.mode != "auto":
                self.mode = "auto"

    def show_tile(self, batch_of: str, batch: int, tile: int) -> None:
        """Image `tile` of batch `batch` of loader (or dataset) `batch_of`: a tensor the
        script never named, which the kernel finds in the data panel's batch."""
        self.show(tile_id(batch_of, batch, tile), tile_name(batch_of, batch, tile))
        self.batch_of, self.batch, self.tile = batch_of, batch, tile
        self.wanted.emit()

    def new_run(self) -> None:
        self.identities.clear()

    def set_options(self, dims=None, index=None, mode: str | None = None, part: str | None = None,
                    unnormalize: bool | None = None) -> None:
        if unnormalize is not None:
            self.unnormalize = unnormalize
        if dims is not None:
            self.dims = list(dims)
        if index is not None:
            self.index = list(index)
        if mode in MODES:
            self.mode = mode
            self.dims = None if mode == "image" else self.dims
        if part in COMPLEX_PARTS:
            self.complex_part = part

    def set_view(self, view: TensorView) -> None:
        if view.node_id != self.node_id:
            return  # an answer about a tensor no longer selected
        self.view, self.message = view, ""
        if view.identity:
            self.identities.setdefault(view.node_id, view.identity)
        if view.dims and len(view.shape) >= 2 and view.kind == "heatmap":
            self.dims, self.index = list(view.dims), list(view.index)
        self.changed.emit()

    def set_message(self, text: str, node_id: str = "") -> None:
        self.node_id, self.name = (node_id, self.name) if node_id else ("", "")
        self.batch_of = self.batch_of if node_id else ""
        self.view, self.message = None, text
        self.changed.emit()

    def as_dict(self) -> dict:
        return {"complex_part": self.complex_part, "unnormalize": self.unnormalize}

    def from_dict(self, d: dict) -> None:
        self.set_options(part=d.get("complex_part"), unnormalize=bool(d.get("unnormalize", True)))


class NewTensorState(QtCore.QObject):
    """The New tensor dialog's preview: the line last sent to the kernel, its answer
    (`reply`, a PreviewReply; None while it is on its way), or why there is none."""

    changed = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.code = ""
        self.reply = None
        self.message = ""

    def ask(self, code: str) -> None:
        self.code, self.reply, self.message = code, None, ""
        self.changed.emit()

    def set_reply(self, reply) -> None:
        if reply.code == self.code:  # an answer to an older line is not shown
            self.reply = reply
            self.changed.emit()

    def set_message(self, text: str) -> None:
        self.message = text
        self.changed.emit()


@dataclass
class States:
    """Every state object of one window; panels take the ones they draw."""
    script: ScriptState = field(default_factory=ScriptState)
    run: RunState = field(default_factory=RunState)
    kernel: KernelState = field(default_factory=KernelState)
    selection: SelectionState = field(default_factory=SelectionState)
    backward: BackwardState = field(default_factory=BackwardState)
    view: GraphViewState = field(default_factory=GraphViewState)
    forward: ForwardState = field(default_factory=ForwardState)
    settings: SettingsState = field(default_factory=SettingsState)
    devices: DevicesState = field(default_factory=DevicesState)
    tensor_view: TensorViewState = field(default_factory=TensorViewState)
    data: DataState = field(default_factory=DataState)
    new_tensor: NewTensorState = field(default_factory=NewTensorState)
    theme: Theme = field(default_factory=Theme)

    PERSISTENT = ("script", "backward", "view", "settings", "theme", "devices", "data")

    def as_dict(self) -> dict:
        return {name: getattr(self, name).as_dict() for name in self.PERSISTENT}

    def from_dict(self, d: dict) -> None:
        for name in self.PERSISTENT:
            if isinstance(d.get(name), dict):
                getattr(self, name).from_dict(d[name])
