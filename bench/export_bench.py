"""Headless export speed: Torchscope's `--export` against torchviz + Graphviz `dot`.

Run from the repository root:

    .venv/bin/python bench/export_bench.py                # all three (~3 min on 2 cores)
    .venv/bin/python bench/export_bench.py --only chain_svg --repeats 3
    .venv/bin/python bench/export_bench.py --dot-timeout 60

Three cases, each printed with our time, the peer's time on the same graph, and
ours / peer (lower is better):

chain_svg   the 3,000-node chain (graph_bench's CHAIN) as SVG. Ours, in one process:
            Runner.run less the script's exec (trace), the child -> parent wire
            (`pack(*encode)` then `decode(*unpack)`, as `--export` does), then the
            drawing as the export makes it (`core.export.to_svg`: layout + SVG text).
            "before": the same with the panel's GraphScene painted into Qt's
            QSvgGenerator (what `--export x.svg` did up to now). Peer: torchviz
            `make_dot` + `dot -Tsvg`. Sizes of the three SVG files.
json_15k    a flat graph of 15,002 nodes (3,750 leaves, each `* i`, stacked) as JSON:
            `to_json` before (indent=1, no boxes), compact without boxes, and compact
            with every node's box (the layout). Sizes.
flat_30k    the 30,000-node flat graph (10,000 leaves; 40,002 nodes with the saved
            tensors the JSON lists) exported to JSON through the real command line:
            wall time of `main.py --export g.json S` minus the wall time of
            `python S` itself (the script's own run time: Python, torch's import and
            its compute), medians of --repeats. Target: <= 3 s. Beside it, in one
            process: trace, wire, layout + JSON; peer: make_dot + `dot -Tjson` (dot
            capped by --dot-timeout; said when it could not finish).

Medians of --repeats on a noisy shared machine; the peer runs fewer times.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402

from core.export import to_json, to_svg  # noqa: E402
from core.kernel.runner import Runner  # noqa: E402
from core.model.graph import graph_to_dict  # noqa: E402
from core.protocol import decode, encode, pack, unpack  # noqa: E402

CHAIN = """\
import torch
x = torch.randn(8, requires_grad=True)
y = x
for _ in range(1000):
    y = torch.sin(y) * 1.01 + y
"""

FLAT = """\
import torch
xs = [torch.ones(1, requires_grad=True) * i for i in range({n})]
y = torch.stack(xs)
"""


def med(values):
    return statistics.median(values)


def ms(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def run_and_wire(code: str, gc_off: bool = True):
    """(seconds of Runner.run less exec, seconds of the wire, the decoded RunResult,
    the namespace). The wire runs without the garbage collector, as `--export` does
    now (`gc_off`), or with it, as it did before."""
    runner = Runner(grad_limit=None)
    gc.collect()
    t0 = time.perf_counter()
    result = runner.run(code, filename="bench.py", values=False)
    t1 = time.perf_counter()
    if result.error is not None:
        raise RuntimeError(result.error.one_line("bench.py"))
    if gc_off:
        gc.disable()
    try:
        got, _ = decode(*unpack(pack(*encode(result))))
    finally:
        gc.enable()
    t2 = time.perf_counter()
    return t1 - t0 - result.timings["exec"], t2 - t1, got, runner.namespace


def peer(root, params, fmt: str, timeout: float) -> tuple[float | None, float, int]:
    """(make_dot + dot seconds or None when dot ran past `timeout`, make_dot seconds,
    output bytes)."""
    from graph_bench import timed_make_dot

    t0 = time.perf_counter()
    dot, made = timed_make_dot(root, params)
    try:
        out = subprocess.run(["dot", f"-T{fmt}"], input=dot.source.encode(), capture_output=True,
                             timeout=timeout, check=True).stdout
    except subprocess.TimeoutExpired:
        return None, made, 0
    return time.perf_counter() - t0, made, len(out)


def qt_svg(graph) -> bytes:
    """The SVG export as it was: the panel's GraphScene painted into QSvgGenerator."""
    from PySide6 import QtCore, QtGui, QtSvg, QtWidgets

    from core.layout import layout_graph
    from gui.graph_scene import GraphScene

    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    scene = GraphScene()
    scene.draw(graph, layout_graph(graph, metrics=scene.metrics), at_once=True)
    rect = scene.sceneRect()
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.WriteOnly)
    gen = QtSvg.QSvgGenerator()
    gen.setOutputDevice(buffer)
    gen.setSize(rect.size().toSize())
    gen.setViewBox(QtCore.QRectF(0, 0, rect.width(), rect.height()))
    painter = QtGui.QPainter(gen)
    scene.render(painter, QtCore.QRectF(), rect)
    painter.end()
    return bytes(buffer.data())


def chain_svg(repeats: int, dot_timeout: float) -> None:
    print(f"chain_svg: the 3,000-node chain as SVG, x{repeats}", flush=True)
    run_and_wire(CHAIN)  # warm-up
    ours, before, sizes = [], [], {}
    for _ in range(repeats):
        trace, wire, got, ns = run_and_wire(CHAIN)
        graph = got.graph.without_saved()
        gc.disable()  # as main.py's export does now
        t0 = time.perf_counter()
        svg = to_svg(graph, got.backward).encode()
        ours.append(trace + wire + time.perf_counter() - t0)
        gc.enable()
        trace, wire, got, _ = run_and_wire(CHAIN, gc_off=False)  # as it was: Qt, collector on
        graph = got.graph.without_saved()
        t0 = time.perf_counter()
        old = qt_svg(graph)
        before.append(trace + wire + time.perf_counter() - t0)
        sizes = {"ours": len(svg), "before": len(old), "nodes": len(graph.nodes)}
    peers = [peer(ns["y"], {"x": ns["x"]}, "svg", dot_timeout) for _ in range(max(1, repeats // 2))]
    done = [p[0] for p in peers if p[0] is not None]
    print(f"  {sizes['nodes']} nodes drawn; ours = trace + wire + layout + SVG text")
    print(f"  ours (core.svg)       {ms(med(ours)):>9}   {mb(sizes['ours'])}")
    print(f"  before (QSvgGenerator){ms(med(before)):>9}   {mb(sizes['before'])}")
    if done:
        p = med(done)
        print(f"  torchviz+dot -Tsvg    {ms(p):>9}   {mb(peers[0][2])}")
        print(f"  ours / peer {med(ours) / p:.2f}x (target <= 0.25x), before / peer {med(before) / p:.2f}x; "
              f"SVG size ours / Graphviz {sizes['ours'] / peers[0][2]:.2f}x, "
              f"before / Graphviz {sizes['before'] / peers[0][2]:.2f}x")
    else:
        print(f"  torchviz+dot -Tsvg: dot did not finish within {dot_timeout:g} s")


def json_15k(repeats: int) -> None:
    print(f"json_15k: a flat graph of 15,002 nodes as JSON, x{repeats}", flush=True)
    _, _, got, _ = run_and_wire(FLAT.format(n=3750))
    graph, trace = got.graph, got.backward
    rows = {"before (indent=1, no boxes)": lambda: json.dumps(graph_to_dict(graph), indent=1),
            "compact, no boxes": lambda: to_json(graph, trace, boxes=False),
            "compact, with boxes (layout)": lambda: to_json(graph, trace)}
    for name, make in rows.items():
        times, size = [], 0
        for _ in range(repeats):
            gc.collect()
            t0 = time.perf_counter()
            size = len(make())
            times.append(time.perf_counter() - t0)
        print(f"  {name:<30}{ms(med(times)):>9}   {mb(size)}")


def cli_wall(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def flat_30k(repeats: int, dot_timeout: float) -> None:
    print(f"flat_30k: the 30,000-node flat graph as JSON through main.py --export, x{repeats}", flush=True)
    code = FLAT.format(n=10000)
    with tempfile.TemporaryDirectory() as folder:
        script, out = Path(folder) / "flat.py", Path(folder) / "g.json"
        script.write_text(code)
        alone, export = [], []
        cli_wall([str(script)])  # warm the file cache
        for _ in range(repeats):
            alone.append(cli_wall([str(script)]))
            export.append(cli_wall(["main.py", "--export", str(out), str(script)]))
        data = json.loads(out.read_text())
        size = out.stat().st_size
    beyond = [e - a for e, a in zip(export, alone)]
    trace, wire, got, ns = run_and_wire(code)
    gc.disable()  # as main.py's export does
    t0 = time.perf_counter()
    text = to_json(got.graph, got.backward)
    layout_json = time.perf_counter() - t0
    gc.enable()
    print(f"  {len(data['nodes'])} nodes in the JSON ({mb(size)}), every one with a box")
    print(f"  python S alone        {ms(med(alone)):>9}")
    print(f"  main.py --export      {ms(med(export)):>9}")
    print(f"  beyond the script     {ms(med(beyond)):>9}   (target <= 3 s: "
          f"{'PASS' if med(beyond) <= 3 else 'MISS'})")
    print(f"  in one process: trace {ms(trace)}, wire {ms(wire)}, layout + JSON {ms(layout_json)} "
          f"({mb(len(text))}); ours = {ms(trace + wire + layout_json)}")
    ours = trace + wire + layout_json
    total, make_dot, out_size = peer(ns["y"], {}, "json", dot_timeout)
    if total is None:
        print(f"  torchviz+dot -Tjson: make_dot {ms(make_dot)}, dot did not finish within "
              f"{dot_timeout:g} s (ours / peer < {ours / (make_dot + dot_timeout):.3f}x)")
    else:
        print(f"  torchviz+dot -Tjson   {ms(total):>9}   {mb(out_size)}   ours / peer {ours / total:.3f}x")


CASES = {"chain_svg": chain_svg, "json_15k": json_15k, "flat_30k": flat_30k}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dot-timeout", type=float, default=120.0, help="seconds dot may take (default 120)")
    args = ap.parse_args(argv)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()] or list(CASES)
    unknown = set(wanted) - set(CASES)
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    for name in wanted:
        if name == "json_15k":
            CASES[name](args.repeats)
        else:
            CASES[name](args.repeats, args.dot_timeout)
        print(flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s, load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
