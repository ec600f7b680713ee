"""A batch as pictures, and one sample through its transforms a stage at a time.

- `preview` is the picture of a batch: `torch.manual_seed(0)` and `next(iter(loader))`,
  as the user gets it with that seed; the user's RNG states are put back after.
- `stages` runs one sample through the transform pipeline a step at a time.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, SequentialSampler

from ..model.data import DataBatch, DataInfo, Stage, Stages
from .data_objects import (base_dataset, error_text, is_transform, own_rng, part_shape, parts_of, pipeline,
                           plain_data_error, script_line, shorten, transform_title)

DATASET_PREVIEW = 64  # samples per "batch" when a Dataset (not a loader) is shown


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


def batch_parts(batch) -> tuple[object, object]:
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
        out.error, out.error_line = error_text(exc), script_line(exc, filename) or info.line
        return out
    out.seconds = time.perf_counter() - t0
    images, labels = batch_parts(batch)
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
        out.error, out.error_line = error_text(exc), script_line(exc, filename) or info.line
    return out

