"""The backward bar: pick a root, press Backward, then step through what the
autograd engine did, node by node.

It draws `BackwardState` (the roots, the options, the recording and the step shown)
and sends presses to `Actions`; the graph panel draws the step. Nothing here
touches torch.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from gui import theme

SPEED_NAMES = ["0.5×", "1×", "2×", "4×"]


class BackwardPanel(QtWidgets.QWidget):
    def __init__(self, states, actions, parent=None):
        super().__init__(parent)
        self.state = states.backward
        self.theme = states.theme
        self.actions = actions
        state = self.state

        self.root_box = QtWidgets.QComboBox(minimumContentsLength=10)
        self.root_box.setToolTip("The tensor to differentiate (click one in the graph to pick it)")
        self.root_box.currentTextChanged.connect(state.choose_root)
        self.gradient_edit = QtWidgets.QLineEdit(placeholderText="torch.ones_like(root)")
        self.gradient_edit.setToolTip("The `gradient` argument: a Python expression; `root` is the tensor")
        self.gradient_edit.textChanged.connect(lambda t: setattr(state.options, "gradient", t))
        self.retain_box = QtWidgets.QCheckBox("retain_graph")
        self.retain_box.setToolTip("Keep the saved tensors so backward can run through the graph again")
        self.create_box = QtWidgets.QCheckBox("create_graph")
        self.create_box.setToolTip("Record the backward itself, so the gradient has a graph (higher-order derivatives)")
        self.zero_first_box = QtWidgets.QCheckBox("zero grads first")
        self.zero_first_box.setToolTip("Unchecked, a second Backward adds to .grad, as PyTorch does")
        for box, attr in ((self.retain_box, "retain_graph"), (self.create_box, "create_graph"),
                          (self.zero_first_box, "zero_first")):
            box.toggled.connect(lambda on, a=attr: setattr(state.options, a, on))
        self.call_box = QtWidgets.QComboBox()
        self.call_box.setToolTip("The script called backward() more than once (a training loop): "
                                 "pick the call to replay; the graph shown is that call's")
        self.call_box.setFocusPolicy(QtCore.Qt.NoFocus)
        self.call_box.activated.connect(lambda i: actions.replay_call(self.call_box.itemData(i)))
        self.call_box.hide()
        self.backward_button = QtWidgets.QPushButton("Backward")
        self.backward_button.setToolTip("Run backward() on the root and record every step (Ctrl+B)")
        self.backward_button.clicked.connect(actions.backward)
        self.zero_button = QtWidgets.QPushButton("Zero grads")
        self.zero_button.setToolTip("Set .grad of every leaf to None (like optimizer.zero_grad())")
        self.zero_button.clicked.connect(actions.zero_grads)

        for button in (self.backward_button, self.zero_button):
            button.setFocusPolicy(QtCore.Qt.NoFocus)  # never in the path of the step keys
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Root:"))
        top.addWidget(self.root_box)
        self.options = QtWidgets.QWidget()  # hidden in presentation mode: room for the code
        options = QtWidgets.QHBoxLayout(self.options)
        options.setContentsMargins(0, 0, 0, 0)
        options.addWidget(QtWidgets.QLabel("gradient:"))
        options.addWidget(self.gradient_edit, 1)
        options.addWidget(self._flags_button())
        top.addWidget(self.options, 1)
        for w in (self.backward_button, self.zero_button):
            top.addWidget(w)

        self.buttons = {}
        transport = QtWidgets.QHBoxLayout()
        icons = QtWidgets.QStyle
        for key, icon, tip, slot in [
                ("start", icons.SP_MediaSkipBackward, "Jump to start (Home)", state.to_start),
                ("back", icons.SP_MediaSeekBackward, "Step back (Left)", state.step_back),
                ("play", icons.SP_MediaPlay, "Play / pause (Space)", state.toggle_play),
                ("forward", icons.SP_MediaSeekForward, "Step forward (Right)", state.step_forward),
                ("end", icons.SP_MediaSkipForward, "Jump to end (End)", state.to_end)]:
            b = QtWidgets.QToolButton(icon=self.style().standardIcon(icon), toolTip=tip)
            b.clicked.connect(slot)
            transport.addWidget(b)
            self.buttons[key] = b
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal, minimum=-1, maximum=-1)
        self.slider.valueChanged.connect(state.set_step)
        self.speed_box = QtWidgets.QComboBox()
        self.speed_box.addItems(SPEED_NAMES)
        self.speed_box.setToolTip("Playback speed")
        self.speed_box.currentIndexChanged.connect(state.set_speed)
        self.step_label = QtWidgets.QLabel()
        self.step_label.setWordWrap(True)  # a narrow window wraps it instead of widening
        font = self.step_label.font()
        font.setBold(True)
        self.step_label.setFont(font)
        transport.addWidget(self.call_box)
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

        sc = QtGui.QShortcut(QtGui.QKeySequence("Ctrl+B"), self)
        sc.setContext(QtCore.Qt.ApplicationShortcut)
        sc.activated.connect(actions.backward)
        state.roots_changed.connect(self._on_roots)
        state.calls_changed.connect(self._on_calls)
        state.note_changed.connect(self._on_note)
        state.trace_changed.connect(self._on_trace)
        state.step_changed.connect(self._on_step)
        state.playing_changed.connect(lambda _: self._update_controls())
        self.theme.changed.connect(self._on_theme)
        self._base_points = self.font().pointSizeF()
        self._on_roots()
        self._on_note()
        self._on_trace()

    # --- from the state --------------------------------------------------------------
    def _flags_button(self) -> QtWidgets.QToolButton:
        """retain_graph, create_graph and zero grads first, in a menu under one button
        that names the ones that are on: the bar stays narrow enough for a laptop."""
        button = QtWidgets.QToolButton(popupMode=QtWidgets.QToolButton.InstantPopup)
        button.setFocusPolicy(QtCore.Qt.NoFocus)
        menu = QtWidgets.QMenu(button)
        for box in (self.retain_box, self.create_box, self.zero_first_box):
            action = QtWidgets.QWidgetAction(menu)
            box.setContentsMargins(6, 2, 6, 2)
            action.setDefaultWidget(box)
            menu.addAction(action)

            def label(*_):
                on = [b.text() for b in (self.retain_box, self.create_box, self.zero_first_box) if b.isChecked()]
                button.setText(("options: " + ", ".join(on)) if on else "options")
            box.toggled.connect(label)
        button.setMenu(menu)
        button.setText("options")
        button.setToolTip("backward()'s retain_graph and create_graph, and zeroing .grad first")
        return button

    def _on_roots(self) -> None:
        s = self.state
        self.root_box.blockSignals(True)
        self.root_box.clear()
        self.root_box.addItems(s.roots)
        self.root_box.setCurrentText(s.options.root)
        self.root_box.blockSignals(False)
        self.gradient_edit.setEnabled(not s.root_is_scalar())
        for box, on in ((self.retain_box, s.options.retain_graph), (self.create_box, s.options.create_graph),
                        (self.zero_first_box, s.options.zero_first)):
            box.setChecked(on)
        self.speed_box.setCurrentIndex(s.speed)

    def _on_calls(self) -> None:
        s = self.state
        self.call_box.clear()
        for k, line in s.calls:
            self.call_box.addItem(f"call {k} of {s.calls_total}" + (f" · line {line}" if line else ""), k)
        self.call_box.setCurrentIndex(max(0, self.call_box.findData(s.call_shown)))
        self.call_box.setVisible(s.calls_total > 1)

    def _on_note(self) -> None:
        note = self.state.note
        self.note.setText(note.text)
        self.note.setStyleSheet(f"color: {theme.ERROR}; font-weight: bold;" if note.error
                                else f"color: {theme.NOTE};")
        self.note.setVisible(bool(note.text))

    def _on_trace(self) -> None:
        trace = self.state.trace
        n = len(trace.steps) if trace else 0
        self.slider.blockSignals(True)
        self.slider.setRange(-1, n - 1)
        self.slider.setValue(self.state.index)
        self.slider.blockSignals(False)
        self._update_controls()

    def _on_step(self, index: int) -> None:
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        self._update_controls()

    def _on_theme(self) -> None:
        font = self.font()
        font.setPointSizeF(self._base_points * self.theme.scale)
        self.setFont(font)
        self.options.setVisible(not self.theme.high_contrast)

    def _update_controls(self) -> None:
        trace, index = self.state.trace, self.state.index
        n = len(trace.steps) if trace else 0
        for b in self.buttons.values():
            b.setEnabled(n > 0)
        self.slider.setEnabled(n > 0)
        self.buttons["play"].setIcon(self.style().standardIcon(
            QtWidgets.QStyle.SP_MediaPause if self.state.is_playing() else QtWidgets.QStyle.SP_MediaPlay))
        if trace is None:
            self.step_label.setText("Press Backward to record a backward pass.")
        elif n == 0:
            self.step_label.setText("No step was recorded.")
        elif index < 0:
            self.step_label.setText(f"backward() of {trace.root_name}: {n} steps · press ▶ or →")
        elif index == n - 1:
            self.step_label.setText(f"backward() of {trace.root_name}: done, {n} steps · Home to replay")
        else:
            self.step_label.setText(f"step {index + 1}/{n}: {trace.steps[index].name}")
