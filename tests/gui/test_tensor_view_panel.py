"""The tensor view in the window, with a real kernel: select a tensor in the graph,
wait for the kernel's answer, look at what is drawn; move a slider, toggle images."""
import numpy as np
import pytest

from core.model.tensor_view import HEATMAP, IMAGE, VALUES

SCRIPT = """import torch
torch.manual_seed(0)
m = torch.randn(6, 9)
m[1, 2] = float('nan')
vol = torch.arange(2 * 4 * 5 * 6.).reshape(2, 4, 5, 6)
batch = torch.rand(4, 3, 8, 8)
v = torch.arange(5.)
mt = m.t()
"""


def run_and_select(qtbot, window, name):
    tv = window.states.tensor_view
    node = next(n for n in window.states.run.graph.nodes if getattr(n, "name", None) == name)
    with qtbot.waitSignal(tv.changed, timeout=30_000, check_params_cb=None):
        window.states.selection.set(node.id)
    qtbot.waitUntil(lambda: tv.view is not None and tv.view.node_id == node.id, timeout=30_000)
    return tv.view


@pytest.fixture
def ran(qtbot, window):
    window.states.script.set_text(SCRIPT)
    with qtbot.waitSignal(window.session.run_result, timeout=60_000):
        window.actions.run_now()
    return window


def test_heatmap_with_nan_summary_and_storage(qtbot, ran):
    view = run_and_select(qtbot, ran, "m")
    panel = ran.tensor_view
    assert view.kind == HEATMAP and view.data.shape == (6, 9)
    assert "NaN!" in panel.picture.summary.text() and "tensor[6,9]" in panel.picture.summary.text()
    assert panel.picture.image.isVisible() and panel.picture.overlay.isVisible()  # the nan cell coloured
    assert "nan (1)" in panel.picture.legend.text()
    assert panel.picture.image.image.shape == (6, 9)
    # the storage strip lists m and its transpose, with their strides
    assert [v.name for v in view.storage.views][:1] == ["m"] and "mt" in [v.name for v in view.storage.views]
    assert "stride (9, 1)" in panel.strip.captions.text() and "stride (1, 9)" in panel.strip.captions.text()


def test_slider_picks_the_slice(qtbot, ran):
    view = run_and_select(qtbot, ran, "vol")
    panel = ran.tensor_view
    assert view.kind == HEATMAP and view.dims == [2, 3] and len(panel.sliders) == 2
    dim0 = next(s for d, s, _ in panel.sliders if d == 0)
    tv = ran.states.tensor_view
    dim0.setValue(1)
    qtbot.waitUntil(lambda: tv.view.index[0] == 1, timeout=30_000)
    expected = np.arange(2 * 4 * 5 * 6.).reshape(2, 4, 5, 6)[1, 0]
    np.testing.assert_array_equal(tv.view.data, expected)
    np.testing.assert_array_equal(panel.picture.image.image, expected)
    # rows: dim 1 instead of dim 2
    panel._pick_dims(1, None)
    qtbot.waitUntil(lambda: tv.view.dims == [1, 3], timeout=30_000)
    np.testing.assert_array_equal(tv.view.data, np.arange(2 * 4 * 5 * 6.).reshape(2, 4, 5, 6)[1, :, 0, :])


def test_batch_grid_and_toggle_to_heatmap(qtbot, ran):
    view = run_and_select(qtbot, ran, "batch")
    panel = ran.tensor_view
    assert view.kind == IMAGE and view.data.dtype == np.uint8 and view.data.shape[-1] == 3
    assert panel.mode.isVisibleTo(panel) and "Heatmap" in panel.mode.text()
    tv = ran.states.tensor_view
    panel.mode.click()
    qtbot.waitUntil(lambda: tv.view.kind == HEATMAP, timeout=30_000)
    assert tv.view.data.shape == (8, 8) and len(panel.sliders) == 2


def test_vector_plot_and_hover(qtbot, ran):
    view = run_and_select(qtbot, ran, "v")
    panel = ran.tensor_view
    assert view.kind == VALUES and panel.picture.bars.isVisible()
    assert "[0. 1. 2. 3. 4.]" in panel.picture.values.text()
    from gui.panels.tensor_view import hover_text
    assert hover_text(view, 3.1, 0.0) == "v[3] = 3"


def test_op_node_says_select_a_tensor(qtbot, ran):
    op = next(n for n in ran.states.run.graph.nodes if n.kind == "op") if any(
        n.kind == "op" for n in ran.states.run.graph.nodes) else None
    tv = ran.states.tensor_view
    ran.states.selection.set("")
    if op is not None:
        ran.states.selection.set(op.id)
        assert tv.view is None and "not a tensor" in tv.message
    assert not ran.tensor_view.picture.canvas.isVisibleTo(ran.tensor_view) or tv.view is None


NORMALIZED = """import torch
from pathlib import Path
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import Compose, Normalize, ToTensor
ds = datasets.FashionMNIST(root=ROOT, train=False, transform=Compose([ToTensor(), Normalize((0.5,), (0.5,))]))
loader = DataLoader(ds, batch_size=8)
features, labels = next(iter(loader))
"""


def test_un_normalized_toggle_for_a_loader_tile_and_a_batch_it_gave(qtbot, window):
    """A Normalize in the pipeline: the tensor view offers the data panel's
    Un-normalized toggle, for a tile of the loader's batch (named by its loader,
    batch and tile) and for the script's batch shaped like its samples."""
    from pathlib import Path

    from core.model.tensor_view import tile_id

    root = Path(__file__).resolve().parents[2] / "resources" / "data"
    window.states.script.set_text(NORMALIZED.replace("ROOT", repr(str(root))))
    with qtbot.waitSignal(window.session.run_result, timeout=60_000):
        window.actions.run_now()
    tv, panel = window.states.tensor_view, window.tensor_view
    window.actions.view_tile("loader", 0, 2)
    qtbot.waitUntil(lambda: tv.view is not None and tv.view.node_id == tile_id("loader", 0, 2), timeout=30_000)
    assert tv.view.kind == IMAGE and tv.view.normalize == [[0.5], [0.5]] and tv.view.unnormalized
    assert panel.unnormalize.isVisibleTo(panel) and panel.unnormalize.isChecked()
    assert "un-normalized" in panel.picture.legend.text() and panel.picture.caption.text().startswith("image 2")
    panel.unnormalize.click()
    qtbot.waitUntil(lambda: tv.view.unnormalized == "", timeout=30_000)
    # (the picture may not change: x·0.5 + 0.5 of an image with 0 and 1 in it is its own stretch)
    assert not panel.unnormalize.isChecked() and not panel.picture.legend.isVisibleTo(panel)
    assert tv.view.caption.startswith("image 2 of batch 1 of loader")
    panel.unnormalize.click()
    view = run_and_select(qtbot, window, "features")  # the script's own batch: the same toggle
    assert view.kind == IMAGE and view.normalize == [[0.5], [0.5]] and view.unnormalized and view.caption == ""
    assert panel.unnormalize.isVisibleTo(panel) and tv.batch_of == ""
