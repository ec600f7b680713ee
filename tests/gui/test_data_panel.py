"""The data panel on hand-made state: the list, the grid with its labels, hover
text, zoom, the channel picker, the transform strip, errors and the offline button."""
from __future__ import annotations

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
