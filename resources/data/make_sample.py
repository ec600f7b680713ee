"""Rebuild the offline FashionMNIST sample in this folder from the full dataset.

    python resources/data/make_sample.py [FOLDER_WITH_THE_FOUR_IDX_GZ_FILES]

The full set comes from Debian's `dataset-fashion-mnist` package (all 70,000 images,
installed under /usr/share/datasets/fashion-mnist, or unpacked from the .deb with
`apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb x`).
It writes FashionMNIST/raw/ with the first SAMPLE images and labels of each split as
the uncompressed IDX files torchvision reads, and custom/ (a CSV of `file,label` and
PNGs cut from the test split) for the tutorial's custom Dataset. Fashion-MNIST is
MIT-licensed (Zalando SE): FashionMNIST/LICENSE goes with the data.
"""
from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SAMPLE = 2000
CUSTOM = 40  # images in custom/, four of each class
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not an unsigned-byte IDX file"
    shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    head = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(head + np.ascontiguousarray(array, np.uint8).tobytes())


def main(source: Path) -> None:
    raw = HERE / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        write_idx(raw / name, read_idx(source / (name + ".gz"))[:SAMPLE])
    images, labels = read_idx(raw / "t10k-images-idx3-ubyte"), read_idx(raw / "t10k-labels-idx1-ubyte")
    custom = HERE / "custom"
    (custom / "images").mkdir(parents=True, exist_ok=True)
    rows, taken = ["file,label"], {c: 0 for c in range(10)}
    for i, label in enumerate(labels):
        if taken[int(label)] < CUSTOM // 10:
            taken[int(label)] += 1
            name = f"{CLASSES[label].split('/')[0].lower().replace(' ', '_')}{taken[int(label)]}.png"
            Image.fromarray(images[i]).save(custom / "images" / name, optimize=True)
            rows.append(f"{name},{int(label)}")
    (custom / "labels.csv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"))
