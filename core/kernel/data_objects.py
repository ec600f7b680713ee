"""The script's data objects as the data panel sees them: which names hold a
Dataset, a DataLoader or a transform, their pipelines and samples, and the errors a
dataset causes in plain words (a missing root, no network for a download, a CSV line
that does not parse, a missing or corrupt image), still raised at the user's line.
"""
from __future__ import annotations

import ast
import contextlib
import csv
import io
import linecache
import os
import random
import re

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .script_folder import working_folder
from .offline_data import DatasetNotFoundError, dataset_folder
from .tensors import dtype_name

TITLE_CHARS = 70


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


def script_line(exc: BaseException, filename: str) -> int | None:
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


