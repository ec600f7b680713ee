"""CUDA tensors in the graph: runs where torch sees a GPU, skipped elsewhere (CI)."""
import pytest
import torch

from core import probe
from core.tensors import tensor_stats

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


def test_cuda_graph_matches_torch():
    snap = probe.run(SCRIPT, "gpu.py")
    assert snap.error is None, snap.error
    ns = probe.last_namespace
    tensors = {n.name: n for n in snap.graph.by_kind("tensor")}
    assert tensors["model.weight"].device == "cuda:0"
    assert tensors["host"].device == "cpu"
    assert tensors["h"].grad_fn == type(ns["h"].grad_fn).__name__
    w = ns["model"].weight
    assert torch.allclose(torch.tensor(tensors["model.weight"].grad), w.grad.cpu())
    assert torch.allclose(torch.tensor(tensors["h"].grad), ns["h"].grad.cpu())
    ops = sorted(n.name for n in snap.graph.by_kind("op"))
    assert "AddmmBackward0" in ops and ops.count("AccumulateGrad") == 2


def test_cuda_summary_stats_match_torch():
    snap = probe.run(SCRIPT, "gpu.py")
    ns = probe.last_namespace
    node_id = next(n.id for n in snap.graph.by_kind("tensor") if n.name == "inputs")
    s = snap.summaries[node_id]
    t = ns["inputs"]
    assert s.device == "cuda:0"
    assert s.stats.min == pytest.approx(float(t.min()))
    assert s.stats.std == pytest.approx(float(t.std()), rel=1e-5)
    assert tensor_stats(t).mean == pytest.approx(float(t.mean()), abs=1e-6)


def test_recorded_backward_on_cuda_matches_plain_backward():
    from core.backward import record_backward

    def build():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)).cuda()
        loss = model(torch.randn(5, 3, device="cuda")).pow(2).mean()
        return model, loss

    model, loss = build()
    loss.backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model, loss = build()
    trace = record_backward(loss, "loss", limit=None)
    assert trace.error is None
    leaf_steps = [s for s in trace.steps if s.name == "AccumulateGrad"]
    assert len(leaf_steps) == 4
    for p, g in zip(model.parameters(), plain):
        assert torch.allclose(p.grad, g)
    recorded = sorted(tuple(torch.tensor(s.leaf_grad.values).flatten().tolist()) for s in leaf_steps)
    expected = sorted(tuple(g.cpu().flatten().tolist()) for g in plain)
    for r, e in zip(recorded, expected):
        assert torch.allclose(torch.tensor(r), torch.tensor(e))
