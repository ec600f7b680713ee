"""The creation catalogue against torch itself: every function exists, every parameter
name is one torch accepts by name and every default gives what leaving it out gives;
the stubs torch ships name the same parameters; each line `code_line` writes runs in
torch to exactly what the preview says; and bad input gets words, not a crash."""
from __future__ import annotations

import ast
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.kernel.creation import catalogue_from_torch, preview
from core.model.creation import (CATALOGUE, COURSE, PREVIEW_ELEMENT_LIMIT, PreviewReply, PreviewRequest,
                                 StandIn, code_line, fresh_name, function)
from core.protocol import decode, encode

NAMESPACE = {"torch": torch, "np": np}
UNINITIALIZED = {"empty", "empty_like"}  # same shape and dtype, any values
# Documented `=None` where the binding has an overload without the parameter instead:
# `eye(n, m=None)` means "as many columns as rows", but `eye(3, m=None)` is refused.
LEFT_OUT_ONLY = {("eye", "m")}
COURSE_NEEDS = ("tensor as_tensor from_numpy zeros ones full empty eye zeros_like ones_like full_like "
                "empty_like arange linspace logspace rand randn randint randperm normal bernoulli "
                "multinomial").split()


def ids(f):
    return f.name


def same_tensor(a: torch.Tensor, b: torch.Tensor, values: bool = True) -> bool:
    return (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and a.layout == b.layout
            and a.requires_grad == b.requires_grad
            and (not values or torch.equal(a.detach(), b.detach())))


def call(f, **kwargs) -> torch.Tensor:
    torch.manual_seed(0)
    return getattr(torch, f.name)(**kwargs)


def required_by_name(f) -> dict:
    """Every required argument, by name, at the form's example value."""
    out = {}
    for p in f.parameters:
        if p.required:
            text = f.example(p.name)
            value = eval(f"({text})" if p.name == "size" else text, dict(NAMESPACE))
            out[p.name] = value
    return out


def test_the_catalogue_is_what_this_torch_documents():
    assert catalogue_from_torch() == CATALOGUE


def test_the_catalogue_holds_the_course_and_nothing_else():
    names = [f.name for f in CATALOGUE]
    assert names == [n for _, group in COURSE for n in group]
    assert set(COURSE_NEEDS) <= set(names)
    for f in CATALOGUE:
        assert callable(getattr(torch, f.name)), f.name
        assert f.summary and all(p.meaning for p in f.parameters), f.name
        assert [p.name for p in f.parameters].count("requires_grad") <= 1


@pytest.mark.parametrize("f", CATALOGUE, ids=ids)
def test_every_parameter_is_torchs_by_name_and_its_default_is_torchs(f):
    required = required_by_name(f)
    positional_only = [p for p in f.parameters if p.kind == "positional_only"]
    if positional_only:
        with pytest.raises(TypeError):
            call(f, **required)
        assert not [p for p in f.parameters if not p.required]
        return
    plain = call(f, **required)
    values = f.name not in UNINITIALIZED
    # `arange(start=0, end, step=1)`: step is an overload's, that has start too
    leading = {p.name: eval(p.default, dict(NAMESPACE)) for i, p in enumerate(f.parameters)
               if not p.required and any(q.required for q in f.parameters[i + 1:])}
    for p in f.parameters:
        if p.required:
            continue
        default = eval(p.default, dict(NAMESPACE))
        given = {**leading, p.name: default}
        if (f.name, p.name) in LEFT_OUT_ONLY:
            with pytest.raises(TypeError):
                call(f, **required, **given)
            continue
        assert same_tensor(call(f, **required, **given), plain, values), (f.name, p.name)
    with pytest.raises(TypeError):  # the check above can fail: a name torch lacks is refused
        call(f, **required, no_such_parameter=None)


@pytest.mark.parametrize("f", CATALOGUE, ids=ids)
def test_the_stubs_torch_ships_name_the_same_parameters(f):
    stubs = Path(torch.__file__).parent / "_C" / "_VariableFunctions.pyi"
    names = set()
    for node in ast.parse(stubs.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef) and node.name == f.name:
            a = node.args
            names |= {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + ([a.vararg] if a.vararg else [])}
    assert names, f.name
    assert {p.name for p in f.parameters} <= names


def test_a_required_default_before_a_required_argument_is_read_as_torch_means_it():
    arange = function("arange")
    assert [(p.name, p.default) for p in arange.parameters[:3]] == [("start", "0"), ("end", None), ("step", "1")]
    assert function("zeros").parameters[0].kind == "var_positional"
    assert function("from_numpy").parameters[0].kind == "positional_only"
    assert function("linspace").parameter("dtype").kind == "keyword_only"
    assert "size" in [p.name for p in function("normal").parameters]  # the form a course uses


# --- code_line and the preview ------------------------------------------------------------------

VARIANTS = [
    ("linspace", {"start": "0", "end": "1", "steps": "5"}, "x = torch.linspace(0, 1, steps=5)"),
    ("arange", {"end": "10", "step": "3"}, "x = torch.arange(0, 10, step=3)"),
    ("arange", {"start": "2", "end": "6"}, "x = torch.arange(2, 6)"),
    ("zeros", {"size": "(2, 3)", "dtype": "torch.int64"}, "x = torch.zeros(2, 3, dtype=torch.int64)"),
    ("ones", {"size": "4", "requires_grad": "True"}, "x = torch.ones(4, requires_grad=True)"),
    ("full", {"size": "3", "fill_value": "2.5", "dtype": "torch.float64"},
     "x = torch.full((3,), 2.5, dtype=torch.float64)"),
    ("randint", {"high": "10", "size": "2, 2"}, "x = torch.randint(10, (2, 2))"),
    ("randint", {"low": "5", "high": "10", "size": "3"}, "x = torch.randint(5, 10, size=(3,))"),
    ("eye", {"n": "2", "m": "3"}, "x = torch.eye(2, 3)"),
    ("logspace", {"start": "0", "end": "3", "steps": "4", "base": "2"}, "x = torch.logspace(0, 3, steps=4, base=2)"),
    ("normal", {"mean": "1.0", "std": "0.5", "size": "2, 3"}, "x = torch.normal(1.0, 0.5, size=(2, 3))"),
    ("multinomial", {"input": "torch.tensor([0.2, 0.8])", "num_samples": "4", "replacement": "True"},
     "x = torch.multinomial(torch.tensor([0.2, 0.8]), 4, replacement=True)"),
    ("tensor", {"data": "[1, 2, 3]", "dtype": "torch.float32", "requires_grad": "False"},
     "x = torch.tensor([1, 2, 3], dtype=torch.float32)"),
]
LINES = [code_line(f, {p.name: f.example(p.name) for p in f.parameters}, "x") for f in CATALOGUE] + [
    v[2] for v in VARIANTS]


@pytest.mark.parametrize("name, arguments, line", VARIANTS, ids=[v[2] for v in VARIANTS])
def test_code_line_writes_ordinary_pytorch(name, arguments, line):
    assert code_line(name, arguments, "x") == line


@pytest.mark.parametrize("line", LINES)
def test_each_line_runs_in_torch_to_what_the_preview_says(line):
    torch.manual_seed(0)
    np.random.seed(0)
    namespace = dict(NAMESPACE)
    exec(line, namespace)
    made = namespace["x"]
    reply = preview(PreviewRequest(line))
    assert reply.error == "" and reply.code == line
    assert reply.shape == list(made.shape) and reply.numel == made.numel()
    assert reply.dtype == str(made.dtype).removeprefix("torch.")
    assert reply.device == str(made.device) and reply.requires_grad == made.requires_grad
    first = made.detach().reshape(-1)[:64]
    assert reply.values.shape == tuple(first.shape)
    if "torch.empty" not in line:
        assert np.array_equal(reply.values, first.float().numpy() if first.dtype == torch.float16
                              else first.numpy())
        assert reply.text.splitlines()[0] == repr(made).splitlines()[0]


def test_the_preview_travels_over_the_wire():
    reply = preview(PreviewRequest("x = torch.linspace(0, 1, steps=5)"))
    back, _ = decode(*encode(reply))
    assert isinstance(back, PreviewReply) and back.shape == [5]
    assert np.allclose(back.values, [0, 0.25, 0.5, 0.75, 1])


@pytest.mark.parametrize("line, words", [
    ("x = torch.linspace(0, 1, steps=-1)", "steps must be non-negative"),
    ("x = torch.ones(2, dtype=torch.int64, requires_grad=True)", "floating point"),
    ("x = torch.zeros_like(w)", "runs apart from your script"),
    ("x = 3", "not a tensor"),
    ("x = torch.zeros(", "Not Python"),
    ("import os", "one line of the form"),
    ("x = torch.randint(5, 2, (3,))", "RuntimeError"),
])
def test_bad_input_gets_a_sentence(line, words):
    reply = preview(PreviewRequest(line))
    assert words in reply.error and reply.values is None


def test_a_huge_tensor_is_refused_before_it_is_made():
    t = time.perf_counter()
    reply = preview(PreviewRequest("x = torch.rand(100000, 100000)"))
    assert time.perf_counter() - t < 1.0
    assert f"{10**10:,} elements" in reply.error and f"{PREVIEW_ELEMENT_LIMIT:,}" in reply.error


def test_a_slow_preview_is_stopped():
    t = time.perf_counter()
    reply = preview(PreviewRequest("x = torch.tensor(sum(i for i in range(10**12)))"))
    assert "longer than" in reply.error
    assert time.perf_counter() - t < 5


def test_the_preview_leaves_the_kernels_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    preview(PreviewRequest("x = torch.rand(5)"))
    assert torch.equal(torch.rand(3), expected)


def test_the_scripts_tensors_stand_in_by_shape_dtype_and_values():
    w = StandIn("w", [2, 3], "float64", None)
    reply = preview(PreviewRequest("x = torch.ones_like(w)", [w]))
    assert reply.shape == [2, 3] and reply.dtype == "float64" and "w stands in" in reply.note
    p = StandIn("p", [3], "float32", np.array([0.0, 1.0, 1.0], dtype=np.float32))
    reply = preview(PreviewRequest("x = torch.bernoulli(p)", [p]))
    assert reply.values.tolist() == [0.0, 1.0, 1.0] and reply.note == ""


@pytest.mark.parametrize("name, arguments, words", [
    ("linspace", {"start": "0", "end": "1"}, "steps is needed"),
    ("zeros", {}, "shape is needed"),
    ("zeros", {"size": "2,, 3"}, "shape: “2,, 3” is not a Python expression"),
])
def test_code_line_says_which_field_is_wrong(name, arguments, words):
    with pytest.raises(ValueError, match=words):
        code_line(name, arguments, "x")


def test_code_line_refuses_a_bad_name():
    for name in ("2x", "class", "a b", ""):
        with pytest.raises(ValueError, match="Python name"):
            code_line("zeros", {"size": "2"}, name)


def test_a_fresh_name_is_one_the_script_does_not_use():
    assert fresh_name("") == "x"
    assert fresh_name("x = torch.ones(2)\nx1 = x * 2\n") == "x2"
    assert fresh_name("y = 1  # x is mentioned", stem="x") == "x1"
