"""Graph -> node positions: a layered layout, inputs at the top, stable across edits.

Sugiyama-style, kept small: layers by longest path (then every non-sink node is
pulled down to sit right above its first consumer, so 160 parameters of a ResNet
do not all line up in row 0), order within a layer by barycenter sweeps, and x by
pushing nodes apart while keeping that order. A node that was drawn before (same
`key`) keeps its previous x as its wish, so an edit moves only what changed.

An edge that skips rows (a residual connection, `z = x + y` under `y = f(x)`) gets a
lane in each row it passes: a narrow slot ordered and placed with that row's nodes,
so the edge runs down between them, never through one (`Layout.routes`; the long
edges of one source share their lanes, as a bus down to its deepest target).

Sizes come from label text in a monospace font, measured by the caller (`Metrics`),
the same numbers the panel and the SVG export draw with.
"""
from __future__ import annotations

import bisect
import shutil
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from .labels import badge_text, node_lines
from .model.backward import step_view
from .model.graph import Graph

GAP_X = 24.0
GAP_Y = 36.0
MIN_GAP_Y = 10.0  # rows of an edited graph may close up to this before they move
BELOW_GAP = 8.0  # between a node and what is drawn under it (clear of the step ring)
SIMILAR = 0.5  # kept positions are used when this share of the smaller graph's nodes is in both
LANE_W = 4.0  # the room a long edge takes in each row it passes,
LANE_GAP = 8.0  # and the gap on each side of it (lanes pack closer than nodes)
LANE = "\x00lane\x00"  # the start of a lane's id


@dataclass(frozen=True)
class Metrics:
    """The size of the label font: the panel measures its font (times the theme's
    scale) and passes these in, so boxes fit the text as drawn."""
    char_w: float = 8.0
    line_h: float = 17.0
    pad_x: float = 12.0
    pad_y: float = 8.0


DEFAULT_METRICS = Metrics()


class LayoutCancelled(Exception):
    """A newer graph arrived while this one was being laid out."""


@dataclass
class Box:
    x: float  # centre
    y: float
    w: float
    h: float


@dataclass
class Layout:
    boxes: dict[str, Box]
    width: float
    height: float
    below: dict[str, Box] = field(default_factory=dict)  # room kept under a node (its badge)
    # (src, dst) -> the lanes a long edge runs down, top row first: (x, top, bottom) of each
    routes: dict[tuple[str, str], list[tuple[float, float, float]]] = field(default_factory=dict)
    bands: dict[str, tuple[float, float]] = field(default_factory=dict)  # node -> (top, bottom) of its row
    lanes: list[Box] = field(default_factory=list)  # the lanes' slots: a picture's bounds take them in

    def edge_rows(self, src: str, dst: str) -> list[tuple[float, float, float, float, float, float]]:
        """The drawn edge from node `src` to node `dst`: see `edge_rows`."""
        leave = self.bands.get(src)
        enter = self.bands.get(dst)
        return edge_rows(self.boxes[src], self.boxes[dst], self.routes.get((src, dst), ()),
                         leave[1] if leave else None, enter[0] if enter else None)


def edge_rows(src: Box, dst: Box, route=(), leave: float | None = None,
              enter: float | None = None) -> list[tuple[float, float, float, float, float, float]]:
    """The drawn edge from the bottom of `src` to the top of `dst` as cubics
    (x0, y0, x1, y1, bend, tip), each leaving and arriving vertically: control points
    (x0, y0), (x0, y0 + bend), (x1, y1 - bend), (x1, y1), so its x never turns back.
    It goes straight down to `leave` (the bottom of the source's row) and arrives
    straight from `enter` (the top of the target's row), so it bends only between rows,
    clear of the taller nodes beside its ends; through `route`'s lanes: a cubic into
    each lane, straight down it, and on. `tip` is 1 on the last piece, which carries
    the arrowhead."""
    x, y = src.x, src.y + src.h / 2
    rows = []
    if leave is not None and leave > y + 0.5:
        rows.append(_straight(x, y, leave))
        y = leave
    for lx, top, bottom in route:
        rows.append((x, y, lx, top, max(20.0, (top - y) / 2), 0.0))
        rows.append(_straight(lx, top, bottom))
        x, y = lx, bottom
    x1, y1 = dst.x, dst.y - dst.h / 2
    if enter is not None and enter < y1 - 0.5:
        rows.append((x, y, x1, enter, max(20.0, (enter - y) / 2), 0.0))
        rows.append(_straight(x1, enter, y1, tip=1.0))
    else:
        rows.append((x, y, x1, y1, max(20.0, (y1 - y) / 2), 1.0))
    return rows


def _straight(x: float, top: float, bottom: float, tip: float = 0.0) -> tuple:
    """A vertical line as a cubic (its control points on it: y never turns back)."""
    return (x, top, x, bottom, (bottom - top) / 2, tip)


def node_size(node, metrics: Metrics = DEFAULT_METRICS, lines: list[str] | None = None) -> tuple[float, float]:
    """(w, h) of `node`'s box; `lines`: its `node_lines`, when the caller has them."""
    lines = node_lines(node) if lines is None else lines
    return (max(len(s) for s in lines) * metrics.char_w + 2 * metrics.pad_x,
            len(lines) * metrics.line_h + 2 * metrics.pad_y)


def adjacency(graph: Graph) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(successors, predecessors) of each node, over the edges between its nodes."""
    succ: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    pred: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        if e.src in succ and e.dst in succ:
            succ[e.src].append(e.dst)
            pred[e.dst].append(e.src)
    return succ, pred


def assign_layers(ids: list[str], succ: dict[str, list[str]], pred: dict[str, list[str]]) -> dict[str, int]:
    order = topological(ids, succ, pred)
    layer = {n: 0 for n in ids}
    for n in order:
        for s in succ[n]:
            if layer[s] < layer[n] + 1:
                layer[s] = layer[n] + 1
    for n in reversed(order):
        if succ[n]:
            layer[n] = min(layer[s] for s in succ[n]) - 1
    return layer


def lanes(succ: dict[str, list[str]], layer: dict[str, int], budget: int) -> dict[tuple[str, str], list[str]]:
    """(src, dst) -> the lane ids an edge that skips rows runs down, one per row it
    passes. A source's long edges share one chain of lanes down to its deepest
    target. Sources with the shortest chains come first, until `budget` lanes are
    used (thousands of sources each reaching far down must not cost millions of
    lanes); the edges left over are drawn straight."""
    chains = []
    for n, outs in succ.items():
        far = [s for s in outs if layer[s] - layer[n] > 1]
        if far:
            chains.append((max(layer[s] for s in far) - layer[n] - 1, n, far))
    chains.sort(key=lambda c: c[0])
    via: dict[tuple[str, str], list[str]] = {}
    used = 0
    for length, n, far in chains:
        if used + length > budget:
            break
        used += length
        chain = [f"{LANE}{n}\x00{li}" for li in range(layer[n] + 1, layer[n] + 1 + length)]
        for s in far:
            via[(n, s)] = chain[:layer[s] - layer[n] - 1]
    return via


def topological(ids, succ, pred) -> list[str]:
    indeg = {n: len(pred[n]) for n in ids}
    ready = [n for n in ids if indeg[n] == 0]
    ready.reverse()
    order = []
    while ready:
        n = ready.pop()
        order.append(n)
        for s in succ[n]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if len(order) < len(ids):  # a cycle cannot come from autograd; keep the rest anyway
        seen = set(order)
        order.extend(n for n in ids if n not in seen)
    return order


def _place_row(row: list[str], wish: dict[str, float], width: dict[str, float],
               x: dict[str, float], pinned: dict[str, float]) -> None:
    """Put `row` (already in order) as close to its wishes as it can without overlap.

    Pinned nodes (drawn before) are placed first and stay put unless they collide;
    new nodes then take the free spot nearest to their wish (a search outwards from
    the wish among the sorted gaps: a row of thousands stays cheap).
    """
    if len(row) == 1:
        x[row[0]] = wish[row[0]]
        return
    old = [n for n in row if n in pinned]
    new = [n for n in row if n not in pinned]
    if not old:
        _push_apart(new, wish, width, x, recentre=True)
        return
    _push_apart(old, wish, width, x, recentre=False)
    lefts = [x[n] - width[n] / 2 for n in old]
    rights = [x[n] + width[n] / 2 for n in old]
    for n in new:
        c = _nearest_gap(lefts, rights, wish[n], width[n] / 2 + (LANE_GAP if n.startswith(LANE) else GAP_X))
        x[n] = c
        i = bisect.bisect_left(lefts, c - width[n] / 2)
        lefts.insert(i, c - width[n] / 2)
        rights.insert(i, c + width[n] / 2)


def _nearest_gap(lefts: list[float], rights: list[float], c: float, half: float) -> float:
    """The x nearest to `c` where a box reaching `half` to each side fits between the
    sorted, disjoint intervals [lefts[k], rights[k]]."""
    inf = float("inf")
    count = len(lefts)

    def spot(k: int) -> float | None:  # gap k lies between interval k-1 and interval k
        lo = rights[k - 1] + half if k > 0 else -inf
        hi = lefts[k] - half if k < count else inf
        return min(max(c, lo), hi) if lo <= hi else None

    start = bisect.bisect_left(lefts, c)
    best = spot(start)
    if best == c:
        return c
    k = start - 1  # leftwards
    while k >= 0 and (best is None or c - (lefts[k] - half) < abs(best - c)):
        found = spot(k)
        if found is not None and (best is None or abs(found - c) < abs(best - c)):
            best = found
            break
        k -= 1
    k = start + 1  # rightwards
    while k <= count and (best is None or (rights[k - 1] + half) - c < abs(best - c)):
        found = spot(k)
        if found is not None and (best is None or abs(found - c) < abs(best - c)):
            best = found
            break
        k += 1
    return best


def _push_apart(row: list[str], wish: dict[str, float], width: dict[str, float],
                x: dict[str, float], recentre: bool) -> None:
    placed: list[float] = []
    for i, n in enumerate(row):
        want = wish[n]
        if i:
            before = row[i - 1]
            gap = LANE_GAP if n.startswith(LANE) or before.startswith(LANE) else GAP_X
            want = max(want, placed[-1] + (width[before] + width[n]) / 2 + gap)
        placed.append(want)
    shift = sum(wish[n] - p for n, p in zip(row, placed)) / len(row) if recentre and row else 0.0
    for n, p in zip(row, placed):
        x[n] = p + shift


def layout_graph(graph: Graph, previous: dict[str, tuple[float, float]] | None = None,
                 sweeps: int = 3, metrics: Metrics = DEFAULT_METRICS,
                 cancelled: Callable[[], bool] = lambda: False,
                 below: dict[str, tuple[float, float]] | None = None,
                 lines: dict[str, list[str]] | None = None) -> Layout:
    """Positions for every node of `graph`. `previous` maps node key -> (x, y) of the
    last drawing; those nodes keep their x where the new layering allows, if the two
    graphs are alike (an unrelated script that shares a name starts afresh). `below`
    maps node id -> (w, h) to keep free under that node (a gradient badge): nothing
    overlaps it. `lines`: node id -> its `node_lines`, when the caller has them. Raises
    LayoutCancelled when `cancelled()` turns true between sweeps."""
    ids = [n.id for n in graph.nodes]
    if not ids:
        return Layout({}, 0.0, 0.0)
    previous = previous if previous and alike(graph, previous) else {}
    below = below or {}
    node_by_id = {n.id: n for n in graph.nodes}
    succ, pred = adjacency(graph)
    layer = assign_layers(ids, succ, pred)
    lines = lines or {}
    size = {n: node_size(node_by_id[n], metrics, lines.get(n)) for n in ids}
    width = {n: max(size[n][0], below[n][0]) if n in below else size[n][0] for n in ids}

    # Long edges run down lanes: in the sweeps a lane is a node, linked in its chain.
    via = lanes(succ, layer, max(4000, 2 * len(ids)))
    up: dict[str, list[str]] = {n: list(p) for n, p in pred.items()}
    down: dict[str, list[str]] = {n: list(s) for n, s in succ.items()}
    lane_ids: list[str] = []
    for (src, dst), chain in via.items():
        if not chain:
            continue
        down[src].remove(dst)
        up[dst].remove(src)
        up[dst].append(chain[-1])
        down.setdefault(chain[-1], []).append(dst)
        for a, b in zip([src] + chain, chain):
            if b not in up:  # a lane of the source's shared chain, made once
                down.setdefault(a, []).append(b)
                up[b] = [a]
                width[b] = LANE_W
                layer[b] = layer[a] + 1
                lane_ids.append(b)

    rows: dict[int, list[str]] = defaultdict(list)
    for n in ids + lane_ids:
        rows[layer[n]].append(n)
    depth = max(rows) + 1

    prev_x = {n: previous[node_by_id[n].key][0] for n in ids if node_by_id[n].key in previous}
    x: dict[str, float] = {}
    for li in range(depth):
        pos = 0.0
        for n in rows[li]:
            x[n] = prev_x.get(n, pos)
            pos += width[n] + GAP_X

    def sweep(rows_in_order, neighbours):
        for li in rows_in_order:
            row = rows[li]
            if not row:
                continue
            wish = {}
            for n in row:
                if n in prev_x:
                    wish[n] = prev_x[n]
                    continue
                nb = neighbours.get(n, ())
                wish[n] = sum(x[m] for m in nb) / len(nb) if nb else x[n]
            row.sort(key=lambda n: wish[n])
            _place_row(row, wish, width, x, prev_x)

    for _ in range(sweeps):
        if cancelled():
            raise LayoutCancelled
        sweep(range(depth), up)
        sweep(range(depth - 1, -1, -1), down)
    sweep(range(depth), up)

    # Rows go top to bottom; a row with nodes drawn before goes back to where they
    # were, letting the gap above it shrink to MIN_GAP_Y before it moves down.
    # Nodes of a row are centred on one line; what is kept below a node hangs under it.
    boxes: dict[str, Box] = {}
    kept_below: dict[str, Box] = {}
    band: dict[int, tuple[float, float]] = {}  # row -> (top, bottom): what a lane runs down
    bands: dict[str, tuple[float, float]] = {}
    bottom = None
    for li in range(depth):
        row = [n for n in rows[li] if n in size]
        h = max((size[n][1] for n in row), default=0.0)
        hang = max((size[n][1] / 2 + BELOW_GAP + below[n][1] - h / 2 for n in row if n in below),
                   default=0.0)
        centre = h / 2 if bottom is None else bottom + GAP_Y + h / 2
        kept = sorted(previous[node_by_id[n].key][1] for n in row if n in prev_x)
        if kept:
            wanted = kept[len(kept) // 2]
            # a row stays where it was if it still fits there; if it must move, it
            # moves to the usual gap rather than squeezing against the row above
            if bottom is None or wanted >= bottom + MIN_GAP_Y + h / 2:
                centre = wanted
        row_band = (centre - h / 2, centre + h / 2 + max(hang, 0.0))
        for n in row:
            bands[n] = row_band
            boxes[n] = Box(x[n], centre, size[n][0], size[n][1])
            if n in below:
                bw, bh = below[n]
                kept_below[n] = Box(x[n], centre + size[n][1] / 2 + BELOW_GAP + bh / 2, bw, bh)
        bottom = row_band[1]
        band[li] = row_band
    lane_boxes = {n: Box(x[n], sum(band[layer[n]]) / 2, LANE_W, band[layer[n]][1] - band[layer[n]][0])
                  for n in lane_ids}
    every = list(boxes.values()) + list(kept_below.values()) + list(lane_boxes.values())
    if not prev_x:  # a first drawing starts at x = 0; a redraw keeps its coordinates
        left = min(b.x - b.w / 2 for b in every)
        for b in every:
            b.x -= left
    right = max(b.x + b.w / 2 for b in every)
    top = min(b.y - b.h / 2 for b in every)
    routes = {edge: [(lane_boxes[n].x, lane_boxes[n].y - lane_boxes[n].h / 2, lane_boxes[n].y + lane_boxes[n].h / 2)
                     for n in chain] for edge, chain in via.items() if chain}
    return Layout(boxes, right, bottom - top, kept_below, routes, bands, list(lane_boxes.values()))


def badge_sizes(graph: Graph, trace, metrics: Metrics = DEFAULT_METRICS) -> dict[str, tuple[float, float]]:
    """The room each gradient badge of a recorded backward needs (at its last step,
    when every badge is shown): what `layout_graph(below=...)` keeps free."""
    if trace is None or not trace.steps:
        return {}
    view = step_view(graph, trace, len(trace.steps) - 1)
    return {node_id: (len(badge_text(badge)) * metrics.char_w + 8, metrics.line_h + 4)
            for node_id, badge in view.badges.items()}


def alike(graph: Graph, previous: dict[str, tuple[float, float]]) -> bool:
    """Whether a drawing with these kept positions is an earlier version of `graph`."""
    shared = sum(1 for n in graph.nodes if n.key in previous)
    return shared >= SIMILAR * min(len(graph.nodes), len(previous))


def positions_by_key(graph: Graph, layout: Layout) -> dict[str, tuple[float, float]]:
    """What the next `layout_graph` call takes as `previous`."""
    return {n.key: (layout.boxes[n.id].x, layout.boxes[n.id].y) for n in graph.nodes
            if n.id in layout.boxes}


def dot_available() -> bool:
    return shutil.which("dot") is not None


def layout_with_dot(graph: Graph, metrics: Metrics = DEFAULT_METRICS, timeout: float = 30.0,
                    cancelled: Callable[[], bool] = lambda: False) -> Layout:
    """Positions from Graphviz `dot` (the optional engine: prettier for some graphs,
    much slower for big ones, not stable across edits). Raises OSError without `dot`,
    subprocess.TimeoutExpired past `timeout`, LayoutCancelled when `cancelled()`."""
    if not graph.nodes:
        return Layout({}, 0.0, 0.0)
    sizes = {n.id: node_size(n, metrics) for n in graph.nodes}
    lines = ["digraph g {", "  graph [rankdir=TB, nodesep=0.33, ranksep=0.5];",
             "  node [shape=box, fixedsize=true, label=\"\"];"]
    for n in graph.nodes:
        w, h = sizes[n.id]
        lines.append(f'  "{n.id}" [width={w / 72:.4f}, height={h / 72:.4f}];')
    lines += [f'  "{e.src}" -> "{e.dst}";' for e in graph.edges]
    lines.append("}")
    exe = shutil.which("dot")
    if exe is None:
        raise OSError("Graphviz `dot` is not installed")
    out = _run_cancellable([exe, "-Tplain"], "\n".join(lines), timeout, cancelled)
    boxes: dict[str, Box] = {}
    splines: dict[tuple[str, str], list[tuple[float, float]]] = {}
    height = 0.0
    for row in out.splitlines():
        parts = row.split()
        if parts[:1] == ["graph"]:
            height = float(parts[3]) * 72
        elif parts[:1] == ["node"]:
            node_id, x, y = parts[1].strip('"'), float(parts[2]) * 72, float(parts[3]) * 72
            w, h = sizes[node_id]
            boxes[node_id] = Box(x, height - y, w, h)  # dot's y grows upwards
        elif parts[:1] == ["edge"]:
            count = int(parts[3])
            splines[(parts[1].strip('"'), parts[2].strip('"'))] = [
                (float(parts[4 + 2 * i]) * 72, height - float(parts[5 + 2 * i]) * 72) for i in range(count)]
    routes, bands, lane_boxes = _dot_lanes(boxes, splines)
    width = max(b.x + b.w / 2 for b in list(boxes.values()) + lane_boxes)
    return Layout(boxes, width, height, {}, routes, bands, lane_boxes)


def _dot_lanes(boxes: dict[str, Box], splines: dict[tuple[str, str], list[tuple[float, float]]]):
    """Graphviz's routes as lanes: `dot` keeps a slot for a long edge in each rank it
    passes (a virtual node) and its spline goes through it, so the spline's x at a
    rank's centre is a lane there. Returns (routes, bands, lane boxes), as
    `layout_graph` makes them."""
    ranks: dict[float, list[Box]] = defaultdict(list)
    for b in boxes.values():
        ranks[round(b.y, 1)].append(b)
    centres = sorted(ranks)
    band_of = {y: (y - max(b.h for b in ranks[y]) / 2, y + max(b.h for b in ranks[y]) / 2) for y in centres}
    bands = {n: band_of[round(b.y, 1)] for n, b in boxes.items()}
    routes, lane_boxes = {}, []
    for (src, dst), points in splines.items():
        if src not in boxes or dst not in boxes:
            continue
        i, j = centres.index(round(boxes[src].y, 1)), centres.index(round(boxes[dst].y, 1))
        route = []
        for y in centres[i + 1:j]:
            top, bottom = band_of[y]
            x = _spline_x(points, y, boxes[src].x, boxes[dst].x)
            route.append((x, top, bottom))
            lane_boxes.append(Box(x, y, LANE_W, bottom - top))
        if route:
            routes[(src, dst)] = route
    return routes, bands, lane_boxes


def _spline_x(points: list[tuple[float, float]], y: float, fallback0: float, fallback1: float) -> float:
    """x where dot's piecewise cubic Bezier (points 0..3k) is at height `y`."""
    for k in range(0, len(points) - 3, 3):
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points[k:k + 4]
        if min(y0, y3) - 1e-6 <= y <= max(y0, y3) + 1e-6:
            best = None
            for step in range(33):
                t = step / 32
                u = 1 - t
                py = u ** 3 * y0 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t ** 3 * y3
                if best is None or abs(py - y) < best[0]:
                    best = (abs(py - y), u ** 3 * x0 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t ** 3 * x3)
            return best[1]
    return (fallback0 + fallback1) / 2


def _run_cancellable(cmd: list[str], stdin: str, timeout: float, cancelled: Callable[[], bool]) -> str:
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        proc.stdin.write(stdin)
        proc.stdin.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                proc.wait(0.05)
                break
            except subprocess.TimeoutExpired:
                if cancelled() or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    if cancelled():
                        raise LayoutCancelled from None
                    raise subprocess.TimeoutExpired(cmd, timeout) from None
        out = proc.stdout.read()
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cmd, out, proc.stderr.read())
        return out
