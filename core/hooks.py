"""Gradient hooks added from the app, written into the script as code.

The script stays the truth: a hook the user picks in the graph becomes one line
of Python after the statement that binds the tensor, not hidden state in the
kernel, so it survives a rerun, a save and a restart.
"""
from __future__ import annotations

import ast

HOOKS = {
    "print": ("print the gradient", 'lambda g: print("grad of {name}:", g)'),
    "scale": ("scale it by 0.5", "lambda g: g * 0.5"),
    "clip": ("clip it to [-1, 1]", "lambda g: g.clamp(-1.0, 1.0)"),
    "zero": ("replace it by zeros", "lambda g: torch.zeros_like(g)"),
}
# The same four on an autograd node: its hook sees (grad_inputs, grad_outputs) and may
# return new grad_inputs, i.e. the gradients it passes on to its inputs.
NODE_HOOKS = {
    "print": 'lambda grad_in, grad_out: print("{op} passes on", grad_in)',
    "scale": "lambda grad_in, grad_out: tuple(None if g is None else g * 0.5 for g in grad_in)",
    "clip": "lambda grad_in, grad_out: tuple(None if g is None else g.clamp(-1.0, 1.0) for g in grad_in)",
    "zero": "lambda grad_in, grad_out: tuple(None if g is None else torch.zeros_like(g) for g in grad_in)",
}
MARK = "  # added by Torchscope"


def tensor_expression(name: str) -> str:
    """`x` -> `x`; `model.0.weight` -> `model.get_parameter("0.weight")`; `x.grad` stays."""
    base, _, path = name.partition(".")
    if not path or path == "grad":
        return name
    return f'{base}.get_parameter("{path}")'


def _binds(stmt: ast.stmt, base: str) -> bool:
    targets = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
        targets = [stmt.target]
    elif isinstance(stmt, (ast.With, ast.For, ast.If)):
        return any(_binds(s, base) for s in stmt.body)
    names = set()
    for t in targets:
        names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return base in names


def _runs_backward(stmt: ast.stmt) -> bool:
    """Whether `stmt` calls `.backward(...)` or `torch.autograd.grad(...)`."""
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if node.func.attr == "backward":
                return True
            if node.func.attr == "grad" and (
                    (isinstance(owner, ast.Name) and owner.id == "autograd")
                    or (isinstance(owner, ast.Attribute) and owner.attr == "autograd")):
                return True
    return False


def add_hook(code: str, name: str, kind: str, op: str | None = None) -> tuple[str, int]:
    """`code` with a `register_hook` line for tensor `name` (or, given `op`, for the
    autograd node `name.grad_fn` of that class); returns (new code, 1-based line of
    the hook). Raises ValueError when the script cannot be parsed or never binds `name`."""
    if kind not in HOOKS:
        raise ValueError(f"unknown hook {kind!r}")
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ValueError(f"fix the syntax error on line {exc.lineno} first") from None
    base = name.partition(".")[0]
    after = None
    for stmt in tree.body:
        if _runs_backward(stmt) and after is not None:
            break
        if _binds(stmt, base):
            after = stmt.end_lineno
    if after is None:
        raise ValueError(f"the script never assigns {base!r} at the top level")
    lines = code.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if op is None:
        hook = HOOKS[kind][1].format(name=name)
        new = f"{tensor_expression(name)}.register_hook({hook}){MARK}\n"
    else:
        hook = NODE_HOOKS[kind].format(op=op)
        new = f"{tensor_expression(name)}.grad_fn.register_hook({hook}){MARK}\n"
    lines.insert(after, new)
    return "".join(lines), after + 1
