"""Words: the text drawn on nodes and badges, number formatting, and errors in
plain language. One place, so the window, the SVG/PNG and the .dot export all say
the same thing. No torch; the kernel-side recorder never needs it."""
from __future__ import annotations

import math
import re

import numpy as np

from .model.devices import chunk_rows

SMALL_GRAD = 4  # grads with at most this many values are written on the node
SMALL_VALUES = 12  # tensors with at most this many values show them on the node
VALUES_PER_LINE = 6


def format_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def format_values(values) -> str:
    """`[1, 2.5, nan]`: the values of a small array (or nested list), flat, 4 digits."""
    flat = np.asarray(values).reshape(-1).tolist() if not isinstance(values, list) else values
    while isinstance(flat, list) and flat and isinstance(flat[0], list):
        flat = [v for row in flat for v in row]
    if not isinstance(flat, list):
        flat = [flat]
    return "[" + ", ".join(v if isinstance(v, str) else str(v) if isinstance(v, bool) else f"{v:.4g}"
                           for v in flat) + "]"


def format_grad(g, max_values: int | None = None) -> str:
    """A GradInfo: the value itself for a small gradient (up to `max_values` numbers,
    or all that were recorded), a summary (norm and shape) for a bigger one."""
    if g is None:
        return "None"
    if g.values is not None and (max_values is None or math.prod(g.shape) <= max_values):
        return format_values(g.values)
    return f"‖g‖={g.norm:.4g} {format_shape(g.shape)}"


def badge_text(badge) -> str:
    """The text under a node at a backward step (a `core.model.backward.Badge`)."""
    if badge.kind == "not_kept":
        return "grad not kept"
    return ("∂ " if badge.kind == "flow" else "grad ") + format_grad(badge.grad, SMALL_GRAD)


def node_lines(node) -> list[str]:
    """The text drawn on a node, line by line."""
    if node.kind == "op":
        return [node.name]
    if node.kind == "module":
        return [node.name + (f" (call {node.call + 1})" if node.call else ""), node.type,
                f"{node.ops} op{'s' if node.ops != 1 else ''} ▸"]
    if node.kind == "saved":
        return [f"saved {node.name}", "freed" if node.freed else format_shape(node.shape)]
    if node.kind == "array":
        return [node.name, f"ndarray {format_shape(node.shape)} {node.dtype}"] + value_lines(node)
    title = node.name if node.name else "(unnamed leaf)"
    lines = [title, f"{format_shape(node.shape)} {node.dtype}"]
    if node.device != "cpu":
        lines[1] += f" {node.device}"
    if node.origin and not node.grad_fn and not node.cut:  # "cut off by detach()" says it
        lines.append(f"= {format_call(node.origin)}")
    if node.cut:
        lines.append(f"cut off by {node.cut}")
    elif node.is_leaf:
        lines.append("leaf, requires_grad" if node.requires_grad else "leaf, no grad")
    elif node.retains_grad:
        lines.append("retains_grad")
    lines += value_lines(node)
    if node.inplace:
        lines.append("in place: " + ", ".join(dict.fromkeys(op.split(" ")[0] for op in node.inplace)))
    if node.grad is not None and math.prod(node.shape) <= SMALL_GRAD:
        lines.append("grad " + format_values(node.grad))
    return lines


def format_call(op: str) -> str:
    """A torch function's name as a call: `cat(…)`, indexing as `[…]`."""
    return "[…]" if op == "__getitem__" else f"{op}(…)"


def value_lines(node) -> list[str]:
    """A small tensor's (or array's) values on its node: one line for 0-d and 1-d,
    a line a row for a matrix; nothing for more values than SMALL_VALUES."""
    values, shape = node.values, node.shape
    if values is None or math.prod(shape) > SMALL_VALUES or math.prod(shape) == 0 or len(shape) > 2:
        return []
    flat = np.asarray(values).reshape(-1)
    if flat.dtype.kind == "c":
        return []
    if len(shape) == 0:
        return ["= " + format_values(flat)[1:-1]]
    if len(shape) == 1:  # six numbers a line, so a node stays narrow
        parts = [format_values(flat[i:i + VALUES_PER_LINE])[1:-1] for i in range(0, len(flat), VALUES_PER_LINE)]
        lines = ["[" + parts[0]] + [" " + p for p in parts[1:]]
        return [line + "," for line in lines[:-1]] + [lines[-1] + "]"]
    return [format_values(flat[r * shape[1]:(r + 1) * shape[1]]) for r in range(shape[0])]


def node_tooltip(node) -> str:
    if node.kind == "module":
        return f"{node.name} ({node.type})\n{node.ops} autograd nodes inside\ndouble-click to open"
    if node.kind == "op":
        return f"{node.name}\nautograd node (grad_fn)"
    if node.kind == "saved":
        state = "freed by backward()" if node.freed else f"shape {tuple(node.shape)}, {node.dtype}"
        return f"saved tensor '{node.name}'\n{state}"
    if node.kind == "array":
        return f"{node.name}: NumPy array\nshape {tuple(node.shape)}, {node.dtype}"
    return "\n".join([
        node.name or "(unnamed leaf)", f"shape {tuple(node.shape)}", f"dtype {node.dtype}",
        f"device {node.device}", f"requires_grad {node.requires_grad}", f"is_leaf {node.is_leaf}",
        f"grad_fn {node.grad_fn}", f"retains_grad {node.retains_grad}"]
        + ([f"cut off from the graph by {node.cut}: no history"] if node.cut else []))


# Autograd and allocation errors: (what torch says, a name for it, what to tell the user).
_KNOWN_ERRORS = [
    ("backward through the graph a second time", "graph_freed",
     "The graph was already used by a backward() and its saved tensors were freed (drawn "
     "dashed). Run the script again, or pass retain_graph=True to the first backward to keep them."),
    ("does not require grad and does not have a grad_fn", "no_grad",
     "This tensor is not connected to anything that requires grad, so there is nothing to "
     "differentiate. Create a leaf with requires_grad=True first."),
    ("grad can be implicitly created only for scalar outputs", "not_scalar",
     "backward() without a gradient only works on a scalar. For a tensor, pass the vector v of a "
     "vector-Jacobian product: y.backward(v), e.g. torch.ones_like(y)."),
    ("a leaf Variable that requires grad is being used in an in-place operation", "inplace_leaf",
     "A leaf that requires grad cannot be changed in place: autograd needs its value. Change it "
     "under `with torch.no_grad():`, or use an out-of-place op (x = x + 1 instead of x += 1)."),
    ("CUDA out of memory", "cuda_oom",
     "The GPU ran out of memory. Use smaller tensors or batches, or free tensors you no longer "
     "need (del x; torch.cuda.empty_cache())."),
    ("modified by an inplace operation", "inplace_saved",
     "A tensor that backward needs was changed in place after it was saved. Use an out-of-place "
     "op (y = y * 2 instead of y *= 2), or .clone() it before."),
]


_SIZE = r"([\d.]+ [KMGT]?i?B)"
_CUDA_OOM = re.compile(r"Tried to allocate " + _SIZE + r".*?total capacity of " + _SIZE + r" of which "
                       + _SIZE + r" is free.*?Of the allocated memory " + _SIZE + r" is allocated by "
                       r"PyTorch, and " + _SIZE + r" is reserved", re.S)


def explain_cuda_oom(message: str) -> str | None:
    """torch's CUDA out-of-memory message in plain words with its figures: what was
    asked, what was free, what PyTorch holds (None if the figures are not there)."""
    m = _CUDA_OOM.search(message)
    if not m:
        return None
    asked, total, free, allocated, cached = m.groups()
    return (f"The GPU ran out of memory: this step asked for {asked}, and only {free} of the GPU's "
            f"{total} was free. PyTorch holds {allocated} in tensors (and {cached} more it keeps "
            "cached). Use a smaller batch or model, free tensors you no longer need (del x), or "
            "run this part on the CPU.")


def error_kind(message: str) -> str | None:
    """A name for an error the app treats specially ("graph_freed", "not_scalar", …)."""
    if re.search(r"tried to allocate (\d+) bytes", message):
        return "allocation"
    return next((kind for text, kind, _ in _KNOWN_ERRORS if text in message), None)


def explain_error(message: str) -> str:
    """An autograd or allocation error in plain words, with what to do instead
    (the message itself when there is nothing to add)."""
    cuda = explain_cuda_oom(message)
    if cuda:
        return cuda
    asked = re.search(r"tried to allocate (\d+) bytes", message)
    if asked:
        return (f"This tensor needs {int(asked.group(1)) / 2**30:,.1f} GiB, more memory than the "
                "machine can give. Use a smaller shape.")
    return next((plain for text, _, plain in _KNOWN_ERRORS if text in message), message)


def run_error_text(err) -> str:
    """A RunError as the graph's banner says it: where, what, and what to do."""
    if err.type == "KeyboardInterrupt":
        text = "Interrupted" + (f" at line {err.line}" if err.line else "") + "."
    else:
        text = (f"Line {err.line}: " if err.line else "") + f"{err.type}: {err.message}"
    plain = explain_error(err.message)
    return text + (f"\n{plain}" if plain != err.message else "") + (f"\n{err.note}" if err.note else "")


def run_error_details(err) -> str:
    """The same for the output pane: the traceback, then the plain words."""
    plain = explain_error(err.message)
    return ((err.traceback or run_error_text(err)) + (f"\n{plain}" if plain != err.message else "")
            + (f"\n{err.note}" if err.note else ""))


def _rows(rows) -> str:
    start, stop = rows
    return f"row {start}" if stop - start == 1 else f"rows {start}–{stop - 1}"


def parallel_lines(forward, gpus: int) -> list[str]:
    """What one nn.DataParallel forward did (a `core.model.devices.ParallelForward`)
    in words, on a machine with `gpus` GPUs: which replica got which rows of the
    batch, where the outputs were gathered; where nothing was split, what two GPUs
    would have made of the same batch."""
    f = forward
    which = f"forward {f.call} of {f.calls}"
    batch = format_shape(f.batch) if f.batch is not None else "(no tensor)"
    if len(f.replicas) >= 2:
        lines = [f"{f.module} = nn.DataParallel over " + ", ".join(f"cuda:{i}" for i in f.device_ids) + f", {which}:",
                 f"the batch {batch} was cut along dim {f.dim} into {len(f.replicas)} slices, one replica each:"]
        lines += [f"  {r.device}: {_rows(r.rows)} {format_shape(r.shape)}" for r in f.replicas]
        if f.output is not None:
            lines.append(f"the outputs were gathered on {f.output_on}: {format_shape(f.output)}")
        return lines
    on = f.replicas[0].device if f.replicas else "cpu"
    where = "on the CPU" if on == "cpu" else f"on {on}"
    if gpus >= 2:  # a forward that had only one slice: a batch of one row, or device_ids of one
        head = f"{f.module} is an nn.DataParallel: its {which} gave the whole batch {batch} to one replica {where}."
    elif gpus == 1:
        head = (f"{f.module} is an nn.DataParallel on this machine's one GPU: its {which} gave the whole "
                f"batch {batch} to the model {where}. Nothing was split.")
    else:
        head = (f"{f.module} is an nn.DataParallel, but there is no GPU here: its {which} called the model "
                f"directly {where} with the whole batch {batch}.")
    n = f.batch[f.dim] if f.batch is not None and len(f.batch) > f.dim else 0
    split = chunk_rows(n, 2)
    if gpus >= 2 or len(split) < 2:
        return [head]
    return [head, f"With 2 GPUs the same batch would be cut along dim {f.dim}: "
                  + ", ".join(f"{_rows(rows)} to cuda:{i}" for i, rows in enumerate(split))
                  + ", and the outputs gathered on cuda:0."]
