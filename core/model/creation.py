"""The tensor-creation functions a course uses, as plain data (no torch), so the window
can build the New tensor form without torch; the line of PyTorch the form writes; and
the preview messages.

The catalogue below the `generated` marker is written by `python -m
core.kernel.creation` from torch's own documented signatures (see that module for why
those) and checked against torch by tests/core/test_creation.py: edit COURSE, never
the generated block. What is hand-written here is only what torch cannot say: which
functions a course needs and in which group of the tutorial, the example values a
fresh form starts from, and which parameters the form leaves to the script.
"""
from __future__ import annotations

import ast
import keyword
import re
from dataclasses import dataclass, field

import numpy as np

# The tutorial's three ways of making a tensor (直接创建, 依数值创建, 依概率分布创建), plus
# the `_like` forms that take their shape from another tensor.
COURSE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Directly", ("tensor", "as_tensor", "from_numpy")),
    ("By value", ("zeros", "ones", "full", "empty", "eye", "arange", "linspace", "logspace")),
    ("Like another tensor", ("zeros_like", "ones_like", "full_like", "empty_like",
                             "rand_like", "randn_like", "randint_like")),
    ("By distribution", ("rand", "randn", "randint", "randperm", "normal", "bernoulli",
                         "multinomial")),
)

# What a fresh form holds for the parameters a call cannot do without, so the preview
# shows something at once. Keys are parameter names, or "function.parameter".
EXAMPLES: dict[str, str] = {
    "size": "2, 3", "data": "[[1.0, 2.0], [3.0, 4.0]]", "ndarray": "np.ones((2, 3))",
    "input": "torch.ones(2, 3)", "fill_value": "7.0", "n": "3", "start": "0", "end": "1",
    "steps": "5", "arange.end": "5", "logspace.end": "2", "low": "0", "high": "10",
    "mean": "0.0", "std": "1.0", "num_samples": "2",
    "bernoulli.input": "torch.full((2, 3), 0.5)", "multinomial.input": "torch.tensor([0.1, 0.3, 0.6])",
}
# What a parameter means where torch's docs list it in no Args section: (type, meaning).
UNDOCUMENTED: dict[str, tuple[str, str]] = {
    "ndarray": ("numpy.ndarray", "The NumPy array; the tensor shares its memory"),
}
# Parameters the form leaves out: a course sets them in the script, if ever.
ADVANCED = frozenset({"out", "layout", "generator", "pin_memory", "memory_format"})
# The choices the form offers (any other expression may be typed).
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
          "uint8", "bool", "complex64")
DEVICES = ("cpu", "cuda", "mps", "meta")

PREVIEW_ELEMENT_LIMIT = 1 << 24  # a preview bigger than this is refused, not made
PREVIEW_VALUES = 64  # the first values a preview sends back
PREVIEW_SECONDS = 2.0  # a preview that takes longer is stopped
POSITIONAL_LIMIT = 2  # written by position: at most the first two arguments


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # inspect.Parameter's kind, lower case: "positional_or_keyword", "var_positional", …
    default: str | None  # the default as Python source ("None", "torch.strided"); None: required
    type: str  # as torch's docs spell it: "int...", "float or Tensor", "torch.dtype"
    meaning: str  # one line, from torch's docs

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def by_position(self) -> bool:
        return self.kind in ("positional_only", "positional_or_keyword")


@dataclass(frozen=True)
class Function:
    name: str  # torch.<name>
    group: str  # one of COURSE's groups
    summary: str  # one line, from torch's docs
    parameters: tuple[Parameter, ...]

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def signature(self) -> str:
        """`torch.linspace(start, end, steps, *, out=None, …)` as the docs write it."""
        parts, star = [], False
        for p in self.parameters:
            if p.kind == "keyword_only" and not star:
                parts.append("*")
                star = True
            text = ("*" if p.kind == "var_positional" else "") + p.name
            parts.append(text if p.default is None else f"{text}={p.default}")
        return f"torch.{self.name}({', '.join(parts)})"

    def example(self, parameter: str) -> str:
        """What a fresh form holds for `parameter`: an example if it is required, else ""
        (the default)."""
        if not self.parameter(parameter).required:
            return ""
        return EXAMPLES.get(f"{self.name}.{parameter}", EXAMPLES.get(parameter, ""))


def function(name: str) -> Function:
    for f in CATALOGUE:
        if f.name == name:
            return f
    raise KeyError(f"torch.{name} is not in the catalogue")


def code_line(function: Function | str, arguments: dict[str, str], name: str) -> str:
    """One line of ordinary PyTorch: `x = torch.linspace(0, 1, steps=5)`.

    `arguments` maps parameter names to Python source as typed in the form; empty or
    missing means the default (left out of the line, as is an argument equal to its
    default). The first arguments go by position (at most POSITIONAL_LIMIT, so a third
    number says what it is: `steps=5`), the rest by name. A shape may be typed as
    `2, 3`. Raises ValueError, saying which field, for a missing required argument, a
    field that is not a Python expression, or a bad name."""
    if isinstance(function, str):
        function = globals()["function"](function)
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"“{name}” cannot be a Python name")
    values = {}
    for p in function.parameters:
        text = (arguments.get(p.name) or "").strip()
        if text:
            try:
                ast.parse(text if p.name != "size" else f"({text})", mode="eval")
            except SyntaxError:
                raise ValueError(f"{_field(p)}: “{text}” is not a Python expression") from None
        if p.default is not None and text == p.default:
            text = ""
        if not text and p.required:
            raise ValueError(f"{_field(p)} is needed")
        values[p.name] = text
    args, kwargs = [], []
    positional = [p for p in function.parameters if p.by_position]
    for i, p in enumerate(positional):
        # torch's `arange(start=0, end, step=1)` is overloaded: start may be left out
        # (`arange(5)`) only while step is too (`arange(0, 5, step=2)`).
        later = positional[i + 1:]
        if (not values[p.name] and not p.required and any(q.required for q in later)
                and any(values[q.name] and not q.required for q in later)):
            values[p.name] = p.default
    by_position, skipped = True, False
    for i, p in enumerate(positional):
        text = values[p.name]
        if not text:
            by_position = by_position and any(q.required for q in positional[i + 1:])
            skipped = True
            continue
        if skipped and not p.required:
            by_position = False
        if p.kind == "positional_only" or (by_position and len(args) < POSITIONAL_LIMIT):
            args.append(_shape_source(text, tuple_=True) if p.name == "size" else text)
        else:
            by_position = False
            kwargs.append(f"{p.name}={_shape_source(text, tuple_=True) if p.name == 'size' else text}")
    for p in function.parameters:
        text = values[p.name]
        if text and p.kind == "var_positional":
            args.append(_shape_source(text, tuple_=False))
        elif text and p.kind == "keyword_only":
            kwargs.append(f"{p.name}={text}")
    return f"{name} = torch.{function.name}({', '.join(args + kwargs)})"


def _field(p: Parameter) -> str:
    return "shape" if p.name == "size" else p.name


def _shape_source(text: str, tuple_: bool) -> str:
    """A shape typed as `2, 3`, `(2, 3)`, `[2, 3]`, `5` or `x.shape`, written as one
    tuple argument (`(2, 3)`, `(5,)`) or as several (`2, 3`)."""
    node = ast.parse(f"({text})", mode="eval").body
    if isinstance(node, ast.Tuple):
        inner = ", ".join(ast.get_source_segment(f"({text})", e) for e in node.elts)
        return (f"({inner},)" if len(node.elts) == 1 else f"({inner})") if tuple_ else inner
    if tuple_ and isinstance(node, ast.Constant) and isinstance(node.value, int):
        return f"({text},)"
    return text


def fresh_name(script: str, stem: str = "x") -> str:
    """`stem`, or `stem1`, `stem2`, … : the first that no word of the script uses yet
    (comments and strings count, which only makes it more careful)."""
    taken = set(re.findall(r"[A-Za-z_]\w*", script)) | {"torch", "np", "numpy"}
    if stem not in taken:
        return stem
    i = 1
    while f"{stem}{i}" in taken:
        i += 1
    return f"{stem}{i}"


# --- the preview ---------------------------------------------------------------------------

@dataclass
class StandIn:
    """A tensor of the script that the previewed line names. The preview never sees the
    script's namespace; it builds a tensor of this shape and dtype (with these values
    where the last run sent them all) under the same name."""
    name: str
    shape: list[int]
    dtype: str
    values: np.ndarray | None = None


@dataclass
class PreviewRequest:
    code: str  # one line from code_line
    stand_ins: list[StandIn] = field(default_factory=list)


@dataclass
class PreviewReply:
    code: str  # the request's line: an answer to an older line is not shown
    error: str = ""  # "" when the line made a tensor; else what went wrong, in words
    shape: list[int] = field(default_factory=list)
    dtype: str = ""
    device: str = ""
    requires_grad: bool = False
    numel: int = 0
    values: np.ndarray | None = None  # the first PREVIEW_VALUES, flat
    text: str = ""  # how print() shows it (its first lines)
    note: str = ""  # e.g. which names stood in for the script's tensors


MESSAGES = (StandIn, PreviewRequest, PreviewReply)
REPLY_TO = {PreviewRequest: PreviewReply}


# --- generated by `python -m core.kernel.creation`: do not edit by hand -------------------
CATALOGUE: tuple[Function, ...] = (
    Function('tensor', 'Directly', 'Constructs a tensor with no autograd history (also known as a "leaf tensor", see /notes/autograd) by copying data', (
        Parameter('data', 'positional_or_keyword', None, 'array_like',
                  'Initial data for the tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The device of the constructed tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('pin_memory', 'keyword_only', 'False', 'bool',
                  'If set, returned tensor would be allocated in the pinned memory'),
    )),
    Function('as_tensor', 'Directly', 'Converts data into a tensor, sharing data and preserving autograd history if possible', (
        Parameter('data', 'positional_or_keyword', None, 'array_like',
                  'Initial data for the tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The device of the constructed tensor'),
    )),
    Function('from_numpy', 'Directly', 'Creates a Tensor from a numpy.ndarray', (
        Parameter('ndarray', 'positional_only', None, 'numpy.ndarray',
                  'The NumPy array; the tensor shares its memory'),
    )),
    Function('zeros', 'By value', 'Returns a tensor filled with the scalar value 0, with the shape defined by the variable argument size', (
        Parameter('size', 'var_positional', None, 'int...',
                  'A sequence of integers defining the shape of the output tensor'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
    )),
    Function('ones', 'By value', 'Returns a tensor filled with the scalar value 1, with the shape defined by the variable argument size', (
        Parameter('size', 'var_positional', None, 'int...',
                  'A sequence of integers defining the shape of the output tensor'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
    )),
    Function('full', 'By value', 'Creates a tensor of size size filled with fill_value', (
        Parameter('size', 'positional_or_keyword', None, 'int...',
                  'A list, tuple, or torch.Size of integers defining the shape of the output tensor'),
        Parameter('fill_value', 'positional_or_keyword', None, 'Scalar',
                  'The value to fill the output tensor with'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
    )),
    Function('empty', 'By value', 'Returns a tensor filled with uninitialized data', (
        Parameter('size', 'var_positional', None, 'int...',
                  'A sequence of integers defining the shape of the output tensor'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('pin_memory', 'keyword_only', 'False', 'bool',
                  'If set, returned tensor would be allocated in the pinned memory'),
        Parameter('memory_format', 'keyword_only', 'torch.contiguous_format', 'torch.memory_format',
                  'The desired memory format of returned Tensor'),
    )),
    Function('eye', 'By value', 'Returns a 2-D tensor with ones on the diagonal and zeros elsewhere', (
        Parameter('n', 'positional_or_keyword', None, 'int',
                  'The number of rows'),
        Parameter('m', 'positional_or_keyword', 'None', 'int',
                  'The number of columns with default being n'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
    )),
    Function('arange', 'By value', 'Returns a 1-D tensor of size ⌈(end - start) / step⌉ with values from the interval [start, end) taken with common difference step beginning from start', (
        Parameter('start', 'positional_or_keyword', '0', 'Number',
                  'The starting value for the set of points'),
        Parameter('end', 'positional_or_keyword', None, 'Number',
                  'The ending value for the set of points'),
        Parameter('step', 'positional_or_keyword', '1', 'Number',
                  'The gap between each pair of adjacent points'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
    )),
    Function('linspace', 'By value', 'Creates a one-dimensional tensor of size steps whose values are evenly spaced from start to end, inclusive', (
        Parameter('start', 'positional_or_keyword', None, 'float or Tensor',
                  'The starting value for the set of points'),
        Parameter('end', 'positional_or_keyword', None, 'float or Tensor',
                  'The ending value for the set of points'),
        Parameter('steps', 'positional_or_keyword', None, 'int',
                  'Size of the constructed tensor'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The data type to perform the computation in'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
    )),
    Function('logspace', 'By value', 'Creates a one-dimensional tensor of size steps whose values are evenly spaced from base^start to base^end, inclusive, on a logarithmic scale with base base', (
        Parameter('start', 'positional_or_keyword', None, 'float or Tensor',
                  'The starting value for the set of points'),
        Parameter('end', 'positional_or_keyword', None, 'float or Tensor',
                  'The ending value for the set of points'),
        Parameter('steps', 'positional_or_keyword', None, 'int',
                  'Size of the constructed tensor'),
        Parameter('base', 'positional_or_keyword', '10.0', 'float',
                  'Base of the logarithm function'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The data type to perform the computation in'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
    )),
    Function('zeros_like', 'Like another tensor', 'Returns a tensor filled with the scalar value 0, with the same size as input', (
        Parameter('input', 'positional_or_keyword', None, 'Tensor',
                  'The size of input will determine size of the output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned Tensor'),
        Parameter('layout', 'keyword_only', 'None', 'torch.layout',
                  'The desired layout of returned tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('memory_format', 'keyword_only', 'torch.preserve_format', 'torch.memory_format',
                  'The desired memory format of returned Tensor'),
    )),
    Function('ones_like', 'Like another tensor', 'Returns a tensor filled with the scalar value 1, with the same size as input', (
        Parameter('input', 'positional_or_keyword', None, 'Tensor',
                  'The size of input will determine size of the output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned Tensor'),
        Parameter('layout', 'keyword_only', 'None', 'torch.layout',
                  'The desired layout of returned tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('memory_format', 'keyword_only', 'torch.preserve_format', 'torch.memory_format',
                  'The desired memory format of returned Tensor'),
    )),
    Function('full_like', 'Like another tensor', 'Returns a tensor with the same size as input filled with fill_value', (
        Parameter('input', 'positional_or_keyword', None, 'Tensor',
                  'The size of input will determine size of the output tensor'),
        Parameter('fill_value', 'positional_or_keyword', None, '',
                  'The number to fill the output tensor with'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned Tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('memory_format', 'keyword_only', 'torch.preserve_format', 'torch.memory_format',
                  'The desired memory format of returned Tensor'),
    )),
    Function('empty_like', 'Like another tensor', 'Returns an uninitialized tensor with the same size as input', (
        Parameter('input', 'positional_or_keyword', None, 'Tensor',
                  'The size of input will determine size of the output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned Tensor'),
        Parameter('layout', 'keyword_only', 'None', 'torch.layout',
                  'The desired layout of returned tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('memory_format', 'keyword_only', 'torch.preserve_format', 'torch.memory_format',
                  'The desired memory format of returned Tensor'),
    )),
    Function('rand_like', 'Like another tensor', 'Returns a tensor with the same size as input that is filled with random numbers from a uniform distribution on the interval [0, 1)', (
        Parameter('input', 'positional_or_keyword', None, 'Tensor',
                  'The size of input will determine size of the output tensor'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned Tensor'),
        Parameter('layout', 'keyword_only', 'None', 'torch.layout',
                  'The desired layout of returned tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('memory_format', 'keyword_only', 'torch.preserve_format', 'torch.memory_format',
                  'The desired memory format of returned Tensor'),
    )),
    Function('randn_like', 'Like another tensor', 'Returns a tensor with the same size as input that is filled with random numbers from a normal distribution with mean 0 and variance 1', (
        Parameter('input', 'positional_or_keyword', None, 'Tensor',
                  'The size of input will determine size of the output tensor'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned Tensor'),
        Parameter('layout', 'keyword_only', 'None', 'torch.layout',
                  'The desired layout of returned tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('memory_format', 'keyword_only', 'torch.preserve_format', 'torch.memory_format',
                  'The desired memory format of returned Tensor'),
    )),
    Function('randint_like', 'Like another tensor', 'Returns a tensor with the same shape as Tensor input filled with random integers generated uniformly between low (inclusive) and high (exclusive)', (
        Parameter('input', 'positional_or_keyword', None, 'Tensor',
                  'The size of input will determine size of the output tensor'),
        Parameter('low', 'positional_or_keyword', '0', 'int',
                  'Lowest integer to be drawn from the distribution'),
        Parameter('high', 'positional_or_keyword', None, 'int',
                  'One above the highest integer to be drawn from the distribution'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned Tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('memory_format', 'keyword_only', 'torch.preserve_format', 'torch.memory_format',
                  'The desired memory format of returned Tensor'),
    )),
    Function('rand', 'By distribution', 'Returns a tensor filled with random numbers from a uniform distribution on the interval [0, 1)', (
        Parameter('size', 'var_positional', None, 'int...',
                  'A sequence of integers defining the shape of the output tensor'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('pin_memory', 'keyword_only', 'False', 'bool',
                  'If set, returned tensor would be allocated in the pinned memory'),
    )),
    Function('randn', 'By distribution', 'Returns a tensor filled with random numbers from a normal distribution with mean 0 and variance 1 (also called the standard normal distribution)', (
        Parameter('size', 'var_positional', None, 'int...',
                  'A sequence of integers defining the shape of the output tensor'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('pin_memory', 'keyword_only', 'False', 'bool',
                  'If set, returned tensor would be allocated in the pinned memory'),
    )),
    Function('randint', 'By distribution', 'Returns a tensor filled with random integers generated uniformly between low (inclusive) and high (exclusive)', (
        Parameter('low', 'positional_or_keyword', '0', 'int',
                  'Lowest integer to be drawn from the distribution'),
        Parameter('high', 'positional_or_keyword', None, 'int',
                  'One above the highest integer to be drawn from the distribution'),
        Parameter('size', 'positional_or_keyword', None, 'tuple',
                  'A tuple defining the shape of the output tensor'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
    )),
    Function('randperm', 'By distribution', 'Returns a random permutation of integers from 0 to n - 1', (
        Parameter('n', 'positional_or_keyword', None, 'int',
                  'The upper bound (exclusive)'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'torch.int64', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('pin_memory', 'keyword_only', 'False', 'bool',
                  'If set, returned tensor would be allocated in the pinned memory'),
    )),
    Function('normal', 'By distribution', 'Returns a tensor of random numbers drawn from separate normal distributions whose mean and standard deviation are given', (
        Parameter('mean', 'positional_or_keyword', None, 'float',
                  'The mean for all distributions'),
        Parameter('std', 'positional_or_keyword', None, 'float',
                  'The standard deviation for all distributions'),
        Parameter('size', 'positional_or_keyword', None, 'int...',
                  'A sequence of integers defining the shape of the output tensor'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
        Parameter('dtype', 'keyword_only', 'None', 'torch.dtype',
                  'The desired data type of returned tensor'),
        Parameter('layout', 'keyword_only', 'torch.strided', 'torch.layout',
                  'The desired layout of returned Tensor'),
        Parameter('device', 'keyword_only', 'None', 'torch.device',
                  'The desired device of returned tensor'),
        Parameter('requires_grad', 'keyword_only', 'False', 'bool',
                  'If autograd should record operations on the returned tensor'),
        Parameter('pin_memory', 'keyword_only', 'False', 'bool',
                  'If set, returned tensor would be allocated in the pinned memory'),
    )),
    Function('bernoulli', 'By distribution', 'Draws binary random numbers (0 or 1) from a Bernoulli distribution', (
        Parameter('input', 'positional_or_keyword', None, 'Tensor',
                  'The input tensor of probability values for the Bernoulli distribution'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
    )),
    Function('multinomial', 'By distribution', 'Returns a tensor where each row contains num_samples indices sampled from the multinomial (a stricter definition would be multivariate, refer to torch.distributions.multinomial.Multinomial for more details) probability distribution located in the corresponding row of tensor input', (
        Parameter('input', 'positional_or_keyword', None, 'Tensor',
                  'The input tensor containing probabilities'),
        Parameter('num_samples', 'positional_or_keyword', None, 'int',
                  'Number of samples to draw'),
        Parameter('replacement', 'positional_or_keyword', 'False', 'bool',
                  'Whether to draw with replacement or not'),
        Parameter('generator', 'keyword_only', 'None', 'torch.Generator',
                  'A pseudorandom number generator for sampling'),
        Parameter('out', 'keyword_only', 'None', 'Tensor',
                  'The output tensor'),
    )),
)
# --- end of generated ---------------------------------------------------------------------
