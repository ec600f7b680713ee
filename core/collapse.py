"""Graph + which modules are open -> a smaller Graph: every closed module one box.

A node belongs to a module by where it was made: an op by its `module` tag (the
innermost nn.Module whose forward created it), a parameter by its name
(`model.layer1.0.conv1.weight` lives in `model.layer1.0.conv1`), an AccumulateGrad by
its leaf, a saved tensor by its op. It is drawn inside the outermost of its modules
that is closed. Edges between boxes are the edges between what they hold. Pure: the
window keeps the set of open modules across edits, the export takes a depth.
"""
from __future__ import annotations

from typing import Callable

from .model.graph import Edge, Graph, ModuleNode

READABLE = 400  # nodes: a bigger graph opens collapsed to a depth that stays under this


def ancestors(module: str) -> list[str]:
    """"model.layer1.0" -> ["model", "model.layer1", "model.layer1.0"]."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def home_modules(graph: Graph) -> dict[str, str]:
    """node id -> the innermost module it belongs to (nodes outside any are left out)."""
    home: dict[str, str] = {}
    for n in graph.nodes:
        if n.kind == "op" and n.module:
            home[n.id] = n.module
        elif n.kind == "tensor" and n.name and n.is_leaf:
            owner = n.name.rpartition(".")[0]
            if owner in graph.modules:
                home[n.id] = owner
    by_id = {n.id: n for n in graph.nodes}
    for e in graph.edges:  # AccumulateGrad goes with its leaf, saved tensors with their op
        dst = by_id.get(e.dst)
        if dst is not None and dst.kind == "op" and dst.name == "AccumulateGrad" and e.src in home:
            home[dst.id] = home[e.src]
    for n in graph.nodes:
        if n.kind == "saved" and n.op in home:
            home[n.id] = home[n.op]
    return home


def collapse(graph: Graph, is_open: Callable[[str], bool]) -> Graph:
    """The graph with every closed module (and all it holds) as one ModuleNode."""
    group = drawn_as(graph, is_open)  # node id -> the id it is drawn as
    boxes: dict[str, ModuleNode] = {}
    for n in graph.nodes:
        box_id = group[n.id]
        if box_id != n.id:
            name = box_id[2:]
            box = boxes.setdefault(box_id, ModuleNode(box_id, f"mod:{name}", name,
                                                      graph.modules.get(name, "Module"), 0))
            box.ops += n.kind == "op"
    nodes, placed = [], set()
    for n in graph.nodes:
        drawn = group[n.id]
        if drawn == n.id:
            nodes.append(n)
        elif drawn not in placed:
            placed.add(drawn)
            nodes.append(boxes[drawn])
    seen, edges = set(), []
    for e in graph.edges:
        pair = (group[e.src], group[e.dst])
        if pair[0] != pair[1] and pair not in seen:
            seen.add(pair)
            edges.append(Edge(*pair))
    return Graph(nodes, edges, graph.modules)


def collapse_to_depth(graph: Graph, depth: int) -> Graph:
    """Modules `depth` levels down (and deeper) closed: `--collapse DEPTH`."""
    return collapse(graph, lambda m: m.count(".") + 1 < depth)


def readable_depth(graph: Graph, limit: int = READABLE) -> int | None:
    """The deepest level to collapse at that keeps the picture under `limit` nodes
    (None: small enough open)."""
    if len(graph.nodes) <= limit or not graph.modules:
        return None
    deepest = max(m.count(".") + 1 for m in graph.modules)
    for depth in range(deepest, 0, -1):
        if len(collapse_to_depth(graph, depth).nodes) <= limit:
            return depth
    return 1


def drawn_as(graph: Graph, is_open: Callable[[str], bool]) -> dict[str, str]:
    """node id of the full graph -> the id it is drawn as (itself, or its module's box):
    so a backward step inside a closed module lights the box, and search finds it."""
    home = home_modules(graph)
    out = {}
    for n in graph.nodes:
        module = home.get(n.id)
        closed = next((m for m in ancestors(module) if not is_open(m)), None) if module else None
        out[n.id] = n.id if closed is None else f"m:{closed}"
    return out
