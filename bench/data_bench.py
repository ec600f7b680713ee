"""Data panel speed: request -> pictures beyond the loader's own time.

    python bench/data_bench.py [--repeat N]

For a 256-image 1×28×28 FashionMNIST batch, a 64-image 3×224×224 batch and the
transform strip, prints medians of: the loader's own time (next(iter(loader)) after
manual_seed(0)), the kernel's whole answer (BatchRequest / StagesRequest handled),
the codec (encode + decode, as over the Comm) and the panel's drawing (tiles built
and the grid painted offscreen). "ours" = answer - loader + codec + drawing.
Targets (issue 10): 256×28×28 ≤ 100 ms, 64×3×224×224 ≤ 200 ms, strip ≤ 100 ms.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PySide6 import QtGui, QtWidgets  # noqa: E402

from core.kernel import data as kdata  # noqa: E402
from core.kernel.runner import Runner  # noqa: E402
from core.model.data import BatchRequest, StagesRequest  # noqa: E402
from core.protocol import decode, encode  # noqa: E402
from gui.panels.data import DataPanel  # noqa: E402
from gui.state import States  # noqa: E402

SCRIPT = f"""import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision import datasets
from torchvision.transforms import Compose, Normalize, ToTensor
fmnist = datasets.FashionMNIST(root={str(ROOT / 'resources' / 'data')!r}, train=False,
                               transform=Compose([ToTensor(), Normalize((0.5,), (0.5,))]))
small = DataLoader(fmnist, batch_size=256, shuffle=True)
big = DataLoader(TensorDataset(torch.rand(256, 3, 224, 224), torch.randint(0, 10, (256,))), batch_size=64)
"""


class Endpoint:
    def __init__(self, runner):
        self.runner = runner


def median_ms(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # noqa: F841
    folder = tempfile.mkdtemp()
    runner = Runner()
    result = runner.run(SCRIPT, os.path.join(folder, "bench.py"), cwd=folder)
    assert result.error is None, result.error
    handle = kdata.handlers(Endpoint(runner))
    states = States()
    panel = DataPanel(states)
    panel.resize(800, 900)
    states.data.set_infos(result.data)
    image = QtGui.QImage(800, 900, QtGui.QImage.Format_RGB32)

    def loader_alone(name):
        def f():
            torch.manual_seed(0)
            next(iter(runner.namespace[name]))
        return f

    def whole(request, setter):
        def f():
            reply = handle[type(request)](request)
            data, buffers = encode(reply, "x")
            reply, _ = decode(data, [bytes(b) for b in buffers])
            states.data.picked = request.name
            setter(reply)
            panel.grab()
        return f

    print(f"{'':24}{'loader':>10}{'request->screen':>18}{'ours':>10}{'target':>9}")
    for name, label, target in (("small", "256 × 1×28×28", 100), ("big", "64 × 3×224×224", 200)):
        loader = median_ms(loader_alone(name), repeat)
        total = median_ms(whole(BatchRequest(name, 0), states.data.set_batch), repeat)
        print(f"{label:24}{loader:9.1f} {total:16.1f} {total - loader:9.1f} {'≤ ' + str(target):>8} ms")
    strip = median_ms(whole(StagesRequest("small", 0), states.data.set_stages), repeat)
    print(f"{'stage strip (3 stages)':24}{'-':>10}{strip:17.1f} {strip:9.1f} {'≤ 100':>8} ms")
    del image


if __name__ == "__main__":
    main()
