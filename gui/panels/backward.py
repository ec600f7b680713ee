"""The backward bar: pick a root, press Backward, then step through what the
autograd engine did, node by node.

It holds the recorded BackwardTrace and the current step (the panel's one piece
of state); the graph panel draws that step. Pressing a button only sends intent
to the Session; nothing here touches torch.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from core.backward import BackwardTrace

SPEEDS = [("0.5×", 1600), ("1×", 800), ("2×", 400), ("4×", 200)]
NON_SCALAR_NOTE = ("{name} is not a scalar: backward() needs the vector v of the "
                   "vector-Jacobian product vᵀ·J, one number per element (ones by default).")


class BackwardPanel(QtWidgets.QWidget):
    backward_requested = QtCore.Signal(str, str, bool, bool, bool)  # root, gradient, retain, create, zero first
    zero_requested = QtCore.Signal()
    step_changed = QtCore.Signal(int)  # -1: before the first step

    def __init__(self, parent=None):
        super().__init__(parent)
        self.trace: BackwardTrace | None = None
        self.index = -1
        self.shapes: dict[str, list[int]] = {}

        self.root_box = QtWidgets.QComboBox(minimumContentsLength=14)
        self.root_box.setToolTip("The tensor to differentiate (click one in the graph to pick it)")
        self.root_box.currentTextChanged.connect(self._on_root_changed)
        self.gradient_edit = QtWidgets.QLineEdit(placeholderText="torch.ones_like(root)")
        self.gradient_edit.setToolTip("The `gradient` argument: a Python expression; `root` is the tensor")
        self.retain_box = QtWidgets.QCheckBox("retain_graph")
        self.retain_box.setToolTip("Keep the saved tensors so backward can run through the graph again")
        self.create_box = QtWidgets.QCheckBox("create_graph")
        self.create_box.setToolTip("Record the backward itself, so the gradient has a graph (higher-order derivatives)")
        self.zero_first_box = QtWidgets.QCheckBox("zero grads first")
        self.zero_first_box.setToolTip("Unchecked, a second Backward adds to .grad, as PyTorch does")
        self.backward_button = QtWidgets.QPushButton("Backward")
        self.backward_button.setToolTip("Run backward() on the root and record every step (Ctrl+B)")
        self.backward_button.clicked.connect(self.request_backward)
        self.zero_button = QtWidgets.QPushButton("Zero grads")
        self.zero_button.setToolTip("Set .grad of every leaf to None (like optimizer.zero_grad())")
        self.zero_button.clicked.connect(self.zero_requested)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Root:"))
        top.addWidget(self.root_box)
        top.addWidget(QtWidgets.QLabel("gradient:"))
        top.addWidget(self.gradient_edit, 1)
        for w in (self.retain_box, self.create_box, self.zero_first_box, self.backward_button, self.zero_button):
            top.addWidget(w)

        self.buttons = {}
        transport = QtWidgets.QHBoxLayout()
        style = self.style()
        icons = QtWidgets.QStyle
        for key, icon, tip, slot in [
                ("start", icons.SP_MediaSkipBackward, "Jump to start (Home)", self.to_start),
                ("back", icons.SP_MediaSeekBackward, "Step back (Left)", self.step_back),
                ("play", icons.SP_MediaPlay, "Play / pause (Space)", self.toggle_play),
                ("forward", icons.SP_MediaSeekForward, "Step forward (Right)", self.step_forward),
                ("end", icons.SP_MediaSkipForward, "Jump to end (End)", self.to_end)]:
            b = QtWidgets.QToolButton(icon=style.standardIcon(icon), toolTip=tip)
            b.clicked.connect(slot)
            transport.addWidget(b)
            self.buttons[key] = b
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal, minimum=-1, maximum=-1)
        self.slider.valueChanged.connect(self.set_step)
        self.speed_box = QtWidgets.QComboBox()
        self.speed_box.addItems([s for s, _ in SPEEDS])
        self.speed_box.setCurrentIndex(1)
        self.speed_box.setToolTip("Playback speed")
        self.speed_box.currentIndexChanged.connect(self._on_speed)
        self.step_label = QtWidgets.QLabel("Press Backward to record a backward pass.")
        font = self.step_label.font()
        font.setBold(True)
        self.step_label.setFont(font)
        transport.addWidget(self.slider, 1)
        transport.addWidget(self.speed_box)
        transport.addWidget(self.step_label, 2)

        self.note = QtWidgets.QLabel("")
        self.note.setWordWrap(True)
        self.note.setTextFormat(QtCore.Qt.PlainText)
        self.note.hide()

        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(4, 2, 4, 2)
        box.addLayout(top)
        box.addLayout(transport)
        box.addWidget(self.note)

        self.timer = QtCore.QTimer(self, interval=SPEEDS[1][1])
        self.timer.timeout.connect(self._tick)
        self._update_controls()

    # --- the roots the graph offers ------------------------------------------------
    def set_roots(self, tensors: list) -> None:
        """Offer every named tensor made by an op (a leaf has no graph to go back
        through); keep the current choice if it remains."""
        current = self.root_box.currentText()
        names = [n.name for n in tensors if n.name and n.grad_fn is not None]
        self.shapes = {n.name: n.shape for n in tensors if n.name}
        self.root_box.blockSignals(True)
        self.root_box.clear()
        self.root_box.addItems(names)
        if current in names:
            self.root_box.setCurrentText(current)
        elif names:
            self.root_box.setCurrentIndex(len(names) - 1)  # the last one: usually the loss
        self.root_box.blockSignals(False)
        self._on_root_changed(self.root_box.currentText())

    def choose_root(self, name: str) -> None:
        if self.root_box.findText(name) >= 0:
            self.root_box.setCurrentText(name)

    def _on_root_changed(self, name: str) -> None:
        shape = self.shapes.get(name)
        scalar = shape is not None and all(s == 1 for s in shape)
        self.gradient_edit.setEnabled(not scalar)
        if name and not scalar and shape is not None:
            self.show_note(NON_SCALAR_NOTE.format(name=name), error=False)
        else:
            self.show_note("")

    def show_note(self, text: str, error: bool = False) -> None:
        self.note.setText(text)
        self.note.setStyleSheet("color: #b71c1c; font-weight: bold;" if error else "color: #37474f;")
        self.note.setVisible(bool(text))

    def request_backward(self) -> None:
        root = self.root_box.currentText()
        if not root:
            self.show_note("No tensor that requires grad to differentiate: create a leaf with "
                           "requires_grad=True first.", error=True)
            return
        gradient = self.gradient_edit.text().strip() if self.gradient_edit.isEnabled() else ""
        self.backward_requested.emit(root, gradient, self.retain_box.isChecked(),
                                     self.create_box.isChecked(), self.zero_first_box.isChecked())

    # --- the recorded trace ----------------------------------------------------------
    def set_trace(self, trace: BackwardTrace | None, explanation: str = "",
                  at_end: bool = False) -> None:
        """A new recording: start before its first step, ready to play, or (`at_end`,
        for the script's own backward, already done) at its last step."""
        self.timer.stop()
        self.trace = trace
        if explanation:
            self.show_note(explanation, error=True)
        elif trace is not None:
            self._on_root_changed(self.root_box.currentText())
        n = len(trace.steps) if trace else 0
        self.index = n - 1 if at_end else -1
        self.slider.blockSignals(True)
        self.slider.setRange(-1, n - 1)
        self.slider.setValue(self.index)
        self.slider.blockSignals(False)
        self._update_controls()
        self.step_changed.emit(self.index)

    def clear_trace(self) -> None:
        """The script ran again: its old recording no longer matches the graph."""
        if self.trace is not None:
            self.set_trace(None)

    def set_step(self, index: int) -> None:
        if self.trace is None:
            return
        index = max(-1, min(index, len(self.trace.steps) - 1))
        if index == self.index:
            return
        self.index = index
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        self._update_controls()
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
            self.timer.stop()
        elif self.trace and self.trace.steps:
            if self.index >= len(self.trace.steps) - 1:
                self.set_step(-1)
            self.timer.start()
        self._update_controls()

    def is_playing(self) -> bool:
        return self.timer.isActive()

    def _tick(self) -> None:
        if self.trace is None or self.index >= len(self.trace.steps) - 1:
            self.timer.stop()
            self._update_controls()
            return
        self.step_forward()

    def _on_speed(self, i: int) -> None:
        self.timer.setInterval(SPEEDS[i][1])

    def _update_controls(self) -> None:
        n = len(self.trace.steps) if self.trace else 0
        for b in self.buttons.values():
            b.setEnabled(n > 0)
        self.slider.setEnabled(n > 0)
        self.buttons["play"].setIcon(self.style().standardIcon(
            QtWidgets.QStyle.SP_MediaPause if self.timer.isActive() else QtWidgets.QStyle.SP_MediaPlay))
        if self.trace is None:
            self.step_label.setText("Press Backward to record a backward pass.")
        elif n == 0:
            self.step_label.setText("No step was recorded.")
        elif self.index < 0:
            self.step_label.setText(f"backward() of {self.trace.root_name}: {n} steps · press ▶ or →")
        elif self.index == n - 1:
            self.step_label.setText(f"backward() of {self.trace.root_name}: done, {n} steps · "
                                    "Home to replay")
        else:
            step = self.trace.steps[self.index]
            self.step_label.setText(f"step {self.index + 1}/{n}: {step.name}")

    def install_shortcuts(self, widget: QtWidgets.QWidget) -> None:
        """Space, Left/Right, Home/End while `widget` (the graph) has focus; Ctrl+B anywhere."""
        for key, slot in [("Space", self.toggle_play), ("Right", self.step_forward),
                          ("Left", self.step_back), ("Home", self.to_start), ("End", self.to_end)]:
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), widget)
            sc.setContext(QtCore.Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
        sc = QtGui.QShortcut(QtGui.QKeySequence("Ctrl+B"), self.window())
        sc.setContext(QtCore.Qt.ApplicationShortcut)
        sc.activated.connect(self.request_backward)
