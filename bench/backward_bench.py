"""Recording overhead: backward() under Torchscope's recorder against a plain
backward() on the same graph, side by side in one process.

    .venv/bin/python bench/backward_bench.py [--repeats N]

Each repeat builds the forward afresh (not timed), then times the backward alone.
Graphs: the seed example; ResNet-18 at batch 4, 112x112; `chain`: 1,000 rounds of
`y = sin(y) * 1.01 + y` on 8 elements (3,000 nodes); `mulchain`: 3,000 rounds of
`y = y * 1.0001` on one element.
Medians and p95 over the repeats; ratio = recorded / plain. Target from the issue:
<= 3x for ResNet-18 (torchlens' full capture costs about 14x a forward pass).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torchvision  # noqa: E402

from core.kernel.record import record_backward  # noqa: E402


def resnet18():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    inp = torch.randn(4, 3, 112, 112)
    return lambda: model(inp).sum()


def chain():
    def build():
        x = torch.randn(8, requires_grad=True)
        y = x
        for _ in range(1000):
            y = torch.sin(y) * 1.01 + y
        return y.sum()
    return build


def mulchain():
    def build():  # 3,000 one-element nodes: the recorder's cost per node, almost alone
        x = torch.ones(1, requires_grad=True)
        y = x
        for _ in range(3000):
            y = y * 1.0001
        return y
    return build


def seed():
    def build():
        x = torch.tensor([2.], requires_grad=True)
        w = torch.tensor([1.], requires_grad=True)
        return torch.mul(torch.add(w, x), torch.add(w, 1)).sum()
    return build


def time_backward(build, recorded: bool) -> float:
    root = build()
    t0 = time.perf_counter()
    if recorded:
        trace = record_backward(root, "root").trace
        assert trace.error is None and trace.steps
    else:
        root.backward()
    return time.perf_counter() - t0


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered) + 0.5) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} repeats, "
          "times of backward() alone")
    print(f"{'graph':<10} {'plain p50':>10} {'recorded p50':>13} {'recorded p95':>13} {'ratio':>7}")
    for name, make in [("seed", seed), ("resnet18", resnet18), ("chain", chain), ("mulchain", mulchain)]:
        build = make()
        time_backward(build, False), time_backward(build, True)  # warm-up
        plain, rec = [], []
        for _ in range(args.repeats):  # interleaved, so drift hits both alike
            plain.append(time_backward(build, False))
            rec.append(time_backward(build, True))
        p, r = statistics.median(plain), statistics.median(rec)
        print(f"{name:<10} {p * 1000:>8.2f}ms {r * 1000:>11.2f}ms {p95(rec) * 1000:>11.2f}ms {r / p:>6.2f}x")
    print("target: ResNet-18 ratio <= 3x")


if __name__ == "__main__":
    main()
