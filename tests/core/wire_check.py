"""Helpers for the protocol tests: what a Jupyter Comm does to a message, and an
equality for messages that hold numpy arrays (dataclass `==` cannot compare those)."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np


def wire(data, buffers):
    """What a Jupyter Comm does: strict JSON text, buffers as bytes."""
    for b in buffers:
        assert isinstance(b, (bytes, bytearray, memoryview)), type(b)
    return json.loads(json.dumps(data, allow_nan=False)), [bytes(b) for b in buffers]


def arrays_equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
            and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def deep_equal(a, b, path: str = "") -> bool:
    """`a == b` through dataclasses, dicts and lists; arrays by dtype, shape and
    values (nan equal to nan); floats with nan equal to nan. Raises AssertionError
    naming the first difference."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert arrays_equal(a, b), f"{path}: {a!r} != {b!r}"
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
        for f in dataclasses.fields(a):
            deep_equal(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {set(a)} != {set(b) if isinstance(b, dict) else b}"
        for k in a:
            deep_equal(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            deep_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b), f"{path}: nan != {b!r}"
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"
    return True


def arrays_in(obj) -> list[np.ndarray]:
    """Every numpy array inside a message, depth first."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [a for f in dataclasses.fields(obj) for a in arrays_in(getattr(obj, f.name))]
    if isinstance(obj, dict):
        return [a for v in obj.values() for a in arrays_in(v)]
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in arrays_in(v)]
    return []


def array_refs(data) -> list[dict]:
    """Every `{"$array": ...}` reference in an encoded message."""
    if isinstance(data, dict):
        if "$array" in data:
            return [data]
        return [r for v in data.values() for r in array_refs(v)]
    if isinstance(data, list):
        return [r for v in data for r in array_refs(v)]
    return []
