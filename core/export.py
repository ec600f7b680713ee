"""Headless export: the graph as JSON (the `torchscope.graph/1` contract), as Graphviz
source, or as SVG (`core.svg`). PNG is drawn by the panel's own scene (`main.py`).

Every picture and the JSON's boxes come from one `Drawing`: the graph as the panel
lays it out with the default metrics (`layout_graph`), closed modules as boxes when
asked (`--collapse DEPTH`), and the room for the gradient badges of a recorded
backward as they stand at the end of its replay (`badge_sizes`).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from .collapse import collapse_to_depth, drawn_as
from .labels import node_lines
from .layout import DEFAULT_METRICS, Box, Layout, Metrics, badge_sizes, layout_graph
from .model.backward import Badge, BackwardTrace, step_view, trace_to_dict
from .model.devices import memory_by_device
from .model.graph import Graph, graph_to_dict
from .model.data import info_to_dict
from .model.run import KernelInfo
from .style import EDGE_COLOUR, RETAINS_GRAD_BORDER, STYLE, device_colour, style_of
from .svg import to_svg as _draw_svg


@dataclass
class Drawing:
    """What an export draws: `graph` (closed modules as boxes) at `layout`, and the
    gradient badge of each drawn node at the end of the backward's replay."""
    graph: Graph
    layout: Layout
    badges: dict[str, Badge] = field(default_factory=dict)  # drawn node id -> its badge
    drawn_as: dict[str, str] = field(default_factory=dict)  # full graph id -> drawn id (collapsed)


def closed_below(depth: int):
    """`is_open` for `--collapse DEPTH`: modules DEPTH deep and deeper are closed."""
    return lambda module: module.count(".") + 1 < depth


def collapsed(graph: Graph, depth: int | None) -> tuple[Graph, dict[str, str]]:
    """(graph with modules `depth` deep and deeper as boxes, node id -> drawn id);
    the graph itself and {} for no depth or no modules."""
    if depth is None or not graph.modules:
        return graph, {}
    return collapse_to_depth(graph, depth), drawn_as(graph, closed_below(depth))


def drawing(graph: Graph, trace: BackwardTrace | None = None, collapse: int | None = None,
            metrics: Metrics = DEFAULT_METRICS) -> Drawing:
    """`graph` as the graph panel draws it: fully open (or closed from `collapse` deep
    down), laid out with room under each node that has a badge at the last step of
    `trace` (`layout_graph(..., below=badge_sizes(...))`)."""
    shown, mapping = collapsed(graph, collapse)
    badges: dict[str, Badge] = {}
    below: dict[str, tuple[float, float]] = {}
    if trace is not None and trace.steps:
        ids = {n.id for n in shown.nodes}
        below = {k: v for k, v in badge_sizes(graph, trace, metrics).items() if k in ids}
        view = step_view(graph, trace, len(trace.steps) - 1)
        badges = {k: b for k, b in view.badges.items() if k in below}
    return Drawing(shown, layout_graph(shown, metrics=metrics, below=below), badges, mapping)


def _rect(b: Box) -> list[float]:
    """[x, y, w, h], x and y the top-left corner."""
    return [round(b.x - b.w / 2, 2), round(b.y - b.h / 2, 2), round(b.w, 2), round(b.h, 2)]


def _steps(trace: BackwardTrace, mapping: dict[str, str]) -> list[dict]:
    steps = trace_to_dict(trace)
    if mapping:
        for s in steps:
            s["node"] = mapping.get(s["node"], s["node"])
    return steps


def to_json(graph: Graph, backward: BackwardTrace | None = None, *, collapse: int | None = None,
            script_backward: bool = False, boxes: bool = True, kernel: KernelInfo | None = None,
            datasets: list | None = None, parallel: list | None = None) -> str:
    """The `torchscope.graph/1` document. With a recorded backward, adds `"backward"`
    (one entry per executed node) and `"badges"` (their room at the end of the replay);
    `script_backward`: that backward is the script's own call, described under
    `"script_backward"` too. `collapse`: modules that deep and deeper as `"module"`
    nodes. `boxes`: each node's `"box"` in the drawing (the layout's cost). `"kernel"`:
    the process that ran the script (pid, hostname, python, torch), null if unknown.
    `parallel`: its nn.DataParallel forwards (`"data_parallel"`, when it made any)."""
    if boxes:
        d = drawing(graph, backward, collapse)
        shown, mapping = d.graph, d.drawn_as
    else:
        (shown, mapping), d = collapsed(graph, collapse), None
    data = graph_to_dict(shown)
    data["memory"] = memory_by_device(graph)  # named tensors per device, each storage once
    if d is not None:
        rects = d.layout.boxes
        for node in data["nodes"]:
            node["box"] = _rect(rects[node["id"]])
        if d.badges:
            data["badges"] = [{"node": k, "box": _rect(d.layout.below[k])} for k in d.badges]
    if backward is not None:
        data["backward"] = _steps(backward, mapping)
        if script_backward:
            data["script_backward"] = {"line": getattr(backward, "line", None),
                                       "call": getattr(backward, "call", None),
                                       "of": getattr(backward, "calls", None),
                                       "steps": data["backward"]}
    data["kernel"] = dataclasses.asdict(kernel) if kernel is not None else None
    if parallel:  # which replica got which rows of each batch (core.model.devices.ParallelForward)
        data["data_parallel"] = [dataclasses.asdict(f) for f in parallel]
    if datasets:  # the script's Datasets and DataLoaders (core.model.data.DataInfo)
        data["data"] = [info_to_dict(i) for i in datasets if i.kind in ("dataset", "loader")]
    return json.dumps(data, separators=(",", ":"))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph, collapse: int | None = None) -> str:
    """Graphviz source of the same drawing: same labels, same colours, inputs on top."""
    graph, _ = collapsed(graph, collapse)
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
        if n.kind == "module":
            attrs.append("penwidth=2")
        stripe = device_colour(n.device) if n.kind == "tensor" else None
        if stripe:  # not on the CPU: a stripe of its device's colour (Graphviz stripes square boxes)
            attrs[1] = f"fillcolor={_quote(f'{stripe};0.06:{fill}')}"
            attrs.append('style="filled,striped"')
        out.append(f"  {_dot_id(n.id)} [{', '.join(attrs)}];")
    for e in graph.edges:
        if e.kind is None:
            out.append(f"  {_dot_id(e.src)} -> {_dot_id(e.dst)};")
        else:
            label = f", label={_quote(e.op)}" if e.op else ""
            out.append(f"  {_dot_id(e.src)} -> {_dot_id(e.dst)} [style={'dashed' if e.kind == 'view' else 'dotted'}, "
                       f"color={_quote(EDGE_COLOUR[e.kind])}{label}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_id(node_id: str) -> str:
    """Node ids as DOT ids: a module box's `m:model.layer1` needs quotes."""
    return node_id if node_id.isidentifier() else _quote(node_id)


def to_svg(graph: Graph, backward: BackwardTrace | None = None, collapse: int | None = None,
           metrics: Metrics = DEFAULT_METRICS) -> str:
    """The SVG picture of `graph` as the panel draws it (pass it without saved
    tensors for the panel's default), with the badges at the end of `backward`."""
    d = drawing(graph, backward, collapse, metrics)
    return _draw_svg(d.graph, d.layout, d.badges, metrics)
