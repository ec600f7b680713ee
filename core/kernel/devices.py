"""Kernel side of the devices panel: what the machine the kernel runs on has, and what
it is doing, read where the GPUs are.

`Probe` reads the devices: the CPU and RAM through psutil, each NVIDIA GPU through
NVML (nvidia-ml-py: `import pynvml`), torch's own counters through torch.cuda and
torch.mps. It never initializes CUDA itself (that would put a context of several
hundred MB on the GPU and change the torch state every run starts from): torch's
counters are read only once the script has used the GPU, and are a true 0 before.

NVML is read as nvitop and gpustat read it: any single query may raise
`NVMLError_NotSupported` (no power reading on many boards, no utilization on some),
a process's `usedGpuMemory` may be None (Windows' WDDM, MIG), and the PIDs NVML lists
are the host's, which a kernel in a container cannot see (its own PID is then not
among them). Each of these leaves that one number None, with a note why; never 0.

`Sampler` is a daemon thread that pushes a `DeviceSample` over the Comm every
1/rate s, independent of the kernel's shell: it keeps going while a script runs. A
`SamplerRequest` starts, pauses or paces it.
"""
from __future__ import annotations

import os
import platform
import socket
import threading
import time

import numpy as np
import psutil
import torch

from ..model.devices import (CpuInfo, DeviceInventory, DeviceSample, DeviceSamples, GpuInfo, GpuProcess,
                             GpuSample, SamplerReply, SamplerRequest, clamp_rate)

try:
    import pynvml  # the nvidia-ml-py package
except ImportError as exc:  # noqa: F841 - kept for the reason
    pynvml = None
    _PYNVML_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _PYNVML_IMPORT_ERROR = ""

PUSH_PERIOD_S = 0.5  # samples go out in batches about this often (at 10 Hz: 5 a message),
# which spares the kernel and the window most messages (the panel redraws once a second)
WINDOW_RSS_TTL = 1.0  # s: the window's RSS is read at most this often
PROCESSES_TTL = 2.0  # s: NVML's process lists are the slow query (nvitop caches them 2 s too)


def _nvml_reason(exc: BaseException) -> str:
    """NVML's failure in words a user can act on, then the real exception."""
    name = type(exc).__name__
    plain = {
        "NVMLError_LibraryNotFound": "no NVIDIA driver is installed",
        "NVMLError_DriverNotLoaded": "the NVIDIA driver is installed but not loaded",
        "NVMLError_NoPermission": "this user may not query the NVIDIA driver",
        "NVMLError_LibRmVersionMismatch": "the NVIDIA driver was updated without a reboot",
    }.get(name, "the NVIDIA driver could not be queried")
    return f"{plain} (NVML: {name}: {exc})"


def _torch_cuda_reason() -> str:
    """Why torch cannot use CUDA: the exception torch.cuda.init() raises."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) was built without CUDA"
    try:
        torch.cuda.init()
    except Exception as exc:  # noqa: BLE001 - the reason is the message
        text = str(exc).split(". Please")[0].strip()
        return f"{type(exc).__name__}: {text}"
    return "torch.cuda.is_available() is False"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "Processor")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cuda_to_nvml() -> list[int] | None:
    """NVML index of each CUDA index, from CUDA_VISIBLE_DEVICES (numbers only; None:
    the same numbering, or UUIDs, which are matched later)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    parts = [p.strip() for p in visible.split(",") if p.strip()]
    if all(p.isdigit() for p in parts):
        return [int(p) for p in parts]
    return None


class Probe:
    """Reads the devices. `inventory()` once, `sample()` as often as wanted (each
    ≤ 1 ms on a quiet machine: a few /proc reads and, with GPUs, a few NVML calls)."""

    def __init__(self):
        self.pid = os.getpid()
        self.process = psutil.Process(self.pid)
        self.nvml_error: str | None = None
        self.handles: list = []  # NVML handle per CUDA index
        self._init_nvml()
        self.cuda_error: str | None = None
        self._inventory: DeviceInventory | None = None
        self._window: psutil.Process | None = None
        self._window_pid: int | None = None
        self._window_read: tuple[float, int | None] = (0.0, None)  # (when, rss)
        self._cpu_last = psutil.cpu_times(percpu=True)
        self._proc_last = (time.monotonic(), sum(self.process.cpu_times()[:2]))
        self._processes: dict[int, tuple[float, list[GpuProcess], str | None]] = {}

    # --- NVML -------------------------------------------------------------------
    def _init_nvml(self) -> None:
        if pynvml is None:
            self.nvml_error = f"nvidia-ml-py is not installed ({_PYNVML_IMPORT_ERROR})"
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            order = _cuda_to_nvml() or list(range(count))
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in order if i < count]
        except Exception as exc:  # noqa: BLE001 - NVMLError and its kin: the reason is shown
            self.nvml_error = _nvml_reason(exc)
            self.handles = []

    @staticmethod
    def _query(notes: dict, key: str, fn, *args):
        """One NVML query; None and a note on failure (NotSupported, lost GPU, …)."""
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001
            notes[key] = "not supported by this GPU" if _not_supported(exc) else f"{type(exc).__name__}: {exc}"
            return None

    # --- what the machine has ---------------------------------------------------------
    def inventory(self) -> DeviceInventory:
        if self._inventory is not None:
            return self._inventory
        vm = psutil.virtual_memory()
        cpu = CpuInfo(cpu_model(), psutil.cpu_count(logical=True) or 1, psutil.cpu_count(logical=False),
                      int(vm.total))
        gpus: list[GpuInfo] = []
        available = torch.cuda.is_available()
        driver = None
        if self.handles:
            driver = self._query({}, "driver", pynvml.nvmlSystemGetDriverVersion)
            driver = driver.decode() if isinstance(driver, bytes) else driver
        for i, h in enumerate(self.handles):
            notes: dict = {}
            name = self._query(notes, "name", pynvml.nvmlDeviceGetName, h)
            name = name.decode() if isinstance(name, bytes) else name
            mem = self._query(notes, "memory", pynvml.nvmlDeviceGetMemoryInfo, h)
            cap = self._query(notes, "capability", pynvml.nvmlDeviceGetCudaComputeCapability, h)
            uuid = self._query(notes, "uuid", pynvml.nvmlDeviceGetUUID, h)
            nvml_index = self._query(notes, "index", pynvml.nvmlDeviceGetIndex, h)
            gpus.append(GpuInfo(i, name or f"GPU {i}", int(mem.total) if mem is not None else None,
                                f"{cap[0]}.{cap[1]}" if cap else None, driver,
                                uuid.decode() if isinstance(uuid, bytes) else uuid, nvml_index))
        if not gpus and available and torch.cuda.is_initialized():  # NVML missing, torch sees GPUs
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                gpus.append(GpuInfo(i, p.name, int(p.total_memory), f"{p.major}.{p.minor}", None))
        elif not gpus and available:
            gpus = [GpuInfo(i, f"CUDA device {i}", None, None, None) for i in range(torch.cuda.device_count())]
        if not available:
            self.cuda_error = self._no_gpu_reason()
        elif self.nvml_error:
            self.cuda_error = None  # torch can use the GPU; only NVML's live figures are missing
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        self._inventory = DeviceInventory(socket.gethostname(), self.pid, cpu, gpus, self.cuda_error, mps,
                                          torch.__version__)
        return self._inventory

    def _no_gpu_reason(self) -> str:
        why = _torch_cuda_reason()
        if self.handles:
            return (f"This machine has {len(self.handles)} NVIDIA GPU(s), but torch cannot use them, so "
                    f"scripts run on the CPU (torch: {why}).")
        plain, _, detail = (self.nvml_error or "NVML found no GPU").partition(" (")
        detail = f"{detail[:-1]}; " if detail else ""
        return (f"No NVIDIA GPU can be used here: {plain}. Scripts run on the CPU; "
                f"`.to('cuda')` would fail. ({detail}torch.cuda.is_available() is False: {why})")

    # --- what it is doing ----------------------------------------------------------
    def set_window(self, pid: int | None, host: str = "") -> None:
        if host and host != socket.gethostname():
            pid = None  # a window on another machine: its pid is not ours to read
        if pid == self._window_pid:
            return
        self._window_pid, self._window, self._window_read = pid, None, (0.0, None)
        if pid:
            try:
                self._window = psutil.Process(pid)
            except (psutil.Error, OSError):  # another machine's pid, or gone
                self._window = None

    def sample(self) -> DeviceSample:
        t0 = time.perf_counter()
        inventory = self.inventory()
        now_cpu = psutil.cpu_times(percpu=True)
        per_core = np.array([_busy_percent(a, b) for a, b in zip(self._cpu_last, now_cpu)], dtype=np.float32)
        self._cpu_last = now_cpu
        vm = psutil.virtual_memory()
        with self.process.oneshot():
            rss = int(self.process.memory_info().rss)
            cpu_t = sum(self.process.cpu_times()[:2])
        wall = time.monotonic()
        last_wall, last_cpu = self._proc_last
        kernel_cpu = 100.0 * (cpu_t - last_cpu) / (wall - last_wall) if wall > last_wall else None
        self._proc_last = (wall, cpu_t)
        window_rss = None
        if self._window is not None:
            if wall - self._window_read[0] >= WINDOW_RSS_TTL:
                try:
                    self._window_read = (wall, int(self._window.memory_info().rss))
                except (psutil.Error, OSError):
                    self._window, self._window_read = None, (0.0, None)
            window_rss = self._window_read[1]
        gpus = [self._gpu_sample(info.index) for info in inventory.cuda]
        mps_allocated = None
        if inventory.mps:
            try:
                mps_allocated = int(torch.mps.current_allocated_memory())
            except Exception:  # noqa: BLE001 - an older torch without the counter
                mps_allocated = None
        sample = DeviceSample(time.time(), per_core, int(vm.total - vm.available), int(vm.total), rss,
                              kernel_cpu, window_rss, gpus, mps_allocated)
        sample.cost_ms = (time.perf_counter() - t0) * 1000.0
        return sample

    def _gpu_sample(self, index: int) -> GpuSample:
        g = GpuSample(index)
        notes = g.notes
        if index < len(self.handles):
            h = self.handles[index]
            mem = self._query(notes, "memory", pynvml.nvmlDeviceGetMemoryInfo, h)
            if mem is not None:
                g.memory_used, g.memory_total = int(mem.used), int(mem.total)
            util = self._query(notes, "util", pynvml.nvmlDeviceGetUtilizationRates, h)
            g.util = float(util.gpu) if util is not None else None
            temp = self._query(notes, "temperature", pynvml.nvmlDeviceGetTemperature, h,
                               pynvml.NVML_TEMPERATURE_GPU)
            g.temperature = float(temp) if temp is not None else None
            power = self._query(notes, "power", pynvml.nvmlDeviceGetPowerUsage, h)
            g.power = power / 1000.0 if power is not None else None  # mW
            limit = self._query(notes, "power_limit", pynvml.nvmlDeviceGetEnforcedPowerLimit, h)
            g.power_limit = limit / 1000.0 if limit is not None else None
            g.processes, own_note = self._gpu_processes(index, h)
            own = [p for p in g.processes if p.pid == self.pid]
            if own:
                g.process_memory = own[0].memory
                if own[0].memory is None:
                    notes["process_memory"] = "NVML does not report per-process memory here (WDDM or MIG)"
            elif own_note:
                notes["process_memory"] = own_note
            elif not self._cuda_used():
                g.process_memory = 0  # the kernel has not touched the GPU: it truly holds nothing there
            else:
                notes["process_memory"] = ("the kernel's PID is not among NVML's processes (a container "
                                           "sees other PIDs than the host)")
        else:
            notes["util"] = self.nvml_error or "NVML is not available"
        self._torch_counters(g, index)
        return g

    def _gpu_processes(self, index: int, handle) -> tuple[list[GpuProcess], str | None]:
        """The compute and graphics processes on a GPU, cached PROCESSES_TTL s."""
        now = time.monotonic()
        cached = self._processes.get(index)
        if cached is not None and now - cached[0] < PROCESSES_TTL:
            return cached[1], cached[2]
        found: dict[int, GpuProcess] = {}
        note = None
        for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                listed = getattr(pynvml, fn)(handle)
            except Exception as exc:  # noqa: BLE001
                if fn == "nvmlDeviceGetComputeRunningProcesses":  # where a CUDA kernel would be listed
                    note = ("NVML cannot list the processes on this GPU (not supported)" if _not_supported(exc)
                            else f"{type(exc).__name__}: {exc}")
                continue
            for p in listed:
                memory = p.usedGpuMemory if isinstance(p.usedGpuMemory, int) else None
                if p.pid in found and found[p.pid].memory is not None:
                    continue
                found[p.pid] = GpuProcess(int(p.pid), memory)
        processes = sorted(found.values(), key=lambda p: p.pid)
        self._processes[index] = (now, processes, note)
        return processes, note

    @staticmethod
    def _cuda_used() -> bool:
        return torch.cuda.is_available() and torch.cuda.is_initialized()

    def _torch_counters(self, g: GpuSample, index: int) -> None:
        if not torch.cuda.is_available():
            g.notes["torch"] = "torch.cuda.is_available() is False"
            return
        if not torch.cuda.is_initialized():  # nothing allocated yet; do not make a context
            g.torch_allocated = g.torch_reserved = g.torch_peak = 0
            return
        try:
            g.torch_allocated = int(torch.cuda.memory_allocated(index))
            g.torch_reserved = int(torch.cuda.memory_reserved(index))
            g.torch_peak = int(torch.cuda.max_memory_allocated(index))
        except Exception as exc:  # noqa: BLE001 - a device torch cannot see
            g.notes["torch"] = f"{type(exc).__name__}: {exc}"


def _not_supported(exc: BaseException) -> bool:
    cls = getattr(pynvml, "NVMLError_NotSupported", None)
    return (cls is not None and isinstance(exc, cls)) or type(exc).__name__ == "NVMLError_NotSupported"


def _busy_percent(a, b) -> float:
    """% of the time a core was busy between two psutil.cpu_times samples (as psutil
    and top count it: everything but idle and iowait)."""
    idle_a = a.idle + getattr(a, "iowait", 0.0)
    idle_b = b.idle + getattr(b, "iowait", 0.0)
    total = sum(b) - sum(a)
    # guest time is already inside user on Linux
    for name in ("guest", "guest_nice"):
        total -= getattr(b, name, 0.0) - getattr(a, name, 0.0)
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * (total - (idle_b - idle_a)) / total))


class Sampler:
    """A daemon thread pushing a DeviceSample every 1/rate s through `send`, while
    running. It never blocks the kernel's shell and keeps going while a script runs."""

    def __init__(self, send, probe: Probe | None = None):
        self.send = send
        self.probe = probe  # made on the first request: nothing is read before the panel asks
        self.rate_hz = 5.0
        self.running = False
        self.failures = 0
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def control(self, request: SamplerRequest) -> SamplerReply:
        with self._lock:
            if self.probe is None:
                self.probe = Probe()
            self.rate_hz = clamp_rate(request.rate_hz)
            self.running = bool(request.running)
            self.probe.set_window(request.window_pid, request.window_host)
            sample = self.probe.sample()
            if self.running and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._loop, name="torchscope-devices", daemon=True)
                self._thread.start()
        self._wake.set()
        return SamplerReply(self.probe.inventory(), sample, self.running, self.rate_hz)

    def _loop(self) -> None:
        batch: list[DeviceSample] = []
        while True:
            if not self.running:
                batch = []
                self._wake.wait()
                self._wake.clear()
                continue
            self._wake.wait(1.0 / self.rate_hz)
            self._wake.clear()
            if not self.running:
                continue
            try:
                with self._lock:
                    batch.append(self.probe.sample())
                if len(batch) >= max(1, round(PUSH_PERIOD_S * self.rate_hz)):
                    self.send(DeviceSamples(batch))
                    batch = []
                self.failures = 0
            except Exception:  # noqa: BLE001 - the comm closed, a probe failed: try a few times
                batch = []
                self.failures += 1
                if self.failures > 20:
                    self.running = False


def handlers(endpoint) -> dict:
    """{request type: handler(request) -> reply} for serve.Endpoint."""
    sampler = Sampler(endpoint.send)
    endpoint.sampler = sampler
    return {SamplerRequest: sampler.control}
