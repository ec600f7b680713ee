"""Torch's process-wide state between runs of a script.

A kernel runs script after script in one process, so whatever one run sets in
torch would be there for the next: `torch.set_grad_enabled(False)` would leave
every later graph without a grad_fn. `TorchState` puts the settings back before
each run; `Leftovers` notes what cannot be put back (a replaced method of
torch.Tensor, a thread still running) in the run's stderr.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

RESTART = "until Kernel → Restart"
WATCHED_CLASSES = {"torch.Tensor": torch.Tensor, "torch.nn.Module": torch.nn.Module}


def _default_device() -> torch.device | None:
    device = torch.get_default_device()
    return None if device == torch.device("cpu") else device


def _cudnn_flags() -> tuple[bool, bool, bool]:
    cudnn = torch.backends.cudnn
    return bool(cudnn.benchmark), bool(cudnn.deterministic), bool(cudnn.enabled)


def _print_options() -> dict:
    return dict(torch._tensor_str.get_printoptions())


def _mode_stacks() -> tuple[int, int]:
    return torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()


# Inference mode has no setter, only guards that put back, when they go, what they
# found. The one that holds it off lives as long as the process: were it freed with
# a Runner, inference mode would come back on.
_inference_off: torch.inference_mode | None = None


def _inference_mode_off() -> None:
    global _inference_off
    if not torch.is_inference_mode_enabled():
        return
    _inference_off = None  # an older guard first (it puts back "on", which it found)
    if torch.is_inference_mode_enabled():  # a script left a guard of its own alive
        _inference_off = torch.inference_mode(False)
        _inference_off.__enter__()


def _trim(length, pop, keep: int) -> None:
    """Pop modes a script entered and never left, down to `keep` of them."""
    while length() > keep:
        before = length()
        pop()
        if length() >= before:
            return


@dataclass
class TorchState:
    """The settings a run starts from. Grad mode on, inference mode off, float32,
    no default device, anomaly detection and deterministic algorithms off, always;
    the number of threads, cuDNN flags, matmul precision, print options and torch
    mode stacks as they were when `capture()` was called (when the Runner was made)."""

    num_threads: int
    cudnn: tuple[bool, bool, bool]  # benchmark, deterministic, enabled
    float32_matmul_precision: str
    print_options: dict
    mode_stacks: tuple[int, int]  # torch function modes, torch dispatch modes
    grad_enabled: bool = True
    default_dtype: torch.dtype = torch.float32
    default_device: torch.device | None = None
    anomaly: tuple[bool, bool] = (False, True)  # enabled, check_nan
    deterministic: tuple[bool, bool] = (False, False)  # enabled, warn_only

    @classmethod
    def capture(cls) -> TorchState:
        return cls(num_threads=torch.get_num_threads(), cudnn=_cudnn_flags(),
                   float32_matmul_precision=torch.get_float32_matmul_precision(),
                   print_options=_print_options(), mode_stacks=_mode_stacks())

    def restore(self) -> None:
        """Put every setting back; each is only set where it differs (cheap)."""
        if _default_device() != self.default_device:
            torch.set_default_device(self.default_device)
        _trim(torch._C._len_torch_function_stack, torch._C._pop_torch_function_stack,
              self.mode_stacks[0])
        _trim(torch._C._len_torch_dispatch_stack, torch._C._pop_torch_dispatch_stack,
              self.mode_stacks[1])
        _inference_mode_off()
        if torch.is_grad_enabled() != self.grad_enabled:
            torch.set_grad_enabled(self.grad_enabled)
        if torch.get_default_dtype() != self.default_dtype:
            torch.set_default_dtype(self.default_dtype)
        if (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()) != self.anomaly:
            torch.set_anomaly_enabled(*self.anomaly)
        if (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) != self.deterministic:
            torch.use_deterministic_algorithms(self.deterministic[0],
                                               warn_only=self.deterministic[1])
        if torch.get_num_threads() != self.num_threads:
            torch.set_num_threads(self.num_threads)
        if _cudnn_flags() != self.cudnn:
            cudnn = torch.backends.cudnn
            cudnn.benchmark, cudnn.deterministic, cudnn.enabled = self.cudnn
        if torch.get_float32_matmul_precision() != self.float32_matmul_precision:
            torch.set_float32_matmul_precision(self.float32_matmul_precision)
        if _print_options() != self.print_options:
            torch.set_printoptions(**self.print_options)


def class_attributes() -> dict[str, dict[str, Any]]:
    """What torch.Tensor and torch.nn.Module hold now: 'torch.Tensor' -> {name: value}."""
    return {name: dict(vars(cls)) for name, cls in WATCHED_CLASSES.items()}


class Leftovers:
    """What a script changes that a run cannot put back: methods of torch.Tensor or
    torch.nn.Module it replaced, added or deleted (against what they held when this
    was made), threads it started that are still running. `notes()` says each once
    per run, for as long as it lasts."""

    def __init__(self):
        self.original = class_attributes()
        self.before: dict[str, dict[str, Any]] = self.original
        self.threads_before: set[threading.Thread] = set()
        self.script_threads: list[threading.Thread] = []  # started by earlier runs

    def run_starts(self) -> None:
        self.before = class_attributes()
        self.threads_before = set(threading.enumerate())

    def notes(self) -> list[str]:
        """One line per leftover, for the run's stderr."""
        return self._class_notes() + self._thread_notes()

    def _class_notes(self) -> list[str]:
        notes = []
        for cls_name, now in class_attributes().items():
            cls = WATCHED_CLASSES[cls_name]
            original, before = self.original[cls_name], self.before[cls_name]
            differ = [n for n in set(original) | set(now)
                      if now.get(n, _MISSING) is not original.get(n, _MISSING)]
            for name in sorted(differ, key=str):
                value = _resolved(cls, now, name)
                first = _resolved(cls, original, name)
                if value is first:
                    continue
                what = ("added" if first is _MISSING else "deleted" if value is _MISSING
                        else "replaced")
                stays = {"added": "it stays", "deleted": "it stays deleted",
                         "replaced": "it stays replaced"}[what]
                who = ("this script" if value is not _resolved(cls, before, name)
                       else "an earlier run")
                notes.append(f"Torchscope: {who} {what} {cls_name}.{name}; {stays} in this kernel "
                             f"{RESTART}.")
        return notes

    def _thread_notes(self) -> list[str]:
        alive = [t for t in threading.enumerate() if t.is_alive()]
        earlier = [t for t in self.script_threads if t.is_alive()]
        new = [t for t in alive if t not in self.threads_before and t not in earlier]
        self.script_threads = earlier + new
        return ([f"Torchscope: this script started a thread ({t.name}) that is still running; "
                 f"it keeps running in this kernel {RESTART}." for t in new]
                + [f"Torchscope: a thread an earlier run started ({t.name}) is still running; "
                   f"it keeps running in this kernel {RESTART}." for t in earlier])


_MISSING = object()


def _resolved(cls: type, attrs: dict[str, Any], name: str) -> Any:
    """`cls.name` as the class dict `attrs` and the class's bases give it (no
    descriptor runs): a method put back as it was counts as unchanged."""
    if name in attrs:
        return attrs[name]
    for base in cls.__mro__[1:]:
        if name in vars(base):
            return vars(base)[name]
    return _MISSING
