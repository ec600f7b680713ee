"""The inspector: everything about the node selected in the graph.

It draws what the kernel already sent (the node and its TensorValues, the step of
the backward shown); it computes nothing of its own.
"""
from __future__ import annotations

import html
import math

import numpy as np
from PySide6 import QtWidgets

from core.labels import format_call, format_grad
from core.model.graph import Graph
from core.model.tensors import Stats, TensorValues
from gui import theme

PLACEHOLDER = f"<p style='color:{theme.MUTED}'>Click a node in the graph to inspect it.</p>"


def _row(key: str, value) -> str:
    return (f"<tr><td style='color:{theme.KEY_TEXT}; padding-right:12px'>{html.escape(key)}</td>"
            f"<td><b>{html.escape(str(value))}</b></td></tr>")


def _stats_rows(prefix: str, s: Stats | None, pending: bool = False) -> str:
    if s is None:
        return _row(prefix + "statistics", "computing…") if pending else ""
    if s.min is None:
        return _row(prefix + "values", "no finite values" if (s.nan or s.inf) else "n/a")
    rows = _row(prefix + "min / max", f"{s.min:.6g} / {s.max:.6g}")
    rows += _row(prefix + "mean / std", f"{s.mean:.6g} / {s.std:.6g}")
    if s.nan or s.inf:
        rows += (f"<tr><td style='color:{theme.ERROR}'>{prefix}nan / inf</td>"
                 f"<td style='color:{theme.ERROR}'><b>{s.nan} / {s.inf}</b></td></tr>")
    return rows


def format_values(values: np.ndarray | None, shape: list[int], numel: int) -> str:
    """The values as torch would print them, or the first ones of a big tensor."""
    if values is None:
        return ""
    with np.printoptions(precision=4, suppress=True, threshold=200, linewidth=70):
        if values.size == numel:
            return np.array2string(values.reshape(shape) if shape else values.reshape(()))
        return np.array2string(values) + f"\n… first {values.size} of {numel} values"


def history_html(history: list) -> str:
    """The grad after each Backward press: the seed's point that grads accumulate."""
    if not history:
        return ""
    items = " → ".join("zeroed" if g is None else html.escape(format_grad(g)) for g in history)
    return f"<p><b>grad after each backward()</b><br>{items}</p>"


def tensor_html(node, summary: TensorValues | None, history: list | None = None) -> str:
    title = node.name or "(unnamed leaf tensor)"
    rows = "".join([
        _row("shape", tuple(node.shape)), _row("dtype", node.dtype), _row("device", node.device),
        _row("requires_grad", node.requires_grad), _row("is_leaf", node.is_leaf),
        _row("grad_fn", node.grad_fn), _row("retains_grad", node.retains_grad)])
    if node.stride is not None:
        rows += _row("stride", tuple(node.stride)) + _row("storage_offset", node.storage_offset)
        rows += _row("is_contiguous()", node.contiguous)
    if node.version is not None:
        rows += _row("_version", f"{node.version}" + (" (changed in place)" if node.version else ""))
    if node.element_size is not None:
        numel = math.prod(node.shape)
        rows += _row("element_size()", f"{node.element_size} bytes")
        rows += _row("bytes", f"{numel * node.element_size:,} ({numel:,} × {node.element_size})")
    if node.origin and not node.grad_fn:
        rows += _row("made by", f"torch {format_call(node.origin)}"
                     + (f" on line {node.line}" if node.line else ""))
    if node.inplace:
        rows += _row("in-place ops", ", ".join(node.inplace))
    if node.aliases:
        rows += _row("also named", ", ".join(node.aliases))
    if node.cut:
        rows += _row("cut off", f"made by {node.cut} from a tensor that requires grad: no history")
    if summary is not None:
        rows += _row("elements", summary.numel) + _stats_rows("", summary.stats, pending=True)
        if summary.shares_storage_with:
            rows += _row("shares storage with", ", ".join(summary.shares_storage_with))
    if not node.is_leaf and not node.retains_grad:
        grad_note = "not kept (non-leaf; call retain_grad() to keep it)"
    elif node.has_grad:
        grad_note = "see below"
    else:
        grad_note = "None (no backward yet)"
    rows += _row("grad", grad_note)
    out = f"<h3>{html.escape(title)} <small style='color:{theme.MUTED}'>tensor</small></h3><table>{rows}</table>"
    if summary is not None:
        out += "<p><b>values</b></p><pre>" + html.escape(
            format_values(summary.preview, node.shape, summary.numel)) + "</pre>"
        if summary.grad_preview is not None:
            out += "<p><b>grad</b></p><table>" + _stats_rows(
                "grad ", summary.grad_stats, pending=summary.stats is None) + "</table>"
            out += "<pre>" + html.escape(
                format_values(summary.grad_preview, node.shape, summary.numel)) + "</pre>"
    return out + history_html(history or [])


def array_html(graph: Graph, node) -> str:
    """A NumPy array the script named, and the tensors that share its memory."""
    twins = [n.name or n.id for n in graph.nodes
             if n.kind == "tensor" and node.storage and n.storage == node.storage]
    rows = _row("shape", tuple(node.shape)) + _row("dtype", node.dtype)
    rows += _row("shares memory with", ", ".join(twins) if twins else "no tensor")
    out = (f"<h3>{html.escape(node.name)} <small style='color:{theme.MUTED}'>NumPy array</small></h3>"
           f"<table>{rows}</table>")
    if node.values is not None:
        out += "<p><b>values</b></p><pre>" + html.escape(
            format_values(node.values, node.shape, math.prod(node.shape))) + "</pre>"
    if twins:
        out += ("<p>torch.from_numpy() and .numpy() share memory: a change to one "
                "is seen by the other.</p>")
    return out


def _label(node) -> str:
    if node.kind == "tensor":
        return node.name or "(unnamed leaf)"
    if node.kind == "saved":
        return f"saved {node.name}"
    return node.name


def op_html(graph: Graph, node) -> str:
    by_id = {n.id: n for n in graph.nodes}
    inputs = [by_id[e.src] for e in graph.edges if e.dst == node.id and by_id[e.src].kind != "saved"]
    outputs = [by_id[e.dst] for e in graph.edges if e.src == node.id]
    saved = [n for n in graph.nodes if n.kind == "saved" and n.op == node.id]
    rows = _row("inputs (next_functions)", ", ".join(_label(n) for n in inputs) or "none")
    rows += _row("feeds", ", ".join(_label(n) for n in outputs) or "nothing")
    if saved:
        rows += _row("saved tensors", ", ".join(
            f"{s.name} {'(freed)' if s.freed else tuple(s.shape)}" for s in saved))
    else:
        rows += _row("saved tensors", "none (or turn on 'Saved tensors')")
    what = ("receives the gradient of a leaf and adds it into .grad"
            if node.name == "AccumulateGrad" else "computes the gradient of its inputs in backward()")
    return (f"<h3>{html.escape(node.name)} <small style='color:{theme.MUTED}'>autograd node</small></h3>"
            f"<p>{what}</p><table>{rows}</table>")


def saved_html(graph: Graph, node) -> str:
    owner = next((n for n in graph.nodes if n.id == node.op), None)
    rows = _row("saved by", owner.name if owner else node.op)
    rows += _row("shape", "freed by backward()" if node.freed else tuple(node.shape))
    if not node.freed:
        rows += _row("dtype", node.dtype)
    return (f"<h3>saved {html.escape(node.name)} <small style='color:{theme.MUTED}'>saved tensor</small></h3>"
            f"<p>kept by the forward pass so backward() can use it</p><table>{rows}</table>")


def step_html(step) -> str:
    """The gradients the engine passed through a node at its backward step."""
    def rows(label, infos):
        return "".join(_row(f"{label}[{i}]", format_grad(g)) for i, g in enumerate(infos))
    out = (f"<p><b>backward step {step.index + 1}</b>: gradient in (w.r.t. its outputs) "
           f"and out (to next_functions)</p><table>{rows('in', step.grad_outputs)}"
           f"{rows('out', step.grad_inputs)}</table>")
    if step.leaf_grad is not None:
        out += f"<table>{_row('leaf .grad after', format_grad(step.leaf_grad))}</table>"
    return out


class InspectorPanel(QtWidgets.QTextBrowser):
    """Shows the selected node: a tensor's properties and values, or an op's inputs
    and saved tensors, and what the backward shown passed through it."""

    def __init__(self, states, actions=None, parent=None):
        super().__init__(parent)
        self.run, self.selection, self.backward, self.theme = (
            states.run, states.selection, states.backward, states.theme)
        self.setOpenLinks(False)
        for signal in (self.selection.changed, self.run.graph_changed, self.run.values_changed,
                       self.backward.step_changed):
            signal.connect(self.redraw)
        self.theme.changed.connect(self._on_theme)
        self._base_points = self.font().pointSizeF()
        self.redraw()

    def _on_theme(self) -> None:
        font = self.font()
        font.setPointSizeF(self._base_points * self.theme.scale)
        self.setFont(font)

    def redraw(self, *_) -> None:
        graph, node_id = self.run.graph, self.selection.node_id
        try:
            node = graph.node(node_id) if graph is not None and node_id else None
        except KeyError:
            node = None
        if node is None:
            self.setHtml(PLACEHOLDER)
        elif node.kind == "tensor":
            history = self.run.grad_history.get(node.name, []) if node.name else []
            self.setHtml(tensor_html(node, self.run.values.get(node_id), history))
        elif node.kind == "op":
            step = self.backward.current_step(node_id)
            self.setHtml(op_html(graph, node) + (step_html(step) if step is not None else ""))
        elif node.kind == "array":
            self.setHtml(array_html(graph, node))
        else:
            self.setHtml(saved_html(graph, node))
