"""Kernel side of the tensor view: one named tensor of the last run -> `TensorView`.

Only what is drawn leaves the kernel: a 2-d slice picked by the request's dims and
slider positions, taken every k-th element so it fits `max_side` a side, made a
numpy array from a view of the tensor (a 4 GiB tensor, an expanded or transposed
view, is never copied whole). Statistics and the histogram run where the tensor
lives, a bounded chunk at a time, over the distinct elements of an expanded view
(counted as often as the view repeats them); they are kept per tensor and version,
so moving a slider costs one slice. Every dtype and layout gets a picture or a
sentence, never an exception: bool, integers, complex (the part asked for),
bfloat16/half/float8 (widened on the device), quantized (dequantized), sparse (dense
while small, else its indices), nested (its values, flat), meta (the shape).
"""
from __future__ import annotations

import math
import re
import weakref
from collections import OrderedDict

import numpy as np
import torch

from ..model.tensor_view import (COMPLEX_PARTS, GONE, HEATMAP, HIST_BINS, IMAGE, INDICES, MAX_POINTS,
                                 SHAPE_ONLY, STRIP_CELLS, VALUES, StorageLayout, StorageView,
                                 TensorView, TensorViewRequest, ViewStats, default_dims, is_image_shape,
                                 summary_line)
from .tensors import dtype_name
from .trace import named_tensors

CHUNK = 1 << 24  # elements per pass of the statistics (bounded extra memory)
SPLIT = 1 << 20  # a chunk holding nan or inf is split to pieces this big before it is masked
STATS_EXACT = 1 << 28  # more elements than this: statistics of an even sample
HIST_SAMPLE = 1 << 21  # more elements than this: the histogram of an even sample
SPARSE_DENSE_LIMIT = 1 << 22  # sparse tensors up to this many elements are drawn dense
INDICES_LIMIT = 4096  # a big sparse tensor sends this many of its indices
GRID_LIMIT = 64  # images of a batch drawn in the grid
GRID_GAP = 2  # pixels between the grid's images
COVERAGE_LIMIT = 1 << 22  # views with more elements show the span they touch, not each bucket

_ELEMENT = re.compile(r"^(?P<base>.+)\[(?P<i>-?\d+)\]$")
_AT = re.compile(r"^(?P<base>[^@]+)@(?P<line>\d+)$")


# --- finding the tensor --------------------------------------------------------------------

def array_as_tensor(a) -> torch.Tensor | None:
    """A numpy array as a tensor sharing its memory (None for object arrays)."""
    if not isinstance(a, np.ndarray) or a.dtype.hasobject:
        return None
    try:
        return torch.from_numpy(a)
    except (TypeError, ValueError, RuntimeError):  # negative strides, dtypes torch lacks
        try:
            return torch.from_numpy(np.ascontiguousarray(a))
        except (TypeError, ValueError, RuntimeError):
            return None


def named_arrays(namespace: dict) -> list[tuple[str, np.ndarray]]:
    return [(k, v) for k, v in namespace.items()
            if isinstance(v, np.ndarray) and not k.startswith("__") and not v.dtype.hasobject]


def _value_by_name(runner, name: str):
    ns = runner.namespace
    named = dict(named_tensors(ns))
    if name in named:
        return named[name]
    if name in ns and not name.startswith("__"):
        return ns[name]
    m = _ELEMENT.match(name)
    if m:
        base = _value_by_name(runner, m.group("base"))
        if isinstance(base, (list, tuple)):
            i = int(m.group("i"))
            return base[i] if -len(base) <= i < len(base) else None
        return None
    if name.endswith(".grad"):
        base = _value_by_name(runner, name[:-5])
        if isinstance(base, torch.Tensor) and (base.is_leaf or base.retains_grad):
            return base.grad
        return None
    m = _AT.match(name)
    if m:
        return _leaf_made_on_line(runner, int(m.group("line")))
    return None


def _leaf_made_on_line(runner, line: int) -> torch.Tensor | None:
    """`x@3`: the leaf the script made on line 3 and bound to a name it later
    reused; still reachable through the graph of the named tensors."""
    cuts = getattr(runner, "cuts", None)
    if cuts is None:
        return None
    seen, stack = set(), [t.grad_fn for _, t in named_tensors(runner.namespace) if t.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        var = getattr(fn, "variable", None)
        if isinstance(var, torch.Tensor) and cuts.line_of(var) == line:
            return var
        stack.extend(nf for nf, _ in fn.next_functions if nf is not None)
    return None


def find_tensor(runner, name: str) -> torch.Tensor | None:
    """The tensor the graph calls `name` in the last run's namespace: a name,
    `model.0.weight`, `x.grad`, `chunks[0]`, `x@3`, or a numpy array (as a tensor
    sharing its memory). None when there is none."""
    try:
        value = _value_by_name(runner, name)
    except Exception:  # a user object whose lookups raise
        return None
    if isinstance(value, torch.Tensor):
        return value
    return array_as_tensor(value)


# --- values as numbers ------------------------------------------------------------------

def as_real(x: torch.Tensor, part: str = "magnitude") -> torch.Tensor:
    """Numbers to count and draw: dequantized, complex as the part asked for,
    low-precision floats widened to float32 (on the tensor's device)."""
    if x.is_quantized:
        x = x.dequantize()
    if x.is_complex():
        if x.dtype not in (torch.complex64, torch.complex128):
            x = x.to(torch.complex64)
        x = {"phase": torch.angle, "real": torch.real, "imag": torch.imag}.get(part, torch.abs)(x)
    if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """Only `x` (a slice) is copied; it becomes contiguous on its own device first."""
    x = x.detach()
    if x.dtype in (torch.uint16, torch.uint32, torch.uint64):
        x = x.to(torch.int64)
    return x.contiguous().cpu().resolve_conj().resolve_neg().numpy()


def compressed(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(x without its broadcast dims, how many times the view repeats each element):
    an expanded view's statistics are its base's, counted `repeat` times."""
    repeat = 1
    for d in range(x.dim() - 1, -1, -1):
        if x.stride(d) == 0 and x.shape[d] > 1:
            repeat *= x.shape[d]
            x = x.narrow(d, 0, 1)
    return x, repeat


def chunks(x: torch.Tensor, limit: int = CHUNK):
    """Views of `x` with at most `limit` elements each (unless one row alone is
    bigger), covering it once: narrowed along the leading dims, never copied whole."""
    if x.numel() <= limit or x.dim() == 0:
        yield x
        return
    inner = x.numel() // x.shape[0]
    if inner >= limit:
        for i in range(x.shape[0]):
            yield from chunks(x[i], limit)
        return
    rows = max(1, limit // inner)
    for s in range(0, x.shape[0], rows):
        yield x.narrow(0, s, min(rows, x.shape[0] - s))


def sampled(x: torch.Tensor, target: int) -> torch.Tensor:
    """Every k-th element along the leading dims, about `target` elements."""
    step = max(1, math.ceil(x.numel() / target))
    for d in range(x.dim()):
        if step <= 1:
            break
        take = min(step, x.shape[d])
        x = x[(slice(None),) * d + (slice(None, None, take),)]
        step = math.ceil(step / take)
    return x


def _numbers(c: torch.Tensor, part: str) -> torch.Tensor:
    """A chunk as flat numbers to sum: real, bools as 0/1, integers as float64."""
    c = as_real(c, part)
    if c.dtype == torch.bool:
        c = c.to(torch.uint8)
    if not c.is_floating_point():
        c = c.double()
    return c.reshape(-1)


def _finite_pieces(c: torch.Tensor):
    """(piece, lo, hi, nan, +inf, -inf) covering the flat chunk `c`: its finite
    values in pieces, with the non-finite ones counted. A chunk whose min and max are
    finite holds neither nan nor inf (one aminmax pass tells); one that does not is
    split, so only a piece of at most SPLIT elements around each nan or inf is
    masked and compacted."""
    pending = [c]
    while pending:
        c = pending.pop()
        if not c.numel():
            continue
        lo, hi = (float(v) for v in torch.aminmax(c))
        if math.isfinite(lo) and math.isfinite(hi):
            yield c, lo, hi, 0, 0, 0
        elif c.numel() > SPLIT:
            pending.extend(reversed(c.split(SPLIT)))
        else:
            nan = int(torch.count_nonzero(torch.isnan(c)))
            pos = int(torch.count_nonzero(c == math.inf))
            neg = int(torch.count_nonzero(c == -math.inf))
            c = c[torch.isfinite(c)].double()  # a piece: float64 costs little and keeps a small mean exact
            if c.numel():
                lo, hi = (float(v) for v in torch.aminmax(c))
                yield c, lo, hi, nan, pos, neg
            else:
                yield None, None, None, nan, pos, neg


def whole_stats(x: torch.Tensor, part: str = "magnitude") -> ViewStats:
    """min/max/mean/std (unbiased) over the finite values, nan/±inf/zero counts,
    chunk by chunk on the tensor's device; an expanded view's repeats counted.
    Three passes over a chunk of finite values (aminmax, sum, var); nan and inf are
    looked for only where aminmax says they are."""
    x, repeat = compressed(x.detach())
    n = nan = pos = neg = 0
    mean = m2 = 0.0
    lo = hi = None
    for chunk in chunks(x):
        for c, c_lo, c_hi, c_nan, c_pos, c_neg in _finite_pieces(_numbers(chunk, part)):
            nan, pos, neg = nan + c_nan, pos + c_pos, neg + c_neg
            if c is None:
                continue
            k = c.numel()
            # float32 sums are pairwise (accurate) and 20x faster than float64 ones here
            total = float(c.sum())
            if not math.isfinite(total):  # finite values whose float32 sum overflows
                total = float(c.sum(dtype=torch.float64))
            c_mean = total / k
            c_m2 = float(torch.var(c, correction=0)) * k if k > 1 else 0.0
            if not math.isfinite(c_m2):
                c_m2 = float(torch.var(c.double(), correction=0)) * k
            lo = c_lo if lo is None else min(lo, c_lo)
            hi = c_hi if hi is None else max(hi, c_hi)
            delta = c_mean - mean
            n_new = n + k
            mean += delta * k / n_new
            m2 += c_m2 + delta * delta * n * k / n_new
            n = n_new
    count = n * repeat
    m2 *= repeat
    std = math.sqrt(m2 / (count - 1)) if count > 1 else (0.0 if count else None)
    zeros = count if lo == 0 and hi == 0 else 0  # only "all zeros" is said
    return ViewStats(min=lo, max=hi, mean=mean if count else None, std=std, nan=nan * repeat,
                     pos_inf=pos * repeat, neg_inf=neg * repeat, zeros=zeros, count=count)


def histogram(x: torch.Tensor, stats: ViewStats, part: str = "magnitude",
              bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(counts, edges, 0) of the finite values, on the device, chunk by chunk (the 0:
    of all values, not a sample). Integers and bools: one bin per value while they
    fit `bins`. histc leaves out nan and what lies outside [min, max] (±inf here),
    so nothing is masked, and it reads a strided view as it is (no flat copy)."""
    if stats.min is None:
        return None
    x, repeat = compressed(x.detach())
    lo, hi = stats.min, stats.max
    integral = not (x.is_floating_point() or x.is_complex() or x.is_quantized)
    if integral and hi - lo + 1 <= bins:
        bins, lo, hi = int(hi - lo + 1), lo - 0.5, hi + 0.5
    elif hi == lo:
        lo, hi, bins = lo - 0.5, hi + 0.5, 1
    counts = None
    for c in chunks(x):
        c = as_real(c, part)
        c = c.double() if c.dtype == torch.float64 else c.float()
        h = torch.histc(c, bins=bins, min=lo, max=hi)
        counts = h if counts is None else counts + h
    if counts is None:
        return None
    return (counts.cpu().numpy().astype(np.float64) * repeat, np.linspace(lo, hi, bins + 1), 0)


# --- the picture ------------------------------------------------------------------------

def _display(x: torch.Tensor, part: str) -> np.ndarray:
    return to_numpy(as_real(x, part))


def select_2d(x: torch.Tensor, dims: list[int], index: list[int]) -> torch.Tensor:
    """The 2-d view of `x` at `index` on every dim but `dims` (rows, columns)."""
    for d in range(x.dim() - 1, -1, -1):
        if d not in dims:
            x = x.select(d, index[d])
    return x if dims[0] < dims[1] else x.t()


def _uint8_image(x: torch.Tensor, stats: ViewStats) -> torch.Tensor:
    """Pixels 0..255 from any values: uint8 as they are, [0, 1] floats scaled,
    anything else stretched from the tensor's min to its max; nan black."""
    if x.dtype == torch.uint8:
        return x
    if x.dtype == torch.bool:
        return x.to(torch.uint8) * 255
    x = x.float()
    lo, hi = stats.min or 0.0, stats.max or 0.0
    if lo >= 0 and hi <= 1:
        y = x * 255
    elif lo >= 0 and hi <= 255:
        y = x
    else:
        y = (x - lo) * (255 / (hi - lo)) if hi > lo else torch.zeros_like(x)
    return torch.nan_to_num(y, nan=0.0, posinf=255.0, neginf=0.0).clamp(0, 255).round().to(torch.uint8)


def unnormalized(x: torch.Tensor, normalize: list[list[float]]) -> torch.Tensor | None:
    """x·std + mean per channel of a (C,H,W) image or (N,C,H,W) batch, clipped to 0..1
    as the data panel (and matplotlib) show it; None when the channels do not match."""
    mean, std = (torch.tensor(v, dtype=torch.float32, device=x.device).reshape(-1, 1, 1) for v in normalize)
    c = x.shape[-3]
    if mean.shape[0] not in (1, c) or std.shape[0] not in (1, c) or x.is_complex():
        return None
    return x.detach().float().mul(std).add_(mean).clamp_(0, 1)


UNIT = ViewStats(min=0.0, max=1.0)  # the pixel mapping of un-normalized images: 0..1 -> 0..255


def image_of(x: torch.Tensor, stats: ViewStats, max_side: int, part: str) -> tuple[np.ndarray, int, int]:
    """(H, W[, 3]) uint8 for a (C,H,W) image or a grid of an (N,C,H,W) batch's first
    GRID_LIMIT images; the step taken along H and W; how many images are drawn."""
    if x.dim() == 3:
        _, h, w = x.shape
        step = max(1, math.ceil(max(h, w) / max_side))
        img = _uint8_image(as_real(x[:, ::step, ::step], part), stats)
        img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
        return to_numpy(img), step, 1
    n_all, c, h, w = x.shape
    n = min(n_all, GRID_LIMIT)
    cols = math.ceil(math.sqrt(n)) if n else 1
    rows = math.ceil(n / cols) if n else 1
    step = max(1, math.ceil(max(cols * (w + GRID_GAP), rows * (h + GRID_GAP)) / max_side))
    imgs = _uint8_image(as_real(x[:n, :, ::step, ::step], part), stats)
    hh, ww = imgs.shape[2], imgs.shape[3]
    grid = torch.full((c, rows * (hh + GRID_GAP) - GRID_GAP, cols * (ww + GRID_GAP) - GRID_GAP), 255,
                      dtype=torch.uint8, device=imgs.device)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[:, r * (hh + GRID_GAP):r * (hh + GRID_GAP) + hh, q * (ww + GRID_GAP):q * (ww + GRID_GAP) + ww] = imgs[i]
    grid = grid[0] if c == 1 else grid.permute(1, 2, 0)
    return to_numpy(grid), step, n


# --- storage ------------------------------------------------------------------------------

def storage_key(t: torch.Tensor) -> str | None:
    try:
        if t.is_meta or t.layout != torch.strided or t.is_nested or t.is_quantized:
            return None
        ptr = t.untyped_storage().data_ptr()
    except Exception:  # a subclass without a storage
        return None
    return f"{t.device}:{ptr:x}" if ptr else None


def _cells(offset: int, shape: list[int], stride: list[int], length: int, numel: int) -> tuple[np.ndarray, list[int]]:
    """(cells, span) of one view of a storage `length` elements long, in elements."""
    if numel == 0:
        return np.full(min(length, STRIP_CELLS), -1, np.int64), []
    first = offset + sum((s - 1) * st for s, st in zip(shape, stride) if st < 0)
    last = offset + sum((s - 1) * st for s, st in zip(shape, stride) if st > 0)
    exact = length <= STRIP_CELLS
    n_cells = length if exact else STRIP_CELLS
    bucket = 1 if exact else math.ceil(length / STRIP_CELLS)
    cells = np.full(n_cells, -1, np.int64)
    # Broadcast dims (stride 0) repeat elements: leave them out, each element once.
    keep = [(s, st) for s, st in zip(shape, stride) if st != 0 or s == 1]
    kept = math.prod(s for s, _ in keep)
    if kept > COVERAGE_LIMIT or not (0 <= first and last < length):
        lo, hi = max(first, 0) // bucket, min(last, length - 1) // bucket
        cells[lo:hi + 1] = -2 if exact else 1
        return cells, [first, last]
    idx = torch.full((), offset, dtype=torch.int64)
    for s, st in keep:
        idx = idx.unsqueeze(-1) + torch.arange(s, dtype=torch.int64) * st
    idx = idx.reshape(-1).numpy()
    if exact:
        if kept == numel:
            # row-major positions; written last-first so the first occurrence wins
            cells[idx[::-1]] = np.arange(numel - 1, -1, -1)
        else:
            cells[idx] = -2
    else:
        cells[np.unique(idx // bucket)] = 1
    return cells, [first, last]


def _view_of_storage(name: str, t, elsize: int, base_ptr: int, length: int) -> StorageView | None:
    """One tensor or numpy array as a view of the storage at `base_ptr`, in elements
    of `elsize` bytes (None when its offsets do not fall on whole elements)."""
    if isinstance(t, np.ndarray):
        byte_offset = t.__array_interface__["data"][0] - base_ptr
        byte_strides, item, shape = list(t.strides), t.itemsize, list(t.shape)
        contiguous = bool(t.flags["C_CONTIGUOUS"])
    else:
        item = t.element_size()
        byte_offset = t.storage_offset() * item
        byte_strides, shape = [s * item for s in t.stride()], list(t.shape)
        contiguous = t.is_contiguous()
    if byte_offset % elsize or any(s % elsize for s in byte_strides) or item != elsize:
        return None
    offset, stride = byte_offset // elsize, [s // elsize for s in byte_strides]
    cells, span = _cells(offset, shape, stride, length, math.prod(shape))
    return StorageView(name, offset, shape, stride, contiguous, span, cells)


def storage_layout(t: torch.Tensor, name: str, runner) -> StorageLayout | None:
    """The storage under `t` and every named tensor or array of the run that views it."""
    key = storage_key(t)
    if key is None:
        return None
    storage = t.untyped_storage()
    elsize = t.element_size()
    nbytes = storage.nbytes()
    length = nbytes // elsize
    base = storage.data_ptr()
    views = [_view_of_storage(name, t, elsize, base, length)]
    seen = {name}
    others: list[tuple[str, object]] = []
    for other_name, other in named_tensors(runner.namespace):
        if other_name not in seen and storage_key(other) == key:
            others.append((other_name, other))
            seen.add(other_name)
    if t.device.type == "cpu":
        for other_name, a in named_arrays(runner.namespace):
            lo = a.__array_interface__["data"][0]
            if other_name not in seen and a.size and base <= lo < base + nbytes:
                others.append((other_name, a))
    for other_name, other in others:
        v = _view_of_storage(other_name, other, elsize, base, length)
        if v is not None:
            views.append(v)
    values = None
    if length <= STRIP_CELLS:
        try:
            whole = torch.empty(0, dtype=t.dtype, device=t.device).set_(storage, 0, (length,), (1,))
            values = _display(whole, "real" if t.is_complex() else "magnitude")
        except Exception:  # a dtype that cannot be laid over its storage
            values = None
    return StorageLayout(key, nbytes, elsize, length, [v for v in views if v is not None], values,
                         exact=length <= STRIP_CELLS)


# --- the reply ----------------------------------------------------------------------------

class Viewer:
    """Answers TensorViewRequests for one kernel; keeps the statistics of the
    tensors it was asked about, per identity and version, for slider steps."""

    def __init__(self, runner, endpoint=None):
        self.runner = runner
        self.endpoint = endpoint  # its data_requests hold the batches the data panel shows
        self.cache: OrderedDict = OrderedDict()
        self.normalizes: tuple[int, list] = (0, [])  # (id of the namespace, data.image_normalizes)

    def _whole(self, t: torch.Tensor, x: torch.Tensor, part: str) -> tuple[ViewStats, tuple | None, str]:
        key = (id(self.runner.namespace), id(t), _version(t), part, x.numel())
        hit = self.cache.get(key)
        if hit is not None and hit[0]() is t:
            self.cache.move_to_end(key)
            return hit[1]
        note = ""
        source = x
        if x.numel() > STATS_EXACT:
            source = sampled(compressed(x)[0], STATS_EXACT // 4)
            note = (f"Statistics and histogram are of every k-th element ({source.numel():,} of "
                    f"{x.numel():,}): too many to scan on a click.")
        stats = whole_stats(source, part)
        hist = None
        if source.numel():
            few = sampled(compressed(source)[0], HIST_SAMPLE) if source.numel() > HIST_SAMPLE else source
            hist = histogram(few, stats, part)
            if hist is not None and few is not source:
                hist = (hist[0] * (source.numel() / max(few.numel(), 1)), hist[1], few.numel())
        try:
            ref = weakref.ref(t)
        except TypeError:
            return stats, hist, note
        self.cache[key] = (ref, (stats, hist, note))
        while len(self.cache) > 16:
            self.cache.popitem(last=False)
        return stats, hist, note

    def view(self, request: TensorViewRequest) -> TensorView:
        if request.batch_of:
            return self._tile(request)
        t = find_tensor(self.runner, request.name)
        if t is None:
            return TensorView(request.node_id, request.name, GONE, note=(
                f"There is no tensor named {request.name} in the kernel any more (it was deleted, "
                "or the kernel restarted): run the script again."))
        try:
            return self._view(t, request)
        except Exception as exc:  # a tensor subclass or dtype this cannot draw: say so
            text = str(exc).strip().splitlines()
            return TensorView(request.node_id, request.name, SHAPE_ONLY,
                              summary=_safe_summary(t), shape=_shape(t), dtype=dtype_name(t.dtype),
                              device=str(t.device),
                              note=f"Torchscope cannot draw this tensor: {type(exc).__name__}"
                                   + (f": {text[0]}" if text else ""))

    def _tile(self, request: TensorViewRequest) -> TensorView:
        """An image of a preview batch: no name of the script holds it, the data
        module's batch does (the one on screen in the data panel)."""
        data = getattr(self.endpoint, "data_requests", None)
        t, caption, normalize, error = (None, "", None, "the data panel's batches are not here") \
            if data is None else data.tile(request.batch_of, request.batch, request.tile)
        if t is None:
            return TensorView(request.node_id, request.name, GONE, note=f"Cannot show {request.name}: {error}.")
        try:
            out = self._view(t, request, normalize=(request.batch_of, normalize) if normalize else None)
        except Exception as exc:  # noqa: BLE001 - as for a named tensor: say so
            return TensorView(request.node_id, request.name, SHAPE_ONLY, summary=_safe_summary(t),
                              shape=_shape(t), note=f"Torchscope cannot draw this image: {type(exc).__name__}")
        out.caption, out.identity, out.version, out.storage = caption, None, None, None
        return out

    def _normalize_for(self, shape: list[int]) -> tuple[str, list[list[float]]] | None:
        """(dataset, [mean, std]) when a named (C,H,W) or (N,C,H,W) tensor is shaped like
        the samples of exactly one kind of Normalize-d dataset of the script."""
        from .data import image_normalizes

        ns = self.runner.namespace
        if self.normalizes[0] != id(ns):
            self.normalizes = (id(ns), image_normalizes(ns, getattr(self.runner, "cwd", None)))
        found = [(name, n) for name, n, sample in self.normalizes[1] if sample == shape[-3:]]
        if not found or any(n != found[0][1] for _, n in found):
            return None
        return found[0]

    def _view(self, t: torch.Tensor, request: TensorViewRequest, normalize=None) -> TensorView:
        shape = _shape(t)
        layout = str(t.layout).removeprefix("torch.")
        out = TensorView(request.node_id, request.name, HEATMAP, shape=shape, dtype=dtype_name(t.dtype),
                         device=str(t.device), layout=layout, mode=request.mode,
                         version=_version(t), identity=f"{id(t):x}")
        notes = []
        if request.identity is not None and request.identity != out.identity:
            notes.append(f"{request.name} is no longer the tensor the run made (it was bound "
                         "again since): these are the values of the one bound now.")
        elif request.version is not None and out.version is not None and request.version != out.version:
            notes.append(f"{request.name} was changed in place since the run (version "
                         f"{request.version} → {out.version}): these are its values now.")
        part = request.complex_part if request.complex_part in COMPLEX_PARTS else "magnitude"
        if t.is_complex():
            out.complex_part = part
        x = t.detach()
        if x.is_meta:
            out.kind = SHAPE_ONLY
            out.summary = summary_line(shape, out.dtype, "meta", None, _numel(t), layout) + " meta"
            notes.append("A meta tensor has a shape and a dtype but no values.")
            out.note = " ".join(notes)
            return out
        if x.is_nested:
            parts = [c.reshape(-1) for c in x.unbind()]
            x = torch.cat(parts) if parts else torch.empty(0, dtype=x.dtype, device=x.device)
            notes.append("A nested tensor: its components' values, one after the other.")
            shape_shown = [x.numel()]
        else:
            shape_shown = shape
        if x.layout != torch.strided:
            if x.numel() <= SPARSE_DENSE_LIMIT:
                x = x.to_dense()
                notes.append(f"A {layout} tensor with {_nnz(t):,} stored values, drawn dense.")
            else:
                return self._indices(t, out, request, part, notes)
        stats, hist, stats_note = self._whole(t, x, part)
        if stats_note:
            notes.append(stats_note)
        out.stats = stats
        out.summary = summary_line(shape, out.dtype, out.device, stats, _numel(t), layout,
                                   bool(t.requires_grad), part=out.complex_part)
        if hist is not None:
            out.hist_counts, out.hist_edges, out.hist_sample = hist
        out.colour_range, out.diverging = colour_range(stats, x.dtype == torch.bool)
        if x.numel() == 0:
            out.kind = VALUES
            out.data = np.zeros(0, np.float32)
        elif len(shape_shown) <= 1:
            self._values(x, out, part)
        else:
            out.image_possible = is_image_shape(shape_shown)
            if out.image_possible and normalize is None and not request.batch_of and x.is_floating_point():
                normalize = self._normalize_for(shape_shown)
            if out.image_possible and normalize is not None:
                out.normalize = normalize[1]
            if out.image_possible and request.mode in ("auto", "image"):
                out.kind = IMAGE
                shown = unnormalized(x, normalize[1]) if normalize is not None and request.unnormalize else None
                if shown is not None:
                    mean, std = normalize[1]
                    out.unnormalized = (f"un-normalized with {normalize[0]}'s Normalize(mean={mean}, std={std}): "
                                        "x·std + mean, clipped to 0..1")
                out.data, step, n = image_of(x if shown is None else shown, stats if shown is None else UNIT,
                                             request.max_side, part)
                out.step = [step, step]
                out.dims = [len(shape_shown) - 2, len(shape_shown) - 1]
                out.index = [0] * len(shape_shown)
                if len(shape_shown) == 4:
                    out.first = [n]
                    if n < shape_shown[0]:
                        notes.append(f"The first {n} of {shape_shown[0]} images.")
            else:
                self._heatmap(x, out, request, part)
        out.storage = storage_layout(t, request.name, self.runner) if not t.is_nested else None
        out.note = " ".join(notes)
        return out

    def _values(self, x: torch.Tensor, out: TensorView, part: str) -> None:
        out.kind = VALUES
        x = x.reshape(-1) if x.dim() == 0 else x
        step = max(1, math.ceil(x.numel() / MAX_POINTS))
        out.data = _display(x[::step], part)
        out.step, out.dims, out.index = [step], [0] if x.dim() else [], []

    def _heatmap(self, x: torch.Tensor, out: TensorView, request: TensorViewRequest, part: str) -> None:
        n = x.dim()
        dims = list(request.dims or [])
        if len(dims) != 2 or dims[0] == dims[1] or not all(-n <= d < n for d in dims):
            dims = default_dims(n)
            if out.image_possible:  # a heatmap of one channel: (H, W)
                dims = [n - 2, n - 1]
        dims = [d % n for d in dims]
        index = list(request.index or [])
        index = [min(max(int(index[d]) if d < len(index) else 0, 0), max(x.shape[d] - 1, 0))
                 for d in range(n)]
        for d in dims:
            index[d] = 0
        sl = select_2d(x, dims, index)
        rows, cols = sl.shape
        sr, sc = max(1, math.ceil(rows / request.max_side)), max(1, math.ceil(cols / request.max_side))
        out.kind = HEATMAP
        out.data = _display(sl[::sr, ::sc], part)
        out.dims, out.index, out.step = dims, index, [sr, sc]

    def _indices(self, t, out: TensorView, request, part: str, notes: list[str]) -> TensorView:
        coo = t.detach()
        if coo.layout != torch.sparse_coo:
            coo = coo.to_sparse_coo()
        coo = coo.coalesce()
        nnz = coo._nnz()
        k = min(nnz, INDICES_LIMIT)
        values = coo.values()
        stats, hist, _ = self._whole(t, values, part)
        out.kind, out.stats = INDICES, stats
        out.summary = summary_line(out.shape, out.dtype, out.device, stats, _numel(t), out.layout,
                                   bool(t.requires_grad), part=out.complex_part)
        if hist is not None:
            out.hist_counts, out.hist_edges, out.hist_sample = hist
        out.data = to_numpy(coo.indices()[:, :k].t())
        out.values = _display(values[:k].reshape(k, -1)[:, 0], part)
        notes.append(f"A {out.layout} tensor of {_numel(t):,} elements with {nnz:,} stored: "
                     f"{'its' if k == nnz else f'the first {k:,} of its'} indices, and statistics "
                     "of the stored values.")
        out.note = " ".join(notes)
        return out


def colour_range(stats: ViewStats, boolean: bool = False) -> tuple[list[float], bool]:
    """[lo, hi] of the colour bar and whether the map diverges around 0 (both signs)."""
    if boolean:
        return [0.0, 1.0], False
    if stats.min is None:
        return [0.0, 1.0], False
    lo, hi = stats.min, stats.max
    if lo < 0 < hi:
        a = max(-lo, hi)
        return [-a, a], True
    if lo == hi:
        return [lo - 0.5, hi + 0.5], False
    return [lo, hi], False


def _shape(t) -> list[int]:
    try:
        return [] if t.is_nested else [int(s) for s in t.shape]
    except (RuntimeError, TypeError):
        return []


def _numel(t) -> int:
    try:
        return t.numel()
    except RuntimeError:
        return 0


def _nnz(t) -> int:
    try:
        return t._nnz()
    except RuntimeError:
        return 0


def _version(t) -> int | None:
    try:
        return int(t._version)
    except Exception:  # inference tensors and some subclasses have none
        return None


def _safe_summary(t) -> str:
    try:
        return summary_line(_shape(t), dtype_name(t.dtype), str(t.device), None, _numel(t))
    except Exception:  # noqa: BLE001
        return "tensor"


def handlers(endpoint) -> dict:
    """{request type: handler(request) -> reply} for serve.Endpoint."""
    viewer = Viewer(endpoint.runner, endpoint)
    return {TensorViewRequest: viewer.view}
