"""core.layout: inputs on top, no overlaps, and nodes stay put across edits."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.kernel.runner import Runner
from core.svg import to_svg
from core.layout import (DEFAULT_METRICS, LayoutCancelled, Metrics, adjacency, assign_layers, lanes,
                         layout_graph, layout_with_dot, node_size, positions_by_key)

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "resources" / "examples" / "01_computation_graph.py").read_text()
MODULE = (ROOT / "resources" / "examples" / "03_module_with_loss.py").read_text()


def graph_of(code):
    result = Runner().run(code, "layout.py")
    assert result.error is None, result.error
    return result.graph.without_saved()


def overlaps(layout):
    boxes = list(layout.boxes.values())
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if abs(a.x - b.x) < (a.w + b.w) / 2 and abs(a.y - b.y) < (a.h + b.h) / 2:
                return True
    return False


@pytest.mark.parametrize("code", [SEED, MODULE])
def test_inputs_above_outputs_and_no_overlap(code):
    graph = graph_of(code)
    layout = layout_graph(graph)
    assert set(layout.boxes) == {n.id for n in graph.nodes}
    assert all(layout.boxes[e.src].y < layout.boxes[e.dst].y for e in graph.edges)
    assert not overlaps(layout)


def test_parameters_sit_above_their_first_use_not_all_in_row_zero():
    graph = graph_of(MODULE)
    layout = layout_graph(graph)
    by_name = {n.name: layout.boxes[n.id] for n in graph.by_kind("tensor")}
    assert by_name["model.2.weight"].y > by_name["model.0.weight"].y


@pytest.mark.parametrize("extra", ["\nq = y * 3\n", "\nk = torch.ones(2, requires_grad=True)\nm = (k * y).sum()\n",
                                   "\nz = torch.zeros(5)\n"])
def test_nodes_that_remain_stay_where_they_were(extra):
    before = graph_of(SEED)
    first = layout_graph(before)
    previous = positions_by_key(before, first)
    after = graph_of(SEED + extra)
    second = layout_graph(after, previous)
    assert not overlaps(second)
    kept = [n for n in after.nodes if n.key in previous]
    assert len(kept) == len(before.nodes)
    for n in kept:
        x, y = previous[n.key]
        assert abs(second.boxes[n.id].x - x) + abs(second.boxes[n.id].y - y) <= 1.0, n


def test_removing_a_line_keeps_the_rest_in_place():
    full = graph_of(SEED + "\nq = y * 3\n")
    previous = positions_by_key(full, layout_graph(full))
    smaller = graph_of(SEED)
    layout = layout_graph(smaller, previous)
    for n in smaller.nodes:
        x, y = previous[n.key]
        assert abs(layout.boxes[n.id].x - x) + abs(layout.boxes[n.id].y - y) <= 1.0


def test_dot_engine_places_inputs_above_outputs():
    if shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed")
    graph = graph_of(SEED)
    layout = layout_with_dot(graph)
    assert set(layout.boxes) == {n.id for n in graph.nodes}
    assert all(layout.boxes[e.src].y < layout.boxes[e.dst].y for e in graph.edges)
    assert not overlaps(layout)


def test_metrics_size_the_boxes():
    """Boxes fit the label text in the caller's font: a wider font, wider boxes, and
    the layout still keeps them apart."""
    graph = graph_of(SEED)
    big = Metrics(char_w=12.0, line_h=25.0, pad_x=16.0, pad_y=10.0)
    for n in graph.nodes:
        w, h = node_size(n)
        assert (w, h) == node_size(n, DEFAULT_METRICS)
        bw, bh = node_size(n, big)
        assert bw > w and bh > h
    small, large = layout_graph(graph), layout_graph(graph, metrics=big)
    assert not overlaps(large)
    for n in graph.nodes:
        assert (large.boxes[n.id].w, large.boxes[n.id].h) == node_size(n, big)
        assert (small.boxes[n.id].w, small.boxes[n.id].h) == node_size(n)
    assert large.width > small.width and large.height > small.height


def test_layout_can_be_cancelled():
    graph = graph_of(MODULE)
    with pytest.raises(LayoutCancelled):
        layout_graph(graph, cancelled=lambda: True)
    calls = []
    layout_graph(graph, cancelled=lambda: calls.append(1) or False)
    assert calls  # asked between sweeps


def test_empty_graph_has_an_empty_layout():
    from core.model.graph import Graph

    layout = layout_graph(Graph())
    assert layout.boxes == {} and (layout.width, layout.height) == (0.0, 0.0)
    assert layout_with_dot(Graph()).boxes == {}


def test_dot_engine_can_be_cancelled_or_timed_out():
    """`dot` is polled while it runs: a newer graph (cancelled) or the time limit
    stops it. A big graph, so dot is still running when first polled."""
    import subprocess
    import time

    from core.model.graph import Edge, Graph, OpNode

    if shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed")
    n = 3000
    big = Graph([OpNode(f"op{i}", f"k{i}", "SinBackward0") for i in range(n)],
                [Edge(f"op{i}", f"op{i + 1}") for i in range(n - 1)]
                + [Edge(f"op{i}", f"op{i + 7}") for i in range(0, n - 7, 5)])
    t0 = time.perf_counter()
    with pytest.raises(LayoutCancelled):
        layout_with_dot(big, cancelled=lambda: True)
    with pytest.raises(subprocess.TimeoutExpired):
        layout_with_dot(big, timeout=0.2)
    assert time.perf_counter() - t0 < 5


def test_nearest_gap_matches_a_brute_force_search():
    """The outward gap search finds the same spot as trying every edge of every box."""
    import random as rnd

    from core.layout import GAP_X, _nearest_gap

    rng = rnd.Random(7)
    for _ in range(300):
        xs, pos = [], 0.0
        for _ in range(rng.randint(0, 12)):
            pos += rng.uniform(0, 80)
            w = rng.uniform(10, 60)
            xs.append((pos, pos + w))
            pos += w
        lefts, rights = [a for a, _ in xs], [b for _, b in xs]
        c, w = rng.uniform(-50, pos + 50), rng.uniform(10, 60)
        half = w / 2 + GAP_X
        got = _nearest_gap(lefts, rights, c, half)
        cands = [c] + [r + half for r in rights] + [l - half for l in lefts]
        fits = [x for x in cands if all(x + half <= l + 1e-9 or x - half >= r - 1e-9 for l, r in xs)]
        best = min(fits, key=lambda x: abs(x - c))
        assert abs(got - c) == pytest.approx(abs(best - c)), (xs, c, w, got, best)
        assert all(got + half <= l + 1e-9 or got - half >= r - 1e-9 for l, r in xs)


def test_relayout_of_a_wide_row_costs_about_a_fresh_layout():
    """range(5000) -> range(5001): one new node in a row of 5,000 kept ones. Timed
    loosely (the bench prints the real figures): well under 1.5x plus slack."""
    import time

    from core.layout import layout_graph, positions_by_key
    from core.model.graph import Graph, TensorNode

    def row(n):
        return Graph([TensorNode(f"t{i}", f"k{i}", f"v{i}", [1], "float32", "cpu", False, True, None, False)
                      for i in range(n)], [])
    t = time.perf_counter()
    first = layout_graph(row(5000))
    fresh = time.perf_counter() - t
    t = time.perf_counter()
    layout_graph(row(5001), positions_by_key(row(5000), first))
    again = time.perf_counter() - t
    assert again < 3 * fresh + 0.5, (fresh, again)


# --- edges run between nodes, never through one ------------------------------------------

RESIDUAL = """
import torch
x = torch.randn(1, 4, requires_grad=True)
h = torch.relu(x)
a = torch.tanh(h) * 2
b = torch.sigmoid(a) + 1
out = (b + h).sum()
"""
WITHOUT_AUTOGRAD = """
import torch
x = torch.rand(5, 3)
y = torch.ones_like(x)
z = x + y
"""
RESNET = """
import torch, torchvision
model = torchvision.models.resnet18()
loss = model(torch.randn(2, 3, 64, 64)).sum()
"""
TRANSFORMER = """
import torch
from torch import nn
layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0)
loss = layer(torch.randn(5, 2, 16)).sum()
"""
RNN = """
import torch
W = torch.randn(4, 4, requires_grad=True)
h = torch.zeros(1, 4)
for _ in range(60):
    h = torch.tanh(h @ W)
loss = h.sum()
"""


def crossings(graph, layout) -> list[tuple[str, str, str]]:
    """(src, dst, node) for each drawn edge that enters a node's box other than its
    own two (each piece sampled at 41 points, boxes shrunk by a pixel)."""
    boxes = layout.boxes
    ids = list(boxes)
    rects = np.array([[b.x - b.w / 2 + 1, b.y - b.h / 2 + 1, b.x + b.w / 2 - 1, b.y + b.h / 2 - 1]
                      for b in boxes.values()])
    t = np.linspace(0, 1, 41)[:, None]
    u = 1 - t
    found = []
    for e in graph.edges:
        for x0, y0, x1, y1, bend, _ in layout.edge_rows(e.src, e.dst):
            px = (u ** 3 + 3 * u * u * t) * x0 + (3 * u * t * t + t ** 3) * x1
            py = u ** 3 * y0 + 3 * u * u * t * (y0 + bend) + 3 * u * t * t * (y1 - bend) + t ** 3 * y1
            inside = (px >= rects[:, 0]) & (px <= rects[:, 2]) & (py >= rects[:, 1]) & (py <= rects[:, 3])
            found += [(e.src, e.dst, ids[k]) for k in np.nonzero(inside.any(axis=0))[0] if ids[k] not in (e.src, e.dst)]
    return found


@pytest.mark.parametrize("code", [SEED, MODULE, RESIDUAL, WITHOUT_AUTOGRAD, RESNET, TRANSFORMER, RNN],
                         ids=["seed", "module", "residual", "without_autograd", "resnet18", "transformer", "rnn"])
def test_no_edge_passes_through_a_node(code):
    graph = graph_of(code)
    layout = layout_graph(graph)
    assert crossings(graph, layout) == []
    assert not overlaps(layout)


def test_a_skip_connection_runs_down_a_lane_beside_the_rows_it_passes():
    """The edge ReLU -> the last add skips the rows of tanh, mul, sigmoid and the first
    add: it gets a lane in each, clear of every node of that row."""
    graph = graph_of(RESIDUAL)
    layout = layout_graph(graph)
    ops = {n.id: n.name for n in graph.nodes if n.kind == "op"}
    relu = next(k for k, name in ops.items() if name == "ReluBackward0")
    (last_add,) = [e.dst for e in graph.edges if e.src == relu and ops.get(e.dst) == "AddBackward0"]
    route = layout.routes[(relu, last_add)]
    assert len(route) == 4  # tanh, mul, sigmoid, add
    for x, top, bottom in route:
        beside = [b for b in layout.boxes.values() if top <= b.y <= bottom]
        assert beside and all(abs(x - b.x) >= b.w / 2 for b in beside)
        assert 0 <= x <= layout.width and any(lane.x == x for lane in layout.lanes)  # in the picture's bounds


DENSE = """
import torch
x = torch.randn(2, 4, requires_grad=True)
features = [x]
for i in range(4):
    h = torch.cat(features, dim=1)
    features.append(torch.relu(h.sum(dim=1, keepdim=True) * (i + 1)))
out = torch.cat(features, dim=1).sum()
"""


def test_a_dense_block_has_every_long_edge_in_lanes_inside_the_svg():
    """Each feature feeds every later cat: many long edges, from one source to
    several rows (one shared chain of lanes each). The SVG's view box holds them."""
    graph = graph_of(DENSE)
    layout = layout_graph(graph)
    assert len(layout.routes) >= 6 and crossings(graph, layout) == []
    svg = to_svg(graph, layout)
    left, top, width, height = (float(v) for v in svg.split('viewBox="')[1].split('"')[0].split())
    assert all(left <= lane.x - lane.w / 2 and lane.x + lane.w / 2 <= left + width for lane in layout.lanes)


def test_lanes_stop_at_their_budget_and_the_rest_are_drawn_straight():
    """An RNN's weight, read at each of 60 steps: one chain of lanes, shared by its 59
    long edges. A budget short of that chain leaves them straight."""
    graph = graph_of(RNN)
    everything = lanes_of(graph, budget=10_000)
    assert len(everything) >= 59
    used = {lane for chain in everything.values() for lane in chain}
    short = lanes_of(graph, budget=len(used) - 1)
    assert len(short) < len(everything)
    assert lanes_of(graph, budget=0) == {}


def lanes_of(graph, budget):
    succ, pred = adjacency(graph)
    return lanes(succ, assign_layers(list(succ), succ, pred), budget)


@pytest.mark.parametrize("code", [RESIDUAL, DENSE, RESNET], ids=["residual", "dense", "resnet18"])
def test_dot_engine_edges_follow_graphviz_lanes_and_miss_every_node(code):
    """With Graphviz as the engine, a long edge runs down the slots dot kept for it
    (its spline's x at each rank it passes), not straight across."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed")
    graph = graph_of(code)
    layout = layout_with_dot(graph)
    assert layout.routes and crossings(graph, layout) == []
