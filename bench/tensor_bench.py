"""Tensor view: how long the three things a lecturer waits for take.

1. Selecting a 4096×4096 float32 tensor until its heatmap is painted (the whole path:
   request, kernel slice and statistics, the Comm, decode, pyqtgraph, a repaint of the
   canvas). Each repeat re-runs the script first, so the statistics are never cached.
   Target ≤ 150 ms.
2. One slider step through a (64,3,224,224) batch shown as a heatmap of one channel,
   until the new slice is painted. Target ≤ 30 ms a step.
3. Statistics (min/max/mean/std, nan/inf counts) of a 10^8-element float32 tensor on
   the CPU, in process. Target ≤ 1 s.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/tensor_bench.py [--repeats N]

Prints medians (and the spread), in milliseconds.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def report(name: str, times: list[float], target_ms: float) -> None:
    ms = sorted(t * 1000 for t in times)
    med = statistics.median(ms)
    print(f"{name:<48} median {med:8.1f} ms  (min {ms[0]:.1f}, max {ms[-1]:.1f}, n={len(ms)})  "
          f"target ≤ {target_ms:g} ms: {'ok' if med <= target_ms else 'MISSED'}")


def window_benches(repeats: int) -> None:
    import tempfile

    os.environ.setdefault("TORCHSCOPE_HOME", tempfile.mkdtemp(prefix="tensor_bench_"))
    from PySide6 import QtWidgets

    from gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    w = MainWindow()
    w.resize(1600, 1000)
    w.show()
    tv, panel = w.states.tensor_view, w.tensor_view

    def wait(cond, timeout=120.0):
        end = time.perf_counter() + timeout
        while not cond():
            if time.perf_counter() > end:
                raise TimeoutError("the kernel did not answer")
            app.processEvents()
        return True

    def painted() -> None:
        panel.picture.canvas.viewport().repaint()  # synchronous: on screen now

    wait(lambda: w.session.is_ready)

    def run(script: str) -> None:
        done = []
        w.session.run_result.connect(done.append)
        w.states.script.set_text(script)
        w.actions.run_now()
        wait(lambda: done)
        w.session.run_result.disconnect(done.append)
        wait(lambda: not w.session.is_running())

    def node_of(name: str) -> str:
        return next(n.id for n in w.states.run.graph.nodes if getattr(n, "name", None) == name)

    times = []
    for i in range(repeats + 1):
        run(f"import torch\ntorch.manual_seed({i})\nx = torch.randn(4096, 4096)\n")
        w.states.selection.set("")
        app.processEvents()
        node = node_of("x")
        t0 = time.perf_counter()
        w.states.selection.set(node)
        wait(lambda: tv.view is not None and tv.view.node_id == node)
        painted()
        if i:  # the first one warms the kernel's and pyqtgraph's code paths
            times.append(time.perf_counter() - t0)
    report("select 4096×4096 float32 -> heatmap painted", times, 150)

    run("import torch\nbatch = torch.randn(64, 3, 224, 224)\n")
    node = node_of("batch")
    w.states.selection.set(node)
    wait(lambda: tv.view is not None and tv.view.node_id == node)
    w.actions.tensor_view_options(mode="heatmap")
    wait(lambda: tv.view.kind == "heatmap")
    slider = next(s for d, s, _ in panel.sliders if d == 0)
    steps = []
    for k in range(1, 1 + max(20, repeats)):
        t0 = time.perf_counter()
        slider.setValue(k)
        wait(lambda: tv.view.index[0] == k)
        painted()
        steps.append(time.perf_counter() - t0)
    report("slider step through (64,3,224,224)", steps, 30)
    w.session.shutdown()
    w.close()
    w.deleteLater()  # the window goes before Python does: left to exit, it segfaulted (rc 139)
    app.processEvents()


def stats_bench(repeats: int) -> None:
    import torch

    from core.kernel.tensor_view import whole_stats

    x = torch.randn(10 ** 8)
    whole_stats(x[:1000])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        whole_stats(x)
        times.append(time.perf_counter() - t0)
    report(f"stats of 10^8 float32 on CPU ({torch.get_num_threads()} threads)", times, 1000)
    x[12345] = float("nan")
    times = []
    for _ in range(max(3, repeats // 2)):
        t0 = time.perf_counter()
        whole_stats(x)
        times.append(time.perf_counter() - t0)
    report("  the same with one nan in it (the slow path)", times, 1000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", choices=("window", "stats"))
    args = parser.parse_args()
    if args.only != "stats":
        window_benches(args.repeats)
    if args.only != "window":
        stats_bench(args.repeats)


if __name__ == "__main__":
    main()
