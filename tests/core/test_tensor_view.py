"""The tensor view's kernel side against torch itself: slices, statistics with
nan/inf, every dtype and layout, storage layouts, and tensors changed since the run."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.kernel.runner import Runner
from core.kernel.tensor_view import Viewer, chunks, histogram, whole_stats
from core.model.tensor_view import (GONE, HEATMAP, IMAGE, INDICES, SHAPE_ONLY, VALUES, TensorViewRequest,
                                    summary_line)
from core.protocol import decode, encode

SCRIPT = """
import torch, numpy as np
torch.manual_seed(0)
m = torch.randn(5, 7)
bad = torch.tensor([[1.0, float('nan'), 3.0], [float('inf'), -2.0, -float('inf')]])
vol = torch.randn(4, 5, 6, 7)
img = torch.rand(3, 20, 30)
batch = torch.rand(10, 3, 16, 16)
big = torch.randn(3000, 2500)
v = torch.arange(10.)
s = torch.tensor(3.5)
flags = torch.tensor([[True, False], [False, True]])
ints = torch.arange(12, dtype=torch.int64).reshape(3, 4) - 5
u8 = torch.arange(6, dtype=torch.uint8).reshape(2, 3)
cplx = torch.randn(4, 4, dtype=torch.complex64)
bf = torch.randn(6, 6).to(torch.bfloat16)
f16 = torch.randn(6, 6).half()
f8 = torch.randn(6, 6).to(torch.float8_e4m3fn)
coo = torch.randn(4, 5).relu().to_sparse()
csr = torch.randn(4, 5).relu().to_sparse_csr()
huge_sparse = torch.sparse_coo_tensor(torch.tensor([[0, 5, 99999], [1, 7, 99998]]),
                                      torch.tensor([1.0, 2.0, 3.0]), (100000, 100000))
meta = torch.empty(3, 4, device='meta')
wide = torch.arange(4.).expand(100000, 4)
base = torch.arange(12.).reshape(3, 4)
tb = base.t()
col = base[:, 1]
arr = base.numpy()
empty = torch.zeros(0, 3)
parts = torch.chunk(torch.arange(9.), 3)
w = torch.ones(3, requires_grad=True)
y3 = w * 3
w = torch.zeros(3, requires_grad=True)
loss = (w * 2).sum()
"""


@pytest.fixture(scope="module")
def runner():
    r = Runner()
    result = r.run(SCRIPT)
    assert result.error is None, result.error
    return r


@pytest.fixture(scope="module")
def viewer(runner):
    return Viewer(runner)


def view(viewer, name, **kw):
    v = viewer.view(TensorViewRequest("n", name, **kw))
    # every reply crosses the wire: encoded and decoded as the window would get it
    data, buffers = encode(v)
    back, _ = decode(data, [bytes(b) for b in buffers])
    return back


def finite_stats(t: torch.Tensor):
    x = t.double().reshape(-1)
    f = x[torch.isfinite(x)]
    return float(f.min()), float(f.max()), float(f.mean()), float(f.std())


def test_heatmap_slice_is_the_tensor(runner, viewer):
    v = view(viewer, "m")
    assert v.kind == HEATMAP and v.step == [1, 1]
    np.testing.assert_array_equal(v.data, runner.namespace["m"].numpy())
    lo, hi, mean, std = finite_stats(runner.namespace["m"])
    assert v.stats.min == pytest.approx(lo) and v.stats.max == pytest.approx(hi)
    assert v.stats.mean == pytest.approx(mean, abs=1e-6) and v.stats.std == pytest.approx(std, rel=1e-5)
    assert v.diverging and v.colour_range[0] == -v.colour_range[1]


def test_stats_with_nan_and_inf(runner, viewer):
    t = runner.namespace["bad"]
    v = view(viewer, "bad")
    assert (v.stats.nan, v.stats.pos_inf, v.stats.neg_inf) == (1, 1, 1)
    lo, hi, mean, std = finite_stats(t)
    assert (v.stats.min, v.stats.max) == (lo, hi)
    assert v.stats.mean == pytest.approx(mean) and v.stats.std == pytest.approx(std)
    assert v.summary.endswith("+Inf! -Inf! NaN!")
    np.testing.assert_array_equal(v.data, t.numpy())  # nan/inf arrive as they are, to be coloured
    assert v.hist_counts.sum() == 3  # the finite ones


def test_slices_of_a_4d_tensor_follow_dims_and_index(runner, viewer):
    t = runner.namespace["vol"]
    v = view(viewer, "vol", dims=[3, 1], index=[2, 0, 4, 0])
    assert v.kind == HEATMAP and v.dims == [3, 1] and v.index == [2, 0, 4, 0]
    np.testing.assert_array_equal(v.data, t[2, :, 4, :].t().numpy())
    v = view(viewer, "vol", index=[3, 1, 99, 0])  # out of range: clamped
    np.testing.assert_array_equal(v.data, t[3, 1].numpy())
    assert v.index[:2] == [3, 1]


def test_big_tensor_is_downsampled_to_max_side(runner, viewer):
    t = runner.namespace["big"]
    v = view(viewer, "big", max_side=1024)
    assert v.step == [3, 3] and v.data.shape == (1000, 834)
    np.testing.assert_array_equal(v.data, t[::3, ::3].numpy())
    assert v.stats.count == t.numel()
    assert v.stats.std == pytest.approx(float(t.double().std()), rel=1e-6)


def test_images_and_grid(runner, viewer):
    img = runner.namespace["img"]
    v = view(viewer, "img")
    assert v.kind == IMAGE and v.image_possible and v.data.shape == (20, 30, 3) and v.data.dtype == np.uint8
    np.testing.assert_array_equal(v.data, (img * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    g = view(viewer, "batch")
    assert g.kind == IMAGE and g.first == [10]
    assert g.data.shape == (3 * 18 - 2, 4 * 18 - 2, 3)  # 4 columns, 3 rows, 2 px gaps
    b = runner.namespace["batch"]
    np.testing.assert_array_equal(g.data[18:34, 18:34], (b[5] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    h = view(viewer, "batch", mode="heatmap", index=[7, 2, 0, 0])
    assert h.kind == HEATMAP and h.dims == [2, 3]
    np.testing.assert_array_equal(h.data, b[7, 2].numpy())


def test_values_0d_and_1d(runner, viewer):
    v = view(viewer, "v")
    assert v.kind == VALUES
    np.testing.assert_array_equal(v.data, np.arange(10.0))
    s = view(viewer, "s")
    assert s.kind == VALUES and s.data.tolist() == [3.5] and "3.5" in s.summary


@pytest.mark.parametrize("name", ["flags", "ints", "u8", "bf", "f16", "f8"])
def test_dtypes_without_raising(runner, viewer, name):
    t = runner.namespace[name]
    v = view(viewer, name)
    assert v.kind == HEATMAP and v.note == ""
    expected = t.to(torch.float32) if t.is_floating_point() else t
    np.testing.assert_array_equal(v.data, expected.numpy())
    x = t.double()
    assert v.stats.min == float(x.min()) and v.stats.max == float(x.max())
    assert v.stats.mean == pytest.approx(float(x.mean()))


def test_integer_histogram_has_one_bin_per_value(runner, viewer):
    v = view(viewer, "ints")
    assert len(v.hist_counts) == 12 and list(v.hist_counts) == [1] * 12


@pytest.mark.parametrize("part,fn", [("magnitude", torch.abs), ("phase", torch.angle),
                                      ("real", torch.real), ("imag", torch.imag)])
def test_complex_parts(runner, viewer, part, fn):
    t = runner.namespace["cplx"]
    v = view(viewer, "cplx", complex_part=part)
    assert v.complex_part == part and part in v.summary
    np.testing.assert_allclose(v.data, fn(t).numpy())
    assert v.stats.max == pytest.approx(float(fn(t).max()))


def test_sparse_small_dense_big_indices(runner, viewer):
    for name in ("coo", "csr"):
        t = runner.namespace[name]
        v = view(viewer, name)
        assert v.kind == HEATMAP and "drawn dense" in v.note
        np.testing.assert_array_equal(v.data, t.to_dense().numpy())
        assert v.stats.mean == pytest.approx(float(t.to_dense().mean()))
    v = view(viewer, "huge_sparse")
    assert v.kind == INDICES
    assert sorted(map(tuple, v.data.tolist())) == [(0, 1), (5, 7), (99999, 99998)]
    assert sorted(v.values.tolist()) == [1.0, 2.0, 3.0]


def test_meta_and_empty_and_missing(viewer):
    v = view(viewer, "meta")
    assert v.kind == SHAPE_ONLY and v.shape == [3, 4] and "no values" in v.note
    e = view(viewer, "empty")
    assert e.kind == VALUES and "empty" in e.summary
    g = view(viewer, "no_such_tensor")
    assert g.kind == GONE and "no_such_tensor" in g.note


def test_expanded_view_counts_its_repeats_without_materializing(runner, viewer):
    t = runner.namespace["wide"]
    v = view(viewer, "wide")
    ref = t.contiguous().double()
    assert v.stats.count == t.numel()
    assert v.stats.mean == pytest.approx(float(ref.mean())) and v.stats.std == pytest.approx(float(ref.std()))
    assert v.hist_counts.sum() == t.numel()
    assert v.storage.length == 4 and not v.storage.views[0].contiguous


def test_storage_layout_of_views_and_numpy_twins(runner, viewer):
    ns = runner.namespace
    v = view(viewer, "tb")
    names = [sv.name for sv in v.storage.views]
    assert names[0] == "tb" and {"base", "col", "arr"} <= set(names)
    by = {sv.name: sv for sv in v.storage.views}
    for name in ("tb", "base", "col"):
        t = ns[name]
        assert by[name].offset == t.storage_offset() and by[name].stride == list(t.stride())
        assert by[name].contiguous == t.is_contiguous()
        assert t.untyped_storage().data_ptr() == ns["base"].untyped_storage().data_ptr()
    assert np.shares_memory(ns["arr"], ns["base"].numpy())
    # each covered storage element holds its position in the view's row-major order
    flat = ns["tb"].reshape(-1)
    for storage_index, position in enumerate(by["tb"].cells.tolist()):
        if position >= 0:
            assert float(flat[position]) == float(v.storage.values[storage_index])
    assert by["col"].cells.tolist().count(-1) == 12 - 3
    assert v.storage.values.tolist() == list(range(12))


def test_names_of_elements_and_rebound_leaves(runner, viewer):
    v = view(viewer, "parts[1]")
    np.testing.assert_array_equal(v.data, runner.namespace["parts"][1].numpy())
    graph = runner.run(SCRIPT).graph  # `w` is bound twice: the first is `w@...`
    at = [n.name for n in graph.by_kind("tensor") if n.name and n.name.startswith("w@")]
    assert at
    for name in at:
        v = view(Viewer(runner), name)
        assert v.kind == VALUES and v.data.tolist() == [1.0, 1.0, 1.0]


def test_changed_in_place_since_the_run_says_so():
    r = Runner()
    assert r.run("import torch\nx = torch.zeros(3)\n").error is None
    viewer = Viewer(r)
    first = view(viewer, "x")
    r.namespace["x"].add_(1)  # as a later request could
    later = view(viewer, "x", version=first.version, identity=first.identity)
    assert "changed in place" in later.note and later.data.tolist() == [1.0, 1.0, 1.0]
    r.namespace["x"] = torch.ones(3)  # bound again
    again = view(viewer, "x", version=first.version, identity=first.identity)
    assert "no longer the tensor" in again.note


def test_whole_stats_chunked_equals_torch():
    torch.manual_seed(1)
    t = torch.randn(50, 40, 30)
    t[3, 4, 5] = float("nan")
    t[10, 0, 0] = float("inf")
    s = whole_stats(t.transpose(0, 2))  # non-contiguous
    lo, hi, mean, std = finite_stats(t)
    assert (s.min, s.max, s.nan, s.pos_inf) == (lo, hi, 1, 1)
    assert s.mean == pytest.approx(mean) and s.std == pytest.approx(std, rel=1e-6)
    parts = list(chunks(t, limit=1000))
    assert sum(p.numel() for p in parts) == t.numel() and max(p.numel() for p in parts) <= 1200
    counts, edges, _ = histogram(t, s, bins=10)
    finite = t[torch.isfinite(t)]
    expected = torch.histc(finite, bins=10, min=lo, max=hi)
    assert counts.tolist() == expected.tolist() and edges[0] == lo and edges[-1] == hi


def test_summary_line_format():
    from core.model.tensor_view import ViewStats
    line = summary_line([2, 3, 8, 8], "float32", "cpu",
                        ViewStats(min=-2.6, max=3.9, mean=0.05, std=0.96, nan=1, pos_inf=2, count=381), 384)
    assert line == "tensor[2,3,8,8] n=384 x∈[-2.6, 3.9] μ=0.05 σ=0.96 +Inf! NaN!"
    assert "bfloat16 cuda:0" in summary_line([2], "bfloat16", "cuda:0", ViewStats(min=0, max=1, count=2), 2)
    assert "all_zeros" in summary_line([4], "float32", "cpu", ViewStats(min=0, max=0, mean=0, std=0,
                                                                        zeros=4, count=4), 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_stats_on_the_gpu_equal_the_cpu():
    t = torch.randn(1000, 999, device="cuda").to(torch.bfloat16)
    s = whole_stats(t)
    ref = t.float().cpu().double()
    assert s.min == float(ref.min()) and s.max == float(ref.max())
    assert s.mean == pytest.approx(float(ref.mean()), abs=1e-5)
    assert math.isclose(s.std, float(ref.std()), rel_tol=1e-5)


NORMALIZED = """
import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import Compose, Normalize, ToTensor
ds = datasets.FashionMNIST(root=ROOT, train=False, transform=Compose([ToTensor(), Normalize((0.5,), (0.5,))]))
loader = DataLoader(ds, batch_size=16, shuffle=True)
torch.manual_seed(0)
features, labels = next(iter(loader))
first = features[0]
other = torch.rand(1, 28, 28)
"""


def test_a_data_tile_is_viewed_by_its_batch_and_un_normalized(tmp_path):
    """A tile of the data panel is no name of the script: the request names the
    loader, the batch and the tile; a Normalize in its pipeline is undone for display
    only (the summary and histogram stay the raw values)."""
    from core.kernel import data as kdata
    from core.kernel import tensor_view as ktv
    from core.model.tensor_view import tile_id, tile_name

    root = str(Path(__file__).resolve().parents[2] / "resources" / "data")
    runner = Runner()
    assert runner.run(NORMALIZED.replace("ROOT", repr(root)), str(tmp_path / "s.py"), cwd=str(tmp_path)).error is None

    class Endpoint:
        pass

    endpoint = Endpoint()
    endpoint.runner = runner
    handle = {**kdata.handlers(endpoint), **ktv.handlers(endpoint)}
    features = runner.namespace["features"]
    request = TensorViewRequest(tile_id("loader", 0, 3), tile_name("loader", 0, 3), batch_of="loader", batch=0, tile=3)
    view = handle[TensorViewRequest](request)
    x = features[3]
    assert view.kind == IMAGE and view.normalize == [[0.5], [0.5]] and view.identity is None
    assert view.caption.startswith("image 3 of batch 1 of loader (DataLoader), label ")
    assert view.stats.min == float(x.min()) and view.stats.max == float(x.max())  # the raw values
    assert f"x∈[{float(x.min()):.3g}" in view.summary
    assert np.array_equal(view.data, ((x[0] * 0.5 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    assert view.unnormalized.startswith("un-normalized with loader's Normalize")
    request.unnormalize = False
    raw = handle[TensorViewRequest](request)
    lo, hi = float(x.min()), float(x.max())
    assert raw.unnormalized == "" and np.array_equal(raw.data, ((x[0] - lo) * (255 / (hi - lo))).round().to(torch.uint8).numpy())
    data, buffers = encode(view)
    assert decode(data, buffers)[0].caption == view.caption
    # the script's own tensors shaped like the dataset's samples (or a batch of them) are
    # taken to come from it: a guess by shape, so the toggle shows the raw values too
    named = handle[TensorViewRequest](TensorViewRequest("n", "first"))
    assert named.normalize == [[0.5], [0.5]] and named.unnormalized.startswith("un-normalized with ds's")
    assert handle[TensorViewRequest](TensorViewRequest("n", "features")).normalize == [[0.5], [0.5]]
    assert handle[TensorViewRequest](TensorViewRequest("n", "other")).normalize == [[0.5], [0.5]]
    assert handle[TensorViewRequest](TensorViewRequest("n", "labels")).normalize is None
