"""The data panel on hand-made state: the list, the grid with its labels, hover
text, zoom, the channel picker, the transform strip, errors and the offline button;
and once in the whole app with a real kernel: the tutorial's FashionMNIST example
opened as a file, its batches against torchvision itself, a tile in the Tensor tab."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore

from core.model.data import DataBatch, DataInfo, Stage, Stages
from gui.panels.data import DataPanel, render_batch, tile_text
from gui.state import States


def loader_info(**kw) -> DataInfo:
    return DataInfo("loader", "loader", "DataLoader", 5, 3, ["shoe", "bag"], dataset="ds",
                    dataset_type="FashionMNIST", batch_size=4, batches=3, normalize=[[0.5], [0.5]], **kw)


def batch(channels: int = 1) -> DataBatch:
    images = np.arange(4 * channels * 8 * 8, dtype=np.uint8).reshape(4, channels, 8, 8)
    return DataBatch("loader", 0, images, ["shoe", "bag", "shoe", "bag"], [0, 1, 0, 1], [0, 1, 2, 3],
                     [[4, channels, 8, 8], [4]], ["float32", "int64"], [channels, 8, 8], 0.0, 1.0, "0..1",
                     [[0.0, 1.0]] * 4, batches=3)


def test_the_grid_draws_each_tile_with_its_label(qtbot):
    states = States()
    panel = DataPanel(states)
    qtbot.addWidget(panel)
    states.data.set_infos([DataInfo("ds", "dataset", "FashionMNIST", 2, 10), loader_info()])
    assert states.data.picked == "loader" and panel.list.count() == 2
    assert "DataLoader of ds" in panel.list.currentItem().text()
    states.data.set_batch(batch())
    assert len(panel.grid.images) == 4 and panel.position.text() == "batch 1 of 3 · 4 images"
    assert not panel.prev_button.isEnabled() and panel.next_button.isEnabled()
    assert panel.unnormalize.isVisibleTo(panel) and not panel.channel.isVisibleTo(panel)
    assert tile_text(states.data.batch, 1) == ("tile 1 of batch 1 · dataset[1]\nlabel: bag  (1)\n"
                                               "image: float32 [1, 8, 8]\nvalues 0 … 1")
    states.data.set_view(zoom=4.0)
    cols, tw, th, _, _ = panel.grid.geometry_of()
    assert (tw, th) == (32, 32)
    panel.grid.available = 1000
    qtbot.mouseClick(panel.grid, QtCore.Qt.LeftButton, pos=QtCore.QPoint(6 + 32 + 6 + 5, 10))
    assert states.data.tile == 1 and "label: bag" in panel.detail.text()


def test_other_channel_counts_pick_a_channel(qtbot):
    states = States()
    panel = DataPanel(states)
    qtbot.addWidget(panel)
    states.data.set_infos([loader_info()])
    states.data.set_batch(batch(channels=5))
    assert panel.channel.isVisibleTo(panel) and panel.channel.maximum() == 4
    panel.channel.setValue(3)
    assert states.data.channel == 3
    assert panel.grid.images[0].pixelColor(0, 0).red() == 3 * 64  # channel 3's first value


def test_the_strip_and_errors_show_where_the_user_looks(qtbot):
    states = States()
    panel = DataPanel(states)
    qtbot.addWidget(panel)
    missing = DataInfo("data/FashionMNIST/raw", "missing", "FashionMNIST", 3, root="data/FashionMNIST/raw",
                       error="DatasetNotFoundError: FashionMNIST is not in data/FashionMNIST/raw and cannot "
                             "be downloaded (no network)", offline="the bundled sample")
    states.data.set_infos([missing])
    assert panel.offline_button.isVisibleTo(panel)
    assert panel.error.text().startswith("line 3: DatasetNotFoundError: FashionMNIST is not in")
    states.data.set_infos([loader_info()])
    assert not panel.offline_button.isVisibleTo(panel)
    image = np.zeros((1, 8, 8), np.uint8)
    states.data.set_stages(Stages("loader", 0, [Stage("sample", "image", [8, 8], "PIL L", 0, 255, image),
                                                 Stage("Normalize()", "error", error="TypeError: no")],
                                  [Stage("label", "value", [], "int", text="1")]))
    assert len(panel.strip.cells) == 3 and panel.strip.target_at == 2
    assert panel.strip_error.text() == "The transform Normalize() failed on sample 0: TypeError: no"
    states.data.set_batch(DataBatch("loader", 0, None, [], [], [], error="RuntimeError: the image 'x' does "
                                    "not exist", error_line=18))
    assert panel.detail.text() == "The batch could not be loaded: line 18: RuntimeError: the image 'x' does not exist"


def test_the_exported_png_is_the_grid(qtbot):
    png = render_batch(batch())
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


EXAMPLE = Path(__file__).resolve().parents[2] / "resources" / "examples" / "21_fashion_mnist_dataloader.py"


def tile_centre(grid, k: int) -> QtCore.QPoint:
    cols, tw, th, label_h, _ = grid.geometry_of()
    return QtCore.QPoint(6 + (k % cols) * (tw + 6) + tw // 2, 6 + (k // cols) * (th + label_h + 6) + th // 2)


def front_tab(win) -> str:
    """The tab in front among the right-hand docks (Inspector, Tensor, Data, Devices)."""
    from PySide6 import QtWidgets

    bar = next(b for b in win.findChildren(QtWidgets.QTabBar)
               if "Tensor" in [b.tabText(i) for i in range(b.count())])
    return bar.tabText(bar.currentIndex())


def pick(qtbot, win, name: str) -> None:
    """Click `name` in the Data list and wait for its batch on screen."""
    panel, data = win.data, win.states.data
    item = next(panel.list.item(i) for i in range(panel.list.count())
                if panel.list.item(i).data(QtCore.Qt.UserRole) == name)
    rect = panel.list.visualItemRect(item)
    qtbot.mouseClick(panel.list.viewport(), QtCore.Qt.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: data.picked == name and data.batch is not None and data.batch.name == name
                    and not data.busy, timeout=60_000)


def test_fashion_mnist_opened_as_a_file_down_to_a_tile_in_the_tensor_tab(qtbot, window):
    """The tutorial's DataLoader example, opened as a user opens a file: its loaders
    listed, each batch the one torchvision gives (`next(iter(loader))` after
    `torch.manual_seed(0)`, computed here in-process), and a double-clicked tile full
    size in the Tensor tab with its value range."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import ToTensor

    from core.model.tensor_view import IMAGE, tile_id

    win, data = window, window.states.data
    assert win.files.open_file(EXAMPLE)
    qtbot.waitUntil(lambda: {"train_dataloader", "test_dataloader"} <= {i.name for i in data.infos},
                    timeout=120_000)
    win.docks["Data"].raise_()
    qtbot.waitUntil(lambda: win.data.list.count() == 4 and front_tab(win) == "Data", timeout=10_000)

    root = EXAMPLE.parent.parent / "data"
    train = datasets.FashionMNIST(root=root, train=True, transform=ToTensor())
    test = datasets.FashionMNIST(root=root, train=False, transform=ToTensor())
    pick(qtbot, win, "test_dataloader")
    _, expected = next(iter(DataLoader(test, batch_size=64)))
    assert data.batch.labels == [train.classes[int(k)] for k in expected]
    pick(qtbot, win, "train_dataloader")
    torch.manual_seed(0)
    images, expected = next(iter(DataLoader(train, batch_size=64, shuffle=True)))
    assert data.batch.labels == [train.classes[int(k)] for k in expected]
    assert len(win.data.grid.images) == 64 and "batch 1 of 32 · 64 images" in win.data.position.text()

    k = 5
    tv = win.states.tensor_view
    qtbot.mouseDClick(win.data.grid, QtCore.Qt.LeftButton, pos=tile_centre(win.data.grid, k))
    assert data.tile == k
    qtbot.waitUntil(lambda: tv.view is not None and tv.view.node_id == tile_id("train_dataloader", 0, k),
                    timeout=60_000)
    view, panel = tv.view, win.tensor_view
    assert front_tab(win) == "Tensor"  # the Tensor tab came forward
    assert view.kind == IMAGE and view.shape == [1, 28, 28]
    assert np.array_equal(view.data, (images[k, 0] * 255).round().to(torch.uint8).numpy())
    lo, hi = float(images[k].min()), float(images[k].max())
    assert (view.stats.min, view.stats.max) == (lo, hi)
    assert "tensor[1,28,28]" in panel.picture.summary.text() and "x∈[" in panel.picture.summary.text()
    assert panel.picture.caption.text() == (f"image {k} of batch 1 of train_dataloader (DataLoader), "
                                            f"label {train.classes[int(expected[k])]}")
    assert panel.picture.image.isVisible() and panel.picture.image.image.shape == (28, 28)
    assert list(panel.picture.image.levels) == [0, 255]  # grey levels, not black and white
    assert not panel.unnormalize.isVisibleTo(panel)  # ToTensor alone: nothing to undo


def test_a_data_example_from_the_menu_runs_offline_as_it_is(qtbot, window):
    """Examples → Data opens an unsaved copy; it runs as the example's file (its
    __file__), so `Path(__file__).parent.parent / "data"` is the bundled sample and
    no offline copy is needed."""
    win, data = window, window.states.data
    chapter = next(a.menu() for m in win.menuBar().actions() if m.text() == "E&xamples"
                   for a in m.menu().actions() if a.text().startswith("Data"))
    chapter.actions()[0].trigger()  # FashionMNIST through a DataLoader
    assert win.states.script.path is None and win.states.script.example == str(EXAMPLE)
    qtbot.waitUntil(lambda: {"train_dataloader", "test_dataloader"} <= {i.name for i in data.infos},
                    timeout=120_000)
    assert win.states.run.error is None
    assert not any(i.error for i in data.infos)
