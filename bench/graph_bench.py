"""Edit -> graph latency: Torchscope against torchviz + Graphviz `dot`.

Run from the repository root:

    .venv/bin/python bench/graph_bench.py            # full (~5 min on 2 cores)
    .venv/bin/python bench/graph_bench.py --quick    # fewer repeats
    .venv/bin/python bench/graph_bench.py --only resnet50,chain

Ours, per repeat, is the real path from a script's text to pixels, in one process:

    Runner().run(S)                          exec (excluded) + trace + values
    core.protocol.encode/decode              the wire, kernel -> window (RunResult)
    graph.without_saved(); layout_graph      on the decoded graph, as the app does
    GraphScene.draw + render to a QImage     1600x1000, scene fitted, antialiased

figure = wall time of all of it - timings["exec"] (the user's own compute).
The JSON round trip the Jupyter Comm adds on top is measured and printed apart
(it is not in the figure).

The peer, on the same autograd root from the same run:
    torchviz.make_dot(root, params=...) + dot.pipe(format="svg") (the real `dot`).

The machine is noisy: medians (p50) and p95 (nearest rank: with fewer than 20
repeats p95 is the maximum) are quoted, and the ratio is peer p50 / ours p50.
The graphs with a target get 20 (ResNet-50) and 10 (chain) repeats of ours.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402
import torchviz  # noqa: E402
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

from core.kernel.runner import Runner  # noqa: E402
from core.layout import layout_graph  # noqa: E402
from core.protocol import decode, encode  # noqa: E402
from gui.graph_scene import GraphScene  # noqa: E402

VIEWPORT = (1600, 1000)

# --- the graphs ------------------------------------------------------------------


@dataclass
class Case:
    name: str
    code: str
    root: str  # the variable holding the tensor handed to torchviz
    ours_reps: int
    peer_reps: int
    target_ms: float | None = None  # on ours p95
    target_text: str = ""


SEED = """\
import torch
x = torch.tensor([2.], requires_grad=True)
w = torch.tensor([1.], requires_grad=True)
a = torch.add(w, x)
b = torch.add(w, 1)
y = torch.mul(a, b)
"""

RESNET = """\
import torch
import torchvision
model = torchvision.models.{arch}(weights=None)
inp = torch.randn(1, 3, 64, 64)
out = model(inp).sum()
"""

TRANSFORMER = """\
import torch
from torch import nn
enc = nn.TransformerEncoder(
    nn.TransformerEncoderLayer(d_model=64, nhead=4, batch_first=True), num_layers=6)
inp = torch.randn(2, 10, 64)
out = enc(inp).sum()
"""

CHAIN = """\
import torch
x = torch.randn(8, requires_grad=True)
y = x
for _ in range(1000):
    y = torch.sin(y) * 1.01 + y
"""

CASES = [
    Case("seed", SEED, "y", 20, 10, 50.0, "seed example p95 <= 50 ms"),
    Case("resnet18", RESNET.format(arch="resnet18"), "out", 10, 5),
    Case("resnet50", RESNET.format(arch="resnet50"), "out", 20, 5, 300.0, "ResNet-50 p95 <= 300 ms"),
    Case("transformer", TRANSFORMER, "out", 10, 5),
    Case("chain", CHAIN, "y", 10, 3, 1000.0, "3,000-node chain p95 <= 1 s"),
]
QUICK_REPS = {"seed": (10, 1), "resnet18": (3, 1), "resnet50": (3, 1),
              "transformer": (3, 1), "chain": (3, 1)}

# --- measuring ---------------------------------------------------------------------


@dataclass
class Sample:
    total: float  # the figure: wall - exec
    parts: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 5 samples is the maximum)."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


class Renderer:
    """One QImage and one GraphScene per graph, reused across repeats like the panel."""

    def __init__(self):
        self.image = QtGui.QImage(*VIEWPORT, QtGui.QImage.Format_ARGB32_Premultiplied)
        self.scene = GraphScene()

    def draw(self, graph, layout) -> float:
        """Build the scene and paint it; returns the seconds spent building."""
        t0 = time.perf_counter()
        self.scene.draw(graph, layout, at_once=True)
        built = time.perf_counter() - t0
        self.image.fill(QtGui.QColor("white"))
        painter = QtGui.QPainter(self.image)
        painter.setRenderHints(QtGui.QPainter.Antialiasing | QtGui.QPainter.TextAntialiasing)
        self.scene.render(painter, QtCore.QRectF(0, 0, *VIEWPORT), self.scene.sceneRect(),
                          QtCore.Qt.KeepAspectRatio)
        painter.end()
        return built


WORST_PARTS = ("trace", "values", "layout", "draw", "wire", "run_other", "gc_run")


class GCClock:
    """Seconds spent in Python's cyclic garbage collector, from gc.callbacks."""

    def __init__(self):
        self.total = 0.0
        self.full = 0  # generation-2 collections
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase, info):
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start
            self.full += info["generation"] == 2


GC = GCClock()


def ours_once(case: Case, renderer: Renderer, runner: Runner):
    g0 = GC.total
    t0 = time.perf_counter()
    result = runner.run(case.code, filename="bench.py")
    t1 = time.perf_counter()
    g1 = GC.total
    if result.error is not None:
        raise RuntimeError(f"{case.name}: {result.error.one_line('bench.py')}\n{result.error.traceback}")
    data, buffers = encode(result, "m1")
    got, _ = decode(data, buffers)
    t2 = time.perf_counter()
    graph = got.graph.without_saved()
    layout = layout_graph(graph, metrics=renderer.scene.metrics)  # the font the scene draws with
    t3 = time.perf_counter()
    g3 = GC.total
    built = renderer.draw(graph, layout)
    t4 = time.perf_counter()
    g4 = GC.total
    # Not in the figure: the JSON round trip the Comm does with `data`.
    text = json.dumps(data)
    json.loads(text)
    t5 = time.perf_counter()

    tm = result.timings
    parts = {
        "trace": tm["trace"], "values": tm.get("values", 0.0),
        "run_other": (t1 - t0) - tm["exec"] - tm["trace"] - tm.get("values", 0.0),
        "wire": t2 - t1, "layout": t3 - t2, "draw": t4 - t3,
        "draw_build": built, "draw_paint": t4 - t3 - built,
        "exec": tm["exec"], "json": t5 - t4,
        "gc_run": g1 - g0, "gc_wire_layout": g3 - g1, "gc_draw": g4 - g3,
    }
    return Sample(total=(t4 - t0) - tm["exec"], parts=parts), result, graph, len(text)


def torchviz_params(ns: dict) -> dict:
    """Named parameters of every module bound to a name, and every named leaf that
    requires grad: the `params=` a torchviz user would pass."""
    params = {}
    for name, v in ns.items():
        if name.startswith("__"):
            continue
        if isinstance(v, torch.nn.Module):
            params.update({f"{name}.{k}": p for k, p in v.named_parameters()})
        elif isinstance(v, torch.Tensor) and v.is_leaf and v.requires_grad:
            params[name] = v
    return params


def timed_make_dot(root, params):
    """(torchviz's graph, seconds to make it). make_dot recurses once per op along a
    path: the 3,000-node chain needs more than Python's default limit of 1,000 (a
    torchviz user has to raise it too)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 50_000))
    try:
        t0 = time.perf_counter()
        dot = torchviz.make_dot(root, params=params)
        return dot, time.perf_counter() - t0
    finally:
        sys.setrecursionlimit(limit)


def peer_once(root, params) -> tuple[float, float, int, int]:
    dot, made = timed_make_dot(root, params)
    t1 = time.perf_counter()
    svg = dot.pipe(format="svg")
    t2 = time.perf_counter()
    nodes = sum(1 for line in dot.body if "->" not in line and "[" in line)
    return made, t2 - t1, nodes, len(svg)


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 10 else f"{s:.1f} s"


def bench(case: Case, ours_reps: int, peer_reps: int) -> dict:
    renderer = Renderer()
    runner = Runner()
    ours_once(case, renderer, runner)  # warm-up: imports, torchvision, fonts, caches
    samples = []
    for _ in range(ours_reps):
        sample, result, graph, json_len = ours_once(case, renderer, runner)
        samples.append(sample)
    ns = runner.namespace
    root = ns[case.root]
    params = torchviz_params(ns)
    counts = {k: len(graph.by_kind(k)) for k in ("tensor", "op")}
    counts["saved"] = len(result.graph.by_kind("saved"))
    counts["items"] = len(renderer.scene.items())

    peer = []
    for _ in range(peer_reps):
        peer.append(peer_once(root, params))
    totals = [s.total for s in samples]
    med = {k: statistics.median(s.parts[k] for s in samples) for k in samples[0].parts}
    return {
        "case": case, "counts": counts, "n_ours": len(samples), "n_peer": len(peer),
        "p50": statistics.median(totals), "p95": percentile(totals, 95),
        "parts": med, "json_chars": json_len,
        "worst": max(samples, key=lambda s: s.total),
        "peer_p50": statistics.median(p[0] + p[1] for p in peer),
        "peer_make_dot": statistics.median(p[0] for p in peer),
        "peer_dot": statistics.median(p[1] for p in peer),
        "peer_nodes": peer[0][2],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (peer: 1)")
    ap.add_argument("--only", default="", help="comma-separated graph names: "
                    + ", ".join(c.name for c in CASES))
    args = ap.parse_args(argv)

    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(wanted) - {c.name for c in CASES}
    if unknown:
        ap.error(f"unknown graph(s): {', '.join(sorted(unknown))}")
    cases = [c for c in CASES if not wanted or c.name in wanted]

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # noqa: F841
    t_start = time.perf_counter()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, viewport {VIEWPORT[0]}x{VIEWPORT[1]}, "
          f"{'quick' if args.quick else 'full'} run, load average {os.getloadavg()[0]:.2f}", flush=True)

    results = []
    for c in cases:
        reps = QUICK_REPS[c.name] if args.quick else (c.ours_reps, c.peer_reps)
        print(f"  {c.name}: ours x{reps[0]}, torchviz+dot x{reps[1]} ...", flush=True)
        gc.collect()
        results.append(bench(c, *reps))

    head = (f"{'graph':<12}{'nodes t/op':>12}{'ours p50':>11}{'ours p95':>11}"
            f"{'torchviz+dot p50':>18}{'ratio':>9}   (trace / values / layout / draw / wire ms)")
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        p = r["parts"]
        nodes = f"{r['counts']['tensor']}/{r['counts']['op']}"
        parts = " / ".join(f"{p[k] * 1000:.1f}" for k in ("trace", "values", "layout", "draw", "wire"))
        print(f"{r['case'].name:<12}{nodes:>12}{ms(r['p50']):>11}{ms(r['p95']):>11}"
              f"{ms(r['peer_p50']):>18}{r['peer_p50'] / r['p50']:>8.1f}x   ({parts})")

    print()
    print("details (medians)")
    for r in results:
        p, c = r["parts"], r["counts"]
        print(f"  {r['case'].name}: n ours={r['n_ours']} peer={r['n_peer']}; "
              f"{c['saved']} saved tensors (traced, not drawn); {c['items']} scene items\n"
              f"    draw = build {p['draw_build'] * 1000:.1f} + paint {p['draw_paint'] * 1000:.1f} ms; "
              f"Runner.run overhead outside exec/trace/values {p['run_other'] * 1000:.1f} ms; "
              f"exec (excluded) {p['exec'] * 1000:.1f} ms\n"
              f"    Python gc pauses: in Runner.run (exec included) {p['gc_run'] * 1000:.1f} ms, "
              f"in wire+layout {p['gc_wire_layout'] * 1000:.1f} ms, in draw {p['gc_draw'] * 1000:.1f} ms\n"
              f"    slowest run {r['worst'].total * 1000:.1f} ms = "
              + " / ".join(f"{k} {r['worst'].parts[k] * 1000:.1f}" for k in WORST_PARTS) + "\n"
              f"    json round trip of the message (not in figure) {p['json'] * 1000:.1f} ms, "
              f"{r['json_chars'] / 1e6:.2f} MB\n"
              f"    torchviz: {r['peer_nodes']} nodes, make_dot {r['peer_make_dot'] * 1000:.1f} ms, "
              f"dot -Tsvg {r['peer_dot'] * 1000:.1f} ms")

    print()
    print("targets (on ours p95):")
    for r in results:
        c = r["case"]
        if c.target_ms is None:
            continue
        ok = r["p95"] * 1000 <= c.target_ms
        print(f"  {c.target_text:<32} got {ms(r['p95']):>10}   {'PASS' if ok else 'MISS'}")
    print(f"\ntotal bench time {time.perf_counter() - t_start:.0f} s, "
          f"load average at the end {os.getloadavg()[0]:.2f} (2 = both cores busy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
