"""Tensor creation, the kernel's side: the catalogue read from torch itself, and the
New tensor dialog's preview.

Where the catalogue's signatures come from. torch's creation functions are C
functions: `inspect.signature` has nothing for them. What torch offers instead:

- `torch.overrides.get_testing_overrides()`: Python lambdas with real parameter names,
  but only for functions that take a tensor to dispatch on, so none of the factories
  (zeros, arange, linspace, …) are there, and the lambdas are hand-written
  (`zeros_like`'s lacks `memory_format`).
- `torch._C._jit_get_schemas_for_operator`: ATen's schemas, not Python's: `size` where
  Python takes `*size`, `layout=None` placeholders, no `tensor` or `from_numpy`.
- `torch/_C/_VariableFunctions.pyi`: every overload of the Python binding, but typed
  for checkers: it puts `tensor`'s dtype before no `*` (it is keyword-only), and a
  function's dozen overloads do not say which one the docs teach.
- The docstring's first line, `zeros(*size, *, out=None, dtype=None, …) -> Tensor`:
  one signature per function, in Python's own names, with `*size`, the keyword-only
  marker and the defaults as a Python caller meets them, for every function of the
  course, followed by an Args section with each parameter's type and meaning.

So the catalogue is read from the docstrings: the first line, or, where torch documents
several forms (`normal`), the fullest one (`normal(mean, std, size, *, …)`, the one a
course uses). The few places a docstring is not Python (`\\*`, `arange(start=0, end)`,
`generator: Optional[Generator]` without a default) are read as torch means them, a
function that takes no keyword arguments at all (`from_numpy`) is asked, and
tests/core/test_creation.py calls every function with every parameter by name at its
default, so a misread name or default fails there, whatever the docstring says.
"""
from __future__ import annotations

import ast
import builtins
import re
import sys
from pathlib import Path

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from ..model.creation import (COURSE, PREVIEW_ELEMENT_LIMIT, PREVIEW_SECONDS, PREVIEW_VALUES, UNDOCUMENTED,
                              Function, Parameter, PreviewReply, PreviewRequest, StandIn)
from .runner import ScriptTimeout, time_limit
from .tensors import dtype_name

PREVIEW_LINES = 12  # of print()'s text


# --- the catalogue ---------------------------------------------------------------------------

def catalogue_from_torch() -> tuple[Function, ...]:
    """Every function of COURSE, read from the installed torch."""
    return tuple(function_from_torch(name, group) for group, names in COURSE for name in names)


def function_from_torch(name: str, group: str) -> Function:
    fn = getattr(torch, name)
    forms = _documented_forms(fn.__doc__ or "")
    if not forms:
        raise ValueError(f"torch.{name} documents no signature")
    signature, section = max(forms, key=lambda form: len(_split_arguments(form[0])))
    described = _described_parameters(section)
    for pname, (doc_type, meaning) in UNDOCUMENTED.items():
        described.setdefault(pname, (doc_type, meaning))
    keywords = _takes_keywords(fn)
    parameters = []
    keyword_only = False
    for part in _split_arguments(signature):
        if part == "*":
            keyword_only = True
            continue
        pname, default, annotation = _read_parameter(part)
        if pname.startswith("*"):
            pname, kind, keyword_only = pname[1:], "var_positional", True
        elif keyword_only:
            kind = "keyword_only"
        else:
            kind = "positional_or_keyword" if keywords else "positional_only"
        doc_type, meaning = described.get(pname, (annotation, ""))
        parameters.append(Parameter(pname, kind, default, doc_type, meaning))
    return Function(name, group, _summary(forms[0][1]), tuple(parameters))


def _documented_forms(doc: str) -> list[tuple[str, str]]:
    """[(signature, the text documenting it)]: the first line, and each `.. function::`."""
    doc = re.sub(r"\\\n\s*", "", doc.strip())  # a signature continued on the next line
    lines = doc.splitlines()
    starts = [0] + [i for i, line in enumerate(lines) if line.startswith(".. function::")]
    forms = []
    for k, i in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        head = lines[i].removeprefix(".. function::").strip().replace("\\*", "*")
        if "(" in head:
            forms.append((head, "\n".join(lines[i + 1:end])))
    return forms


def _split_arguments(signature: str) -> list[str]:
    """The comma-separated parts between the signature's outer parentheses."""
    inner = signature[signature.index("(") + 1:]
    parts, depth, current = [], 0, ""
    for ch in inner:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return [p for p in parts if p]


def _read_parameter(part: str) -> tuple[str, str | None, str]:
    """(name, default source or None, annotation) of `name: T = default` and its kin.
    `name: Optional[T]` without a default is optional all the same (None)."""
    head, _, default = part.partition("=")
    pname, _, annotation = head.partition(":")
    annotation, default = annotation.strip(), default.strip() or None
    if default is None and annotation.startswith("Optional["):
        default = "None"
    return pname.strip(), default, annotation


def _takes_keywords(fn) -> bool:
    """False for a C function that refuses every keyword (`from_numpy`): asked with a
    keyword it cannot have, it says so before looking at anything else."""
    try:
        fn(__torchscope_probe__=None)
    except TypeError as exc:
        return "takes no keyword arguments" not in str(exc)
    return True


_ENTRY = re.compile(r"^ {4}(\w+)(?: \((.+?)\))?:\s*(.*)$")


def _described_parameters(section: str) -> dict[str, tuple[str, str]]:
    """{name: (type, one-line meaning)} from the Args / Keyword args entries."""
    out: dict[str, tuple[str, str]] = {}
    name = None
    for line in section.splitlines():
        match = _ENTRY.match(line)
        if match:
            name = match.group(1)
            if name in out:  # an entry documented twice: the first one counts
                name = None
                continue
            out[name] = (_plain(match.group(2) or "").replace(", optional", ""), match.group(3))
        elif name and line.startswith(" " * 8) and line.strip():
            out[name] = (out[name][0], f"{out[name][1]} {line.strip()}")
        else:
            name = None
    return {n: (t, _first_sentence(m)) for n, (t, m) in out.items()}


def _summary(section: str) -> str:
    paragraph = section.strip().split("\n\n")[0]
    if paragraph.startswith("Note"):
        return ""
    return _first_sentence(" ".join(paragraph.split()))


def _plain(text: str) -> str:
    """reStructuredText roles, literals and a little LaTeX as plain words."""
    text = re.sub(r":math:`([^`]+)`", lambda m: _plain_math(m.group(1)), text)
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"`([^`]+)`", r"\1", text).replace("\\", "")


def _plain_math(tex: str) -> str:
    if "{{\\text{{" in tex:  # logspace's docstring doubles its braces
        tex = tex.replace("{{", "{").replace("}}", "}")
    tex = re.sub(r"\\text\{([^{}]*)\}", r"\1", tex)
    tex = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1) / \2", tex)
    for tex_word, word in (("\\left", ""), ("\\right", ""), ("\\lceil", "⌈"), ("\\rceil", "⌉")):
        tex = tex.replace(tex_word, word)
    tex = re.sub(r"\^\{([^{}]*)\}", r"^\1", tex)
    return " ".join(tex.replace("{", "").replace("}", "").split()).replace("⌈ ", "⌈").replace(" ⌉", "⌉")


def _first_sentence(text: str) -> str:
    text = _plain(" ".join(text.split()))
    match = re.search(r"[.:](\s|$)", text)
    sentence = text[:match.start()] if match else text
    return sentence[:1].upper() + sentence[1:]


def catalogue_source(catalogue: tuple[Function, ...]) -> str:
    """The Python source of CATALOGUE, as core/model/creation.py holds it."""
    lines = ["CATALOGUE: tuple[Function, ...] = ("]
    for f in catalogue:
        lines.append(f"    Function({f.name!r}, {f.group!r}, {f.summary!r}, (")
        for p in f.parameters:
            lines.append(f"        Parameter({p.name!r}, {p.kind!r}, {p.default!r}, {p.type!r},")
            lines.append(f"                  {p.meaning!r}),")
        lines.append("    )),")
    lines.append(")")
    return "\n".join(lines)


GENERATED_START = "# --- generated by `python -m core.kernel.creation`"
GENERATED_END = "# --- end of generated"


def write_catalogue(path: Path) -> None:
    """Rewrite the generated block of core/model/creation.py from the installed torch."""
    text = path.read_text(encoding="utf-8")
    start = text.index("\n", text.index(GENERATED_START)) + 1
    end = text.index(GENERATED_END)
    path.write_text(text[:start] + catalogue_source(catalogue_from_torch()) + "\n" + text[end:],
                    encoding="utf-8")


# --- the preview ------------------------------------------------------------------------------

class _OnMeta(TorchFunctionMode):
    """Every factory call made on the meta device: a shape without the memory."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _device_constructors() or "device" in kwargs:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


_warmed: list[bool] = []


def _warm_meta() -> None:
    """The first meta call of some factories (arange, eye) imports and traces torch's
    decompositions: seconds, once. Done before the first preview's clock starts, so
    it is not mistaken for a slow line."""
    if not _warmed:
        with _OnMeta():
            torch.arange(3)
            torch.eye(3)
        _warmed.append(True)


def preview(request: PreviewRequest) -> PreviewReply:
    """Evaluate one `name = torch.…(…)` line in a namespace of its own (torch, np, the
    stand-ins; never the script's) and describe the tensor it makes. The line is first
    evaluated on the meta device, so a tensor over PREVIEW_ELEMENT_LIMIT is refused
    before it is made; then for real, seeded as a run is, under PREVIEW_SECONDS. The
    kernel's random state is left as it was. Bad input comes back as `error`, in words."""
    code = request.code
    reply = PreviewReply(code)
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as exc:
        reply.error = f"Not Python: {exc.msg}"
        return reply
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assign):
        reply.error = "A preview takes one line of the form `name = torch.…(…)`."
        return reply
    expression = compile(ast.Expression(tree.body[0].value), "<new tensor>", "eval")
    namespace, reply.note = _namespace(request.stand_ins)
    _warm_meta()

    try:
        with time_limit(PREVIEW_SECONDS), _OnMeta():
            shaped = eval(expression, dict(namespace))
        numel = shaped.numel() if isinstance(shaped, torch.Tensor) else 0
    except ScriptTimeout:
        reply.error = f"The preview took longer than {PREVIEW_SECONDS:g} s and was stopped."
        return reply
    except Exception:  # noqa: BLE001 - not every op runs on meta; the real run says what is wrong
        numel = 0
    if numel > PREVIEW_ELEMENT_LIMIT:
        reply.error = (f"That tensor would hold {numel:,} elements: too big to preview (the limit is "
                       f"{PREVIEW_ELEMENT_LIMIT:,}). Insert still writes the line.")
        return reply

    try:
        with torch.random.fork_rng(devices=[]), time_limit(PREVIEW_SECONDS):
            torch.manual_seed(0)
            np_state = np.random.get_state()
            np.random.seed(0)
            try:
                result = eval(expression, namespace)
            finally:
                np.random.set_state(np_state)
    except ScriptTimeout:
        reply.error = f"The preview took longer than {PREVIEW_SECONDS:g} s and was stopped."
        return reply
    except NameError as exc:
        reply.error = (f"{exc}: the preview runs apart from your script and sees only torch, np and "
                       "the tensors of its last run. Insert still writes the line.")
        return reply
    except Exception as exc:  # noqa: BLE001 - the user's input: say what torch said
        reply.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return reply
    if not isinstance(result, torch.Tensor):
        reply.error = f"That makes a value of type {type(result).__name__}, not a tensor."
        return reply
    _describe(result, reply)
    return reply


def _namespace(stand_ins: list[StandIn]) -> tuple[dict, str]:
    namespace = {"__builtins__": builtins, "torch": torch, "np": np, "numpy": np}
    built = []
    for s in stand_ins:
        dtype = getattr(torch, s.dtype, None)
        if not isinstance(dtype, torch.dtype) or not s.name.isidentifier():
            continue
        shape = tuple(int(n) for n in s.shape)
        values = None if s.values is None else np.asarray(s.values)
        if values is not None and values.size == int(np.prod(shape, dtype=np.int64)):
            namespace[s.name] = torch.from_numpy(values.copy()).reshape(shape).to(dtype)
        else:
            namespace[s.name] = torch.zeros(shape, dtype=dtype)
            built.append(s.name)
    note = (f"{', '.join(built)} stand{'s' if len(built) == 1 else ''} in as zeros of "
            f"{'its' if len(built) == 1 else 'their'} shape and dtype" if built else "")
    return namespace, note


def _describe(t: torch.Tensor, reply: PreviewReply) -> None:
    reply.shape = list(t.shape)
    reply.dtype = dtype_name(t.dtype)
    reply.device = str(t.device)
    reply.requires_grad = t.requires_grad
    reply.numel = t.numel()
    if t.device.type != "meta" and t.layout == torch.strided:
        first = t.detach().reshape(-1)[:PREVIEW_VALUES].cpu()
        if first.dtype in (torch.bfloat16, torch.float16) or first.dtype.itemsize == 1 and first.is_floating_point():
            first = first.float()
        reply.values = first.numpy().copy()
    lines = repr(t).splitlines()
    more = len(lines) - PREVIEW_LINES
    reply.text = "\n".join(lines[:PREVIEW_LINES] + ([f"… {more} more lines"] if more > 0 else []))


def handlers(endpoint) -> dict:
    """{request type: handler(request) -> reply} for serve.Endpoint."""
    return {PreviewRequest: preview}


if __name__ == "__main__":
    write_catalogue(Path(__file__).resolve().parents[1] / "model" / "creation.py")
    sys.stdout.write(f"wrote {len(catalogue_from_torch())} functions\n")
