"""CUDA tensors in the graph: runs where torch sees a GPU, skipped elsewhere (CI)."""
import numpy as np
import pytest
import torch
from wire_check import deep_equal, wire

from core.kernel.record import record_backward
from core.kernel.tensors import tensor_stats, to_numpy
from core.protocol import decode, encode

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SCRIPT = """
import torch
from torch import nn
device = torch.device("cuda:0")
model = nn.Linear(3, 2).to(device)
inputs = torch.randn(4, 3, device=device)
h = model(inputs)
h.retain_grad()
loss = h.pow(2).mean()
loss.backward()
host = loss.detach().cpu()
"""


def test_cuda_graph_matches_torch(runner):
    result = runner.run(SCRIPT, "gpu.py")
    assert result.error is None, result.error
    ns = runner.namespace
    tensors = {n.name: n for n in result.graph.by_kind("tensor")}
    assert tensors["model.weight"].device == "cuda:0"
    assert tensors["host"].device == "cpu"
    assert tensors["h"].grad_fn == type(ns["h"].grad_fn).__name__
    w = ns["model"].weight
    assert isinstance(tensors["model.weight"].grad, np.ndarray)  # copied to the host
    assert torch.allclose(torch.from_numpy(tensors["model.weight"].grad), w.grad.cpu())
    assert torch.allclose(torch.from_numpy(tensors["h"].grad), ns["h"].grad.cpu())
    ops = sorted(n.name for n in result.graph.by_kind("op"))
    assert "AddmmBackward0" in ops and ops.count("AccumulateGrad") == 2


def test_cuda_value_stats_match_torch(runner):
    result = runner.run(SCRIPT, "gpu.py")
    ns = runner.namespace
    node = next(n for n in result.graph.by_kind("tensor") if n.name == "inputs")
    s = result.values[node.id]
    t = ns["inputs"]
    assert node.device == "cuda:0"
    assert s.stats.min == pytest.approx(float(t.min()))
    assert s.stats.std == pytest.approx(float(t.std()), rel=1e-5)
    np.testing.assert_array_equal(s.preview, t.cpu().reshape(-1).numpy())
    assert tensor_stats(t).mean == pytest.approx(float(t.mean()), abs=1e-6)
    np.testing.assert_array_equal(to_numpy(t), t.cpu().numpy())
    full = runner.values("inputs")
    assert full.stats == s.stats
    # and the whole result crosses the wire: every CUDA value became a host buffer
    back, _ = decode(*wire(*encode(result, "m1")))
    deep_equal(back, result)


def test_recorded_backward_on_cuda_matches_plain_backward():
    def build():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)).cuda()
        loss = model(torch.randn(5, 3, device="cuda")).pow(2).mean()
        return model, loss

    model, loss = build()
    loss.backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model, loss = build()
    trace = record_backward(loss, "loss", limit=None).trace
    assert trace.error is None
    leaf_steps = [s for s in trace.steps if s.name == "AccumulateGrad"]
    assert len(leaf_steps) == 4
    for p, g in zip(model.parameters(), plain):
        assert torch.allclose(p.grad, g)
    recorded = sorted(tuple(s.leaf_grad.values.reshape(-1).tolist()) for s in leaf_steps)
    expected = sorted(tuple(g.cpu().flatten().tolist()) for g in plain)
    for r, e in zip(recorded, expected):
        assert torch.allclose(torch.tensor(r), torch.tensor(e))


def test_cuda_tensors_carry_the_gpu_stripe_in_the_dot_export(runner):
    from core.export import to_dot
    from core.style import device_colour, graph_devices
    result = runner.run(SCRIPT, "gpu.py")
    assert graph_devices(result.graph) == ["cuda:0"]
    striped = [line for line in to_dot(result.graph).splitlines() if "striped" in line]
    on_gpu = [n for n in result.graph.by_kind("tensor") if n.device == "cuda:0"]
    assert len(striped) == len(on_gpu) >= 3 and all(device_colour("cuda:0") in line for line in striped)
