"""core.kernel.devices and core.model.devices: the CPU path against psutil and /proc,
the real no-GPU path on this machine, and NVML faked at the function level beside it
(as gpustat's test_gpustat.py fakes it: a None process memory, NotSupported queries,
PIDs from another namespace). Where tensors live, against torch itself; the
`--devices` command line and the export's `"memory"` key."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import psutil
import pynvml
import pytest
import torch
from wire_check import wire

from core.kernel import devices
from core.kernel.devices import Probe, Sampler
from core.kernel.runner import Runner
from core.kernel.serve import Endpoint
from core.export import to_dot, to_svg
from core.labels import parallel_lines
from core.model.devices import (FORMAT, DeviceSample, DeviceSamples, SamplerReply, SamplerRequest, chunk_rows,
                                clamp_rate, devices_table, memory_by_device, placement, sample_to_dict)
from core.protocol import decode, encode
from core.style import device_colour, graph_devices

ROOT = Path(__file__).resolve().parents[2]
MB = 1 << 20
NO_GPU = not torch.cuda.is_available()


def proc_stat_busy() -> list[tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat, as top counts them."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            v = [int(x) for x in line.split()[1:]]
            total = sum(v[:8])  # guest time is already in user
            idle = v[3] + v[4]
            out.append((total - idle, total))
    return out


# --- the CPU path, against psutil and /proc ---------------------------------------------

def test_inventory_cpu_matches_psutil_and_proc():
    inv = Probe().inventory()
    assert inv.cpu.cores == psutil.cpu_count(logical=True) == os.cpu_count()
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert inv.cpu.memory_total == int(meminfo["MemTotal"].split()[0]) * 1024
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), None)
    if model:
        assert inv.cpu.model == model
    assert inv.pid == os.getpid()


def test_sample_memory_matches_proc():
    probe = Probe()
    s = probe.sample()
    statm = Path("/proc/self/statm").read_text().split()
    rss = int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
    assert abs(s.kernel_rss - rss) < 16 * MB  # the same process, read a moment apart
    vm = psutil.virtual_memory()
    assert s.memory_total == vm.total
    assert abs(s.memory_used - (vm.total - vm.available)) < 256 * MB
    assert s.cpu_percent.shape == (os.cpu_count(),) and s.cpu_percent.dtype == np.float32


def own_cpu_seconds() -> float:
    """utime + stime of this process from /proc/self/stat."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cpu_percent_matches_proc_stat_over_the_same_interval():
    probe = Probe()
    before, own_before, t_before = proc_stat_busy(), own_cpu_seconds(), time.monotonic()
    probe._cpu_last = psutil.cpu_times(percpu=True)
    probe._proc_last = (time.monotonic(), sum(probe.process.cpu_times()[:2]))
    stop = time.monotonic() + 0.6
    while time.monotonic() < stop:  # keep a core busy: the figures must move
        sum(range(1000))
    s = probe.sample()
    after, own_after, t_after = proc_stat_busy(), own_cpu_seconds(), time.monotonic()
    expected = [100.0 * (b1 - b0) / max(t1 - t0, 1) for (b0, t0), (b1, t1) in zip(before, after)]
    assert np.allclose(s.cpu_percent, expected, atol=12.0), (s.cpu_percent, expected)
    own = 100.0 * (own_after - own_before) / (t_after - t_before)
    assert s.kernel_cpu == pytest.approx(own, abs=12.0)  # this process's own share, however busy the machine
    assert s.kernel_cpu > 5.0


def test_window_rss_is_read_only_for_a_pid_on_this_machine():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        probe = Probe()
        probe.set_window(child.pid)
        rss = probe.sample().window_rss
        assert rss == pytest.approx(psutil.Process(child.pid).memory_info().rss, rel=0.2)
        probe.set_window(child.pid, host="another-machine.example")
        assert probe.sample().window_rss is None
    finally:
        child.kill()
        child.wait()


def test_a_sample_costs_well_under_a_millisecond_here():
    probe = Probe()
    costs = sorted(probe.sample().cost_ms for _ in range(50))
    assert costs[len(costs) // 2] < 5.0  # the bench measures it; this only catches a blunder


# --- the real no-GPU path ---------------------------------------------------------------

@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_no_gpu_says_why_with_the_real_exceptions_and_no_false_zeros():
    probe = Probe()
    inv = probe.inventory()
    assert inv.cuda == []
    reason = inv.cuda_error
    assert reason.startswith("No NVIDIA GPU can be used here") or "torch cannot use them" in reason
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # the machine's real NVML failure is quoted
        assert type(exc).__name__ in reason and str(exc) in reason
    try:
        torch.cuda.init()
    except Exception as exc:  # noqa: BLE001 - and torch's own words
        assert str(exc).split(".")[0] in reason
    sample = probe.sample()
    assert sample.gpus == []
    d = sample_to_dict(inv, sample)
    assert d["cuda"] == [] and d["cuda_error"] == reason
    assert "torch_allocated" not in json.dumps(d)  # no zeros for a GPU that is not there
    table = devices_table(inv, sample)
    assert "CPU" in table and "RAM" in table and reason in table


# --- NVML faked at the function level ------------------------------------------------------

def NotSupported():
    """What nvidia-ml-py raises for a query the board does not support (its own class)."""
    return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


Memory = namedtuple("Memory", "total used free")
Util = namedtuple("Util", "gpu memory")
Proc = namedtuple("Proc", "pid usedGpuMemory")


@pytest.fixture
def fake_nvml(monkeypatch):
    """Three GPUs, as gpustat's tests have them. GPU 0: all readings, this process
    among its users. GPU 1: no power reading, this process listed with memory None
    (WDDM, MIG). GPU 2: no utilization, and only PIDs from another namespace."""
    me = os.getpid()
    handles = ["gpu0", "gpu1", "gpu2"]

    def per(values):
        def call(handle, *args):
            v = values[handles.index(handle)]
            if isinstance(v, Exception):
                raise v
            return v
        return call

    fns = {
        "nvmlInit": lambda: None,
        "nvmlDeviceGetCount": lambda: 3,
        "nvmlDeviceGetHandleByIndex": lambda i: handles[i],
        "nvmlSystemGetDriverVersion": lambda: "550.54.15",
        "nvmlDeviceGetName": per([b"NVIDIA H100", "NVIDIA H100", "Tesla T4"]),
        "nvmlDeviceGetIndex": per([0, 1, 2]),
        "nvmlDeviceGetUUID": per(["GPU-0", "GPU-1", "GPU-2"]),
        "nvmlDeviceGetCudaComputeCapability": per([(9, 0), (9, 0), (7, 5)]),
        "nvmlDeviceGetMemoryInfo": per([Memory(80 * 1024 * MB, 8000 * MB, 0), Memory(80 * 1024 * MB, 9000 * MB, 0),
                                        Memory(16 * 1024 * MB, 0, 0)]),
        "nvmlDeviceGetUtilizationRates": per([Util(76, 10), Util(0, 0), NotSupported()]),
        "nvmlDeviceGetTemperature": per([80, 36, 71]),
        "nvmlDeviceGetPowerUsage": per([125000, NotSupported(), 70000]),
        "nvmlDeviceGetEnforcedPowerLimit": per([250000, 250000, NotSupported()]),
        "nvmlDeviceGetComputeRunningProcesses": per([
            [Proc(me, 4000 * MB), Proc(153223, 4000 * MB)],
            [Proc(me, None), Proc(194826, 6000 * MB)],
            [Proc(99999, 9999 * MB), Proc(99995, 9995 * MB)]]),
        "nvmlDeviceGetGraphicsRunningProcesses": per([[], [], NotSupported()]),
    }
    for name, fn in fns.items():
        monkeypatch.setattr(pynvml, name, fn)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return me


def test_fake_nvml_inventory(fake_nvml):
    inv = Probe().inventory()
    assert [(g.index, g.name, g.capability, g.driver) for g in inv.cuda] == [
        (0, "NVIDIA H100", "9.0", "550.54.15"), (1, "NVIDIA H100", "9.0", "550.54.15"),
        (2, "Tesla T4", "7.5", "550.54.15")]
    assert inv.cuda[2].memory_total == 16 * 1024 * MB
    if NO_GPU:  # NVML sees GPUs, torch cannot use them: that is what the sentence says
        assert "torch cannot use them" in inv.cuda_error


def test_fake_nvml_sample_handles_none_notsupported_and_foreign_pids(fake_nvml, monkeypatch):
    probe = Probe()
    monkeypatch.setattr(Probe, "_cuda_used", staticmethod(lambda: True))  # the script used the GPU
    g0, g1, g2 = probe.sample().gpus
    assert (g0.util, g0.memory_used, g0.temperature, g0.power, g0.power_limit) == (76.0, 8000 * MB, 80.0, 125.0, 250.0)
    assert g0.process_memory == 4000 * MB
    assert [p.pid for p in g0.processes] == sorted([fake_nvml, 153223])
    # NotSupported: that one reading is None, with the reason; the others are there
    assert g1.power is None and g1.notes["power"] == "not supported by this GPU" and g1.power_limit == 250.0
    assert g2.util is None and "util" in g2.notes and g2.memory_used == 0 and g2.temperature == 71.0
    # usedGpuMemory None (WDDM, MIG): unknown, not 0
    assert g1.process_memory is None and "process_memory" in g1.notes
    assert next(p for p in g1.processes if p.pid == fake_nvml).memory is None
    # only PIDs of another namespace: the kernel's share is unknown, and says why
    assert g2.process_memory is None and "not among NVML's processes" in g2.notes["process_memory"]
    assert {p.pid for p in g2.processes} == {99999, 99995}
    d = sample_to_dict(probe.inventory(), DeviceSample(0.0, np.zeros(1, np.float32), 1, 2, 3, gpus=[g0, g1, g2]))
    assert d["cuda"][1]["power"] is None and d["cuda"][2]["util"] is None
    assert d["cuda"][0]["processes"][0]["memory"] in (4000 * MB, 4000 * MB)
    json.dumps(d, allow_nan=False)  # numbers or null, never NaN


def test_fake_nvml_before_the_script_touched_the_gpu_the_kernel_holds_nothing(fake_nvml, monkeypatch):
    monkeypatch.setattr(Probe, "_cuda_used", staticmethod(lambda: False))
    g2 = Probe().sample().gpus[2]
    assert g2.process_memory == 0  # no context yet: a true zero


def test_fake_nvml_library_missing_reads_as_no_gpu(monkeypatch):
    def missing():
        raise pynvml.NVMLError_LibraryNotFound(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setattr(pynvml, "nvmlInit", missing)
    probe = Probe()
    assert probe.handles == [] and "no NVIDIA driver is installed" in probe.nvml_error
    if NO_GPU:
        assert probe.inventory().cuda_error.startswith("No NVIDIA GPU can be used here")


def test_fake_nvml_processes_are_cached(fake_nvml, monkeypatch):
    calls = []
    original = pynvml.nvmlDeviceGetComputeRunningProcesses
    monkeypatch.setattr(pynvml, "nvmlDeviceGetComputeRunningProcesses", lambda h: calls.append(h) or original(h))
    probe = Probe()
    for _ in range(5):
        probe.sample()
    assert len(calls) == 3  # once per GPU within PROCESSES_TTL


# --- the sampler thread and the wire ------------------------------------------------------

def test_sampler_pushes_from_its_thread_while_the_caller_is_busy_and_pauses():
    pushes = []
    sampler = Sampler(pushes.append)

    def samples():
        assert all(isinstance(m, DeviceSamples) for m in pushes)
        return [s for m in pushes for s in m.samples]

    reply = sampler.control(SamplerRequest(True, 10.0))
    assert reply.running and reply.rate_hz == 10.0
    stop = time.monotonic() + 1.0
    while time.monotonic() < stop:  # the "script": busy in the caller's thread
        sum(range(1000))
    assert 5 <= len(samples()) <= 12, len(samples())
    assert all(len(m.samples) == 5 for m in pushes)  # at 10 Hz, five a push
    times = [s.time for s in samples()]
    assert times == sorted(times) and 0.05 < statistics.median(np.diff(times)) < 0.2
    sampler.control(SamplerRequest(False, 10.0))
    time.sleep(0.15)
    paused = len(samples())
    time.sleep(0.5)
    assert len(samples()) == paused  # paused: nothing more
    sampler.control(SamplerRequest(True, 2.0))
    time.sleep(1.3)
    assert 1 <= len(samples()) - paused <= 4  # 2 Hz now, one a push
    sampler.control(SamplerRequest(False))


def test_rate_is_clamped():
    assert clamp_rate(50) == 10.0 and clamp_rate(0.1) == 2.0 and clamp_rate("x") == 5.0
    assert clamp_rate(float("nan")) == 5.0


class FakeComm:
    def __init__(self):
        self.callback = None
        self.sent: list = []

    def on_msg(self, cb):
        self.callback = cb

    def send(self, data, buffers=None):
        self.sent.append((data, list(buffers or [])))


def test_endpoint_answers_a_sampler_request_and_pushes_samples_unsolicited():
    comm = FakeComm()
    ep = Endpoint(comm)
    data, buffers = wire(*encode(SamplerRequest(True, 10.0, os.getpid())))
    comm.callback({"header": {"msg_id": "m1", "msg_type": "comm_msg"}, "parent_header": {},
                   "content": {"comm_id": "c0", "data": data}, "buffers": buffers})
    time.sleep(0.5)
    ep.sampler.control(SamplerRequest(False))
    decoded = [decode(*wire(d, b)) for d, b in comm.sent]
    reply, reply_to = next((m, r) for m, r in decoded if r == "m1")
    assert isinstance(reply, SamplerReply) and reply.inventory.pid == os.getpid()
    assert reply.sample.window_rss is not None  # our own pid, read as the window's
    pushed = [s for m, r in decoded if r is None for s in m.samples]
    assert pushed and all(isinstance(m, DeviceSample) for m in pushed)
    assert pushed[0].cpu_percent.dtype == np.float32  # the per-core array travelled as a buffer


# --- where the tensors live ---------------------------------------------------------------

PLACEMENT_SCRIPT = """
import torch, torch.nn as nn
a = torch.ones(1000)
b = a[:10]
c = a.view(100, 10)
also_a = a
m = nn.Linear(10, 5)
d = torch.zeros(3, dtype=torch.float64)
big = torch.empty(0)
"""


def test_placement_counts_each_storage_once_against_torch():
    result = Runner().run(PLACEMENT_SCRIPT)
    assert result.error is None
    ns = {}
    exec(PLACEMENT_SCRIPT, ns)
    storages = {}
    for v in [ns["a"], ns["b"], ns["c"], ns["d"], ns["big"], *ns["m"].parameters()]:
        storages[v.untyped_storage().data_ptr() or id(v)] = v.untyped_storage().nbytes()
    (cpu,) = placement(result.graph)
    assert cpu.device == "cpu"
    assert cpu.bytes == sum(storages.values()) == 4000 + 200 + 20 + 24
    rows = {t.name: t for t in cpu.tensors}
    assert set(rows) == {"a", "b", "c", "m.weight", "m.bias", "d", "big"}  # also_a is a's alias
    assert rows["b"].bytes == 40 and rows["b"].storage_bytes == 4000
    assert set(rows["a"].shares_with) >= {"b", "c", "also_a"}
    assert rows["d"].bytes == 24
    assert memory_by_device(result.graph) == {"cpu": {"tensors": 7, "bytes": cpu.bytes}}


def test_export_json_has_the_memory_key(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(PLACEMENT_SCRIPT)
    out = tmp_path / "g.json"
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--export", str(out), str(script)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["memory"] == {"cpu": {"tensors": 7, "bytes": 4244}}


# --- where tensors live, in every picture of the graph ----------------------------------

STRIPED_SCRIPT = """
import torch
w = torch.randn(3, requires_grad=True)
plan = torch.empty(2, 3, device="meta")
y = (w * 2).sum()
"""


def test_device_colours_tell_the_devices_apart():
    assert device_colour("cpu") is None and device_colour(None) is None
    gpus = [device_colour(f"cuda:{i}") for i in range(4)]
    assert len(set(gpus)) == 4 and device_colour("cuda") == gpus[0]
    assert device_colour("meta") not in gpus and device_colour("mps") not in gpus
    assert device_colour("privateuseone:0")  # a device we do not know still gets a stripe


def test_tensors_off_the_cpu_are_striped_in_the_dot_and_svg_exports():
    """A real tensor on the meta device (a device every torch has): its node carries the
    device's stripe in the .dot and the .svg; the CPU tensors carry none."""
    result = Runner().run(STRIPED_SCRIPT)
    assert result.error is None
    graph = result.graph
    devices_of = {n.name: n.device for n in graph.by_kind("tensor")}
    assert devices_of == {"w": "cpu", "plan": "meta", "y": "cpu"}
    assert graph_devices(graph) == ["meta"]
    meta = device_colour("meta")
    dot = to_dot(graph)
    striped = [line for line in dot.splitlines() if "striped" in line]
    assert len(striped) == 1 and "plan" in striped[0] and f'fillcolor="{meta};0.06:' in striped[0]
    svg = to_svg(graph)
    assert svg.count(f'fill="{meta}"') == 1 and svg.count('stroke="none"') == 1


# --- nn.DataParallel: which replica got which rows ---------------------------------------

EXAMPLE_DP = ROOT / "resources" / "examples" / "32_data_parallel.py"


def test_chunk_rows_are_the_slices_tensor_chunk_cuts():
    for n in range(0, 40):
        for parts in range(1, 9):
            expect, start = [], 0
            for piece in torch.arange(n).chunk(parts) if n else []:
                expect.append([start, start + len(piece)])
                start += len(piece)
            assert chunk_rows(n, parts) == expect, (n, parts)


def test_dataparallel_without_a_gpu_is_recorded_as_the_whole_batch_on_the_cpu():
    """The real path on this machine: the tutorial's DataParallel example, its four
    batches (30, 30, 30, 10 of 100 rows) each given whole to the model on the CPU."""
    result = Runner().run(EXAMPLE_DP.read_text(), str(EXAMPLE_DP))
    assert result.error is None, result.error
    forwards = result.parallel
    assert [f.call for f in forwards] == [1, 2, 3, 4] and {f.calls for f in forwards} == {4}
    assert [f.batch for f in forwards] == [[30, 5], [30, 5], [30, 5], [10, 5]]
    last = forwards[-1]
    assert last.module == "model" and last.device_ids == [] and last.output_device is None
    assert [(r.device, r.shape, r.rows) for r in last.replicas] == [("cpu", [10, 5], [0, 10])]
    assert last.output == [10, 2] and last.output_on == "cpu"
    assert "no GPU here" in parallel_lines(last, 0)[0]
    assert parallel_lines(last, 0)[1] == ("With 2 GPUs the same batch would be cut along dim 0: "
                                          "rows 0–4 to cuda:0, rows 5–9 to cuda:1, and the outputs gathered on cuda:0.")
    assert [f.module for f in decode(*wire(*encode(result)))[0].parallel] == ["model"] * 4


def test_dataparallel_replicas_faked_at_the_function_level():
    """Two replicas without two GPUs: DataParallel's own forward, with its scatter,
    parallel_apply and gather faked on the CPU (as gpustat fakes NVML) and its
    replicate the real `_replicate_for_data_parallel` (replicas share the module's
    hooks: what the tracker relies on). Each replica runs in a thread of its own."""
    code = """
import threading
import torch
from torch import nn

model = nn.DataParallel(nn.Linear(5, 2))
model.device_ids, model.dim, model.output_device = [0, 1], 0, 0
model.src_device_obj = torch.device("cpu")
model.scatter = lambda inputs, kwargs, ids: (tuple((c,) for c in inputs[0].chunk(len(ids))), ({},) * len(ids))

def replicate(module, ids):
    replicas = [module._replicate_for_data_parallel() for _ in ids]
    for r in replicas:
        for key, param in module._parameters.items():
            setattr(r, key, param)  # torch's replicate sets each broadcast copy so
    return replicas

model.replicate = replicate

def apply(replicas, inputs, kwargs):
    outputs = [None] * len(replicas)
    for i, (replica, args) in enumerate(zip(replicas, inputs)):
        worker = threading.Thread(target=lambda i=i, r=replica, a=args: outputs.__setitem__(i, r(*a)))
        worker.start()
        worker.join()
    return outputs

model.parallel_apply = apply
model.gather = lambda outputs, device: torch.cat(outputs)
x = torch.randn(7, 5)
y = model(x)
loss = y.sum()
"""
    result = Runner().run(code, "dp.py")
    assert result.error is None, result.error
    (f,) = result.parallel
    assert f.device_ids == [0, 1] and f.output_device == "cuda:0" and f.batch == [7, 5]
    assert [(r.shape, r.rows) for r in f.replicas] == [([4, 5], [0, 4]), ([3, 5], [4, 7])]
    assert f.output == [7, 2]
    lines = parallel_lines(f, 2)
    assert lines[0] == "model = nn.DataParallel over cuda:0, cuda:1, forward 1 of 1:"
    assert lines[2:] == ["  cpu: rows 0–3 (4, 5)", "  cpu: rows 4–6 (3, 5)",
                         "the outputs were gathered on cpu: (7, 2)"]
    assert {n.name for n in result.graph.by_kind("tensor")} >= {"x", "y", "loss"}


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_dataparallel_over_two_gpus_records_each_replica():
    result = Runner().run(EXAMPLE_DP.read_text(), str(EXAMPLE_DP))
    assert result.error is None, result.error
    first = result.parallel[0]
    n = torch.cuda.device_count()
    assert first.device_ids == list(range(n)) and first.output_on == "cuda:0"
    assert [r.rows for r in first.replicas] == chunk_rows(30, n)
    assert [r.device for r in first.replicas] == [f"cuda:{i}" for i in range(len(first.replicas))]


def test_export_json_has_the_dataparallel_forwards(tmp_path):
    out = tmp_path / "dp.json"
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--export", str(out), str(EXAMPLE_DP)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    forwards = json.loads(out.read_text())["data_parallel"]
    assert [f["batch"] for f in forwards] == [[30, 5], [30, 5], [30, 5], [10, 5]]
    assert forwards[0]["replicas"][0]["rows"] == [0, 30]


# --- the command line ------------------------------------------------------------------

def test_devices_json_command_line():
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--devices", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["format"] == FORMAT == "torchscope.devices/1"
    assert set(d["cpu"]) >= {"model", "cores", "util", "memory_total", "memory_used"}
    assert d["cpu"]["cores"] == os.cpu_count() and 0 <= d["cpu"]["util"] <= 100
    assert d["cpu"]["memory_total"] == psutil.virtual_memory().total
    assert set(d["process"]) == {"pid", "rss"} and d["process"]["rss"] > 50 * MB  # it imported torch
    assert isinstance(d["cuda"], list)
    for g in d["cuda"]:
        assert set(g) >= {"index", "name", "memory_total", "memory_used", "util", "temperature", "power",
                          "torch_allocated", "torch_reserved", "processes"}
    assert (d["cuda_error"] is None) == (not NO_GPU)


def test_devices_table_command_line():
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--devices"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "| CPU " in proc.stdout and "| RAM " in proc.stdout
    if NO_GPU:
        assert "No NVIDIA GPU can be used here" in proc.stdout or "torch cannot use them" in proc.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "main.py"), "--json"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "--json needs --devices" in bad.stderr


def test_devices_module_is_the_one_serve_loads():
    from core.kernel import serve
    assert devices in serve.EXTENSIONS
