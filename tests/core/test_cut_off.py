"""Tensors cut off from the graph (detach, no_grad) are marked, plain ones are not."""
from core.kernel.runner import Runner


def tensors(code):
    result = Runner().run(code, "cut.py")
    assert result.error is None, result.error
    return {n.name: n for n in result.graph.by_kind("tensor")}


def test_detach_and_no_grad_are_marked():
    t = tensors("import torch\nx = torch.randn(3, requires_grad=True)\nd = x.detach()\n"
                "with torch.no_grad():\n    z = x * 2\nplain = torch.ones(3)\ny = x * 2\n")
    assert t["d"].cut == "detach()" and not t["d"].requires_grad
    assert t["z"].cut == "no_grad" and not t["z"].requires_grad
    assert t["plain"].cut is None and t["y"].cut is None and t["x"].cut is None


def test_requires_grad_after_detach_is_a_fresh_leaf_not_cut():
    t = tensors("import torch\nx = torch.randn(3, requires_grad=True)\n"
                "d = x.detach().requires_grad_(True)\n")
    assert t["d"].cut is None and t["d"].is_leaf and t["d"].requires_grad


def test_no_grad_on_plain_tensors_is_not_a_cut():
    t = tensors("import torch\nwith torch.no_grad():\n    q = torch.ones(2) * 3\n")
    assert t["q"].cut is None
