"""Devices and their samples as they cross the wire (no torch): what the devices
panel draws. MESSAGES lists the types the protocol may carry; REPLY_TO pairs each
request with its reply.

The kernel describes the machine it runs on once (`DeviceInventory`: the CPU, each
CUDA GPU, MPS) and then pushes a `DeviceSample` a few times a second from a thread of
its own (`core.kernel.devices.Sampler`), started, paused and paced by a
`SamplerRequest`. A number the machine cannot give is None, never 0: a GPU without
power readings, a process whose GPU memory NVML does not report, torch's counters
where there is no GPU. Where a None needs a reason, `notes` says it in words.

`placement` and `memory_by_device` say where the script's tensors live, from the
graph's tensor nodes alone: per device, the named tensors and parameters on it and
their bytes, each storage counted once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FORMAT = "torchscope.devices/1"
MIN_RATE_HZ, MAX_RATE_HZ = 2.0, 10.0


# --- what the machine has (sent once) ---------------------------------------------------

@dataclass
class CpuInfo:
    model: str
    cores: int  # logical cores (what the per-core plot shows)
    physical_cores: int | None
    memory_total: int  # bytes of RAM


@dataclass
class GpuInfo:
    index: int  # the CUDA index: `cuda:{index}` in a script
    name: str
    memory_total: int | None  # bytes
    capability: str | None  # "9.0"
    driver: str | None  # the NVIDIA driver version
    uuid: str | None = None
    nvml_index: int | None = None  # NVML's own numbering (CUDA_VISIBLE_DEVICES may differ)


@dataclass
class DeviceInventory:
    hostname: str
    pid: int  # the kernel's process
    cpu: CpuInfo
    cuda: list[GpuInfo] = field(default_factory=list)
    cuda_error: str | None = None  # why no GPU can be used, in plain words with the real exception
    mps: bool = False  # Apple's Metal GPU is available to torch
    torch: str = ""


# --- what it is doing (pushed a few times a second) ---------------------------------------

@dataclass
class GpuProcess:
    pid: int
    memory: int | None  # bytes; None where NVML does not report it (WDDM, MIG, some containers)


@dataclass
class GpuSample:
    index: int
    util: float | None = None  # % of the time a kernel ran on it
    memory_used: int | None = None  # bytes, every process together
    memory_total: int | None = None
    temperature: float | None = None  # °C
    power: float | None = None  # W
    power_limit: float | None = None  # W
    process_memory: int | None = None  # the kernel's own memory on it (NVML), bytes
    processes: list[GpuProcess] = field(default_factory=list)
    torch_allocated: int | None = None  # torch.cuda in the kernel, bytes
    torch_reserved: int | None = None
    torch_peak: int | None = None
    notes: dict[str, str] = field(default_factory=dict)  # field -> why it is None


@dataclass
class DeviceSample:
    time: float  # seconds since the epoch, the kernel's clock
    cpu_percent: np.ndarray  # float32, one per logical core, 0..100
    memory_used: int  # bytes of RAM in use, the whole machine
    memory_total: int
    kernel_rss: int  # the kernel's resident memory, bytes
    kernel_cpu: float | None = None  # % of one core, since the previous sample
    window_rss: int | None = None  # the window's, when it said its pid and runs on the same machine
    gpus: list[GpuSample] = field(default_factory=list)
    mps_allocated: int | None = None  # torch.mps.current_allocated_memory()
    cost_ms: float = 0.0  # what taking this sample cost the kernel

    @property
    def cpu_mean(self) -> float:
        return float(self.cpu_percent.mean()) if self.cpu_percent.size else 0.0


@dataclass
class DeviceSamples:
    """What the sampler pushes: the samples taken since its last push, oldest first."""
    samples: list[DeviceSample]


# --- the requests -----------------------------------------------------------------------

@dataclass
class SamplerRequest:
    """Start (running=True) or pause the kernel's sampler, at `rate_hz` (clamped to
    2..10). The window says its own pid so the kernel can report its RSS too."""
    running: bool = True
    rate_hz: float = 5.0
    window_pid: int | None = None
    window_host: str = ""  # the pid means nothing on another machine


@dataclass
class SamplerReply:
    inventory: DeviceInventory
    sample: DeviceSample  # one taken now: the panel has numbers at once
    running: bool
    rate_hz: float


# --- nn.DataParallel forwards as they ran --------------------------------------------------

@dataclass
class ReplicaSlice:
    """What one replica of a DataParallel's module got in one forward."""
    device: str  # where its input was: "cuda:1" (or "cpu" when nothing was split)
    shape: list[int]  # its first tensor argument's shape
    rows: list[int]  # [start, stop) of the batch along the scatter dim


@dataclass
class ParallelForward:
    """One forward through an nn.DataParallel (`core.kernel.parallel`)."""
    module: str  # as the script names it: "model" ("DataParallel" for an unnamed one)
    call: int  # which forward of this module, from 1
    calls: int  # its forwards in the whole run
    device_ids: list[int]  # [] without a GPU: DataParallel then calls the module itself
    output_device: str | None
    dim: int  # the batch is cut along this dim
    batch: list[int] | None  # the first tensor argument's shape (None: no tensor argument)
    replicas: list[ReplicaSlice]  # in device_ids order
    output: list[int] | None = None  # the gathered output's shape (its first tensor)
    output_on: str | None = None


def chunk_rows(n: int, parts: int) -> list[list[int]]:
    """[start, stop) of each slice `Tensor.chunk(parts)` cuts `n` rows into (what
    DataParallel's scatter does): slices of ceil(n / parts), the last one shorter, and
    fewer than `parts` when there are not enough rows."""
    if n <= 0 or parts <= 0:
        return []
    size = -(-n // parts)
    return [[start, min(start + size, n)] for start in range(0, n, size)]


MESSAGES: tuple = (CpuInfo, GpuInfo, DeviceInventory, GpuProcess, GpuSample, DeviceSample, DeviceSamples,
                   SamplerRequest, SamplerReply, ReplicaSlice, ParallelForward)
REPLY_TO: dict = {SamplerRequest: SamplerReply}


def clamp_rate(hz: float) -> float:
    try:
        hz = float(hz)
    except (TypeError, ValueError):
        return 5.0
    if hz != hz:  # nan
        return 5.0
    return min(MAX_RATE_HZ, max(MIN_RATE_HZ, hz))


# --- where the tensors live -------------------------------------------------------------

ITEMSIZE = {"bool": 1, "uint8": 1, "int8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
            "int64": 8, "uint64": 8, "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8,
            "complex32": 4, "complex64": 8, "complex128": 16, "float8_e4m3fn": 1, "float8_e5m2": 1,
            "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1, "quint8": 1, "qint8": 1, "qint32": 4}


def tensor_bytes(shape: list[int], dtype: str, element_size: int | None = None) -> int:
    """numel × element size: the bytes of the tensor's own elements."""
    n = 1
    for s in shape:
        n *= int(s)
    return n * (element_size or ITEMSIZE.get(dtype, 4))


@dataclass
class PlacedTensor:
    node_id: str
    name: str
    shape: list[int]
    dtype: str
    bytes: int  # its own elements
    storage_bytes: int  # the storage behind it (a view's is its base's)
    shares_with: list[str] = field(default_factory=list)  # named tensors on the same storage


@dataclass
class DevicePlacement:
    device: str  # "cpu", "cuda:0", "mps:0", "meta"
    tensors: list[PlacedTensor]
    bytes: int  # every storage on it counted once

    @property
    def count(self) -> int:
        return len(self.tensors)


def _storage_key(node) -> str | None:
    """The graph's key equal for the tensors sharing one storage (None: none known)."""
    key = getattr(node, "storage", None)
    return str(key) if key else None


def _device_order(device: str) -> tuple:
    kind, _, index = device.partition(":")
    return (kind != "cpu", kind, int(index) if index.isdigit() else -1)


def placement(graph) -> list[DevicePlacement]:
    """Per device (cpu first), the named tensors and parameters of `graph` on it and
    their bytes, each storage counted once (a view and its base hold one storage;
    a tensor bound to two names is one node)."""
    if graph is None:
        return []
    by_device: dict[str, list] = {}
    for n in graph.nodes:
        if n.kind == "tensor" and n.name:
            by_device.setdefault(n.device, []).append(n)
    out = []
    for device in sorted(by_device, key=_device_order):
        nodes = by_device[device]
        names_by_key: dict[str, list[str]] = {}
        bytes_by_key: dict[str, int] = {}
        total = 0
        tensors = []
        for n in nodes:
            own = 0 if device == "meta" else tensor_bytes(n.shape, n.dtype, n.element_size)
            size = own if n.storage_bytes is None else int(n.storage_bytes)
            key = _storage_key(n)
            if key is None:
                total += size
            else:
                names_by_key.setdefault(key, []).append(n.name)
                bytes_by_key[key] = max(bytes_by_key.get(key, 0), size)
            tensors.append(PlacedTensor(n.id, n.name, list(n.shape), n.dtype, own, size, list(n.aliases)))
        for t, n in zip(tensors, nodes):
            key = _storage_key(n)
            if key is not None:
                t.shares_with = [m for m in names_by_key[key] if m != n.name] + t.shares_with
        out.append(DevicePlacement(device, tensors, total + sum(bytes_by_key.values())))
    return out


def memory_by_device(graph) -> dict[str, dict[str, int]]:
    """The export's `"memory"` key: {device: {"tensors": n, "bytes": b}}."""
    return {p.device: {"tensors": p.count, "bytes": p.bytes} for p in placement(graph)}


def sample_to_dict(inventory: DeviceInventory, sample: DeviceSample) -> dict:
    """One sample as `torchscope.devices/1` (bytes and percents as numbers)."""
    gpus = {g.index: g for g in sample.gpus}
    cuda = []
    for info in inventory.cuda:
        g = gpus.get(info.index, GpuSample(info.index))
        cuda.append({
            "index": info.index, "name": info.name,
            "memory_total": g.memory_total if g.memory_total is not None else info.memory_total,
            "memory_used": g.memory_used, "util": g.util, "temperature": g.temperature,
            "power": g.power, "torch_allocated": g.torch_allocated, "torch_reserved": g.torch_reserved,
            "processes": [{"pid": p.pid, "memory": p.memory} for p in g.processes],
            "capability": info.capability, "driver": info.driver, "process_memory": g.process_memory,
            "torch_peak": g.torch_peak, "notes": dict(g.notes)})
    return {
        "format": FORMAT,
        "hostname": inventory.hostname,
        "cpu": {"model": inventory.cpu.model, "cores": inventory.cpu.cores,
                "util": round(sample.cpu_mean, 1),
                "util_per_core": [round(float(c), 1) for c in sample.cpu_percent],
                "memory_total": sample.memory_total, "memory_used": sample.memory_used},
        "process": {"pid": inventory.pid, "rss": sample.kernel_rss},
        "cuda": cuda,
        "cuda_error": inventory.cuda_error,
        "mps": {"available": inventory.mps, "allocated": sample.mps_allocated},
        "torch": inventory.torch,
    }


# --- words ---------------------------------------------------------------------------------

def format_bytes(n: int | None) -> str:
    """Bytes as a person reads them (binary units, as nvidia-smi and torch print them)."""
    if n is None:
        return "n/a"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _cell(value, unit: str = "", digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def devices_table(inventory: DeviceInventory, sample: DeviceSample) -> str:
    """One table like nvidia-smi's: the CPU, the RAM, this process, each GPU (or the
    reason there is none)."""
    cpu = inventory.cpu
    width = 78
    rule = "+" + "-" * (width - 2) + "+"

    def row(text: str) -> str:
        return f"| {text:<{width - 4}} |"

    lines = [f"Torchscope devices on {inventory.hostname} (torch {inventory.torch})", rule,
             row(f"CPU   {cpu.model}, {cpu.cores} cores"
                 + (f" ({cpu.physical_cores} physical)" if cpu.physical_cores else "")),
             row(f"      util {sample.cpu_mean:5.1f} %   per core: "
                 + " ".join(f"{c:.0f}" for c in sample.cpu_percent[:16])
                 + (" …" if sample.cpu_percent.size > 16 else "")),
             row(f"RAM   {format_bytes(sample.memory_used)} / {format_bytes(sample.memory_total)} used "
                 f"({100.0 * sample.memory_used / max(sample.memory_total, 1):.0f} %)"),
             row(f"this process   pid {inventory.pid}, RSS {format_bytes(sample.kernel_rss)}"), rule]
    if inventory.cuda:
        lines.append(row(f"{'GPU':>3}  {'Name':<24} {'Util':>5} {'Memory used / total':>23} "
                         f"{'Temp':>5} {'Power':>6}"))
        gpus = {g.index: g for g in sample.gpus}
        for info in inventory.cuda:
            g = gpus.get(info.index, GpuSample(info.index))
            total = g.memory_total if g.memory_total is not None else info.memory_total
            memory = f"{format_bytes(g.memory_used)} / {format_bytes(total)}"
            lines.append(row(f"{info.index:>3}  {info.name[:24]:<24} {_cell(g.util, ' %'):>5} {memory:>23} "
                             f"{_cell(g.temperature, ' C'):>5} {_cell(g.power, ' W'):>6}"))
            extra = [f"capability {info.capability}" if info.capability else "",
                     f"driver {info.driver}" if info.driver else "",
                     f"torch allocated {format_bytes(g.torch_allocated)}, reserved "
                     f"{format_bytes(g.torch_reserved)}" if g.torch_allocated is not None else ""]
            lines.append(row("     " + ", ".join(e for e in extra if e)))
            for p in g.processes:
                lines.append(row(f"       pid {p.pid:<8} {format_bytes(p.memory)}"
                                 + ("  (this process)" if p.pid == inventory.pid else "")))
            for key, note in g.notes.items():
                lines.append(row(f"     {key}: {note}"[:width - 4]))
        lines.append(rule)
    if inventory.cuda_error:
        lines.append(inventory.cuda_error)
    if inventory.mps:
        lines.append(f"Apple MPS: available, torch allocated {format_bytes(sample.mps_allocated)}")
    return "\n".join(lines)
