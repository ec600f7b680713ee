"""Hooks from the app are code in the script: inserted where they take effect."""
import pytest
import torch

from core.hooks import add_hook, tensor_expression

SEED = open(__file__.replace("tests/core/test_hooks.py", "resources/examples/01_computation_graph.py")).read()


def test_hook_goes_right_after_the_binding_and_before_backward():
    code, line = add_hook(SEED, "w", "scale")
    lines = code.splitlines()
    assert lines[line - 1].startswith("w.register_hook(lambda g: g * 0.5)")
    assert lines[line - 2].startswith("w = torch.tensor")
    assert line < next(i for i, l in enumerate(lines, 1) if "y.backward()" in l)


@pytest.mark.parametrize("kind,factor", [("scale", 0.5), ("zero", 0.0), ("clip", None)])
def test_hook_changes_the_grad_as_torch_does(kind, factor, runner):
    code, _ = add_hook(SEED, "w", kind)
    result = runner.run(code, "seed.py")
    assert result.error is None, result.error
    w = runner.namespace["w"]
    if factor is not None:
        assert torch.allclose(w.grad, torch.tensor([5.0 * factor]))
    else:
        assert torch.allclose(w.grad, torch.tensor([1.0]))  # 5 clipped to 1


def test_print_hook_prints_during_backward(runner):
    code, _ = add_hook(SEED, "x", "print")
    result = runner.run(code, "seed.py")
    assert "grad of x: tensor([2.])" in result.stdout


def test_module_parameter_and_multiline_statement(runner):
    code = ("import torch\nfrom torch import nn\nmodel = nn.Sequential(\n    nn.Linear(2, 2),\n)\n"
            "loss = model(torch.ones(1, 2)).sum()\nloss.backward()\n")
    new, line = add_hook(code, "model.0.weight", "zero")
    assert new.splitlines()[line - 1].startswith('model.get_parameter("0.weight").register_hook(')
    assert line == 6  # after the closing parenthesis of the statement
    result = runner.run(new, "m.py")
    assert result.error is None
    assert torch.count_nonzero(runner.namespace["model"][0].weight.grad) == 0
    assert tensor_expression("x.grad") == "x.grad"


def test_bad_scripts_give_a_clear_reason():
    with pytest.raises(ValueError, match="syntax error on line 1"):
        add_hook("x = (", "x", "print")
    with pytest.raises(ValueError, match="never assigns 'q'"):
        add_hook(SEED, "q", "print")
    with pytest.raises(ValueError, match="unknown hook"):
        add_hook(SEED, "w", "explode")


def test_node_hook_scales_what_the_node_passes_on(runner):
    code = ("import torch\nx = torch.tensor([1., 2.], requires_grad=True)\n"
            "y = x * 3\nout = y.sum()\nout.backward()\n")
    new, line = add_hook(code, "y", "scale", op="MulBackward0")
    assert new.splitlines()[line - 1].startswith("y.grad_fn.register_hook(")
    result = runner.run(new, "n.py")
    assert result.error is None, result.error
    assert runner.namespace["x"].grad.tolist() == [1.5, 1.5]  # 3 scaled by 0.5
    new, _ = add_hook(code, "y", "print", op="MulBackward0")
    assert "MulBackward0 passes on" in runner.run(new, "n.py").stdout
