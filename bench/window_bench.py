"""The graph panel with big graphs, as the window runs it (offscreen Qt, no kernel:
the RunResult is made in this process by the same Runner the kernel uses).

Prints, medians of a few repeats:
  - a 30,000-node flat graph: state change -> drawn, and the longest event-loop
    stall meanwhile (a 10 ms QTimer probe: the window must never freeze > 100 ms);
  - painting it: one frame of the fitted view and of a 1:1 view (pan), as frames/s;
  - one backward step at the end of a 15,000-node chain (target <= 16 ms);
  - folding / opening a module of a ~15,000-node model (target <= 100 ms).
and, for scale, torchviz+dot on the 30,000-node graph would not finish in minutes
(see bench/export_bench.py).

    .venv/bin/python bench/window_bench.py [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

from core.kernel.runner import Runner  # noqa: E402
from gui.actions import Actions  # noqa: E402
from gui.panels.graph import GraphPanel  # noqa: E402
from gui.session import Session  # noqa: E402
from gui.state import States  # noqa: E402

FLAT = "import torch\nxs = [torch.ones(1, requires_grad=True) * i for i in range(10000)]\ntotal = torch.stack(xs).sum()\n"
CHAIN = "import torch\nx = torch.ones(1, requires_grad=True)\ny = x\nfor _ in range(7500):\n    y = y * 1.0001\ny.backward()\n"
MODEL = ("import torch\nfrom torch import nn\n"
         "model = nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)) for _ in range(1500)])\n"
         "loss = model(torch.randn(2, 8)).sum()\n")


def panel_for(result):
    states = States()
    panel = GraphPanel(states, Actions(states, Session()))
    panel.resize(1200, 800)
    panel.show()
    return states, panel


def wait(app, cond, timeout=120.0):
    t0 = time.perf_counter()
    while not cond() and time.perf_counter() - t0 < timeout:
        app.processEvents(QtCore.QEventLoop.AllEvents, 5)
        time.sleep(0.001)


def drawn_and_stall(app, result):
    states, panel = panel_for(result)
    ticks = []
    probe = QtCore.QTimer(interval=10)
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    probe.start()
    wait(app, lambda: False, 0.1)
    count = len(result.graph.without_saved().nodes)  # counted before the clock starts
    t0 = time.perf_counter()
    states.run.set_result(result)
    wait(app, lambda: len(panel.scene.items_by_id) >= count)
    took = time.perf_counter() - t0
    probe.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:]) if b > t0]
    return took, max(gaps, default=0.0), panel


def frame_ms(panel, zoom_to_fit: bool) -> float:
    view = panel.view
    if zoom_to_fit:
        panel.fit()
    else:
        view.resetTransform()
        panel.scene.set_zoom(1.0)
        view.centerOn(panel.scene.sceneRect().center())
    times = []
    for i in range(5):
        view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 37 * (i % 2 * 2 - 1))
        t = time.perf_counter()
        # a real paint of the viewport, as the window does it (QWidget.render into an
        # image skipped the antialiasing a real frame pays for)
        view.viewport().repaint()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    runner = Runner()

    flat = runner.run(FLAT, "flat.py")
    print(f"flat graph: {len(flat.graph.without_saved().nodes)} nodes drawn")
    took, stalls = [], []
    for _ in range(args.repeats):
        t, s, panel = drawn_and_stall(app, flat)
        took.append(t)
        stalls.append(s)
    print(f"  state -> drawn         {statistics.median(took) * 1000:8.0f} ms   (target <= 3000 ms)")
    print(f"  longest stall          {statistics.median(stalls) * 1000:8.0f} ms   (target <= 100 ms)")
    fit, one = frame_ms(panel, True), frame_ms(panel, False)
    print(f"  frame, fitted          {fit:8.1f} ms   ({1000 / fit:.0f} frames/s; target >= 30)")
    print(f"  frame, 1:1 (panning)   {one:8.1f} ms   ({1000 / one:.0f} frames/s; target >= 30)")

    chain = runner.run(CHAIN, "chain.py")
    states, panel = panel_for(chain)
    states.run.set_result(chain)
    states.backward.set_roots(chain.graph, chain.backward)
    states.backward.set_trace(chain.backward, at_end=False)
    wait(app, lambda: len(panel.scene.items_by_id) > 10000)
    n = len(chain.backward.steps)
    steps = []
    for i in range(n - 40, n):
        t = time.perf_counter()
        states.backward.set_step(i)
        steps.append(time.perf_counter() - t)
    print(f"chain: {len(panel.scene.items_by_id)} nodes drawn, {n} steps")
    print(f"  one step (near the end) {statistics.median(steps) * 1000:7.1f} ms   (target <= 16 ms)")

    model = runner.run(MODEL, "model.py")
    states, panel = panel_for(model)
    states.view.set_fold(0)
    states.run.set_result(model)
    wait(app, lambda: len(panel.scene.items_by_id) > 10000)
    print(f"model: {len(model.graph.without_saved().nodes)} nodes, {len(model.graph.modules)} modules")
    folds = []
    for depth in (1, 2, 1, 2, 1):
        t = time.perf_counter()
        states.view.set_fold(depth)
        wait(app, lambda: not panel.info.text().startswith("laying out"))
        folds.append(time.perf_counter() - t)
    t = time.perf_counter()
    states.view.open_module("model.7")
    wait(app, lambda: not panel.info.text().startswith("laying out"))
    opened = time.perf_counter() - t
    print(f"  fold to a depth        {statistics.median(folds) * 1000:8.0f} ms   (target <= 100 ms)")
    print(f"  open one module        {opened * 1000:8.0f} ms   (target <= 100 ms)")


if __name__ == "__main__":
    main()
