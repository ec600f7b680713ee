"""Kernel side of the data panel: the script's Datasets, DataLoaders and transforms,
described after each run, drawn on request.

- `describe_into` (called by the Runner after every run) names every Dataset,
  DataLoader and transform of the namespace with the cheap facts (type, len,
  classes, root, the pipeline, one sample's shapes). It draws no batch, except for
  the headless export (`batches=True`), whose contract carries the preview batch.
- `preview` is the picture of a batch: `torch.manual_seed(0)` and `next(iter(loader))`,
  as the user gets it with that seed; the user's RNG states are put back after.
- `stages` runs one sample through the transform pipeline a step at a time.
- Errors a dataset causes (a missing root, no network for a download, a CSV line
  that does not parse, a missing or corrupt image) are put in plain words
  (`plain_data_error`), still raised at the user's line.

A download torchvision starts while there is no network fails at once, not after
the resolver's time-outs, and is not tried again for NO_NETWORK_RETRY_S: an audit
hook on `urllib.Request` (process-wide, it acts only inside a torchvision dataset).
"""
from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import io
import linecache
import math
import os
import random
import re
import shutil
import socket
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from ..model.data import (BatchRequest, DataBatch, DataInfo, OfflineCopyReply, OfflineCopyRequest, Stage,
                          Stages, StagesRequest)
from ..model.run import RunError
from .script_folder import working_folder
from .tensors import dtype_name

DATA_DIR = Path(__file__).resolve().parents[2] / "resources" / "data"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFLINE = {"FashionMNIST": DATA_DIR / "FashionMNIST" / "raw"}  # dataset type -> bundled raw folder
NO_NETWORK_RETRY_S = 60.0  # after a failed download, downloads fail at once this long
PROBE_S = 3.0  # seconds to reach a download's host before calling it "no network"
DATASET_PREVIEW = 64  # samples per "batch" when a Dataset (not a loader) is shown
TITLE_CHARS = 70


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where the script says, and cannot be fetched."""

    def __init__(self, message: str, dataset: str, folder: str):
        super().__init__(message)
        self.dataset, self.folder = dataset, folder

    def __str__(self) -> str:
        return self.args[0]


# --- downloads without a network --------------------------------------------------------

_offline_until = 0.0


def _dataset_in_stack(frame) -> object | None:
    """The torchvision dataset whose method is running (a `self` on the stack)."""
    while frame is not None:
        obj = frame.f_locals.get("self")
        if isinstance(obj, Dataset) and type(obj).__module__.startswith("torchvision.datasets"):
            return obj
        frame = frame.f_back
    return None


def dataset_folder(dataset) -> str:
    """Where a torchvision dataset looks for its files, as the script wrote it."""
    for attr in ("raw_folder", "root"):
        with contextlib.suppress(Exception):
            folder = getattr(dataset, attr)
            if folder:
                return os.fspath(folder)
    return ""


def _host_reachable(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=PROBE_S).close()
        return True
    except OSError:
        return False


def _on_audit(event: str, args: tuple) -> None:
    global _offline_until
    if event != "urllib.Request":
        return
    dataset = _dataset_in_stack(sys._getframe(1))
    if dataset is None:
        return
    if time.monotonic() >= _offline_until:
        if _host_reachable(str(args[0])):
            return
        _offline_until = time.monotonic() + NO_NETWORK_RETRY_S
    name = type(dataset).__name__
    raise DatasetNotFoundError(f"{name} is not in {dataset_folder(dataset)} and cannot be downloaded "
                               "(no network)", name, dataset_folder(dataset))


if not getattr(sys, "_torchscope_download_guard", False):
    sys.addaudithook(_on_audit)  # hooks cannot be removed: one per process
    sys._torchscope_download_guard = True


def network_retry_now() -> None:
    """Forget that the network was missing (the next download tries again)."""
    global _offline_until
    _offline_until = 0.0


# --- errors in plain words ------------------------------------------------------------------

_CPP_PREFIX = re.compile(r"^\w+, \S+\.cpp:\d+, ")


def _frames(exc: BaseException):
    tb = exc.__traceback__
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _csv_position(exc: BaseException) -> str:
    """"labels.csv, line 3: " when a csv reader was being read where `exc` rose."""
    reader, file = None, None
    for frame in _frames(exc):
        for value in frame.f_locals.values():
            if isinstance(value, csv.DictReader):
                value = value.reader
            if type(value).__name__ == "reader" and type(value).__module__ == "_csv":
                reader = value
            elif isinstance(value, io.TextIOBase) and getattr(value, "name", None):
                file = value
    if reader is None:
        return ""
    name = os.path.basename(str(file.name)) if file is not None else "the CSV file"
    return f"{name}, line {reader.line_num}: "


def _image_path(exc: BaseException) -> str | None:
    for frame in _frames(exc):
        if frame.f_code.co_name in ("read_image", "decode_image", "read_file", "open"):
            path = frame.f_locals.get("path", frame.f_locals.get("fp", frame.f_locals.get("filename")))
            if isinstance(path, (str, os.PathLike)):
                return os.fspath(path)
    return None


def plain_data_error(exc: BaseException) -> BaseException:
    """`exc` with a message a student can act on, when a dataset caused it (same
    traceback, so it is reported at the user's line); any other `exc` as it is."""
    if isinstance(exc, DatasetNotFoundError) or not isinstance(exc, Exception):
        return exc
    text = str(exc)
    if isinstance(exc, RuntimeError) and text.startswith("Dataset not found"):
        dataset = next((f.f_locals["self"] for f in _frames(exc) if isinstance(f.f_locals.get("self"), Dataset)),
                       None)
        if dataset is not None:
            name, folder = type(dataset).__name__, dataset_folder(dataset)
            return DatasetNotFoundError(f"{name} is not in {folder} (download=False: pass download=True "
                                        "or use the offline copy)", name, folder).with_traceback(exc.__traceback__)
    try:
        if isinstance(exc, RuntimeError) and _CPP_PREFIX.match(text):
            text = _CPP_PREFIX.sub("", text)
            path = _image_path(exc)
            if "No such file" in text and path:
                text = f"the image {path!r} does not exist"
            elif "Unsupported image file" in text and path:
                text = f"{path!r} is not an image torchvision can read (corrupt, or not jpeg/png/webp/gif)"
            exc.args = (text,)
        elif type(exc).__name__ == "UnidentifiedImageError":
            exc.args = (f"{text} (the file is corrupt or not an image)",)
        where = _csv_position(exc)
        if where and exc.args and isinstance(exc.args[0], str):
            exc.args = (where + exc.args[0],) + exc.args[1:]
    except Exception:  # an exception whose args cannot be set: as it is
        pass
    return exc


def error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _script_line(exc: BaseException, filename: str) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# --- what the namespace holds ------------------------------------------------------------

def is_transform(obj) -> bool:
    return (not isinstance(obj, type) and callable(obj)
            and type(obj).__module__.startswith("torchvision.transforms"))


def named_data(ns: dict) -> list[tuple[str, object, str]]:
    """(name, object, kind) for every Dataset, DataLoader and transform the script
    named, in the order it named them."""
    out = []
    for name, obj in ns.items():
        if name.startswith("_") or isinstance(obj, type):
            continue
        if isinstance(obj, DataLoader):
            out.append((name, obj, "loader"))
        elif isinstance(obj, Dataset):
            out.append((name, obj, "dataset"))
        elif is_transform(obj):
            out.append((name, obj, "transform"))
    return out


def binding_lines(code: str) -> dict[str, int]:
    """name -> the line of its last top-level `name = ...`."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return {}
    lines = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name):
                    lines[target.id] = node.lineno
    return lines


def base_dataset(dataset):
    """Through Subset and friends to the dataset that has the files and classes."""
    seen = 0
    while hasattr(dataset, "dataset") and isinstance(dataset.dataset, Dataset) and seen < 8:
        dataset, seen = dataset.dataset, seen + 1
    return dataset


def pipeline(transform) -> list:
    """The steps of a transform: a Compose's parts (nested ones flattened), else itself."""
    if transform is None:
        return []
    parts = getattr(transform, "transforms", None)
    if isinstance(parts, (list, tuple)) and type(transform).__name__ == "Compose":
        return [step for part in parts for step in pipeline(part)]
    return [transform]


def transform_title(t) -> str:
    """One line for a transform: its repr, a Lambda by its source."""
    if type(t).__name__ == "Lambda" and hasattr(t, "lambd"):
        code = getattr(t.lambd, "__code__", None)
        if code is not None:
            source = linecache.getline(code.co_filename, code.co_firstlineno)
            at = source.find("lambda")
            if at >= 0:
                text = " ".join(source[at:].split()).rstrip(",")
                return shorten(f"Lambda({text})")
    return shorten(" ".join(repr(t).split()))


def shorten(text: str, n: int = TITLE_CHARS) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def normalize_of(transform) -> list[list[float]] | None:
    """[mean, std] of the one Normalize in the pipeline, else None."""
    found = [t for t in pipeline(transform) if type(t).__name__ == "Normalize"]
    if len(found) != 1:
        return None
    mean, std = found[0].mean, found[0].std
    as_list = lambda v: [float(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]  # noqa: E731
    return [as_list(mean), as_list(std)]


def part_shape(x) -> tuple[list[int], str]:
    """(shape, dtype) of one part of a sample or a batch, whatever it is."""
    if isinstance(x, torch.Tensor):
        return list(x.shape), dtype_name(x.dtype)
    if isinstance(x, np.ndarray):
        return list(x.shape), str(x.dtype)
    if hasattr(x, "size") and hasattr(x, "mode") and hasattr(x, "getbands"):  # a PIL image
        w, h = x.size
        bands = len(x.getbands())
        return ([h, w] if bands == 1 else [h, w, bands]), f"PIL {x.mode}"
    if isinstance(x, (list, tuple)):
        return [len(x)], type(x).__name__
    return [], type(x).__name__


def parts_of(sample) -> list:
    if isinstance(sample, (tuple, list)):
        return list(sample)
    if isinstance(sample, dict):
        return list(sample.values())
    return [sample]


def classes_of(dataset) -> list[str] | None:
    classes = getattr(base_dataset(dataset), "classes", None)
    if isinstance(classes, (list, tuple)) and classes:
        return [str(c) for c in classes][:1000]
    return None


@contextlib.contextmanager
def own_rng(seed: int | None = 0):
    """torch.manual_seed(seed) inside; the user's torch, CUDA, random and numpy RNG
    states as they were after."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    py, npy = random.getstate(), np.random.get_state()
    try:
        if seed is not None:
            torch.manual_seed(seed)
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        random.setstate(py)
        np.random.set_state(npy)


@contextlib.contextmanager
def in_script_folder(cwd: str | None):
    """The script's folder (its relative paths), its prints swallowed."""
    with working_folder(cwd), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        yield


def describe(name: str, obj, kind: str, ns: dict, line: int | None, filename: str) -> DataInfo:
    info = DataInfo(name, kind, type(obj).__name__, line)
    if kind == "transform":
        info.transforms = [transform_title(t) for t in pipeline(obj)]
        return info
    dataset = obj.dataset if kind == "loader" else obj
    base = base_dataset(dataset)
    with contextlib.suppress(Exception):
        info.len = len(obj)
    info.classes = classes_of(dataset)
    root = getattr(base, "root", None) or getattr(base, "img_dir", None)
    info.root = os.fspath(root) if isinstance(root, (str, os.PathLike)) else None
    info.transforms = [transform_title(t) for t in pipeline(getattr(base, "transform", None))]
    info.target_transforms = [transform_title(t) for t in pipeline(getattr(base, "target_transform", None))]
    info.normalize = normalize_of(getattr(base, "transform", None))
    if kind == "loader":
        info.dataset = next((k for k, v in ns.items() if v is dataset and not k.startswith("_")), None)
        info.dataset_type = type(dataset).__name__
        info.batch_size = obj.batch_size
        sampler = getattr(obj, "sampler", None)
        info.sampler = type(sampler).__name__ if sampler is not None else ""
        info.shuffle = info.sampler == "RandomSampler"
        info.num_workers = obj.num_workers
        info.drop_last = obj.drop_last
        info.batches = info.len
    else:
        try:
            with own_rng():
                sample = dataset[0]
            shapes = [part_shape(p) for p in parts_of(sample)]
            info.shapes, info.dtypes = [s for s, _ in shapes], [d for _, d in shapes]
        except Exception as exc:  # noqa: BLE001 - the dataset's own error, shown in the panel
            exc = plain_data_error(exc)
            info.error, info.error_line = error_text(exc), _script_line(exc, filename) or line
    return info


def describe_data(ns: dict, code: str, cwd: str | None, script_exc: BaseException | None = None,
                  batches: bool = False) -> list[DataInfo]:
    """DataInfo for every Dataset, DataLoader and transform the script named, and a
    "missing" entry for a dataset it could not find. `batches`: each loader's
    preview batch too (the headless export)."""
    filename = ns.get("__file__", "<editor>")
    lines = binding_lines(code)
    infos = []
    if isinstance(script_exc, DatasetNotFoundError):
        folder = script_exc.folder
        source = offline_source(script_exc.dataset)
        infos.append(DataInfo(folder, "missing", script_exc.dataset, _script_line(script_exc, filename),
                              root=folder, error=error_text(script_exc),
                              offline=offline_words(source)))
    with in_script_folder(cwd):
        for name, obj, kind in named_data(ns):
            try:
                info = describe(name, obj, kind, ns, lines.get(name), filename)
            except Exception as exc:  # noqa: BLE001 - a dataset class that breaks what it promises
                info = DataInfo(name, kind, type(obj).__name__, lines.get(name), error=error_text(exc))
            if batches and kind == "loader" and not info.error:
                info.batch = preview(obj, info, 0, True, filename)
                if info.batch.error:
                    info.error, info.error_line = info.batch.error, info.batch.error_line
                else:
                    info.labels = info.batch.targets[:256]
            infos.append(info)
    return infos


def describe_into(result, ns: dict, code: str, cwd: str | None, script_exc: BaseException | None,
                  batches: bool = False) -> None:
    """`result.data` for this run. For the export (`batches`): a dataset that fails
    to load or a loader that fails to give a batch is the run's error, at its line."""
    try:
        result.data = describe_data(ns, code, cwd, script_exc, batches)
    except Exception:  # noqa: BLE001 - the panel stays empty; the run's own answer matters
        result.data = []
        return
    if batches and result.error is None:
        failed = next((i for i in result.data if i.error and i.kind in ("dataset", "loader")), None)
        if failed is not None:
            kind, _, message = failed.error.partition(": ")
            result.error = RunError(kind, message or kind, failed.error_line or failed.line)


# --- a batch as pictures --------------------------------------------------------------

BLOCK = 1 << 18  # values converted to pixels at a time: a block stays in the cache


def _blocks(n: int, per_image: int):
    """(start, stop) of runs of images with about BLOCK values each."""
    step = max(1, BLOCK // max(per_image, 1))
    for s in range(0, n, step):
        yield s, min(s + step, n)


def _pixels(x: torch.Tensor, steps) -> torch.Tensor:
    """uint8 of `steps(block, scratch)` applied a few images at a time: the float work
    (clamp, scale, round) runs on a block in the cache, not four times over the batch."""
    out = torch.empty(x.shape, dtype=torch.uint8)
    per_image = x[0].numel() if len(x) else 0
    scratch = torch.empty((max(1, BLOCK // max(per_image, 1)),) + tuple(x.shape[1:]), dtype=torch.float32)
    for s, e in _blocks(len(x), per_image):
        out[s:e].copy_(steps(x[s:e], scratch[:e - s]))
    return out


def _unit(b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.clamp(b, 0, 1, out=t).mul_(255).round_()


def display_uint8(x: torch.Tensor, normalize: list[list[float]] | None,
                  known: tuple[float | None, float | None] | None = None) -> tuple[torch.Tensor, str]:
    """(N, C, H, W) values -> uint8 grey levels, and how: "0..1", "0..255",
    "un-normalized" (x·std + mean, then 0..1) or "scaled a..b" (min..max of the batch).
    `known`: value_range(x) when the caller has it (not recomputed)."""
    if x.dtype == torch.uint8:
        return x.contiguous(), "0..255"
    if x.dtype == torch.bool:
        return x.to(torch.uint8) * 255, "False/True"
    integer = not x.is_floating_point()
    if known is not None and x.dtype == torch.float64:
        known = None  # its float32 copy may round values to ±inf: measured again below
    x = x.detach().to("cpu", torch.float32)
    how = ""
    if normalize is not None:
        mean, std = (torch.tensor(v, dtype=torch.float32).reshape(1, -1, 1, 1) for v in normalize)
        if mean.shape[1] in (1, x.shape[1]) and std.shape[1] in (1, x.shape[1]):
            u = torch.empty_like(x)
            for s, e in _blocks(len(x), x[0].numel() if len(x) else 1):
                torch.mul(x[s:e], std, out=u[s:e]).add_(mean)
            x, how, known = u, "un-normalized", None
    if known is None or known[0] is None:
        lo, hi = value_range(x)
    else:  # float32 rounding keeps order: the min of the copy is the min rounded
        lo, hi = float(np.float32(known[0])), float(np.float32(known[1]))
    if lo is None:
        lo, hi = 0.0, 1.0
    if lo >= -1e-6 and hi <= 1 + 1e-6:
        return _pixels(x, _unit), how or "0..1"
    if lo >= 0 and hi <= 255 and integer:
        return x.to(torch.uint8), "0..255"
    if how:  # un-normalized values outside 0..1: clip them as matplotlib does
        return _pixels(x, _unit), how + ", clipped to 0..1"
    span = hi - lo or 1.0
    return _pixels(x, lambda b, t: torch.nan_to_num(b, lo, hi, lo, out=t).sub_(lo).mul_(255 / span)
                   .clamp_(0, 255).round_()), f"scaled {lo:.3g}..{hi:.3g}"


def image_ranges(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Each image's min and max (nan where it holds a nan): amin and amax along a dim
    are vectorised, aminmax along a dim is not (several times slower)."""
    flat = x.reshape(len(x), -1)
    flat = flat if flat.dtype != torch.bool else flat.to(torch.uint8)
    return [float(v) for v in flat.amin(dim=1).tolist()], [float(v) for v in flat.amax(dim=1).tolist()]


def batch_range(x: torch.Tensor, lows: list[float], highs: list[float]) -> tuple[float | None, float | None]:
    """value_range(x) from its images' ranges; measured again only when one of them
    holds a nan or an inf."""
    if lows and all(math.isfinite(v) for v in lows) and all(math.isfinite(v) for v in highs):
        return min(lows), max(highs)
    return value_range(x)


def value_range(x: torch.Tensor) -> tuple[float | None, float | None]:
    """(min, max) of the finite values (None, None: there are none); one pass
    unless there are nan or inf to leave out."""
    if not x.numel():
        return None, None
    lo, hi = torch.aminmax(x) if x.dtype != torch.bool else (x.min(), x.max())
    lo, hi = float(lo), float(hi)
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi
    finite = x[torch.isfinite(x)]
    return (float(finite.min()), float(finite.max())) if finite.numel() else (None, None)


def as_nchw(x) -> torch.Tensor | None:
    """A batch of images as (N, C, H, W), or None when it is not one."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        return None
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim == 4:
        if x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
            return x.permute(0, 3, 1, 2)
        return x
    return None


def sample_image(x) -> torch.Tensor | None:
    """One sample's image as (C, H, W): a tensor, an array or a PIL image."""
    if hasattr(x, "getbands") and hasattr(x, "mode"):
        arr = np.asarray(x)
        x = torch.from_numpy(arr.copy())
        return x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if isinstance(x, torch.Tensor) and x.ndim in (2, 3):
        x = x.unsqueeze(0) if x.ndim == 2 else x
        if x.shape[0] > 4 and x.shape[-1] in (1, 3, 4):
            x = x.permute(2, 0, 1)
        return x
    return None


def label_texts(labels, classes: list[str] | None) -> tuple[list[str], list]:
    """(caption of each label, each as a number or a list)."""
    if isinstance(labels, torch.Tensor):
        values = labels.detach().cpu()
        if values.ndim == 1 and not values.is_floating_point():
            targets = [int(v) for v in values.tolist()]
        elif values.ndim == 2 and values.shape[1] <= 1000:
            targets = values.tolist()
        elif values.ndim == 1:
            targets = [float(v) for v in values.tolist()]
        else:
            return [str(list(values.shape[1:]))] * len(values), [None] * len(values)
    elif isinstance(labels, (list, tuple)):
        targets = [v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v for v in labels]
        targets = [v if isinstance(v, (int, float, str)) else None for v in targets]
    else:
        return [], []
    texts = []
    for t in targets:
        if isinstance(t, list):  # one-hot: the class of its largest entry
            k = int(np.argmax(t)) if t else 0
            texts.append(classes[k] if classes and k < len(classes) else f"one-hot {k}")
        elif isinstance(t, int) and classes and 0 <= t < len(classes):
            texts.append(classes[t])
        elif isinstance(t, float):
            texts.append(f"{t:.4g}")
        else:
            texts.append(str(t))
    return texts, targets


def _batch_parts(batch) -> tuple[object, object]:
    """(images, labels) of a collated batch: a tuple/list, a dict, or a lone tensor."""
    if isinstance(batch, dict):
        keys = list(batch)
        image = next((k for k in keys if k in ("image", "img", "images", "pixel_values", "x", "input")), keys[0])
        label = next((k for k in keys if k in ("label", "labels", "target", "targets", "y")), None)
        return batch[image], batch[label] if label is not None else None
    if isinstance(batch, (list, tuple)):
        return batch[0] if batch else None, batch[1] if len(batch) > 1 else None
    return batch, None


class LoaderCursor:
    """A single-process loader's iterator kept between Next presses, with the RNG
    state it left (its random transforms go on where they were)."""

    def __init__(self, loader):
        self.loader = loader
        with own_rng():
            self.iterator = iter(loader)
            self.rng = torch.get_rng_state()
        self.index = -1
        self.batch = None  # batch `index`, the one on screen: the tensor view shows its images

    def advance_to(self, index: int):
        batch = None
        with own_rng(None):
            torch.set_rng_state(self.rng)
            try:
                while self.index < index:
                    batch = next(self.iterator)
                    self.index += 1
                    self.batch = batch
            finally:
                self.rng = torch.get_rng_state()
        return batch


def load_batch(obj, index: int, cursors: dict | None):
    """Batch `index` of loader `obj` (drawn from manual_seed(0)), or samples
    index·64.. of a dataset, collated as a list."""
    if isinstance(obj, DataLoader):
        if obj.num_workers == 0 and cursors is not None:
            cursor = cursors.get(id(obj))
            if cursor is None or cursor.index >= index:
                cursor = cursors[id(obj)] = LoaderCursor(obj)
            return cursor.advance_to(index)
        with own_rng():
            iterator = iter(obj)
            try:
                batch = None
                for _ in range(index + 1):
                    batch = next(iterator)
                return batch
            finally:
                shutdown = getattr(iterator, "_shutdown_workers", None)
                if shutdown is not None and not obj.persistent_workers:
                    shutdown()
    start = index * DATASET_PREVIEW
    with own_rng():
        samples = [obj[i] for i in range(start, min(start + DATASET_PREVIEW, len(obj)))]
    if not samples:
        raise IndexError(f"the dataset has {len(obj)} samples")
    images = [sample_image(parts_of(s)[0]) for s in samples]
    labels = [parts_of(s)[1] if len(parts_of(s)) > 1 else None for s in samples]
    return [images, labels]


def tiles(images) -> torch.Tensor | None:
    """(N, C, H, W) for a batch tensor, or a list of (C, H, W) images padded to one size."""
    if isinstance(images, list):
        if not images or any(i is None for i in images):
            return None
        c = max(i.shape[0] for i in images)
        h, w = max(i.shape[1] for i in images), max(i.shape[2] for i in images)
        dtype = images[0].dtype if all(i.dtype == images[0].dtype for i in images) else torch.float32
        out = torch.zeros((len(images), c, h, w), dtype=dtype)
        for k, i in enumerate(images):
            out[k, :i.shape[0], :i.shape[1], :i.shape[2]] = i.to(dtype)
        return out
    return as_nchw(images)


def preview(obj, info: DataInfo, index: int, unnormalize: bool, filename: str,
            cursors: dict | None = None) -> DataBatch:
    """Batch `index` as pictures: uint8 tiles, a caption per tile, the batch's shapes."""
    out = DataBatch(info.name, index, None, [], [], [], batches=info.batches)
    t0 = time.perf_counter()
    try:
        batch = load_batch(obj, index, cursors)
    except StopIteration:
        out.error = f"StopIteration: the loader has only {info.batches} batches"
        return out
    except Exception as exc:  # noqa: BLE001 - the script's dataset failed: say where
        exc = plain_data_error(exc)
        out.error, out.error_line = error_text(exc), _script_line(exc, filename) or info.line
        return out
    out.seconds = time.perf_counter() - t0
    images, labels = _batch_parts(batch)
    x = tiles(images)
    if isinstance(obj, DataLoader):
        shapes = [part_shape(p) for p in parts_of(batch)]
    else:  # samples of a dataset, as a DataLoader would stack them
        shapes = [([len(images), *part_shape(p)[0]], part_shape(p)[1]) for p in (images[0], labels[0])]
    out.shapes, out.dtypes = [s for s, _ in shapes], [d for _, d in shapes]
    if x is not None and x.numel():
        out.sample_shape = list(images[0].shape) if isinstance(images, list) else list(x.shape[1:])
        x = x.detach()
        lows, highs = image_ranges(x)
        out.ranges = [[a, b] for a, b in zip(lows, highs)]
        out.low, out.high = batch_range(x, lows, highs)
        pixels, out.shown = display_uint8(x, info.normalize if unnormalize else None, (out.low, out.high))
        out.images = pixels.numpy()
    out.labels, out.targets = label_texts(labels, info.classes)
    n = len(x) if x is not None else len(out.labels)
    if isinstance(obj, DataLoader) and isinstance(obj.sampler, SequentialSampler) and obj.batch_size:
        out.indices = [index * obj.batch_size + i for i in range(n)]
    elif not isinstance(obj, DataLoader):
        out.indices = [index * DATASET_PREVIEW + i for i in range(n)]
    else:
        out.indices = [None] * n
    return out


# --- the transform pipeline, stage by stage ------------------------------------------------

def stage_of(title: str, x) -> Stage:
    shape, dtype = part_shape(x)
    stage = Stage(title, "value", shape, dtype)
    image = sample_image(x)
    if isinstance(x, torch.Tensor) and x.numel() and (x.is_floating_point() or x.dtype != torch.bool):
        values = x.detach().cpu().to(torch.float64)
        values = values[torch.isfinite(values)]
        if values.numel():
            stage.low, stage.high = float(values.min()), float(values.max())
    elif image is not None:
        stage.low, stage.high = float(image.min()), float(image.max())
    if image is not None and min(image.shape[1:]) >= 2:
        stage.kind = "image" if not isinstance(x, torch.Tensor) else "tensor"
        pixels, _ = display_uint8(image.unsqueeze(0), None)
        stage.image = pixels[0].numpy()
    else:
        stage.text = shorten(" ".join(str(x.tolist() if isinstance(x, torch.Tensor) else x).split()), 60)
    return stage


def run_stages(x, steps: list, first: str) -> list[Stage]:
    """The value before `steps` and after each one (a failing step ends the strip)."""
    out = [stage_of(first, x)]
    for step in steps:
        title = transform_title(step)
        try:
            x = step(x)
        except Exception as exc:  # noqa: BLE001 - which stage failed, and on what
            shape, dtype = part_shape(x)
            out.append(Stage(title, "error", error=f"{error_text(plain_data_error(exc))} "
                                                   f"(input {dtype} {shape})"))
            break
        out.append(stage_of(title, x))
    return out


def raw_sample(dataset, index: int):
    """dataset[index] with its transforms switched off (put back after)."""
    saved = {}
    for attr in ("transform", "target_transform", "transforms"):
        if getattr(dataset, attr, None) is not None:
            saved[attr] = getattr(dataset, attr)
            setattr(dataset, attr, None)
    try:
        return dataset[index]
    finally:
        for attr, value in saved.items():
            setattr(dataset, attr, value)


def stages(obj, info: DataInfo, index: int, filename: str) -> Stages:
    out = Stages(info.name, index)
    dataset = obj.dataset if isinstance(obj, DataLoader) else obj
    base = base_dataset(dataset) if not is_transform(obj) else None
    try:
        with own_rng():
            if base is None:  # a transform alone: nothing to feed it
                out.error = "pick a dataset to see this pipeline on one of its samples"
                return out
            sample = parts_of(raw_sample(base, index))
            transform, target = getattr(base, "transform", None), getattr(base, "target_transform", None)
            out.stages = run_stages(sample[0], pipeline(transform), "sample")
            if len(sample) > 1:
                out.target = run_stages(sample[1], pipeline(target), "label")
    except Exception as exc:  # noqa: BLE001
        exc = plain_data_error(exc)
        out.error, out.error_line = error_text(exc), _script_line(exc, filename) or info.line
    return out


# --- the offline copy ---------------------------------------------------------------------

def offline_source(dataset_type: str) -> Path | None:
    """The full Debian copy where installed, else the bundled sample."""
    if dataset_type != "FashionMNIST":
        return None
    if DEBIAN_DIR.is_dir() and any(DEBIAN_DIR.glob("*-idx?-ubyte*")):
        return DEBIAN_DIR
    bundled = OFFLINE[dataset_type]
    return bundled if bundled.is_dir() else None


def offline_words(source: Path | None) -> str:
    if source is None:
        return ""
    return "the full Debian copy" if source == DEBIAN_DIR else "the bundled sample (2,000 images per split)"


def copy_offline(dataset_type: str, folder: str, cwd: str | None) -> OfflineCopyReply:
    """Fill `folder` (relative to the script's folder) with the offline copy; .gz
    files are unpacked, as torchvision expects them."""
    source = offline_source(dataset_type)
    if source is None:
        return OfflineCopyReply(folder, "", 0, f"there is no offline copy of {dataset_type}")
    target = Path(cwd or ".") / folder
    try:
        target.mkdir(parents=True, exist_ok=True)
        n = 0
        for f in sorted(source.iterdir()):
            if not f.name.endswith(("-ubyte", "-ubyte.gz")):
                continue
            if f.suffix == ".gz":
                with gzip.open(f, "rb") as src, open(target / f.stem, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                shutil.copyfile(f, target / f.name)
            n += 1
    except OSError as exc:
        return OfflineCopyReply(folder, str(source), 0, f"{type(exc).__name__}: {exc}")
    network_retry_now()
    return OfflineCopyReply(folder, str(source), n)


# --- the endpoint's handlers -----------------------------------------------------------------

class DataRequests:
    """Answers the data panel's requests about the last run's namespace. Loader
    iterators are kept for Next while the namespace is the same, and so is each
    name's description (describing a dataset loads a sample: not on every Next)."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.cursors: dict = {}
        self.infos: dict = {}  # name -> (the object described, its DataInfo)
        self.namespace_id = None

    def _find(self, name: str):
        runner = self.endpoint.runner
        ns = runner.namespace
        if id(ns) != self.namespace_id:
            self.cursors, self.infos, self.namespace_id = {}, {}, id(ns)
        obj = ns.get(name)
        filename = ns.get("__file__", "<editor>")
        if obj is None or not (isinstance(obj, (Dataset, DataLoader)) or is_transform(obj)):
            return None, None, filename
        known = self.infos.get(name)
        if known is not None and known[0] is obj:
            return obj, known[1], filename
        kind = "loader" if isinstance(obj, DataLoader) else "dataset" if isinstance(obj, Dataset) else "transform"
        with in_script_folder(getattr(runner, "cwd", None)):
            info = describe(name, obj, kind, ns, None, filename)
        self.infos[name] = (obj, info)
        return obj, info, filename

    def batch(self, request: BatchRequest) -> DataBatch:
        obj, info, filename = self._find(request.name)
        if obj is None or info.kind == "transform":
            return DataBatch(request.name, request.index, None, [], [], [],
                             error=f"NameError: no Dataset or DataLoader named {request.name!r}")
        with in_script_folder(getattr(self.endpoint.runner, "cwd", None)):
            return preview(obj, info, max(0, request.index), request.unnormalize, filename, self.cursors)

    def stages(self, request: StagesRequest) -> Stages:
        obj, info, filename = self._find(request.name)
        if obj is None:
            return Stages(request.name, request.index, error=f"NameError: nothing named {request.name!r}")
        with in_script_folder(getattr(self.endpoint.runner, "cwd", None)):
            return stages(obj, info, max(0, request.index), filename)

    def offline_copy(self, request: OfflineCopyRequest) -> OfflineCopyReply:
        return copy_offline(request.type, request.folder, getattr(self.endpoint.runner, "cwd", None))

    def tile(self, name: str, index: int, tile: int) -> tuple[torch.Tensor | None, str, list | None, str]:
        """(image, caption, [mean, std] or None, error) of image `tile` of batch `index`
        of `name`, as the loader gave it: the tensor view shows a tile the data panel
        drew. The batch on screen is the loader's cursor's own; any other is drawn again
        from manual_seed(0), the same batch the panel showed."""
        obj, _, filename = self._find(name)
        if obj is None or is_transform(obj):
            return None, "", None, f"there is no Dataset or DataLoader named {name} any more: run the script again"
        cursor = self.cursors.get(id(obj))
        try:
            if cursor is not None and cursor.index == index and cursor.batch is not None:
                batch = cursor.batch
            else:
                with in_script_folder(getattr(self.endpoint.runner, "cwd", None)):
                    batch = load_batch(obj, index, self.cursors)
        except StopIteration:
            return None, "", None, f"{name} has no batch {index + 1}"
        except Exception as exc:  # noqa: BLE001 - the script's dataset failed: say so
            return None, "", None, error_text(plain_data_error(exc))
        images, labels = _batch_parts(batch)
        if isinstance(images, list):
            x = images[tile] if 0 <= tile < len(images) else None
        else:
            x = as_nchw(images)
            x = x[tile] if x is not None and 0 <= tile < len(x) else None
        if x is None:
            return None, "", None, f"batch {index + 1} of {name} has no image {tile}"
        dataset = obj.dataset if isinstance(obj, DataLoader) else obj
        texts, _ = label_texts(labels, classes_of(dataset))
        what = "DataLoader" if isinstance(obj, DataLoader) else type(obj).__name__
        caption = f"image {tile} of batch {index + 1} of {name} ({what})" + (
            f", label {texts[tile]}" if tile < len(texts) else "")
        return x, caption, normalize_of(getattr(base_dataset(dataset), "transform", None)), ""


def image_normalizes(ns: dict, cwd: str | None) -> list[tuple[str, list[list[float]], list[int]]]:
    """(name, [mean, std], one sample's image shape (C, H, W)) of every dataset of the
    namespace whose pipeline has a Normalize: a tensor shaped like its samples (or a
    batch of them) is taken to have come from it."""
    out, seen = [], set()
    for name, obj, kind in named_data(ns):
        obj = obj.dataset if kind == "loader" else obj
        if kind == "transform" or id(obj) in seen:
            continue
        seen.add(id(obj))
        normalize = normalize_of(getattr(base_dataset(obj), "transform", None))
        if normalize is None:
            continue
        try:
            with in_script_folder(cwd), own_rng():
                image = sample_image(parts_of(obj[0])[0])
        except Exception:  # noqa: BLE001 - a dataset that fails says so in the data panel
            continue
        if image is not None:
            out.append((name, normalize, list(image.shape)))
    return out


def handlers(endpoint) -> dict:
    """{request type: handler(request) -> reply} for serve.Endpoint."""
    requests = DataRequests(endpoint)
    endpoint.data_requests = requests  # the tensor view reads the batches on screen
    return {BatchRequest: requests.batch, StagesRequest: requests.stages,
            OfflineCopyRequest: requests.offline_copy}
