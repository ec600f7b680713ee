"""Headless export: the graph as JSON (the `torchscope.graph/1` contract) or as
Graphviz source. SVG and PNG are drawn by the panel's own scene (`main.py`)."""
from __future__ import annotations

import json

from .labels import node_lines
from .model.backward import BackwardTrace, trace_to_dict
from .model.graph import Graph, graph_to_dict
from .style import RETAINS_GRAD_BORDER, STYLE, style_of


def to_json(graph: Graph, backward: BackwardTrace | None = None) -> str:
    """With a recorded backward, adds `"backward"`: one entry per executed node."""
    data = graph_to_dict(graph)
    if backward is not None:
        data["backward"] = trace_to_dict(backward)
    return json.dumps(data, indent=1)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz source of the same drawing: same labels, same colours, inputs on top."""
    out = ["digraph torchscope {", '  graph [rankdir=TB, fontname="monospace"];',
           '  node [fontname="monospace", fontsize=11, style="filled,rounded", shape=box];']
    for n in graph.nodes:
        fill, border = STYLE[style_of(n)]
        label = "\\n".join(_quote(line)[1:-1] for line in node_lines(n))
        retains = n.kind == "tensor" and n.retains_grad
        attrs = [f'label="{label}"', f"fillcolor={_quote(fill)}",
                 f"color={_quote(RETAINS_GRAD_BORDER if retains else border)}"]
        if retains:
            attrs.append("penwidth=3")
        if n.kind == "saved" and n.freed:
            attrs.append('style="filled,rounded,dashed"')
        out.append(f"  {n.id} [{', '.join(attrs)}];")
    for e in graph.edges:
        out.append(f"  {e.src} -> {e.dst};")
    out.append("}")
    return "\n".join(out) + "\n"
