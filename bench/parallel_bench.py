"""What the run's ParallelTracker (nn.DataParallel forwards, core/kernel/parallel.py)
costs a script that makes many module calls and has no DataParallel at all: its
global forward hooks run on every module call. ResNet-18 forwards run plainly and
under the tracker, in the same process, medians of several runs (CPU time of this
process, one torch thread: the machines here are shared and noisy). Then the same
for the tutorial's DataParallel example, where the tracker records each forward.

    .venv/bin/python bench/parallel_bench.py [--repeat 9]
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.kernel.parallel import ParallelTracker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESNET = """
import torch, torchvision
model = torchvision.models.resnet18()
x = torch.randn(2, 3, 64, 64)
for _ in range(5):
    y = model(x)
"""


def timed(code: str, tracked: bool) -> float:
    compiled = compile(code, "bench.py", "exec")
    ns: dict = {}
    torch.manual_seed(0)
    t0 = time.process_time()
    with ParallelTracker() if tracked else contextlib.nullcontext():
        exec(compiled, ns)
    return time.process_time() - t0


def measure(name: str, code: str, repeat: int) -> None:
    timed(code, False)  # warm: imports, allocator
    plain, tracked = [], []
    for _ in range(repeat):
        plain.append(timed(code, False))
        tracked.append(timed(code, True))
    p, t = statistics.median(plain), statistics.median(tracked)
    print(f"{name}, median of {repeat}:")
    print(f"  plain            {p * 1000:8.1f} ms")
    print(f"  ParallelTracker  {t * 1000:8.1f} ms   ({t / p:.3f}x plain)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    measure("ResNet-18, 5 forwards of (2, 3, 64, 64), no DataParallel", RESNET, args.repeat)
    example = (ROOT / "resources" / "examples" / "32_data_parallel.py").read_text()
    example = example.replace("print(", "(lambda *a, **k: None)(")  # the same work, without the prints
    measure("the tutorial's DataParallel example (4 forwards recorded)", example, args.repeat)


if __name__ == "__main__":
    main()
