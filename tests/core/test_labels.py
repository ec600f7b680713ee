"""core.labels: the words on nodes and badges, and errors in plain language. Grads
are numpy arrays in the model and nested lists in the export: both read the same."""
import math

import numpy as np
import pytest

from core.kernel.runner import Runner
from core.labels import (SMALL_GRAD, badge_text, error_kind, explain_error, format_grad,
                         format_shape, format_values, node_lines, node_tooltip, run_error_text)
from core.model.backward import Badge, GradInfo
from core.model.graph import OpNode, SavedNode, TensorNode
from core.model.run import RunError


def test_format_shape():
    assert format_shape([]) == "()"
    assert format_shape([3]) == "(3,)"
    assert format_shape([2, 3]) == "(2, 3)"


@pytest.mark.parametrize("values", [
    np.array([[1.0, 2.5], [math.nan, -math.inf]]),
    [[1.0, 2.5], ["nan", "-inf"]],  # the export's json_safe lists
])
def test_format_values_of_arrays_and_lists(values):
    assert format_values(values) == "[1, 2.5, nan, -inf]"


def test_format_values_of_a_scalar():
    assert format_values(np.array(2.5)) == "[2.5]"
    assert format_values(2.5) == "[2.5]"


def test_format_grad():
    small = GradInfo([2], "float32", 5.0, 3.0, 4.0, np.array([3.0, 4.0], np.float32))
    assert format_grad(small) == "[3, 4]"
    big = GradInfo([10], "float32", 12.3456, 0.0, 9.0, np.arange(10.0))
    assert format_grad(big, max_values=4) == "‖g‖=12.35 (10,)"
    assert format_grad(GradInfo([10], "float32", 1.0, 0.0, 1.0, None)) == "‖g‖=1 (10,)"
    assert format_grad(None) == "None"


def test_badge_text():
    g = GradInfo([1], "float32", 2.0, 2.0, 2.0, np.array([2.0]))
    assert badge_text(Badge(g, "flow")) == "∂ [2]"
    assert badge_text(Badge(g, "grad")) == "grad [2]"
    assert badge_text(Badge(None, "not_kept")) == "grad not kept"
    big = GradInfo([SMALL_GRAD + 1], "float32", 3.0, 0.0, 1.0, np.ones(SMALL_GRAD + 1))
    assert badge_text(Badge(big, "flow")).startswith("∂ ‖g‖=")


def test_node_lines_from_a_run():
    result = Runner().run("import torch\nx = torch.tensor([2.], requires_grad=True)\n"
                          "big = torch.ones(5, requires_grad=True)\nd = x.detach()\n"
                          "h = x * 3\nh.retain_grad()\n(h.sum() + big.sum()).backward()\n")
    assert result.error is None, result.error
    t = {n.name: n for n in result.graph.by_kind("tensor")}
    assert node_lines(t["x"]) == ["x", "(1,) float32", "leaf, requires_grad", "[2]", "grad [3]"]
    # > SMALL_GRAD: no grad on the node; values up to SMALL_VALUES are
    assert node_lines(t["big"]) == ["big", "(5,) float32", "leaf, requires_grad", "[1, 1, 1, 1, 1]"]
    assert node_lines(t["d"]) == ["d", "(1,) float32", "cut off by detach()", "[2]"]
    assert node_lines(t["h"]) == ["h", "(1,) float32", "retains_grad", "[6]", "grad [1]"]
    op = next(n for n in result.graph.by_kind("op") if n.name == "MulBackward0")
    assert node_lines(op) == ["MulBackward0"]
    assert "autograd node" in node_tooltip(op)
    assert "requires_grad True" in node_tooltip(t["x"])


def test_node_lines_of_saved_and_device_nodes():
    saved = SavedNode("s0", "k", "self", "op0", [2, 3], "float32")
    assert node_lines(saved) == ["saved self", "(2, 3)"]
    freed = SavedNode("s1", "k", "other", "op0", None, None, freed=True)
    assert node_lines(freed) == ["saved other", "freed"]
    assert "freed by backward()" in node_tooltip(freed)
    gpu = TensorNode("t0", "k", "w", [], "float16", "cuda:0", True, True, None, False,
                     grad=np.array(0.5, np.float32), has_grad=True)
    assert node_lines(gpu) == ["w", "() float16 cuda:0", "leaf, requires_grad", "grad [0.5]"]
    unnamed = TensorNode("t1", "k", None, [2], "float32", "cpu", False, True, None, False)
    assert node_lines(unnamed)[0] == "(unnamed leaf)" and node_lines(unnamed)[2] == "leaf, no grad"
    assert node_lines(OpNode("op1", "k", "AccumulateGrad")) == ["AccumulateGrad"]


@pytest.mark.parametrize("message, kind, words", [
    ("Trying to backward through the graph a second time (or directly access saved tensors ...",
     "graph_freed", "retain_graph=True"),
    ("element 0 of tensors does not require grad and does not have a grad_fn", "no_grad",
     "requires_grad=True"),
    ("grad can be implicitly created only for scalar outputs", "not_scalar", "y.backward(v)"),
    ("a leaf Variable that requires grad is being used in an in-place operation.", "inplace_leaf",
     "torch.no_grad"),
    ("CUDA out of memory. Tried to allocate 2.00 GiB", "cuda_oom", "GPU ran out of memory"),
    ("one of the variables needed for gradient computation has been modified by an inplace "
     "operation", "inplace_saved", ".clone()"),
    ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried "
     "to allocate 40000000000000 bytes.", "allocation", "37,252.9 GiB"),
])
def test_known_errors_are_named_and_explained(message, kind, words):
    assert error_kind(message) == kind
    assert words in explain_error(message)


def test_unknown_errors_are_left_as_they_are():
    assert error_kind("ValueError: nope") is None
    assert explain_error("ValueError: nope") == "ValueError: nope"


# torch's own wording (c10/cuda/CUDACachingAllocator.cpp, OutOfMemoryError), with figures
CUDA_OOM = ("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB "
            "of which 1.25 GiB is free. Including non-PyTorch memory, this process has 77.93 GiB memory "
            "in use. Of the allocated memory 76.50 GiB is allocated by PyTorch, and 512.00 MiB is "
            "reserved by PyTorch but unallocated. If reserved but unallocated memory is large try "
            "setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.")


def test_a_cuda_out_of_memory_is_explained_with_its_figures():
    plain = explain_error(CUDA_OOM)
    assert error_kind(CUDA_OOM) == "cuda_oom"
    for figure in ("20.00 GiB", "1.25 GiB", "79.19 GiB", "76.50 GiB", "512.00 MiB"):
        assert figure in plain
    assert "smaller batch" in plain


def test_an_out_of_memory_run_says_what_the_scripts_tensors_hold():
    from core.kernel.runner import held_by_tensors
    result = Runner().run("import torch\nw = torch.zeros(1024, 256)\nv = w.view(-1)\nb = torch.ones(10)\n", "m.py")
    text = held_by_tensors(result.graph)
    assert text == f"The script's named tensors and parameters hold {(1024 * 256 * 4 + 40) / 2**30:,.2f} GiB on cpu (3 tensors)."  # v is a view of w: its bytes once
    err = RunError("OutOfMemoryError", CUDA_OOM, 3, note=text)
    assert run_error_text(err).endswith(text)
