"""Datasets, loaders and batches as they cross the wire (no torch): what the data
panel draws. MESSAGES lists the types the protocol may carry; REPLY_TO pairs each
request with its reply.

A run describes every Dataset, DataLoader and transform the script named
(`DataInfo`, in `RunResult.data`): cheap facts and one sample's shapes. Pictures are
fetched on request only (`BatchRequest` -> `DataBatch`, `StagesRequest` -> `Stages`),
never on every keystroke.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DataInfo:
    """One Dataset, DataLoader or transform the script named (or a dataset it could
    not load: kind "missing")."""
    name: str  # as the script names it ("train_dataloader"); the folder for "missing"
    kind: str  # "dataset", "loader", "transform" or "missing"
    type: str  # class name: "FashionMNIST", "DataLoader", "Compose"
    line: int | None = None  # the script line that bound it
    len: int | None = None
    classes: list[str] | None = None
    root: str | None = None  # the folder it reads (as the script wrote it)
    transforms: list[str] = field(default_factory=list)  # one per stage of `transform`
    target_transforms: list[str] = field(default_factory=list)
    shapes: list[list[int]] = field(default_factory=list)  # of one sample, or of the preview batch
    dtypes: list[str] = field(default_factory=list)
    normalize: list[list[float]] | None = None  # [mean, std] of a Normalize in the pipeline
    # loaders
    dataset: str | None = None  # its dataset's name in the script (None: not named)
    dataset_type: str = ""
    batch_size: int | None = None
    shuffle: bool = False
    sampler: str = ""
    num_workers: int = 0
    drop_last: bool = False
    batches: int | None = None  # len(loader)
    labels: list = field(default_factory=list)  # the preview batch's first labels (export)
    error: str = ""  # "Type: message" when it could not load a sample or a batch
    error_line: int | None = None
    offline: str = ""  # "missing": the bundled copy that can fill `root` ("" for none)
    batch: "DataBatch | None" = None  # the preview batch (headless export only)

    @property
    def is_dataset(self) -> bool:
        return self.kind == "dataset"


@dataclass
class BatchRequest:
    """Batch `index` of loader `name` (or `batch_size` samples of dataset `name`),
    drawn after torch.manual_seed(0): batch 0 is next(iter(loader))."""
    name: str
    index: int = 0
    unnormalize: bool = True  # undo a Normalize for display


@dataclass
class DataBatch:
    name: str
    index: int
    images: np.ndarray | None  # uint8 (N, C, H, W) ready to draw (C=3: RGB)
    labels: list[str]  # each tile's caption: class name, or the value
    targets: list  # each label as a number (int), a list (one-hot), or None
    indices: list[int | None]  # each tile's index in the dataset, when the sampler tells
    shapes: list[list[int]] = field(default_factory=list)  # every part of the batch
    dtypes: list[str] = field(default_factory=list)
    sample_shape: list[int] = field(default_factory=list)  # one image's tensor shape
    low: float | None = None  # the images' value range, as the loader gave them
    high: float | None = None
    shown: str = ""  # how values became grey levels ("0..1", "un-normalized", "scaled min..max")
    ranges: list[list[float]] = field(default_factory=list)  # each image's [min, max] as the loader gave it
    batches: int | None = None
    seconds: float = 0.0  # the loader's own time for this batch
    error: str = ""  # "Type: message"
    error_line: int | None = None


@dataclass
class StagesRequest:
    """The transform pipeline of dataset `name` (a loader's dataset too), stage by
    stage, for sample `index`."""
    name: str
    index: int = 0


@dataclass
class Stage:
    title: str  # "PIL image", "ToTensor()", "Normalize(mean=[0.5], std=[0.5])"
    kind: str  # "image", "tensor", "value"
    shape: list[int] = field(default_factory=list)
    dtype: str = ""
    low: float | None = None
    high: float | None = None
    image: np.ndarray | None = None  # uint8 (C, H, W) to draw, when it is a picture
    text: str = ""  # a value's short text: "9", "[0, 0, …, 1]"
    error: str = ""  # this stage failed on the sample: "Type: message"


@dataclass
class Stages:
    name: str
    index: int
    stages: list[Stage] = field(default_factory=list)  # the raw sample first
    target: list[Stage] = field(default_factory=list)  # the raw label first
    error: str = ""
    error_line: int | None = None


@dataclass
class OfflineCopyRequest:
    """Copy the bundled sample (or the full Debian copy) of dataset `type` into
    `folder` (a raw folder the script reads, relative to its folder)."""
    type: str
    folder: str


@dataclass
class OfflineCopyReply:
    folder: str
    source: str
    files: int
    error: str = ""


MESSAGES = (DataInfo, BatchRequest, DataBatch, StagesRequest, Stage, Stages, OfflineCopyRequest,
            OfflineCopyReply)
REPLY_TO = {BatchRequest: DataBatch, StagesRequest: Stages, OfflineCopyRequest: OfflineCopyReply}


def info_to_dict(info: DataInfo) -> dict:
    """One entry of the export's top-level "data" list (the contract in issue 10)."""
    out = {"name": info.name, "kind": info.kind, "type": info.type, "len": info.len,
           "classes": info.classes, "sample": {"shapes": info.shapes, "dtypes": info.dtypes},
           "transforms": info.transforms}
    if info.kind == "loader":
        batch = info.batch
        out.pop("sample")
        out.update({"dataset": info.dataset, "batch_size": info.batch_size, "shuffle": info.shuffle,
                    "batches": info.batches,
                    "batch": {"shapes": batch.shapes if batch else [], "dtypes": batch.dtypes if batch else [],
                              "labels": (batch.targets if batch else [])[:256]}})
    return out
