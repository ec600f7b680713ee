#!/usr/bin/env bash
# The devices panel on a GPU machine, in one go (prepared on a machine without one;
# the lead runs it on a lent GPU). Writes into $OUT (default ./gpu_devices_out):
#   devices.json / devices.txt      `main.py --devices --json` and the table
#   cuda_tensors.json               the export of examples/31_cuda_tensors.py (its "memory" key: cuda:0)
#   cuda_tensors.png                its graph, the GPU tensors striped in cuda:0's colour
#   data_parallel.json, .txt        examples/32_data_parallel.py exported ("data_parallel": each forward's
#                                   replicas and rows), and what it printed
#   devices_panel_gpu.png           the window with the devices panel, during a short training loop on cuda
#   pytest_devices.txt              tests/core/test_devices.py (the real NVML path, no fakes skipped)
#   devices_bench.txt               bench/devices_bench.py with the GPU's NVML queries in each sample
# Usage: OUT=/some/dir bash bench/gpu_devices_check.sh   (from the repository root; about 3 minutes)
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_devices_out}"
mkdir -p "$OUT"
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
X="xvfb-run -a -s '-screen 0 1600x1000x24'"
command -v xvfb-run >/dev/null || X="env QT_QPA_PLATFORM=offscreen"

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
$PY main.py --devices --json > "$OUT/devices.json" 2> "$OUT/devices.err"; echo "devices --json: rc=$?"
$PY main.py --devices > "$OUT/devices.txt" 2>&1; echo "devices: rc=$?"
$PY main.py --export "$OUT/cuda_tensors.json" resources/examples/31_cuda_tensors.py; echo "export 31: rc=$?"
$PY main.py --export "$OUT/cuda_tensors.png" resources/examples/31_cuda_tensors.py; echo "export 31 png (device stripes): rc=$?"
$PY main.py --export "$OUT/data_parallel.json" resources/examples/32_data_parallel.py; echo "export 32: rc=$?"
(cd resources/examples && "../../$PY" 32_data_parallel.py) > "$OUT/data_parallel.txt" 2>&1
$PY -c "import json,sys; d=json.load(open(sys.argv[1])); print('memory:', d.get('memory'))" "$OUT/cuda_tensors.json"

cat > "$OUT/train_on_gpu.py" <<'PYEOF'
import time
import torch
from torch import nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 10)).to(device)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x = torch.randn(8192, 4096, device=device)
target = torch.randint(0, 10, (8192,), device=device)
end = time.time() + 12
while time.time() < end:
    loss = nn.functional.cross_entropy(model(x), target)
    opt.zero_grad()
    loss.backward()
    opt.step()
PYEOF
cat > "$OUT/shot.py" <<'PYEOF'
import os, sys, time
sys.path.insert(0, os.getcwd())
os.environ.setdefault("TORCHSCOPE_HOME", sys.argv[1] + "/home")
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest
app = QtWidgets.QApplication([])
from gui.main_window import MainWindow
w = MainWindow()
w.resize(1600, 1000)
w.show()
end = time.time() + 120
while not w.session.is_ready and time.time() < end:
    QTest.qWait(200)
for title in ("Tensor", "Data"):
    if title in w.docks:
        w.docks[title].hide()
QTest.qWait(300)
w.resizeDocks([w.docks["Output"]], [90], QtCore.Qt.Vertical)
w.resizeDocks([w.docks["Code"], w.docks["Devices"]], [430, 600], QtCore.Qt.Horizontal)
w.resizeDocks([w.docks["Inspector"], w.docks["Devices"]], [110, 900], QtCore.Qt.Vertical)
w.actions.set_sample_rate(10.0)
QTest.qWait(3000)
w.states.script.set_text(open(sys.argv[1] + "/train_on_gpu.py").read())
w.actions.run_now()
QTest.qWait(9000)  # mid-loop: the GPU busy
w.grab().save(sys.argv[1] + "/devices_panel_gpu.png")
s = w.states.devices.latest
print("inventory:", w.states.devices.inventory)
print("latest gpus:", s.gpus if s else None)
QTest.qWait(8000)  # after the loop: where the tensors live
w.grab().save(sys.argv[1] + "/devices_panel_gpu_after.png")
w.session.shutdown()
PYEOF
eval timeout 240 $X $PY "$OUT/shot.py" "$OUT" > "$OUT/shot.txt" 2>&1; echo "screenshot: rc=$?"
timeout 300 $PY -m pytest -q tests/core/test_devices.py > "$OUT/pytest_devices.txt" 2>&1; echo "pytest: rc=$?"
eval timeout 200 $X $PY bench/devices_bench.py --seconds 20 > "$OUT/devices_bench.txt" 2>&1; echo "bench: rc=$?"
ls -la "$OUT"
