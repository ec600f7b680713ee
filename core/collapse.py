"""Graph + which modules are open -> a smaller Graph: every closed module one box.

A node belongs to the module calls it was made in: an op by its `scope` (the
nn.Module forward calls running when it was created), a parameter by its name
(`model.layer1.0.conv1.weight` lives in `model.layer1.0.conv1`), an AccumulateGrad by
its leaf, a saved tensor by its op. It is drawn inside the outermost of its modules
that is closed; a module called twice (a ReLU used twice in a block) is two boxes,
so folding never makes a cycle. Edges between boxes are the edges between what they hold. Pure: the
window keeps the set of open modules across edits, the export takes a depth.
"""
from __future__ import annotations

from typing import Callable

from .model.graph import Edge, Graph, ModuleNode

FOLD_ABOVE = 2000  # nodes: a bigger graph opens folded, to the deepest level that stays
READABLE = 120  # under this many boxes


def ancestors(module: str) -> list[str]:
    """"model.layer1.0" -> ["model", "model.layer1", "model.layer1.0"]."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def scopes(graph: Graph) -> dict[str, list[str]]:
    """node id -> the module calls it was made in ("name#call", outermost first); nodes
    made outside any module are left out."""
    home: dict[str, list[str]] = {}
    for n in graph.nodes:
        if n.kind == "op" and n.scope:
            home[n.id] = n.scope
        elif n.kind == "op" and n.module:  # a graph from before scopes: one call each
            home[n.id] = [f"{m}#0" for m in ancestors(n.module)]
        elif n.kind == "tensor" and n.name and n.is_leaf:
            owner = n.name.rpartition(".")[0]
            if owner in graph.modules:
                home[n.id] = [f"{m}#0" for m in ancestors(owner)]
    by_id = {n.id: n for n in graph.nodes}
    for e in graph.edges:  # AccumulateGrad goes with its leaf, saved tensors with their op
        dst = by_id.get(e.dst)
        if dst is not None and dst.kind == "op" and dst.name == "AccumulateGrad" and e.src in home:
            home[dst.id] = home[e.src]
    for n in graph.nodes:
        if n.kind == "saved" and n.op in home:
            home[n.id] = home[n.op]
    return home


def _split(entry: str) -> tuple[str, int]:
    name, _, call = entry.rpartition("#")
    return name, int(call or 0)


def collapse(graph: Graph, is_open: Callable[[str], bool], group: dict[str, str] | None = None) -> Graph:
    """The graph with every closed module (and all it holds) as one ModuleNode per call.
    `group`: `drawn_as(graph, is_open)` when the caller has it already."""
    group = drawn_as(graph, is_open) if group is None else group  # node id -> the id it is drawn as
    boxes: dict[str, ModuleNode] = {}
    nodes = []
    for n in graph.nodes:
        box_id = group[n.id]
        if box_id == n.id:
            nodes.append(n)
            continue
        box = boxes.get(box_id)
        if box is None:
            name, call = _split(box_id[2:])
            box = boxes[box_id] = ModuleNode(box_id, f"mod:{box_id[2:]}", name,
                                             graph.modules.get(name, "Module"), 0, call=call)
            nodes.append(box)  # where its first node was
        box.ops += n.kind == "op"
    drawn = group.__getitem__  # each pair of drawn ends once, in the order first met
    pairs = dict.fromkeys(zip(map(drawn, [e.src for e in graph.edges]), map(drawn, [e.dst for e in graph.edges])))
    return Graph(nodes, [Edge(a, b) for a, b in pairs if a != b], graph.modules)


def collapse_to_depth(graph: Graph, depth: int) -> Graph:
    """Modules `depth` levels down (and deeper) closed: `--collapse DEPTH`."""
    return collapse(graph, lambda m: m.count(".") + 1 < depth)


def readable_depth(graph: Graph, limit: int = READABLE, home: dict[str, list[str]] | None = None) -> int | None:
    """The deepest level to collapse at that keeps the picture under `limit` nodes
    (None: small enough open). `home`: `scopes(graph)` when the caller has it."""
    if len(graph.nodes) <= limit or not graph.modules:
        return None
    home = scopes(graph) if home is None else home
    deepest = max(m.count(".") + 1 for m in graph.modules)
    for depth in range(deepest, 0, -1):
        # as many nodes as collapse_to_depth draws: one per distinct id drawn
        if len(set(drawn_as(graph, lambda m: m.count(".") + 1 < depth, home).values())) <= limit:
            return depth
    return 1


def drawn_as(graph: Graph, is_open: Callable[[str], bool], home: dict[str, list[str]] | None = None) -> dict[str, str]:
    """node id of the full graph -> the id it is drawn as (itself, or its module call's
    box): so a backward step inside a closed module lights the box, and search finds it.
    `home`: `scopes(graph)` when the caller has it (it depends on the graph only)."""
    home = scopes(graph) if home is None else home
    box: dict[str, str | None] = {}  # "name#call" -> its box id if that module is closed (asked once each)
    out = {}
    for n in graph.nodes:
        node_id = n.id
        drawn = node_id
        for entry in home.get(node_id, ()):
            shut = box.get(entry, 0)
            if shut == 0:
                shut = box[entry] = None if is_open(entry.rpartition("#")[0]) else f"m:{entry}"
            if shut is not None:
                drawn = shut
                break
        out[node_id] = drawn
    return out
