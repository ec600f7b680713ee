"""core.kernel.serve.Endpoint: the kernel's end of the Comm, without a kernel.

A fake comm stands in for Jupyter's: it stores the callback `Endpoint` registers
and records what is sent. Requests go in shaped like Jupyter comm messages, each
reply is decoded as the window decodes it and must answer the request's msg_id.
"""
from __future__ import annotations

import numpy as np
import pytest
from wire_check import wire

from core.kernel.serve import Endpoint
from core.model.run import RunResult
from core.model.tensors import TensorValues
from core.protocol import (PROTOCOL_VERSION, BackwardRequest, ErrorReply, Hello, OutputChunk,
                           RunRequest, ValuesReply, ValuesRequest, ZeroGradsRequest, decode, encode)

SEED = ("import torch\nx = torch.tensor([2.], requires_grad=True)\n"
        "w = torch.tensor([1.], requires_grad=True)\ny = (w + x) * (w + 1)\n")


class FakeComm:
    def __init__(self):
        self.callback = None
        self.sent: list[tuple[dict, list]] = []

    def on_msg(self, cb):
        self.callback = cb

    def send(self, data, buffers=None):
        self.sent.append((data, list(buffers or [])))


def comm_message(data, buffers, msg_id):
    """What Jupyter hands the callback: a message with header, content and buffers."""
    return {"header": {"msg_id": msg_id, "msg_type": "comm_msg"}, "parent_header": {},
            "content": {"comm_id": "c0", "data": data}, "buffers": buffers}


@pytest.fixture
def endpoint():
    comm = FakeComm()
    ep = Endpoint(comm)
    assert comm.callback == ep.on_msg  # registered on construction
    return ep, comm


def ask(endpoint, request, msg_id):
    """Send `request` through the fake comm; (reply, reply_to) as the window decodes it."""
    ep, comm = endpoint
    before = len(comm.sent)
    data, buffers = wire(*encode(request))
    comm.callback(comm_message(data, buffers, msg_id))
    *streamed, last = comm.sent[before:]  # what a run prints goes ahead of its reply
    assert all(type(decode(*wire(*m))[0]) is OutputChunk for m in streamed), "one reply per request"
    return decode(*wire(*last))


def test_run_request_answers_with_a_run_result(endpoint):
    reply, reply_to = ask(endpoint, RunRequest(SEED + "print('hi')\n", "seed.py"), "m1")
    assert reply_to == "m1" and type(reply) is RunResult
    assert reply.error is None and reply.stdout == "hi\n"
    assert {n.name for n in reply.graph.by_kind("tensor")} == {"x", "w", "y"}
    assert set(reply.values) == {n.id for n in reply.graph.by_kind("tensor")}
    failed, reply_to = ask(endpoint, RunRequest("x = 1\ny = (\n", "bad.py"), "m2")
    assert reply_to == "m2" and failed.error.type == "SyntaxError" and failed.error.line == 2


def test_backward_values_and_zero_grads_use_the_last_run(endpoint):
    ask(endpoint, RunRequest(SEED), "m1")
    reply, reply_to = ask(endpoint, BackwardRequest("y", retain_graph=True), "m2")
    assert reply_to == "m2" and type(reply) is RunResult
    assert reply.backward.error is None and reply.backward.root_name == "y"
    w = next(n for n in reply.graph.by_kind("tensor") if n.name == "w")
    assert w.grad.tolist() == [5.0]
    assert [g.values.tolist() for g in reply.grad_history["w"]] == [[5.0]]

    values, reply_to = ask(endpoint, ValuesRequest(w.id, "w"), "m3")
    assert reply_to == "m3" and type(values) is ValuesReply and values.node_id == w.id
    assert type(values.values) is TensorValues
    assert values.values.preview.tolist() == [1.0] and values.values.grad_preview.tolist() == [5.0]
    assert values.values.stats.min == 1.0

    gone, _ = ask(endpoint, ValuesRequest("t99", "nope"), "m4")
    assert type(gone) is ValuesReply and gone.node_id == "t99" and gone.values is None

    zeroed, reply_to = ask(endpoint, ZeroGradsRequest(), "m5")
    assert reply_to == "m5" and type(zeroed) is RunResult
    assert zeroed.grad_history["w"][-1] is None
    assert not next(n for n in zeroed.graph.by_kind("tensor") if n.name == "w").has_grad

    freeing, _ = ask(endpoint, BackwardRequest("y", zero_first=True), "m6")
    again, _ = ask(endpoint, BackwardRequest("y"), "m7")
    assert freeing.backward.error is None
    assert again.backward.error and "second time" in again.backward.error


def test_arrays_come_back_as_buffers(endpoint):
    ep, comm = endpoint
    ask(endpoint, RunRequest(SEED + "y.backward()\n"), "m1")
    data, buffers = comm.sent[-1]
    assert buffers and all(isinstance(b, (bytes, bytearray, memoryview)) for b in buffers)
    reply, _ = decode(*wire(data, buffers))
    x = next(n for n in reply.graph.by_kind("tensor") if n.name == "x")
    assert isinstance(x.grad, np.ndarray) and x.grad.tolist() == [2.0]


def test_a_request_the_kernel_cannot_handle_is_an_error_reply(endpoint):
    hello = Hello(PROTOCOL_VERSION, 1, "3.11", "2.14")
    reply, reply_to = ask(endpoint, hello, "m1")  # a push type, not a request
    assert reply_to == "m1" and type(reply) is ErrorReply
    assert reply.request == "Hello" and reply.message and "Traceback" in reply.traceback
    # the endpoint keeps serving afterwards
    ok, reply_to = ask(endpoint, RunRequest("z = 1\n"), "m2")
    assert reply_to == "m2" and type(ok) is RunResult and ok.error is None


def test_a_malformed_message_is_an_error_reply(endpoint):
    ep, comm = endpoint
    data, buffers = encode(RunRequest("z = 1\n"))
    comm.callback(comm_message(dict(data, version=PROTOCOL_VERSION + 1), buffers, "m1"))
    reply, reply_to = decode(*wire(*comm.sent[-1]))
    assert reply_to == "m1" and type(reply) is ErrorReply
    assert reply.request == "a request" and "ProtocolError" in reply.message
    comm.callback(comm_message({"version": PROTOCOL_VERSION, "reply_to": None,
                                "body": {"$type": "DropTables"}}, [], "m2"))
    reply, reply_to = decode(*wire(*comm.sent[-1]))
    assert reply_to == "m2" and type(reply) is ErrorReply and "DropTables" in reply.message


def test_a_failure_inside_a_handler_is_reported_not_raised(endpoint):
    ep, comm = endpoint

    def broken(request):
        raise RuntimeError("the tracer fell over")
    ep.handlers[RunRequest] = broken
    reply, reply_to = ask(endpoint, RunRequest("z = 1\n"), "m1")
    assert reply_to == "m1" and type(reply) is ErrorReply
    assert reply.request == "RunRequest" and reply.message == "RuntimeError: the tracer fell over"
