"""The data panel's kernel side against torchvision itself: the bundled sample, the
preview batch (== next(iter(loader)) after manual_seed(0)), the transform stages (==
each step applied by hand), the custom CSV dataset, and every bad input's message."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets
from torchvision.transforms import Normalize, ToTensor

from core.kernel import data as kdata
from core.kernel import offline_data
from core.kernel.offline_data import network_retry_now
from core.kernel.runner import Runner
from core.model.data import BatchRequest, OfflineCopyRequest, StagesRequest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "resources" / "data"
CLASSES = datasets.FashionMNIST.classes


class Endpoint:
    """What the handlers read of serve.Endpoint: the runner of the last run."""

    def __init__(self, runner):
        self.runner = runner


def run(code: str, folder: Path, name: str = "script.py"):
    runner = Runner()
    path = folder / name
    path.write_text(code)
    result = runner.run(code, str(path), cwd=str(folder))
    return runner, result, kdata.handlers(Endpoint(runner))


FMNIST = f"""import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import Compose, Lambda, Normalize, ToTensor
ds = datasets.FashionMNIST(root={str(DATA)!r}, train=False,
    transform=Compose([ToTensor(), Normalize((0.5,), (0.5,))]),
    target_transform=Lambda(lambda y: torch.zeros(10).scatter_(0, torch.tensor(y), value=1)))
loader = DataLoader(ds, batch_size=256, shuffle=True)
plain = datasets.FashionMNIST(root={str(DATA)!r}, train=True, transform=ToTensor())
workers = DataLoader(plain, batch_size=8, num_workers=2)
"""


def test_the_bundled_sample_is_real_idx_with_2000_of_each_split():
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        raw = (DATA / "FashionMNIST" / "raw" / name).read_bytes()
        assert struct.unpack(">HBBIII", raw[:16]) == (0, 8, 3, 2000, 28, 28) and len(raw) == 16 + 2000 * 784
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        raw = (DATA / "FashionMNIST" / "raw" / name).read_bytes()
        assert struct.unpack(">HBBI", raw[:8]) == (0, 8, 1, 2000) and set(raw[8:]) == set(range(10))
    assert "MIT" in (DATA / "FashionMNIST" / "LICENSE").read_text()
    test = datasets.FashionMNIST(root=str(DATA), train=False)
    assert len(test) == 2000 and test.classes == CLASSES
    rows = (DATA / "custom" / "labels.csv").read_text().splitlines()
    assert rows[0] == "file,label" and len(rows) == 41
    for row in rows[1:]:  # each PNG is the test image it was cut from
        file, label = row.split(",")
        assert (DATA / "custom" / "images" / file).exists() and 0 <= int(label) < 10


def test_runs_describe_datasets_and_loaders(tmp_path):
    _, result, _ = run(FMNIST, tmp_path)
    assert result.error is None
    by = {i.name: i for i in result.data}
    assert by["ds"].kind == "dataset" and by["ds"].len == 2000 and by["ds"].classes == CLASSES
    assert by["ds"].transforms == ["ToTensor()", "Normalize(mean=(0.5,), std=(0.5,))"]
    assert by["ds"].target_transforms[0].startswith("Lambda(lambda y: torch.zeros(10)")
    assert by["ds"].shapes == [[1, 28, 28], [10]] and by["ds"].normalize == [[0.5], [0.5]]
    loader = by["loader"]
    assert (loader.kind, loader.dataset, loader.batch_size, loader.shuffle, loader.batches) == \
        ("loader", "ds", 256, True, 8)
    assert by["workers"].num_workers == 2 and by["workers"].line == 10


def test_preview_is_next_iter_after_manual_seed_0_and_leaves_the_rng_alone(tmp_path):
    runner, _, handle = run(FMNIST, tmp_path)
    ns = runner.namespace
    before = torch.get_rng_state()
    batch = handle[BatchRequest](BatchRequest("loader", 0, unnormalize=False))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(0)
    images, labels = next(iter(ns["loader"]))
    assert batch.error == "" and batch.shapes == [[256, 1, 28, 28], [256, 10]]
    assert batch.targets == labels.tolist()
    assert batch.labels == [CLASSES[int(k)] for k in labels.argmax(1)]
    lo, hi = float(images.min()), float(images.max())
    expected = ((images - lo) / (hi - lo) * 255).round().to(torch.uint8)
    assert np.array_equal(batch.images, expected.numpy()) and (batch.low, batch.high) == (lo, hi)
    shown = handle[BatchRequest](BatchRequest("loader", 0, unnormalize=True))
    assert shown.shown == "un-normalized"
    assert np.array_equal(shown.images, ((images * 0.5 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    # the next batch: the second of the same iterator, however it is reached
    second = handle[BatchRequest](BatchRequest("loader", 1, unnormalize=False))
    torch.manual_seed(0)
    it = iter(ns["loader"])
    next(it)
    assert second.targets == next(it)[1].tolist()


def test_a_loader_with_workers_gives_the_same_batch_and_stops_them(tmp_path):
    runner, _, handle = run(FMNIST, tmp_path)
    batch = handle[BatchRequest](BatchRequest("workers", 2))
    loader = runner.namespace["workers"]
    torch.manual_seed(0)
    it = iter(loader)
    for _ in range(3):
        images, labels = next(it)
    assert batch.error == "" and batch.targets == labels.tolist() and batch.indices == list(range(16, 24))
    assert np.array_equal(batch.images, (images * 255).round().to(torch.uint8).numpy())


def test_each_stage_is_the_step_applied_by_hand(tmp_path):
    _, _, handle = run(FMNIST, tmp_path)
    stages = handle[StagesRequest](StagesRequest("loader", 3))
    raw = datasets.FashionMNIST(root=str(DATA), train=False)
    pil, label = raw[3]
    tensor = ToTensor()(pil)
    normalized = Normalize((0.5,), (0.5,))(tensor)
    assert [s.title for s in stages.stages] == ["sample", "ToTensor()", "Normalize(mean=(0.5,), std=(0.5,))"]
    assert np.array_equal(stages.stages[0].image[0], np.asarray(pil)) and stages.stages[0].dtype == "PIL L"
    assert np.array_equal(stages.stages[1].image, (tensor * 255).round().to(torch.uint8).numpy())
    assert (stages.stages[2].low, stages.stages[2].high) == (float(normalized.min()), float(normalized.max()))
    assert stages.stages[2].shape == [1, 28, 28] and stages.stages[2].dtype == "float32"
    one_hot = torch.zeros(10).scatter_(0, torch.tensor(label), value=1)
    assert stages.target[0].text == str(label)
    assert stages.target[1].shape == [10] and stages.target[1].text == str(one_hot.tolist())


CUSTOM = """import csv, os
import torch
from torch.utils.data import Dataset, DataLoader
from torchvision.io import read_image
from torchvision.transforms import ConvertImageDtype, Normalize
class Custom(Dataset):
    def __init__(self, csv_file, img_dir, transform=None):
        self.rows = []
        with open(csv_file, newline="") as f:
            reader = csv.reader(f)
            next(reader)
            for row in reader:
                self.rows.append((row[0], int(row[1])))
        self.img_dir, self.transform = img_dir, transform
    def __len__(self):
        return len(self.rows)
    def __getitem__(self, i):
        image = read_image(os.path.join(self.img_dir, self.rows[i][0]))
        if self.transform:
            image = self.transform(image)
        return image, self.rows[i][1]
ds = Custom("labels.csv", "images", TRANSFORM)
loader = DataLoader(ds, batch_size=4)
"""


def custom_folder(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "images").mkdir()
    for i in range(3):
        Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(tmp_path / "images" / f"{i}.png")
    (tmp_path / "images" / "bad.png").write_bytes(b"not a png at all")
    (tmp_path / "labels.csv").write_text("\n".join(["file,label", *rows]) + "\n")
    return tmp_path


def test_the_custom_csv_dataset(tmp_path):
    folder = custom_folder(tmp_path, ["0.png,3", "1.png,1", "2.png,7"])
    _, result, handle = run(CUSTOM.replace("TRANSFORM", "ConvertImageDtype(torch.float)"), folder)
    assert result.error is None
    batch = handle[BatchRequest](BatchRequest("loader"))
    assert batch.targets == [3, 1, 7] and batch.labels == ["3", "1", "7"] and batch.shapes[0] == [3, 1, 28, 28]
    assert [r[0] for r in batch.ranges] == pytest.approx([0.0, 40 / 255, 80 / 255])


def test_the_tutorial_custom_dataset_example_shows_its_classes():
    path = ROOT / "resources" / "examples" / "22_custom_dataset.py"
    runner = Runner()
    result = runner.run(path.read_text(), str(path), cwd=str(path.parent))
    batch = kdata.handlers(Endpoint(runner))[BatchRequest](BatchRequest("train_dataloader"))
    torch.manual_seed(0)
    _, labels = next(iter(runner.namespace["train_dataloader"]))
    assert result.error is None and batch.targets == labels.tolist()
    assert batch.labels == [CLASSES[k] for k in labels.tolist()]


def test_a_csv_line_that_does_not_parse_names_file_line_and_reason(tmp_path):
    folder = custom_folder(tmp_path, ["0.png,3", "1.png,one"])
    _, result, _ = run(CUSTOM.replace("TRANSFORM", "None"), folder)
    assert (result.error.type, result.error.line) == ("ValueError", 13)
    assert result.error.message == "labels.csv, line 3: invalid literal for int() with base 10: 'one'"


@pytest.mark.parametrize("row, message", [
    ("gone.png,1", "the image 'images/gone.png' does not exist"),
    ("bad.png,1", "'images/bad.png' is not an image torchvision can read (corrupt, or not jpeg/png/webp/gif)"),
])
def test_a_missing_or_corrupt_image_is_said_at_the_users_line(tmp_path, row, message):
    folder = custom_folder(tmp_path, ["0.png,3", row])
    _, result, handle = run(CUSTOM.replace("TRANSFORM", "None"), folder)
    assert result.error is None  # the script never read it: the panel's preview does
    batch = handle[BatchRequest](BatchRequest("loader"))
    assert batch.error == f"RuntimeError: {message}" and batch.error_line == 18


def test_a_failing_transform_names_its_stage_and_input(tmp_path):
    folder = custom_folder(tmp_path, ["0.png,3"])
    _, result, handle = run(CUSTOM.replace("TRANSFORM", "Normalize((0.5,), (0.5,))"), folder)
    stages = handle[StagesRequest](StagesRequest("ds"))
    failed = stages.stages[-1]
    assert failed.title == "Normalize(mean=(0.5,), std=(0.5,))" and failed.kind == "error"
    assert failed.error.startswith("TypeError: Input tensor should be a float tensor") \
        and failed.error.endswith("(input uint8 [1, 28, 28])")


MISSING = """from torchvision import datasets
ds = datasets.FashionMNIST(root="data", train=True, download=DOWNLOAD)
"""


def test_a_missing_root_is_one_sentence_and_the_offline_copy_fixes_it(tmp_path):
    runner, result, handle = run(MISSING.replace("DOWNLOAD", "False"), tmp_path)
    assert (result.error.type, result.error.line) == ("DatasetNotFoundError", 2)
    assert result.error.message.startswith("FashionMNIST is not in data/FashionMNIST/raw")
    missing = result.data[0]
    assert (missing.kind, missing.type, missing.root) == ("missing", "FashionMNIST", "data/FashionMNIST/raw")
    assert missing.offline
    reply = handle[OfflineCopyRequest](OfflineCopyRequest("FashionMNIST", missing.root))
    assert reply.error == "" and reply.files == 4
    again = runner.run(MISSING.replace("DOWNLOAD", "False"), str(tmp_path / "script.py"), cwd=str(tmp_path))
    assert again.error is None and again.data[0].len == 2000


def test_no_network_fails_at_once_and_is_not_tried_on_every_run(tmp_path, monkeypatch):
    tries = []

    def unreachable(url):  # a fake network (this machine may have one): the real probe is a socket
        tries.append(url)
        return False

    monkeypatch.setattr(offline_data, "_host_reachable", unreachable)
    network_retry_now()
    runner, result, _ = run(MISSING.replace("DOWNLOAD", "True"), tmp_path)
    assert result.error.one_line("s.py") == ("s.py:2: DatasetNotFoundError: FashionMNIST is not in "
                                             "data/FashionMNIST/raw and cannot be downloaded (no network)")
    again = runner.run(MISSING.replace("DOWNLOAD", "True"), str(tmp_path / "script.py"), cwd=str(tmp_path))
    assert again.error.type == "DatasetNotFoundError" and len(tries) == 1
    network_retry_now()


def test_export_has_data_and_draws_a_batch(tmp_path):
    script = ROOT / "resources" / "examples" / "23_transforms_one_hot.py"
    out = tmp_path / "g.json"
    done = subprocess.run([sys.executable, "main.py", "--export", str(out), str(script)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    entries = {e["name"]: e for e in json.loads(out.read_text())["data"]}
    loader = entries["loader"]
    raw = datasets.FashionMNIST(root=str(DATA), train=True)
    assert loader["batch"]["shapes"] == [[32, 1, 28, 28], [32, 10]]
    assert [int(np.argmax(r)) for r in loader["batch"]["labels"]] == raw.targets[:32].tolist()
    assert entries["ds"]["sample"] == {"shapes": [[1, 28, 28], [10]], "dtypes": ["float32", "float32"]}
    png = tmp_path / "b.png"
    done = subprocess.run([sys.executable, "main.py", "--export", str(png), str(script), "--batch", "loader"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_of_a_loader_that_fails_is_an_error_at_the_users_line(tmp_path):
    folder = custom_folder(tmp_path, ["gone.png,1"])
    script = folder / "s.py"
    script.write_text(CUSTOM.replace("TRANSFORM", "None"))
    done = subprocess.run([sys.executable, "main.py", "--export", str(tmp_path / "o.json"), str(script)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip() == f"{script}:18: RuntimeError: the image 'images/gone.png' does not exist"


def test_a_tile_is_the_image_of_the_batch_on_screen(tmp_path):
    """The tensor view's tile is the tensor the loader gave: the cursor's batch when it
    is the one shown, drawn again from manual_seed(0) otherwise (the same tensor)."""
    runner, _, handle = run(FMNIST, tmp_path)
    endpoint = Endpoint(runner)
    handle = kdata.handlers(endpoint)
    handle[BatchRequest](BatchRequest("loader", 1))
    torch.manual_seed(0)
    it = iter(runner.namespace["loader"])
    next(it)
    images, labels = next(it)
    x, caption, normalize, error = endpoint.data_requests.tile("loader", 1, 5)
    assert error == "" and torch.equal(x, images[5]) and normalize == [[0.5], [0.5]]
    assert caption == f"image 5 of batch 2 of loader (DataLoader), label {CLASSES[int(labels[5].argmax())]}"
    again, *_ = endpoint.data_requests.tile("loader", 0, 5)  # not the one on screen: drawn again
    torch.manual_seed(0)
    assert torch.equal(again, next(iter(runner.namespace["loader"]))[0][5])
    plain, _, none, _ = endpoint.data_requests.tile("plain", 0, 2)  # a dataset: samples 0..63
    assert torch.equal(plain, runner.namespace["plain"][2][0]) and none is None
    assert "has no image 300" in endpoint.data_requests.tile("loader", 0, 300)[3]
    assert "no Dataset or DataLoader named gone" in endpoint.data_requests.tile("gone", 0, 0)[3]
