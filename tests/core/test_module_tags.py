"""Every autograd node is tagged with the innermost nn.Module whose forward made it,
checked against torch's own forward hooks on torchvision's ResNet-18 and a
TransformerEncoder: the op that made each leaf module's output carries that module's
name, and every op made inside the model carries some module."""
from __future__ import annotations

import pytest

from core.kernel.trace import trace_graph

HOOKED = """
seen = {{}}
def remember(name):
    def hook(module, args, output):
        if getattr(output, "grad_fn", None) is not None:
            seen[name] = output.grad_fn
    return hook
for name, m in model.named_modules():
    if name and not list(m.children()) and not isinstance(m, torch.nn.Dropout):
        m.register_forward_hook(remember("model." + name))
loss = model({inputs}).sum()
"""

MODELS = {
    "resnet18": ("import torch, torchvision\nmodel = torchvision.models.resnet18(num_classes=10)\n",
                 "torch.randn(2, 3, 32, 32)"),
    "transformer": ("import torch\nfrom torch import nn\nlayer = nn.TransformerEncoderLayer(16, 2, 32)\n"
                    "model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)\n",
                    "torch.randn(5, 3, 16)"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tags_agree_with_forward_hooks(runner, name):
    setup, inputs = MODELS[name]
    result = runner.run(setup + HOOKED.format(inputs=inputs), filename=f"{name}.py")
    assert result.error is None, result.error
    index: dict[int, str] = {}
    graph = trace_graph(runner.namespace, index=index, cuts=runner.cuts)
    ops = {n.id: n for n in graph.by_kind("op")}
    seen = runner.namespace["seen"]
    assert len(seen) > 5
    for module, fn in seen.items():
        assert ops[index[id(fn)]].module == module, (module, ops[index[id(fn)]])
    inside = [o for o in ops.values() if o.name != "AccumulateGrad" and o.name != "SumBackward0"]
    assert inside and all(o.module for o in inside)  # 100% of the model's nodes tagged
