"""Kernel side of the data panel: the script's Datasets, DataLoaders and transforms,
described after each run, drawn on request.

- `describe_into` (called by the Runner after every run) names every Dataset,
  DataLoader and transform of the namespace with the cheap facts (type, len,
  classes, root, the pipeline, one sample's shapes). It draws no batch, except for
  the headless export (`batches=True`), whose contract carries the preview batch.
- The data panel's requests are answered from the last run's namespace: a batch as
  pictures and a sample's transform stages (`data_pictures`), the offline copy
  (`offline_data`). What the namespace's data objects are, and their errors in plain
  words, is `data_objects`.
"""
from __future__ import annotations

import contextlib
import os

import torch
from torch.utils.data import DataLoader, Dataset

from ..model.data import (BatchRequest, DataBatch, DataInfo, OfflineCopyReply, OfflineCopyRequest, Stages,
                          StagesRequest)
from ..model.run import RunError
from .data_objects import (base_dataset, binding_lines, classes_of, error_text, in_script_folder, is_transform,
                           named_data, normalize_of, own_rng, part_shape, parts_of, pipeline, plain_data_error,
                           script_line, transform_title)
from .data_pictures import batch_parts, as_nchw, label_texts, load_batch, preview, sample_image, stages
from .offline_data import DatasetNotFoundError, copy_offline, offline_source, offline_words


# --- what the namespace holds, described ----------------------------------------------------

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
            info.error, info.error_line = error_text(exc), script_line(exc, filename) or line
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
        infos.append(DataInfo(folder, "missing", script_exc.dataset, script_line(script_exc, filename),
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
        images, labels = batch_parts(batch)
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
