"""core.protocol: a snapshot crosses the wire as JSON plus raw buffers, intact."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core import probe
from core.graph import graph_to_dict
from core.protocol import PROTOCOL_VERSION, ProtocolError, decode_snapshot, encode_snapshot

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
empty = torch.empty(0, 4)
view = inputs[:, 1]
big = torch.arange(1000.)
loss = model(inputs).pow(2).mean()
loss.backward()
print("printed")
"""


@pytest.fixture(scope="module")
def snap():
    s = probe.run(SCRIPT)
    assert s.error is None, s.error
    assert s.summaries
    return s


def wire(data, buffers):
    """What a Jupyter Comm does: JSON text, buffers as bytes."""
    for b in buffers:
        assert isinstance(b, (bytes, bytearray, memoryview)), type(b)
    return json.loads(json.dumps(data)), [bytes(b) for b in buffers]


def arrays_equal(a, b):
    if a is None or b is None:
        return a is None and b is None
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def test_round_trip_keeps_the_graph(snap):
    data, buffers = encode_snapshot(snap, 42)
    run_id, back = decode_snapshot(*wire(data, buffers))
    assert run_id == 42
    assert graph_to_dict(back.graph) == graph_to_dict(snap.graph)
    assert [n.kind for n in back.graph.nodes] == [n.kind for n in snap.graph.nodes]
    assert type(back.graph.nodes[0]) is type(snap.graph.nodes[0])
    assert back.stdout == "printed\n" and back.stderr == snap.stderr
    assert back.error is None
    assert back.timings == snap.timings


def test_round_trip_keeps_the_summaries(snap):
    data, buffers = encode_snapshot(snap, 1)
    _, back = decode_snapshot(*wire(data, buffers))
    assert set(back.summaries) == set(snap.summaries)
    for key, s in snap.summaries.items():
        b = back.summaries[key]
        for field in ("name", "shape", "dtype", "device", "requires_grad", "is_leaf",
                      "grad_fn", "numel", "shares_storage_with"):
            assert getattr(b, field) == getattr(s, field), (s.name, field)
        assert b.stats == s.stats, s.name
        assert b.grad_stats == s.grad_stats, s.name
        assert arrays_equal(b.preview, s.preview), s.name
        assert arrays_equal(b.grad_preview, s.grad_preview), s.name


def test_round_trip_covers_the_interesting_cases(snap):
    by_name = {s.name: s for s in snap.summaries.values()}
    data, buffers = encode_snapshot(snap, 1)
    _, back = decode_snapshot(*wire(data, buffers))
    got = {s.name: s for s in back.summaries.values()}
    assert np.isnan(got["special"].preview[1]) and np.isinf(got["special"].preview[2])
    assert got["special"].stats.nan == 1 and got["special"].stats.inf == 1
    assert got["ints"].preview.tolist() == [0, 1, 2, 3, 4, 5]
    assert got["mask"].preview.tolist() == [True, False, True]
    assert got["scalar"].preview.tolist() == [7.5]
    assert got["empty"].preview.size == 0 and got["empty"].shape == [0, 4]
    assert got["model.weight"].grad_preview is not None
    assert np.array_equal(got["model.weight"].grad_preview, by_name["model.weight"].grad_preview)
    assert got["big"].preview.tolist() == by_name["big"].preview.tolist()
    assert "inputs" in got["view"].shares_storage_with


def test_encoded_dict_is_plain_json(snap):
    data, buffers = encode_snapshot(snap, 3)
    text = json.dumps(data)  # no default=: numpy scalars or objects would fail here
    assert json.loads(text) == data
    assert buffers, "tensor previews travel as buffers"
    for b in buffers:
        assert isinstance(b, (bytes, bytearray, memoryview))
    # each buffer is the raw array (size = elements * itemsize), not a pickle; the
    # previews are references into the buffers, never inlined in the JSON
    for s in data["summaries"].values():
        for key in ("preview", "grad_preview"):
            ref = s[key]
            if ref is None:
                continue
            assert set(ref) == {"buffer", "dtype", "shape"}
            n = int(np.prod(ref["shape"])) if ref["shape"] else 1
            assert len(bytes(buffers[ref["buffer"]])) == n * np.dtype(ref["dtype"]).itemsize


def test_buffers_are_referenced_by_index(snap):
    data, buffers = encode_snapshot(snap, 3)
    refs = []
    for s in data["summaries"].values():
        for key in ("preview", "grad_preview"):
            if s[key] is not None:
                refs.append(s[key]["buffer"])
    assert sorted(refs) == list(range(len(buffers)))


def test_round_trip_keeps_errors():
    for code, backward in (("x = 1\ny = (\n", None),
                           ("import torch\na = torch.ones(2)\nb = a @ torch.ones(3)\n", None),
                           ("import torch\ny = torch.ones(2)\n", "y")):
        s = probe.run(code, backward=backward)
        assert s.error is not None
        data, buffers = encode_snapshot(s, 9)
        run_id, back = decode_snapshot(*wire(data, buffers))
        assert run_id == 9
        assert back.graph is None
        assert back.error == s.error
        assert back.error.line == s.error.line and back.error.phase == s.error.phase


def test_wrong_version_raises():
    s = probe.run("x = 1\n")
    data, buffers = encode_snapshot(s, 1)
    assert data["version"] == PROTOCOL_VERSION
    decode_snapshot(data, buffers)  # the right version decodes
    for bad in (PROTOCOL_VERSION + 1, 0, None, str(PROTOCOL_VERSION)):
        with pytest.raises(ProtocolError):
            decode_snapshot(dict(data, version=bad), buffers)
    missing = dict(data)
    del missing["version"]
    with pytest.raises(ProtocolError):
        decode_snapshot(missing, buffers)


def test_wrong_type_raises():
    s = probe.run("x = 1\n")
    data, buffers = encode_snapshot(s, 1)
    with pytest.raises(ProtocolError):
        decode_snapshot(dict(data, type="hello"), buffers)


def test_protocol_error_is_a_value_error():
    assert issubclass(ProtocolError, ValueError)


def test_non_finite_grad_is_strict_json():
    s = probe.run("import torch\nx = torch.tensor([0., 4.], requires_grad=True)\n"
                  "y = x.sqrt().sum()\ny.backward()\n")
    assert s.error is None
    data, buffers = encode_snapshot(s, 1)
    json.dumps(data, allow_nan=False)
