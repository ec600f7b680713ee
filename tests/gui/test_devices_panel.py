"""The devices panel: on hand-made state (an inventory, samples, a graph), and in the
whole app with a real kernel, whose sampler thread keeps pushing while a script runs
and pauses when the panel is hidden."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6 import QtCore

from core.model.devices import (CpuInfo, DeviceInventory, DeviceSample, DeviceSamples, GpuInfo, GpuSample,
                                ParallelForward, ReplicaSlice, SamplerReply, SamplerRequest)
from core.model.graph import Graph, TensorNode
from core.model.run import RunResult
from gui.panels.devices import DevicesPanel
from gui.state import States

GIB = 1 << 30


class RecordingActions:
    """What the panel asks for, recorded (the panel's only way out)."""

    def __init__(self, states):
        self.states = states
        self.calls: list = []

    def set_sampling(self, on):
        self.states.devices.wanted = on
        self.calls.append(("sampling", on))

    def set_sample_rate(self, hz):
        self.states.devices.set_rate(hz)
        self.calls.append(("rate", hz))


def inventory(gpus: int = 0) -> DeviceInventory:
    cuda = [GpuInfo(i, "NVIDIA H100", 80 * GIB, "9.0", "550.54") for i in range(gpus)]
    reason = None if gpus else ("No NVIDIA GPU can be used here: no NVIDIA driver is installed. "
                                "(NVML: NVMLError_LibraryNotFound: NVML Shared Library Not Found)")
    return DeviceInventory("lab-pc", 4242, CpuInfo("AMD EPYC", 4, 2, 16 * GIB), cuda, reason, False, "2.x")


def sample(t: float, cpu=(10.0, 30.0, 50.0, 70.0), gpus=()) -> DeviceSample:
    return DeviceSample(t, np.array(cpu, np.float32), 4 * GIB, 16 * GIB, 600 << 20, 12.0, 170 << 20, list(gpus))


def tensor(id, name, shape, device="cpu", storage=None, storage_bytes=None, dtype="float32"):
    return TensorNode(id=id, key=f"t:{name}", name=name, shape=list(shape), dtype=dtype, device=device,
                      requires_grad=False, is_leaf=True, grad_fn=None, retains_grad=False,
                      storage=storage, storage_bytes=storage_bytes)


@pytest.fixture
def panel(qtbot):
    states = States()
    actions = RecordingActions(states)
    p = DevicesPanel(states, actions)
    qtbot.addWidget(p)
    p.resize(520, 900)
    return p, states, actions


def test_shown_starts_sampling_hidden_pauses(panel, qtbot):
    p, states, actions = panel
    p.show()
    qtbot.waitUntil(lambda: ("sampling", True) in actions.calls)
    p.hide()
    qtbot.waitUntil(lambda: actions.calls[-1] == ("sampling", False))
    p.rate.setCurrentIndex(p.rate.findData(10.0))
    p.rate.activated.emit(p.rate.currentIndex())
    assert actions.calls[-1] == ("rate", 10.0) and states.devices.rate_hz == 10.0


def test_no_gpu_sentence_and_cpu_values(panel, qtbot):
    p, states, _ = panel
    p.show()
    states.devices.set_inventory(inventory(0))
    states.devices.add_sample(sample(100.0))
    p.redraw()
    assert p.no_gpu.isVisible() and "No NVIDIA GPU can be used here" in p.no_gpu.text()
    assert "NVMLError_LibraryNotFound" in p.no_gpu.text()  # the real exception, not only words
    assert p.no_gpu.text().startswith("<b>No NVIDIA GPU can be used here: no NVIDIA driver is installed.</b>")
    assert p.cpu_tile.value == "40 %"  # the mean of the cores
    assert p.ram_tile.value == "4.0 / 16.0 GiB"
    assert p.kernel_tile.value == "600.0 MiB" and "window 170.0 MiB" in p.kernel_tile.detail
    assert p.gpu_tiles == {}  # no GPU: no GPU numbers at all, not zeros
    assert "lab-pc" in p.where.text() and "4 cores" in p.where.text()


def test_gpu_values_and_unknowns_are_never_zero(panel, qtbot):
    p, states, _ = panel
    p.show()
    states.devices.set_inventory(inventory(2))
    g0 = GpuSample(0, util=76.0, memory_used=8 * GIB, memory_total=80 * GIB, temperature=61.0, power=250.0,
                   process_memory=3 * GIB, torch_allocated=2 * GIB, torch_reserved=int(2.5 * GIB), torch_peak=2 * GIB)
    g1 = GpuSample(1, util=None, memory_used=None, memory_total=None, process_memory=None,
                   notes={"util": "not supported by this GPU", "process_memory": "the kernel's PID is not among "
                          "NVML's processes (a container sees other PIDs than the host)"})
    for k in range(5):
        states.devices.add_sample(sample(100.0 + k, gpus=[g0, g1]))
    p.redraw()
    assert not p.no_gpu.isVisible()
    util0, mem0 = p.gpu_tiles[0]
    assert util0.value == "76 %" and "61 °C" in util0.detail and "250 W" in util0.detail
    assert mem0.value == "8.0 GiB / 80.0 GiB"
    assert "kernel 3.0 GiB" in mem0.detail and "torch 2.0 GiB allocated, 2.5 GiB reserved" in mem0.detail
    util1, mem1 = p.gpu_tiles[1]
    assert util1.value == "n/a" and "not supported" in util1.detail
    assert mem1.value == "n/a" and "container" in mem1.detail
    # the plots hold the last samples, None as gaps (nan), never as 0
    curves = p.gpu_plots[1]
    x, y = curves[2].getData()
    assert len(x) == 5 and np.isnan(y).all()
    x, y = p.gpu_plots[0][6].getData()  # torch allocated
    assert np.allclose(y, 2.0) and np.allclose(x, [-4, -3, -2, -1, 0])


def test_history_keeps_the_last_60_seconds(panel):
    _, states, _ = panel
    states.devices.set_inventory(inventory(0))
    for k in range(100):
        states.devices.add_sample(sample(1000.0 + k))
    times = [s.time for s in states.devices.samples]
    assert times[0] == 1099.0 - 60 and times[-1] == 1099.0
    states.devices.add_sample(sample(1050.0))  # an older one (a reply behind pushes) is dropped
    assert states.devices.samples[-1].time == 1099.0


def test_tensor_placement_table_counts_each_storage_once(panel):
    p, states, _ = panel
    graph = Graph([tensor("t0", "a", [1000], storage="s0", storage_bytes=4000),
                   tensor("t1", "b", [10], storage="s0", storage_bytes=4000),
                   tensor("t2", "w", [256, 256], device="cuda:0", storage="s1", storage_bytes=256 * 256 * 4),
                   tensor("t3", "h", [8], device="cuda:0", dtype="float16", storage="s2", storage_bytes=16)])
    states.run.graph = graph
    states.run.graph_changed.emit()
    tops = [p.tree.topLevelItem(i) for i in range(p.tree.topLevelItemCount())]
    assert [t.text(0) for t in tops] == ["cpu: 2 tensors", "cuda:0: 2 tensors"]
    assert tops[0].text(2) == "3.9 KiB"  # 4000 bytes once, not 4040
    assert tops[1].text(2) == "256.0 KiB"  # 262144 + 16 bytes
    b = tops[0].child(1)
    assert b.text(0) == "b" and b.text(1) == "(10,) float32" and b.text(2) == "40 B (storage 3.9 KiB)"
    assert b.text(3) == "a"


def test_dataparallel_sentence_without_gpus(panel):
    p, states, _ = panel
    states.devices.set_inventory(inventory(0))
    graph = Graph([tensor("t0", "model.module.weight", [2, 2])], [], {"model": "DataParallel", "model.module": "Linear"})
    states.run.graph = graph
    states.run.graph_changed.emit()
    assert not p.parallel.isHidden()
    assert "model: an nn.DataParallel not called yet" in p.parallel.text()
    assert "With N GPUs" in p.parallel.text()


def dp_result(replicas, device_ids, output_on) -> RunResult:
    graph = Graph([tensor("t0", "model.module.weight", [2, 5])], [], {"model": "DataParallel", "model.module": "Linear"})
    forwards = [ParallelForward("model", call, 4, device_ids, output_on if device_ids else None, 0, [30, 5],
                                replicas, [30, 2], output_on) for call in (1, 2, 3, 4)]
    return RunResult(graph, parallel=forwards)


def test_dataparallel_latest_forward_over_two_gpus(panel):
    """Which replica got which rows, from the run's recorded forwards (the latest)."""
    p, states, _ = panel
    states.devices.set_inventory(inventory(2))
    states.run.set_result(dp_result([ReplicaSlice("cuda:0", [15, 5], [0, 15]), ReplicaSlice("cuda:1", [15, 5], [15, 30])],
                                    [0, 1], "cuda:0"))
    text = p.parallel.text()
    assert not p.parallel.isHidden()
    assert "model = nn.DataParallel over cuda:0, cuda:1, forward 4 of 4:" in text
    assert "cuda:0: rows 0–14 (15, 5)" in text and "cuda:1: rows 15–29 (15, 5)" in text
    assert "gathered on cuda:0: (30, 2)" in text
    states.run.set_result(RunResult(Graph([tensor("t1", "x", [2])])))  # a script without one: hidden
    assert p.parallel.isHidden()


def test_dataparallel_whole_batch_on_the_cpu_says_what_two_gpus_would_do(panel):
    p, states, _ = panel
    states.devices.set_inventory(inventory(0))
    states.run.set_result(dp_result([ReplicaSlice("cpu", [30, 5], [0, 30])], [], "cpu"))
    text = p.parallel.text()
    assert "no GPU here: its forward 4 of 4 called the model directly on the CPU with the whole batch (30, 5)" in text
    assert "rows 0–14 to cuda:0, rows 15–29 to cuda:1" in text
    states.devices.set_inventory(inventory(1))  # the words follow the machine
    assert "this machine's one GPU" in p.parallel.text()


def test_actions_write_sampler_replies_and_pushes_into_the_state(qtbot):
    """Actions between a Session and the state: the SamplerRequest goes out as a
    standing request, its reply and the pushes land in DevicesState."""
    from gui.actions import Actions
    from gui.session import Session

    class Kernel(QtCore.QObject):
        message = QtCore.Signal(dict)
        dying = QtCore.Signal()
        restarted = QtCore.Signal()
        gave_up = QtCore.Signal()
        silent = QtCore.Signal(float)

    states = States()
    session = Session(Kernel())
    actions = Actions(states, session)
    sent = []
    session.request = lambda request, after_run=True: sent.append((request, after_run)) or True
    actions.set_sampling(True)
    (request, after_run), = sent
    assert isinstance(request, SamplerRequest) and request.running and not after_run
    session.replied.emit(request, SamplerReply(inventory(0), sample(5.0), True, 5.0))
    session.pushed.emit(DeviceSamples([sample(4.9), sample(5.2), sample(5.3)]))
    assert states.devices.inventory.hostname == "lab-pc"
    assert [s.time for s in states.devices.samples] == [5.0, 5.2, 5.3]  # 4.9 came after 5.0: dropped
    actions.set_sampling(False)
    assert sent[-1][0].running is False


# --- the whole app, a real kernel ---------------------------------------------------------

LONG_SCRIPT = "import time\nimport torch\nx = torch.ones(1000)\nfor _ in range(30):\n    time.sleep(0.1)\n"


def test_samples_keep_coming_while_a_script_runs_and_stop_when_hidden(window, qtbot):
    devices = window.states.devices
    dock = window.docks["Devices"]
    assert not devices.wanted  # behind the Inspector's tab: nothing sampled
    dock.raise_()  # the user clicks the Devices tab
    qtbot.waitUntil(lambda: devices.inventory is not None and len(devices.samples) >= 2, timeout=30_000)
    assert devices.inventory.pid == window.session.kernel_pid()
    if not devices.inventory.cuda:
        assert window.devices.no_gpu.isVisible()
    window.states.script.set_text(LONG_SCRIPT)
    window.actions.run_now()
    qtbot.waitUntil(lambda: window.session.is_running(), timeout=10_000)
    qtbot.wait(500)
    during = len(devices.samples)
    qtbot.wait(1500)
    assert window.session.is_running()  # still in the script's loop…
    assert len(devices.samples) >= during + 3  # …and the sampler kept pushing (5 Hz)
    qtbot.waitUntil(lambda: not window.session.is_running(), timeout=30_000)
    qtbot.waitUntil(lambda: window.devices.tree.topLevelItemCount() >= 1
                    and window.devices.tree.topLevelItem(0).text(0).startswith("cpu"), timeout=10_000)
    window.docks["Inspector"].raise_()  # back to the Inspector's tab: the sampler pauses
    qtbot.waitUntil(lambda: not devices.wanted, timeout=5000)
    qtbot.wait(800)  # the pause request reaches the kernel; samples in flight land
    paused = len(devices.samples)
    qtbot.wait(1500)
    assert len(devices.samples) == paused
    assert devices.samples[-1].time < time.time()


def test_move_to_writes_the_call_into_the_script_after_the_line_that_makes_it(qtbot):
    from gui.actions import Actions
    from gui.session import Session
    from gui.state import States
    states = States()
    actions = Actions(states, Session())
    states.script.set_text("import torch\nmodel = torch.nn.Linear(\n    2, 3)\nx = torch.ones(2)\ny = model(x)\n")
    actions.debounce.stop()
    actions.move_to_device("model", "cuda:0")
    assert states.script.text().splitlines()[3] == "model = model.to('cuda:0')"
    actions.move_to_device("nothing", "cpu")  # not in the script: a sentence, no edit
    assert "nothing" not in states.script.text()
    states.script.document.undo()
    assert "to(" not in states.script.text()
