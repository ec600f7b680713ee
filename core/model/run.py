"""What one request to the kernel gives back: a run of the script, a recorded
backward, or zeroed grads all answer with a RunResult."""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field

from .backward import BackwardTrace, GradInfo
from .graph import Graph
from .tensors import TensorValues


@dataclass
class RunError:
    type: str  # "SyntaxError", "ZeroDivisionError", "KeyboardInterrupt", "ScriptTimeout"
    message: str
    line: int | None  # 1-based line in the script, None when the error is not in it
    phase: str = "run"  # "run", "backward" or "trace"
    traceback: str = ""
    note: str = ""  # what the run adds to the message (a CUDA out-of-memory: what the script's tensors hold)

    def one_line(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        return f"{where}: {self.type}: {self.message}"


@dataclass
class KernelInfo:
    """The Python process that ran the script: an attached kernel, or the headless
    export's child process. The export writes it as `"kernel"`."""
    pid: int
    hostname: str
    python: str  # "3.11.9"
    torch: str

    @classmethod
    def of_this_process(cls, torch_version: str) -> KernelInfo:
        return cls(os.getpid(), socket.gethostname(), sys.version.split()[0], torch_version)


@dataclass
class RunResult:
    graph: Graph | None
    values: dict[str, TensorValues] = field(default_factory=dict)  # tensor node id -> values
    stdout: str = ""
    stderr: str = ""
    error: RunError | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds: exec, data, trace, values
    backward: BackwardTrace | None = None  # the script's own backward, or the one asked for
    # Every backward()/autograd.grad() call the script made that was recorded, in call
    # order (the first 99 and the latest; trace.call says which): what the window
    # offers to pick from. The script's latest call is `backward` itself (the same
    # object) unless a backward was asked for. Steps of older calls whose node is no
    # longer drawn have node "".
    backward_calls: list[BackwardTrace] = field(default_factory=list)
    grad_history: dict[str, list[GradInfo | None]] = field(default_factory=dict)  # leaf -> .grad after each Backward (None: zeroed)
    cwd: str = ""  # the folder the script ran in
    data: list = field(default_factory=list)  # DataInfo of each Dataset/DataLoader/transform (core.model.data)
    kernel: KernelInfo | None = None  # the process that ran it (set by the headless export)
    tensor_view: object | None = None  # --tensor NAME: a core.model.tensor_view.TensorView
    parallel: list = field(default_factory=list)  # core.model.devices.ParallelForward: nn.DataParallel forwards
