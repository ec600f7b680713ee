"""The kernel's end of the Comm: requests in, replies out, dispatched by type.

`serve()` runs once in a fresh kernel (the window's bootstrap). It opens the Comm,
says `Hello`, and from then on every comm message is a request decoded by
`core.protocol`, answered with its reply type, or with an `ErrorReply` when the kernel
side failed: a failure is reported, never swallowed. Requests run on the kernel's
shell like any execute request, so the window can interrupt them.
"""
from __future__ import annotations

import gc
import os
import socket
import sys
import traceback

import torch

from ..model.run import KernelInfo
from ..protocol import (BackwardRequest, ErrorReply, ExportRequest, Hello, OutputChunk, PROTOCOL_VERSION,
                        RunRequest, ValuesReply, ValuesRequest, ZeroGradsRequest, decode, encode)
from . import creation, data, devices, tensor_view
from .export_child import export_runner
from .runner import Runner

EXTENSIONS = (data, devices, tensor_view, creation)  # each has handlers(endpoint) -> {request type: handler}


class Endpoint:
    def __init__(self, comm):
        self.comm = comm
        self.runner = Runner()
        self.msg_id: str | None = None  # the request being answered
        self.handlers = {
            RunRequest: self.run,
            BackwardRequest: lambda r: self.runner.backward(
                r.root, r.gradient, r.retain_graph, r.create_graph, r.zero_first),
            ZeroGradsRequest: lambda r: self.runner.zero_grads(),
            ValuesRequest: lambda r: ValuesReply(r.node_id, self.runner.values(r.name)),
            ExportRequest: export,
        }
        for module in EXTENSIONS:
            self.handlers.update(module.handlers(self))
        comm.on_msg(self.on_msg)

    def run(self, request: RunRequest):
        """Run the script, pushing what it prints as it prints it."""
        msg_id = self.msg_id
        cwd = folder_here(request.cwd)
        result = self.runner.run(request.code, request.filename, cwd=cwd, upto=request.upto,
                                 stop_after_call=request.stop_after_call,
                                 on_output=lambda stream, text: self.send(OutputChunk(stream, text), msg_id))
        result.cwd = cwd or os.getcwd()
        return result

    def send(self, message, reply_to: str | None = None) -> None:
        data, buffers = encode(message, reply_to)
        self.comm.send(data, buffers=buffers)

    def on_msg(self, msg: dict) -> None:
        msg_id = self.msg_id = msg["header"]["msg_id"]
        request = None
        try:
            request, _ = decode(msg["content"]["data"], msg.get("buffers") or [])
            reply = self.handlers[type(request)](request)
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt included: say so
            name = type(request).__name__ if request is not None else "a request"
            self.send(ErrorReply(name, f"{type(exc).__name__}: {exc}", traceback.format_exc()), msg_id)
            return
        try:
            self.send(reply, msg_id)
        except Exception as exc:  # noqa: BLE001 - a value the codec cannot carry: say so
            self.send(ErrorReply(type(request).__name__, f"the answer could not be sent: {exc}",
                                 traceback.format_exc()), msg_id)


def folder_here(cwd: str | None) -> str | None:
    """`cwd` where this machine has it, else None (the kernel's own folder): the window
    names the script's folder on its machine, which an attached kernel on a server
    does not have."""
    return cwd if cwd and os.path.isdir(cwd) else None


def export(request: ExportRequest):
    """`--existing FILE --export`: the script as the headless export runs it, in a
    Runner of its own (the window's last run stays), and which kernel ran it."""
    result = export_runner(Runner).run(request.code, request.filename, backward=request.backward,
                                       values=False, cwd=folder_here(request.cwd))
    result.kernel = KernelInfo.of_this_process(torch.__version__)
    return result


def serve() -> Endpoint:
    """Open the Comm the window listens on. Called once after the kernel starts."""
    from comm import create_comm  # only inside a kernel

    gc.freeze()  # torch's import leaves ~1M objects; keep them out of every collection
    hello = Hello(PROTOCOL_VERSION, os.getpid(), sys.version.split()[0], torch.__version__,
                  socket.gethostname())
    data, _ = encode(hello)
    return Endpoint(create_comm(target_name="torchscope", data=data))
