"""Datasets without a network: a download torchvision starts while there is no
network fails at once, in plain words, and the offline copy fills the dataset's
folder instead (the bundled FashionMNIST sample, or Debian's full copy).

A download fails at once, not after the resolver's time-outs, and is not tried again
for NO_NETWORK_RETRY_S: an audit hook on `urllib.Request` (process-wide, it acts only
inside a torchvision dataset).
"""
from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import socket
import sys
import time
import urllib.parse
from pathlib import Path

from torch.utils.data import Dataset

from ..model.data import OfflineCopyReply

DATA_DIR = Path(__file__).resolve().parents[2] / "resources" / "data"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFLINE = {"FashionMNIST": DATA_DIR / "FashionMNIST" / "raw"}  # dataset type -> bundled raw folder
NO_NETWORK_RETRY_S = 60.0  # after a failed download, downloads fail at once this long
PROBE_S = 3.0  # seconds to reach a download's host before calling it "no network"


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


