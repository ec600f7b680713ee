"""nn.DataParallel forwards as they ran: which replica got which slice of the batch.

A DataParallel cuts each batch along `dim` into one slice per GPU in `device_ids`
(scatter), runs a replica of its module on each GPU in threads of its own
(replicate, parallel_apply) and brings the outputs together on `output_device`
(gather). Replicas share their module's hook dicts
(`Module._replicate_for_data_parallel` copies `__dict__`), so one forward pre-hook
on the wrapped module sees every replica's slice, on its own device, without
patching torch. With one GPU or none, DataParallel calls the module itself: the
hook then sees the whole batch, and that is what is recorded.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
from torch.nn.modules import module as nn_module

from ..model.devices import ParallelForward, ReplicaSlice
from .trace import module_names

KEEP = 20  # forwards kept per module: the first ones and the latest


def first_tensor(value) -> torch.Tensor | None:
    """The first tensor in a forward's arguments (or output), looking into tuples,
    lists and dicts, as scatter and gather do."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for v in value:
            found = first_tensor(v)
            if found is not None:
                return found
    return None


@dataclass
class _Open:
    """A DataParallel forward under way: its replicas' inputs come in from their threads."""
    batch: list[int] | None
    got: list[tuple[str, list[int]]] = field(default_factory=list)


class ParallelTracker:
    """While a script runs, records each nn.DataParallel forward (global forward
    hooks find them; a pre-hook on each wrapped module, shared by its replicas, sees
    the slices). `forwards(namespace)` names them after the run."""

    def __init__(self):
        self._open: dict[int, _Open] = {}
        self._done: dict[int, list] = {}  # id(DataParallel) -> [(call number, _Open, output)]
        self._calls: dict[int, int] = {}
        self._modules: dict[int, torch.nn.DataParallel] = {}
        self._handles: list = []
        self._lock = threading.Lock()

    def __enter__(self):
        self._handles = [nn_module.register_module_forward_pre_hook(self._before),
                         nn_module.register_module_forward_hook(self._after, always_call=True)]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        self._open.clear()
        return False

    def _before(self, module, args) -> None:
        if not isinstance(module, torch.nn.DataParallel):
            return
        key = id(module)
        if key not in self._modules:
            self._modules[key] = module
            self._handles.append(module.module.register_forward_pre_hook(
                lambda replica, a, key=key: self._replica(key, a)))
        self._calls[key] = self._calls.get(key, 0) + 1
        t = first_tensor(args)
        self._open[key] = _Open(None if t is None else list(t.shape))

    def _replica(self, key: int, args) -> None:
        run = self._open.get(key)
        if run is None:  # the wrapped module called on its own, not through DataParallel
            return
        t = first_tensor(args)
        with self._lock:  # replicas run in threads of their own
            run.got.append((str(t.device) if t is not None else "?", list(t.shape) if t is not None else []))

    def _after(self, module, args, output) -> None:
        if not isinstance(module, torch.nn.DataParallel):
            return
        run = self._open.pop(id(module), None)
        if run is None:
            return
        t = first_tensor(output)
        done = self._done.setdefault(id(module), [])
        entry = (self._calls[id(module)], run, None if t is None else (list(t.shape), str(t.device)))
        if len(done) < KEEP:
            done.append(entry)
        else:
            done[-1] = entry  # the first KEEP - 1 and the latest

    def forwards(self, namespace: dict) -> list[ParallelForward]:
        names = module_names(namespace)
        out = []
        for key, done in self._done.items():
            dp = self._modules[key]
            name = names.get(key, ("DataParallel",))[0]
            for call, run, output in done:
                out.append(_forward(dp, name, call, self._calls[key], run, output))
        return out


def _forward(dp, name: str, call: int, calls: int, run: _Open, output) -> ParallelForward:
    """One recorded forward in words the panel draws: slices in device_ids order,
    with the rows of the batch each one got."""
    dim = getattr(dp, "dim", 0)  # a DataParallel made without a GPU sets neither
    index = getattr(dp, "output_device", None)
    order = {f"cuda:{i}": k for k, i in enumerate(dp.device_ids)}
    got = sorted(run.got, key=lambda g: order.get(g[0], len(order)))
    replicas, start = [], 0
    for device, shape in got:
        n = shape[dim] if len(shape) > dim else 0
        replicas.append(ReplicaSlice(device, shape, [start, start + n]))
        start += n
    output_device = None if index is None or not dp.device_ids else f"cuda:{index}"
    return ParallelForward(name, call, calls, list(dp.device_ids), output_device, dim, run.batch, replicas,
                           output[0] if output else None, output[1] if output else None)
