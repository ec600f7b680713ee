"""What only a GPU machine can show: CUDA tensors traced into the graph, the CUDA
tests, and trace cost with a model on the GPU. Needs torch with CUDA; no Qt.

    python3 bench/gpu_check.py OUT_DIR

Writes OUT_DIR/gpu_report.txt, OUT_DIR/gpu_graph.json (examples/08_gpu.py, which
calls backward itself) and OUT_DIR/pytest_cuda.txt.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.export import to_json  # noqa: E402
from core.kernel.record import record_backward  # noqa: E402
from core.kernel.runner import Runner  # noqa: E402
from core.protocol import decode, encode  # noqa: E402

RESNET = """
import torch, torchvision
model = torchvision.models.{name}(weights=None).to("cuda")
inp = torch.randn(8, 3, 224, 224, device="cuda")
out = model(inp).sum()
out.backward()
torch.cuda.synchronize()
"""


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
             f"device {torch.cuda.get_device_name(0)}, python {sys.version.split()[0]}"]
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,utilization.gpu",
                          "--format=csv,noheader"], capture_output=True, text=True)
    lines.append("nvidia-smi: " + smi.stdout.strip())

    example = (ROOT / "resources" / "examples" / "08_gpu.py").read_text()
    result = Runner(grad_limit=None).run(example, "08_gpu.py", values=True)
    assert result.error is None, result.error
    (out_dir / "gpu_graph.json").write_text(to_json(result.graph))
    devices = sorted({f"{n.name}:{n.device}" for n in result.graph.by_kind("tensor")})
    lines.append("08_gpu.py tensors: " + ", ".join(devices))
    lines.append("08_gpu.py stdout: " + result.stdout.strip())
    data, buffers = encode(result, "m1")
    back, _ = decode(data, [bytes(b) for b in buffers])
    lines.append(f"08_gpu.py over the wire: {len(buffers)} buffers, "
                 f"{sum(len(bytes(b)) for b in buffers)} bytes; decoded graph has "
                 f"{len(back.graph.nodes)} nodes (sent {len(result.graph.nodes)})")

    runner = Runner()
    for name in ("resnet18", "resnet50"):
        code = RESNET.format(name=name)
        runner.run(code, f"{name}.py")  # warm-up: cuDNN autotune, allocator
        runs = [runner.run(code, f"{name}.py") for _ in range(5)]
        t = {k: statistics.median(r.timings[k] for r in runs) * 1000 for k in ("exec", "trace", "values")}
        g = runs[-1].graph
        lines.append(f"{name} on cuda (batch 8, 224x224, forward+backward): exec {t['exec']:.1f} ms, "
                     f"trace {t['trace']:.1f} ms, values {t['values']:.1f} ms "
                     f"(medians of 5; {len(g.by_kind('tensor'))} tensors, {len(g.by_kind('op'))} ops), "
                     f"max memory allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
        devs = {n.device for n in g.by_kind("tensor")}
        lines.append(f"  tensor devices in the graph: {sorted(devs)}")

    import torchvision
    model = torchvision.models.resnet18(weights=None).cuda()
    inp = torch.randn(8, 3, 224, 224, device="cuda")
    plain, rec = [], []
    for i in range(6):
        for recorded in (False, True):
            out = model(inp).sum()
            torch.cuda.synchronize()
            t = time.perf_counter()
            if recorded:
                record_backward(out, "out")
            else:
                out.backward()
            torch.cuda.synchronize()
            if i:  # the first pair warms up
                (rec if recorded else plain).append(time.perf_counter() - t)
    p, r = statistics.median(plain) * 1000, statistics.median(rec) * 1000
    lines.append(f"resnet18 backward on cuda (batch 8): plain {p:.1f} ms, recorded {r:.1f} ms, "
                 f"ratio {r / p:.2f}x (medians of 5)")

    t0 = time.perf_counter()
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/core/test_cuda.py", "tests/core/test_graph_vs_torch.py",
                           "tests/core/test_runner.py", "tests/core/test_protocol.py",
                           "tests/core/test_serve.py",
                           "tests/core/test_backward.py", "tests/core/test_hooks.py",
                           "tests/core/test_cut_off.py"],
                          cwd=ROOT, capture_output=True, text=True)
    (out_dir / "pytest_cuda.txt").write_text(test.stdout + test.stderr)
    lines.append(f"pytest (cuda + core, {time.perf_counter() - t0:.0f} s): "
                 + (test.stdout.strip().splitlines() or ["no output"])[-1])
    (out_dir / "gpu_report.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu_out"))
