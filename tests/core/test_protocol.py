"""core.protocol: every message crosses the wire as JSON plus raw buffers, intact.

The wire is simulated as a Jupyter Comm does it: the data through strict JSON text,
the buffers as bytes. A RunResult is compared field by field with what was sent;
every numpy array in it must travel as a buffer, never as JSON numbers.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from wire_check import array_refs, arrays_equal, arrays_in, deep_equal, wire

from core.kernel.runner import Runner
from core.model.backward import GradInfo
from core.model.graph import graph_to_dict
from core.model.run import RunError, RunResult
from core.model.tensors import Stats, TensorValues
from core.protocol import (PROTOCOL_VERSION, REPLY_TO, TYPES, BackwardRequest, ErrorReply, Hello,
                           ProtocolError, RunRequest, ValuesReply, ValuesRequest, ZeroGradsRequest,
                           decode, encode, pack, unpack)

SCRIPT = """
import torch
from torch import nn
model = nn.Linear(3, 2)
inputs = torch.randn(4, 3)
special = torch.tensor([1.0, float('nan'), float('inf'), -2.0])
ints = torch.arange(6).reshape(2, 3)
mask = torch.tensor([True, False, True])
half = torch.ones(3, dtype=torch.float16) / 3
scalar = torch.tensor(7.5)
scale = torch.tensor(2.0, requires_grad=True)
cplx = torch.tensor([1 + 2j, 3 - 1j])
empty = torch.empty(0, 4)
view = inputs[:, 1]
big = torch.arange(1000.)
loss = model(inputs).pow(2).mean() * scale
loss.backward()
print("printed")
"""


@pytest.fixture(scope="module")
def result():
    """The script's own backward keeps its graph, then a Backward press on `loss`:
    a result with a graph, values, a recorded backward and a grad history."""
    r = Runner()
    first = r.run(SCRIPT.replace("loss.backward()", "loss.backward(retain_graph=True)"))
    assert first.error is None, first.error
    assert first.values and first.backward is not None  # the script's own backward, recorded
    res = r.backward("loss", retain_graph=True)
    assert res.error is None and res.backward.error is None and res.grad_history
    return res


def by_name(res: RunResult) -> dict[str, TensorValues]:
    names = {n.id: n.name for n in res.graph.by_kind("tensor")}
    return {names[k]: v for k, v in res.values.items()}


def node(res: RunResult, name: str):
    return next(n for n in res.graph.by_kind("tensor") if n.name == name)


def test_round_trip_keeps_everything(result):
    data, buffers = encode(result, "m42")
    back, reply_to = decode(*wire(data, buffers))
    assert reply_to == "m42"
    assert type(back) is RunResult
    deep_equal(back, result)


def test_round_trip_keeps_the_graph(result):
    data, buffers = encode(result, "m42")
    back, _ = decode(*wire(data, buffers))
    assert graph_to_dict(back.graph) == graph_to_dict(result.graph)
    assert [n.kind for n in back.graph.nodes] == [n.kind for n in result.graph.nodes]
    assert [type(n) for n in back.graph.nodes] == [type(n) for n in result.graph.nodes]
    assert back.graph.edges == result.graph.edges
    assert back.stdout == result.stdout and back.stderr == result.stderr
    assert back.error is None
    assert back.timings == result.timings
    for n, m in zip(result.graph.by_kind("tensor"), back.graph.by_kind("tensor")):
        assert arrays_equal(m.grad, n.grad), n.name


def test_round_trip_keeps_the_values(result):
    data, buffers = encode(result, "m1")
    back, _ = decode(*wire(data, buffers))
    assert set(back.values) == set(result.values)
    for key, s in result.values.items():
        b = back.values[key]
        assert type(b) is TensorValues
        assert b.numel == s.numel and b.shares_storage_with == s.shares_storage_with, key
        assert b.stats == s.stats, key
        assert b.grad_stats == s.grad_stats, key
        assert arrays_equal(b.preview, s.preview), key
        assert arrays_equal(b.grad_preview, s.grad_preview), key


def test_round_trip_covers_the_interesting_cases(result):
    sent = by_name(result)
    data, buffers = encode(result, "m1")
    back, _ = decode(*wire(data, buffers))
    got = by_name(back)
    assert np.isnan(got["special"].preview[1]) and np.isinf(got["special"].preview[2])
    assert got["special"].stats.nan == 1 and got["special"].stats.inf == 1
    assert got["ints"].preview.tolist() == [0, 1, 2, 3, 4, 5] and got["ints"].preview.dtype == np.int64
    assert got["mask"].preview.tolist() == [True, False, True] and got["mask"].preview.dtype == bool
    assert got["half"].preview.dtype == np.float32  # numpy has float16, the values say float32
    assert got["scalar"].preview.tolist() == [7.5]
    assert got["cplx"].preview.tolist() == [1 + 2j, 3 - 1j]
    assert got["empty"].preview.size == 0 and node(back, "empty").shape == [0, 4]
    assert got["model.weight"].grad_preview is not None
    assert np.array_equal(got["model.weight"].grad_preview, sent["model.weight"].grad_preview)
    assert got["big"].preview.tolist() == sent["big"].preview.tolist()
    assert "inputs" in got["view"].shares_storage_with
    # a 0-d grad stays 0-d (the scalar parameter `scale`), as in the export
    scale = node(back, "scale")
    assert scale.grad.shape == () and scale.grad.tolist() == node(result, "scale").grad.tolist()
    assert graph_to_dict(back.graph)["nodes"] == graph_to_dict(result.graph)["nodes"]


def test_encoded_dict_is_plain_json(result):
    data, buffers = encode(result, "m3")
    text = json.dumps(data, allow_nan=False)  # no default=: numpy scalars or objects would fail
    assert json.loads(text) == data
    assert data["version"] == PROTOCOL_VERSION and data["reply_to"] == "m3"
    assert buffers, "tensor values travel as buffers"
    for b in buffers:
        assert isinstance(b, (bytes, bytearray, memoryview))
    # each buffer is the raw array (size = elements * itemsize), not a pickle
    for ref in array_refs(data):
        assert set(ref) == {"$array", "dtype", "shape"}
        n = math.prod(ref["shape"])
        assert len(bytes(buffers[ref["$array"]])) == n * np.dtype(ref["dtype"]).itemsize


def test_every_array_travels_as_a_buffer(result):
    """Node grads, GradInfo values (steps and grad_history) and previews: each numpy
    array of the message is one buffer, and no list of numbers stands in for one."""
    data, buffers = encode(result, "m1")
    arrays = arrays_in(result)
    refs = array_refs(data)
    assert len(arrays) == len(refs) == len(buffers)
    assert sorted(r["$array"] for r in refs) == list(range(len(buffers)))
    for a, r in zip(arrays, refs):  # both depth first, in field order
        assert r["shape"] == list(a.shape) and np.dtype(r["dtype"]) == a.dtype
        assert bytes(buffers[r["$array"]]) == np.ascontiguousarray(a).tobytes()
    # each kind is there, and it is a reference, not JSON numbers
    body = data["body"]
    grads = [n["grad"] for n in body["graph"]["nodes"] if n["$type"] == "TensorNode" and n["grad"]]
    assert grads and all("$array" in g for g in grads)
    infos = [g for s in body["backward"]["steps"] for g in s["grad_outputs"] + s["grad_inputs"] if g]
    infos += [g for h in body["grad_history"].values() for g in h if g]
    assert infos and all(g["$type"] == "GradInfo" and "$array" in g["values"] for g in infos)
    previews = [v[k] for v in body["values"].values() for k in ("preview", "grad_preview") if v[k]]
    assert previews and all("$array" in p for p in previews)
    for kind in (TensorValues, GradInfo):
        assert any(isinstance(x, kind) for x in _all_objects(result))

    def no_number_lists(v, path):
        if isinstance(v, dict):
            for k, x in v.items():
                no_number_lists(x, f"{path}.{k}")
        elif isinstance(v, list):
            assert not any(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) \
                or path.endswith(("shape", "stride", "shares_storage_with")), path
            for i, x in enumerate(v):
                no_number_lists(x, f"{path}[{i}]")
    no_number_lists(body, "body")


def _all_objects(obj):
    import dataclasses
    yield obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _all_objects(getattr(obj, f.name))
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _all_objects(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _all_objects(v)


def test_non_finite_floats_survive_as_tagged_strings():
    r = Runner()
    res = r.run("import torch\nx = torch.tensor([0., 4.], requires_grad=True)\n"
                "y = x.sqrt().sum()\ny.backward()\n")
    assert res.error is None
    acc = next(s for s in res.backward.steps if s.name == "AccumulateGrad").leaf_grad
    assert acc.norm == math.inf and acc.max == math.inf
    data, buffers = encode(res)
    text = json.dumps(data, allow_nan=False)
    assert '{"$float": "inf"}' in text
    back, reply_to = decode(*wire(data, buffers))
    assert reply_to is None
    back_acc = next(s for s in back.backward.steps if s.name == "AccumulateGrad").leaf_grad
    assert back_acc.norm == math.inf and back_acc.min == 0.25
    assert back_acc.values.tolist() == [math.inf, 0.25]
    # hand-made: nan, inf and -inf in plain float fields
    info = GradInfo([2], "float32", math.nan, -math.inf, math.inf, None)
    stats = Stats(min=-math.inf, max=math.nan, mean=1.5, std=math.inf, nan=1, inf=2)
    for msg in (info, stats, ValuesReply("t1", TensorValues(3, stats))):
        data, buffers = encode(msg)
        assert {"$float": "nan"} in list(_dict_values(data))
        back, _ = decode(*wire(data, buffers))
        deep_equal(back, msg)
    data, _ = encode(info)
    assert data["body"]["norm"] == {"$float": "nan"} and data["body"]["min"] == {"$float": "-inf"}
    assert data["body"]["max"] == {"$float": "inf"}


def _dict_values(data):
    if isinstance(data, dict):
        yield data
        for v in data.values():
            yield from _dict_values(v)
    elif isinstance(data, list):
        for v in data:
            yield from _dict_values(v)


def test_round_trip_keeps_output_and_timings():
    s = Runner().run(SCRIPT)
    data, buffers = encode(s, "m2")
    back, _ = decode(*wire(data, buffers))
    assert back.stdout == "printed\n" and back.stderr == s.stderr
    assert back.timings == s.timings and set(back.timings) == {"exec", "trace", "values", "data"}
    deep_equal(back, s)


def test_round_trip_keeps_errors():
    r = Runner()
    for code, backward in (("x = 1\ny = (\n", None),
                           ("import torch\na = torch.ones(2)\nb = a @ torch.ones(3)\n", None),
                           ("import torch\ny = torch.ones(2)\n", "y")):
        s = r.run(code, backward=backward)
        assert s.error is not None
        data, buffers = encode(s, "m9")
        back, reply_to = decode(*wire(data, buffers))
        assert reply_to == "m9"
        assert (back.graph is None) == (s.graph is None)  # a runtime error keeps what was built
        assert type(back.error) is RunError and back.error == s.error
        assert back.error.line == s.error.line and back.error.phase == s.error.phase


@pytest.mark.parametrize("message", [
    RunRequest("import torch\nx = torch.ones(2)\n", "lesson.py"),
    BackwardRequest("y", "torch.ones(3)", retain_graph=True, create_graph=False, zero_first=True),
    ZeroGradsRequest(),
    ValuesRequest("t3", "model.0.weight"),
    Hello(PROTOCOL_VERSION, 1234, "3.11.9", "2.14.1"),
    ValuesReply("t3", None),
    ValuesReply("t3", TensorValues(4, Stats(0.0, 1.0, 0.5, 0.1), np.arange(4.0), None, None, ["v"])),
    ErrorReply("RunRequest", "KeyError: 'x'", "Traceback ..."),
    RunResult(None, error=RunError("ValueError", "boom", 2, "run", "tb")),
])
def test_every_message_type_round_trips(message):
    data, buffers = encode(message, "m5")
    back, reply_to = decode(*wire(data, buffers))
    assert reply_to == "m5" and type(back) is type(message)
    deep_equal(back, message)


def test_requests_have_a_reply_type_and_every_type_is_known():
    assert set(REPLY_TO) >= {RunRequest, BackwardRequest, ZeroGradsRequest, ValuesRequest}
    assert all(t.__name__ in TYPES for t in (*REPLY_TO, *REPLY_TO.values(), Hello, ErrorReply))


def test_buffers_are_referenced_by_index(result):
    data, buffers = encode(result, "m3")
    refs = [r["$array"] for r in array_refs(data)]
    assert sorted(refs) == list(range(len(buffers)))


def test_wrong_version_raises():
    s = Runner().run("x = 1\n")
    data, buffers = encode(s, "m1")
    assert data["version"] == PROTOCOL_VERSION
    decode(data, buffers)  # the right version decodes
    for bad in (PROTOCOL_VERSION + 1, PROTOCOL_VERSION - 1, 0, None, str(PROTOCOL_VERSION)):
        with pytest.raises(ProtocolError):
            decode(dict(data, version=bad), buffers)
    missing = dict(data)
    del missing["version"]
    with pytest.raises(ProtocolError):
        decode(missing, buffers)
    for junk in (None, [], "hello"):
        with pytest.raises(ProtocolError):
            decode(junk, [])
    # a message of the first protocol (a "snapshot") is refused, not misread
    with pytest.raises(ProtocolError):
        decode({"type": "snapshot", "version": 1, "run_id": 1, "graph": None}, [])


def test_unknown_type_raises():
    s = Runner().run("import torch\nx = torch.ones(2)\n")
    data, buffers = encode(s, "m1")
    with pytest.raises(ProtocolError, match="unknown message type"):
        decode(dict(data, body=dict(data["body"], **{"$type": "Snapshot"})), buffers)
    # nested too: a node of a type the window does not know
    nodes = [dict(n, **{"$type": "EvilNode"}) for n in data["body"]["graph"]["nodes"]]
    graph = dict(data["body"]["graph"], nodes=nodes)
    with pytest.raises(ProtocolError):
        decode(dict(data, body=dict(data["body"], graph=graph)), buffers)
    # and a missing body, or a buffer index past the end, is a ProtocolError too
    with pytest.raises(ProtocolError):
        decode({"version": PROTOCOL_VERSION, "reply_to": None}, [])
    data, buffers = encode(ValuesReply("t0", TensorValues(2, None, np.ones(2))))
    with pytest.raises(ProtocolError):
        decode(data, [])


def test_object_arrays_are_refused():
    data, buffers = encode(ValuesReply("t0", TensorValues(2, None, np.ones(2))))
    data["body"]["values"]["preview"]["dtype"] = "|O"
    with pytest.raises(ProtocolError):
        decode(data, buffers)


def test_what_cannot_be_sent_raises():
    with pytest.raises(ProtocolError):
        encode(ValuesReply("t0", object()))


def test_protocol_error_is_a_value_error():
    assert issubclass(ProtocolError, ValueError)


# --- pack/unpack: the same message as one byte string (the export's child -> parent pipe) ---

def test_pack_round_trip_keeps_everything(result):
    data, buffers = encode(result, "m7")
    blob = pack(data, buffers)
    assert isinstance(blob, bytes) and b"pickle" not in blob[:8]
    data2, buffers2 = unpack(blob)
    assert data2 == json.loads(json.dumps(data, allow_nan=False))
    assert [bytes(b) for b in buffers2] == [bytes(b) for b in buffers]
    back, reply_to = decode(data2, buffers2)
    assert reply_to == "m7"
    deep_equal(back, result)


def test_pack_of_no_buffers_and_empty_buffers():
    for buffers in ([], [b""], [b"", b"ab", bytearray(b"c"), memoryview(b"xyz")]):
        data, back = unpack(pack({"a": [1, "é", None]}, buffers))
        assert data == {"a": [1, "é", None]} and back == [bytes(b) for b in buffers]


@pytest.mark.parametrize("blob", [
    b"", b"TSP1", b"XXXX" + bytes(12),
    pack({"a": 1}, [b"abc"])[:-1],  # ends early
    pack({"a": 1}, [b"abc"]) + b"!",  # bytes left over
    b"TSP1" + (3).to_bytes(8, "little") + bytes(4) + b"[1]",  # JSON that is not an object
    b"TSP1" + (3).to_bytes(8, "little") + bytes(4) + b"\xff\xfe{",  # not UTF-8
    b"TSP1" + (0).to_bytes(8, "little") + (2**32 - 1).to_bytes(4, "little"),  # buffers missing
])
def test_unpack_refuses_malformed_bytes(blob):
    with pytest.raises(ProtocolError):
        unpack(blob)


def test_pack_refuses_non_finite_json():
    with pytest.raises(ValueError):
        pack({"x": float("nan")}, [])
