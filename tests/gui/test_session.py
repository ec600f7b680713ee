"""The Session's state machine, driven by a fake kernel at the message level: every
transition, the start-up race, a reply after an interrupt. (test_app.py drives the
same Session against a real ipykernel.)"""
from __future__ import annotations

import itertools

import pytest
from PySide6 import QtCore

from core.model.graph import Graph
from core.model.run import RunError, RunResult
from core.protocol import (PROTOCOL_VERSION, BackwardRequest, ErrorReply, Hello, RunRequest, ZeroGradsRequest,
                           ValuesReply, ValuesRequest, decode, encode)
from core.model.tensors import TensorValues
from gui.session import Session


class FakeKernel(QtCore.QObject):
    """Records what the Session sends; the test plays the kernel's iopub messages."""

    message = QtCore.Signal(dict)
    dying = QtCore.Signal()
    restarted = QtCore.Signal()
    gave_up = QtCore.Signal()
    silent = QtCore.Signal(float)

    def __init__(self):
        super().__init__()
        self.ids = (f"m{i}" for i in itertools.count())
        self.executed: list[tuple[str, str]] = []
        self.sent: list[tuple[str, object]] = []  # msg_id, decoded request
        self.interrupts = 0
        self.restarts = 0
        self.beating = True

    def start(self, cwd):
        pass

    def execute(self, code):
        msg_id = next(self.ids)
        self.executed.append((msg_id, code))
        return msg_id

    def send_comm(self, comm_id, data, buffers):
        assert comm_id == "c1"
        msg_id = next(self.ids)
        self.sent.append((msg_id, decode(data, buffers)[0]))
        return msg_id

    def interrupt(self):
        self.interrupts += 1

    def is_beating(self):
        return self.beating

    def restart(self):
        self.restarts += 1

    def shutdown(self):
        pass

    # what the kernel says
    def status(self, state, parent):
        self.message.emit({"header": {"msg_type": "status"}, "parent_header": {"msg_id": parent},
                           "content": {"execution_state": state}})

    def hello(self, version=PROTOCOL_VERSION):
        data, _ = encode(Hello(version, 4242, "3.11", "2.x"))
        data["version"] = version
        self.message.emit({"header": {"msg_type": "comm_open"}, "parent_header": {},
                           "content": {"target_name": "torchscope", "comm_id": "c1", "data": data}})

    def reply(self, message, reply_to):
        data, buffers = encode(message, reply_to)
        self.message.emit({"header": {"msg_type": "comm_msg"}, "parent_header": {"msg_id": reply_to},
                           "content": {"comm_id": "c1", "data": data}, "buffers": buffers})

    def bootstrap(self):
        """The bootstrap request runs: busy, the Comm opens, idle."""
        boot = self.executed[-1][0]
        self.status("busy", boot)
        self.hello()
        self.status("idle", boot)

    def answer(self, result=None):
        """The last request runs to the end and answers."""
        msg_id, request = self.sent[-1]
        self.status("busy", msg_id)
        self.reply(result if result is not None else RunResult(Graph()), msg_id)
        self.status("idle", msg_id)
        return request


@pytest.fixture
def kernel():
    return FakeKernel()


@pytest.fixture
def session(kernel, qtbot):
    s = Session(kernel)
    s.states = []
    s.state_changed.connect(s.states.append)
    s.results = []
    s.run_result.connect(s.results.append)
    s.events = []
    s.event.connect(s.events.append)
    return s


def test_start_bootstraps_then_is_idle(session, kernel, qtbot):
    session.start()
    assert session.states == ["starting", "bootstrapping"]
    assert "_torchscope_core" in kernel.executed[0][1]  # loaded under a private name
    with qtbot.waitSignal(session.ready, timeout=1000):
        kernel.bootstrap()
    assert session.state == "idle" and session.kernel_pid() == 4242


def test_a_run_before_the_bootstrap_ends_waits_and_is_never_interrupted(session, kernel):
    """The start-up race: two runs while the bootstrap still executes."""
    session.start()
    boot = kernel.executed[0][0]
    kernel.status("busy", boot)
    session.run("a = 1")
    kernel.hello()  # the Comm is open, but the bootstrap request is not over yet
    session.run("a = 2")
    assert kernel.interrupts == 0 and kernel.sent == []
    kernel.status("idle", boot)
    assert [r.code for _, r in kernel.sent] == ["a = 2"]  # only the latest text
    kernel.answer()
    assert len(session.results) == 1 and session.answered_run == session.run_id
    assert kernel.interrupts == 0


def started(session, kernel):
    session.start()
    kernel.bootstrap()
    return session


def test_run_goes_running_then_idle(session, kernel):
    started(session, kernel)
    session.run("x = 1")
    assert session.state == "running" and isinstance(kernel.sent[-1][1], RunRequest)
    kernel.answer()
    assert session.state == "idle" and len(session.results) == 1


def test_new_text_interrupts_only_once_the_kernel_has_started_the_run(session, kernel):
    started(session, kernel)
    session.run("while True: pass")
    first = kernel.sent[-1][0]
    session.run("x = 2")  # not started yet: no interrupt now…
    assert kernel.interrupts == 0
    kernel.status("busy", first)  # …but as soon as it starts
    assert kernel.interrupts == 1 and session.state == "interrupting"
    kernel.reply(RunResult(None, error=RunError("KeyboardInterrupt", "interrupted", 1)), first)
    assert session.results == []  # the answer to old text is not shown
    kernel.status("idle", first)
    assert [r.code for _, r in kernel.sent] == ["while True: pass", "x = 2"]
    kernel.answer()
    assert len(session.results) == 1 and session.state == "idle"


def test_interrupt_when_nothing_runs_does_nothing(session, kernel):
    started(session, kernel)
    session.interrupt()
    assert kernel.interrupts == 0 and session.state == "idle"


def test_a_reply_after_an_interrupt_is_still_shown(session, kernel):
    """The user presses Esc just as the script finishes: its answer still counts."""
    started(session, kernel)
    session.run("x = 1")
    msg_id = kernel.sent[-1][0]
    kernel.status("busy", msg_id)
    session.interrupt()
    assert session.state == "interrupting"
    kernel.reply(RunResult(Graph()), msg_id)
    kernel.status("idle", msg_id)
    assert len(session.results) == 1 and session.state == "idle"


def test_an_interrupt_that_eats_the_reply_says_run_stopped(session, kernel):
    started(session, kernel)
    session.run("x = 1")
    msg_id = kernel.sent[-1][0]
    kernel.status("busy", msg_id)
    session.interrupt()
    kernel.status("idle", msg_id)  # no reply came
    assert session.state == "idle" and "Run stopped." in session.events


def test_backward_is_queued_behind_an_answered_run_and_refused_before(session, kernel):
    started(session, kernel)
    session.run("y = x * 2")
    assert not session.backward("y")  # the graph on screen is not this text's yet
    msg_id = kernel.sent[-1][0]
    kernel.status("busy", msg_id)
    kernel.reply(RunResult(Graph()), msg_id)
    assert session.backward("y")  # answered, still busy: queued
    assert len(kernel.sent) == 1
    kernel.status("idle", msg_id)
    assert isinstance(kernel.sent[-1][1], BackwardRequest)
    got = []
    session.backward_result.connect(got.append)
    kernel.answer()
    assert len(got) == 1 and session.state == "idle"


def test_values_reply_is_dispatched_by_type(session, kernel):
    started(session, kernel)
    session.run("x = 1")
    kernel.answer()
    got = []
    session.values_ready.connect(lambda node, values: got.append((node, values)))
    session.request_values("t0", "x")
    assert isinstance(kernel.sent[-1][1], ValuesRequest)
    kernel.answer(ValuesReply("t0", TensorValues(numel=1, stats=None)))
    assert got and got[0][0] == "t0" and got[0][1].numel == 1


def test_a_kernel_side_failure_is_reported(session, kernel):
    started(session, kernel)
    session.run("x = 1")
    kernel.answer(ErrorReply("RunRequest", "TypeError: boom", "Traceback …"))
    assert any("kernel side failed on RunRequest: TypeError: boom" in e for e in session.events)
    assert session.state == "idle"
    assert session.results and session.results[-1].error.message.endswith("TypeError: boom")


def test_a_reply_to_a_forgotten_request_is_dropped(session, kernel):
    started(session, kernel)
    session.run("x = 1")
    old = kernel.sent[-1][0]
    session.restart()
    assert kernel.restarts == 1 and session.state == "bootstrapping"
    kernel.reply(RunResult(Graph()), old)
    assert session.results == []
    kernel.bootstrap()
    assert session.state == "idle"


def test_a_dying_kernel_restarts_and_bootstraps_again(session, kernel, qtbot):
    started(session, kernel)
    session.run("import os; os._exit(1)")
    kernel.status("busy", kernel.sent[-1][0])
    kernel.dying.emit()
    assert session.state == "restarting" and session.current is None
    assert any("while running your code" in e for e in session.events)
    kernel.restarted.emit()
    assert session.state == "bootstrapping"
    with qtbot.waitSignal(session.ready, timeout=1000):
        kernel.bootstrap()
    kernel.gave_up.emit()
    assert session.state == "dead"


def test_another_protocol_version_is_reported_not_crashed_on(session, kernel):
    session.start()
    boot = kernel.executed[0][0]
    kernel.status("busy", boot)
    kernel.hello(version=PROTOCOL_VERSION + 1)
    kernel.status("idle", boot)
    assert session.state == "broken"
    assert any("protocol" in e for e in session.events)


def test_a_bootstrap_that_fails_says_why(session, kernel):
    session.start()
    boot = kernel.executed[0][0]
    kernel.message.emit({"header": {"msg_type": "error"}, "parent_header": {"msg_id": boot},
                         "content": {"ename": "ModuleNotFoundError", "evalue": "No module named 'torch'"}})
    kernel.status("idle", boot)
    assert session.state == "broken"
    assert any("No module named 'torch'" in e for e in session.events)


def test_an_ignored_interrupt_restarts_the_kernel_and_keeps_the_new_text(session, kernel, qtbot):
    """`except KeyboardInterrupt: pass` in a loop: 3 s after the interrupt (here made
    short), the kernel restarts, and the text typed meanwhile runs in the new one."""
    session.ignored_timer.setInterval(50)
    started(session, kernel)
    session.run("while True:\n    try: pass\n    except KeyboardInterrupt: pass\n")
    kernel.status("busy", kernel.sent[-1][0])
    session.run("x = 2")  # new text: interrupts the loop, which ignores it
    assert kernel.interrupts == 1
    qtbot.waitUntil(lambda: kernel.restarts == 1, timeout=2000)
    assert any("ignored the interrupt" in e for e in session.events)
    kernel.bootstrap()
    assert [r.code for _, r in kernel.sent][-1] == "x = 2"


def test_a_second_escape_restarts_at_once(session, kernel):
    started(session, kernel)
    session.run("while True: pass")
    kernel.status("busy", kernel.sent[-1][0])
    session.interrupt()
    session.interrupt()
    assert kernel.restarts == 1 and session.state == "bootstrapping"


def test_no_heartbeat_says_frozen_until_it_beats_again(session, kernel, qtbot):
    started(session, kernel)
    frozen = []
    session.frozen_changed.connect(frozen.append)
    kernel.beating = False
    kernel.silent.emit(3.2)
    assert frozen == [True] and any("frozen" in e for e in session.events)
    kernel.silent.emit(6.4)  # said once
    assert frozen == [True]
    session.beat_timer.setInterval(10)
    kernel.beating = True
    qtbot.waitUntil(lambda: frozen == [True, False], timeout=1000)


def test_restart_clears_frozen(session, kernel):
    started(session, kernel)
    kernel.silent.emit(3.0)
    assert session.frozen
    session.restart()
    assert not session.frozen


def test_output_of_the_latest_run_is_streamed(session, kernel):
    started(session, kernel)
    got = []
    session.output.connect(lambda stream, text, first: got.append((stream, text, first)))
    session.run("print(1)", cwd="/some/folder")
    msg_id, request = kernel.sent[-1]
    assert request.cwd == "/some/folder"
    kernel.status("busy", msg_id)
    from core.protocol import OutputChunk
    kernel.reply(OutputChunk("stdout", "epoch 1\n"), msg_id)
    kernel.reply(OutputChunk("stderr", "warn\n"), msg_id)
    assert got == [("stdout", "epoch 1\n", True), ("stderr", "warn\n", False)]
    assert session.state == "running" and not session.current.answered
    kernel.reply(RunResult(Graph()), msg_id)
    kernel.status("idle", msg_id)
    assert len(session.results) == 1


def test_a_fresh_kernel_needs_a_run_before_backward(session, kernel):
    started(session, kernel)
    assert session.needs_run
    session.run("y = 1")
    kernel.answer()
    assert not session.needs_run
    session.restart()
    kernel.bootstrap()
    assert session.needs_run


def test_other_requests_answer_through_replied_and_pushes_through_pushed(session, kernel, qtbot):
    """request() is how panels beyond the graph ask the kernel (a batch, a slice);
    messages the kernel sends on its own (reply_to None) come out of `pushed`."""
    replied, pushed = [], []
    session.replied.connect(lambda req, rep: replied.append((req, rep)))
    session.pushed.connect(pushed.append)
    session.start()
    kernel.bootstrap()
    assert not session.request(ValuesRequest("t", "x"))  # no run yet: nothing to ask about
    assert session.request(ZeroGradsRequest(), after_run=False)  # not about a run: goes now
    kernel.status("busy", kernel.sent[-1][0])
    kernel.reply(Hello(PROTOCOL_VERSION, 2, "3.11", "2.x"), kernel.sent[-1][0])  # any reply type
    kernel.status("idle", kernel.sent[-1][0])
    assert [type(r) for r, _ in replied] == [ZeroGradsRequest]
    session.run("x = 1")
    kernel.answer()
    assert session.request(ValuesRequest("t", "x"))
    kernel.reply(Hello(PROTOCOL_VERSION, 1, "3.11", "2.x"), None)  # a push, mid-request
    assert len(pushed) == 1 and isinstance(pushed[0], Hello)
    session.run("x = 2")  # new text before the answer: the request is interrupted and dropped
    kernel.reply(Hello(PROTOCOL_VERSION, 2, "3.11", "2.x"), kernel.sent[-1][0])  # any reply type
    assert len(replied) == 1
