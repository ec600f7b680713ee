"""One tensor as the tensor view draws it, as it crosses the wire (no torch).

The window asks for a tensor of the last run by name (`TensorViewRequest`: which two
dims to show, where the sliders stand on the others, images or a heatmap); the kernel
answers with a `TensorView` holding only what is drawn: a slice, downsampled to at
most `max_side` a side, as a numpy buffer, never the whole tensor. Statistics, the
histogram and the one-line summary are of the whole tensor, computed where it lives.
`StorageLayout` is the strip under the picture: the storage the tensor is a view of,
and the part of it each named view covers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MAX_SIDE = 1024  # a displayed slice is at most this many rows and columns
MAX_POINTS = 4096  # a 1-d plot gets at most this many points
HIST_BINS = 64
STRIP_CELLS = 256  # storages up to this many elements are drawn one cell per element

# What the picture is.
VALUES = "values"  # 0-d / 1-d: `data` is the values (1-d), plotted and listed
HEATMAP = "heatmap"  # `data` is a 2-d slice
IMAGE = "image"  # `data` is (H, W, 3) or (H, W) uint8: one image or a grid of a batch
INDICES = "indices"  # a big sparse tensor: `data` is (k, ndim) indices, `values` theirs
SHAPE_ONLY = "shape"  # a meta tensor (or one without values): nothing to draw
GONE = "gone"  # no tensor by that name any more

COMPLEX_PARTS = ("magnitude", "phase", "real", "imag")
MODES = ("auto", "image", "heatmap")  # auto: images for (C,H,W)/(N,C,H,W), else a heatmap


@dataclass
class TensorViewRequest:
    node_id: str
    name: str  # as the graph names it: `x`, `model.0.weight`, `x@3`, `chunks[0]`, `x.grad`
    dims: list[int] | None = None  # the two dims drawn (rows, columns); None: the last two
    index: list[int] | None = None  # a position per dim for the others; None: all 0
    mode: str = "auto"
    complex_part: str = "magnitude"
    max_side: int = MAX_SIDE
    # What the run saw, to tell a tensor changed since (None: not known).
    version: int | None = None
    identity: str | None = None
    # A tensor that is no name of the script: image `tile` of batch `batch` of the
    # loader (or dataset) `batch_of`, as the data panel's preview drew it ("": a name).
    batch_of: str = ""
    batch: int = 0
    tile: int = 0
    unnormalize: bool = True  # images: undo a known Normalize for display (x·std + mean)


@dataclass
class ViewStats:
    """Over the whole tensor: min/max/mean/std of its finite values (complex: of the
    part shown), and how many values are nan, +inf, -inf."""
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    nan: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    zeros: int = 0  # the count when every finite value is 0, else 0
    count: int = 0  # the values these stats are of (finite ones)


@dataclass
class StorageView:
    """One named tensor's part of a storage, in elements of the viewed tensor's dtype."""
    name: str
    offset: int
    shape: list[int]
    stride: list[int]
    contiguous: bool
    span: list[int]  # [first, last] storage element it touches ([] when it has none)
    # STRIP_CELLS or fewer storage elements: for each, its position in this view's
    # row-major order (-1: not covered; the last position for elements seen twice, as
    # an expanded view does). Bigger storages: 1 per covered bucket, 0 elsewhere.
    cells: np.ndarray | None = None


@dataclass
class StorageLayout:
    key: str  # equal for tensors that share one storage
    nbytes: int
    element_size: int  # bytes per element of the tensor viewed
    length: int  # the storage's length in those elements
    views: list[StorageView] = field(default_factory=list)  # the one viewed first
    values: np.ndarray | None = None  # the storage's elements while they fit STRIP_CELLS
    exact: bool = True  # cells are elements (False: buckets of length / len(cells))


@dataclass
class TensorView:
    node_id: str
    name: str
    kind: str  # VALUES, HEATMAP, IMAGE, INDICES, SHAPE_ONLY, GONE
    summary: str = ""  # the one line, lovely-tensors style
    shape: list[int] = field(default_factory=list)
    dtype: str = ""
    device: str = ""
    layout: str = "strided"
    data: np.ndarray | None = None
    values: np.ndarray | None = None  # INDICES: the value at each index
    dims: list[int] = field(default_factory=list)  # the dims `data` shows (rows, cols)
    index: list[int] = field(default_factory=list)  # per dim: the slider position used
    step: list[int] = field(default_factory=list)  # per shown dim: every step-th element
    first: list[int] = field(default_factory=list)  # IMAGE grid: images shown (N), else []
    mode: str = "auto"
    image_possible: bool = False  # (C,H,W) with C in {1,3} or (N,C,H,W): the toggle applies
    complex_part: str = ""  # the part drawn when complex, else ""
    stats: ViewStats | None = None
    colour_range: list[float] = field(default_factory=list)  # [lo, hi] of the colour bar
    diverging: bool = False  # both signs: a diverging map centred on 0
    hist_counts: np.ndarray | None = None
    hist_edges: np.ndarray | None = None
    hist_sample: int = 0  # the histogram counts every k-th value of this many, scaled (0: all)
    storage: StorageLayout | None = None
    note: str = ""  # a sentence to show in warning colours (changed since the run, …)
    version: int | None = None
    identity: str | None = None
    caption: str = ""  # where a tensor without a name came from (a loader's batch, its label)
    normalize: list[list[float]] | None = None  # [mean, std] of a Normalize it went through, if known
    unnormalized: str = ""  # the picture shows x·std + mean: how, in words ("" for the raw values)


MESSAGES = (TensorViewRequest, TensorView, ViewStats, StorageView, StorageLayout)
REPLY_TO = {TensorViewRequest: TensorView}


def tile_name(batch_of: str, batch: int, tile: int) -> str:
    """What the tensor view calls image `tile` of a preview batch (`batch` from 0)."""
    return f"{batch_of} batch {batch + 1} image {tile}"


def tile_id(batch_of: str, batch: int, tile: int) -> str:
    """The tensor view's id of such an image: no graph node has one like it."""
    return f"data:{batch_of}:{batch}:{tile}"


def format_number(v: float | None) -> str:
    if v is None:
        return "?"
    if v != v:
        return "nan"
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v)) if abs(v) >= 1 or v == 0 else f"{v:.3g}"
    return f"{v:.3g}"


def summary_line(shape: list[int], dtype: str, device: str, stats: ViewStats | None,
                 numel: int, layout: str = "strided", requires_grad: bool = False,
                 grad: bool = False, part: str = "") -> str:
    """`tensor[2,3,8,8] n=384 x∈[-2.6, 3.9] μ=0.05 σ=0.96 +Inf! NaN!`: what
    lovely-tensors prints, with the dtype when not float32, the device when not
    the CPU, and the layout when not strided."""
    words = ["tensor[" + ",".join(str(s) for s in shape) + "]" if shape else "tensor"]
    if numel != 1 or shape:
        words.append(f"n={numel}")
    if layout != "strided":
        words.append(layout.replace("sparse_", "sparse "))
    if dtype != "float32":
        words.append(dtype)
    if device and device != "cpu":
        words.append(device)
    if part:
        words.append(part)
    if stats is not None and numel:
        if stats.count and stats.min is not None:
            if numel == 1 and not (stats.nan or stats.pos_inf or stats.neg_inf):
                words.append(format_number(stats.min))
            elif stats.count and stats.zeros == stats.count and not (stats.nan or stats.pos_inf or stats.neg_inf):
                words.append("all_zeros")
            else:
                words.append(f"x∈[{format_number(stats.min)}, {format_number(stats.max)}]")
                if stats.mean is not None and stats.std is not None:
                    words.append(f"μ={format_number(stats.mean)} σ={format_number(stats.std)}")
        if stats.pos_inf:
            words.append("+Inf!")
        if stats.neg_inf:
            words.append("-Inf!")
        if stats.nan:
            words.append("NaN!")
    elif numel == 0:
        words.append("empty")
    if requires_grad:
        words.append("grad")
    if grad:
        words.append("has .grad")
    return " ".join(words)


def default_dims(ndim: int) -> list[int]:
    return [ndim - 2, ndim - 1] if ndim >= 2 else list(range(ndim))


def is_image_shape(shape: list[int]) -> bool:
    """(C,H,W) with C in {1, 3}, or (N,C,H,W) with C in {1, 3}: shown as images."""
    return (len(shape) == 3 and shape[0] in (1, 3)) or (len(shape) == 4 and shape[1] in (1, 3))
