"""Nothing drawn overlaps: node boxes, and the room kept for gradient badges, on
every bundled example (with its own backward replayed to the end) and on random
graphs, fresh and re-laid out after edits."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from core.kernel.runner import Runner
from core.layout import badge_sizes, layout_graph, positions_by_key
from core.model.backward import BackwardStep, BackwardTrace
from core.model.graph import Edge, Graph, OpNode, TensorNode

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "resources" / "examples").glob("*.py"))


def rects(layout):
    out = [(f"node {k}", b) for k, b in layout.boxes.items()]
    out += [(f"below {k}", b) for k, b in layout.below.items()]
    return [(name, b.x - b.w / 2, b.y - b.h / 2, b.x + b.w / 2, b.y + b.h / 2) for name, b in out]


def overlaps(layout) -> list[tuple[str, str]]:
    rs = sorted(rects(layout), key=lambda r: r[1])
    bad = []
    for i, (a, ax0, ay0, ax1, ay1) in enumerate(rs):
        for b, bx0, by0, bx1, by1 in rs[i + 1:]:
            if bx0 >= ax1 - 1e-6:
                break
            if by0 < ay1 - 1e-6 and ay0 < by1 - 1e-6:
                bad.append((a, b))
    return bad


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_draw_without_overlap(example):
    result = Runner().run(example.read_text(), filename=str(example))
    assert result.error is None, result.error
    for graph in (result.graph, result.graph.without_saved()):
        below = badge_sizes(graph, result.backward)
        layout = layout_graph(graph, below=below)
        assert overlaps(layout) == []
        assert set(layout.below) == set(below)


def random_graph(rng: random.Random, n: int, prefix: str = "") -> Graph:
    nodes, edges = [], []
    for i in range(n):
        if rng.random() < 0.4:
            nodes.append(TensorNode(f"t{i}", f"{prefix}t{i}", rng.choice([f"v{i}", "a_long_tensor_name", None]),
                                    [rng.randint(1, 9)] * rng.randint(0, 3), "float32", "cpu",
                                    True, rng.random() < 0.5, None, False))
        else:
            nodes.append(OpNode(f"o{i}", f"{prefix}o{i}", rng.choice(["MulBackward0", "AccumulateGrad", "X"])))
        for j in rng.sample(range(i), min(i, rng.randint(0, 3))):
            edges.append(Edge(nodes[j].id, nodes[i].id))
    return Graph(nodes, edges)


def random_trace(rng: random.Random, graph: Graph) -> BackwardTrace:
    ops = [n for n in graph.nodes if n.kind == "op"]
    steps = [BackwardStep(i, op.id, op.name, [None], []) for i, op in enumerate(rng.sample(ops, len(ops) // 2))]
    return BackwardTrace("", "root", steps)


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_draw_without_overlap_even_after_edits(seed):
    rng = random.Random(seed)
    graph = random_graph(rng, rng.randint(2, 80))
    first = layout_graph(graph, below=badge_sizes(graph, random_trace(rng, graph)))
    assert overlaps(first) == []
    # an edit: some nodes go, some come, badges change; kept nodes keep their places
    edited = Graph([n for n in graph.nodes if rng.random() < 0.8] + random_graph(rng, 10, "new").nodes)
    keep = {n.id for n in edited.nodes}
    edited.edges = [e for e in graph.edges if e.src in keep and e.dst in keep]
    again = layout_graph(edited, positions_by_key(graph, first),
                         below=badge_sizes(edited, random_trace(rng, edited)))
    assert overlaps(again) == []


def test_an_unrelated_graph_that_shares_a_name_is_laid_out_fresh():
    """A ResNet's `loss` must not pin the `loss` of a small loop far away."""
    rng = random.Random(1)
    big = random_graph(rng, 300, "big")
    big.nodes[-1].key = "t:loss"
    big_layout = layout_graph(big)
    small = random_graph(rng, 12, "small")
    small.nodes[-1].key = "t:loss"
    fresh = layout_graph(small)
    after = layout_graph(small, positions_by_key(big, big_layout))
    assert (after.width, after.height) == pytest.approx((fresh.width, fresh.height))
