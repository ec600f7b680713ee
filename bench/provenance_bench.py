"""What the run's CallTracker (cut-off tensors, lines, where each tensor came from,
in-place marks) costs a script: a 1,000-op tensor script run plainly and under the
tracker, in the same process, medians of several runs. Issue 9's target: the
tracker adds at most 10% to the script's run time. Times are CPU times of this
process (one torch thread, so equal to wall time on a quiet machine): the machines
here are shared and noisy, and CPU time is what the tracker adds.

    .venv/bin/python bench/provenance_bench.py [--repeat 9] [--size 64]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.kernel.trace import CallTracker  # noqa: E402


def script(ops: int, size: int) -> str:
    """`ops` torch calls on named tensors of size×size, cycling through the tutorial's
    operations (no autograd: every result is tracked)."""
    lines = ["import torch", f"x = torch.rand({size}, {size})", f"y = torch.rand({size}, {size})"]
    kinds = ["x = x + y", "y = torch.mul(x, 0.5)", "z = torch.cat([x, y])", "x = z[:{n}] * 1",
             "w = x @ y", "x = torch.tanh(w)", "x.add_(1)", "y = x.t().contiguous()"]
    for i in range(ops - 2):
        lines.append(kinds[i % len(kinds)].format(n=size))
    return "\n".join(lines) + "\n"


def timed(code, filename: str, tracker: CallTracker | None) -> float:
    compiled = compile(code, filename, "exec")
    ns: dict = {}
    t0 = time.process_time()
    if tracker is None:
        exec(compiled, ns)
    else:
        with tracker:
            exec(compiled, ns)
    return time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--size", type=int, default=0, help="tensor side (default: 16, 64 and 256)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for size in ([args.size] if args.size else [16, 64, 256]):
        measure(size, args.repeat)


def measure(size: int, repeat: int) -> None:
    code = script(1000, size)
    plain, tracked = [], []
    timed(code, "bench.py", None)  # warm up
    for _ in range(repeat):
        plain.append(timed(code, "bench.py", None))
        tracked.append(timed(code, "bench.py", CallTracker("bench.py")))
    p, t = statistics.median(plain), statistics.median(tracked)
    print(f"1,000-op script, {size}x{size} float32, one thread, median of {repeat}:")
    print(f"  plain          {p * 1000:8.1f} ms")
    print(f"  CallTracker    {t * 1000:8.1f} ms   (+{(t / p - 1) * 100:.1f}%; target <= +10%)")


if __name__ == "__main__":
    main()
