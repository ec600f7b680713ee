"""The messages between the window and the kernel, both ways, and their one codec.

A message is a dataclass. On the wire it is plain JSON plus a list of binary buffers
(Jupyter Comm messages carry both): every dataclass becomes an object tagged with its
type, every numpy array a buffer referenced by index, non-finite floats and complex
numbers small tagged objects. Nothing is pickled, and only the types listed here
can be decoded.

The window sends requests (`RunRequest`, `BackwardRequest`, …) as comm messages;
the kernel answers each with the reply type in REPLY_TO, or an `ErrorReply` when it
failed, tagged with the request's msg_id. It may also push messages of its own
(reply_to None). The first message, `Hello`, carries the protocol version.

Outside a Comm (the headless export's child process writes its RunResult to a pipe),
`pack` turns the same (data, buffers) pair into one byte string and `unpack` reads it
back: a magic, the JSON text and each buffer, each with its length. Still no pickle.
"""
from __future__ import annotations

import dataclasses
import json
import math
import struct
from dataclasses import dataclass

import numpy as np

from .model import data as data_model, devices as devices_model, tensor_view as tensor_view_model
from .model import creation as creation_model
from .model.backward import BackwardStep, BackwardTrace, GradInfo
from .model.graph import ArrayNode, Edge, Graph, ModuleNode, OpNode, SavedNode, TensorNode
from .model.run import KernelInfo, RunError, RunResult
from .model.tensors import Stats, TensorValues

PROTOCOL_VERSION = 2


class ProtocolError(ValueError):
    pass


# --- requests (window -> kernel) ------------------------------------------------------

@dataclass
class RunRequest:
    code: str
    filename: str = "<editor>"
    cwd: str | None = None  # the folder the script runs in (first on sys.path too)
    upto: int | None = None  # run only the first `upto` top-level statements
    stop_after_call: int | None = None  # end the script right after its k-th backward call


@dataclass
class BackwardRequest:
    root: str
    gradient: str = ""  # a Python expression; `root` is the tensor; "" for ones
    retain_graph: bool = False
    create_graph: bool = False
    zero_first: bool = False


@dataclass
class ZeroGradsRequest:
    pass


@dataclass
class ValuesRequest:
    node_id: str
    name: str


@dataclass
class ExportRequest:
    """Run a script as `torchscope --export` runs it (every grad kept, no values,
    `backward` recorded), in a Runner of its own: the kernel's last run is left as it
    was. Sent by `--existing FILE --export`; answered with a RunResult."""
    code: str
    filename: str
    cwd: str | None = None  # used only where the kernel has that folder
    backward: str | None = None


# --- replies and pushes (kernel -> window) -----------------------------------------------

@dataclass
class Hello:
    version: int
    pid: int
    python: str
    torch: str
    hostname: str = ""  # "" from a kernel side older than this field


@dataclass
class OutputChunk:
    """What a running script just printed (pushed while it runs, tagged with the
    RunRequest's msg_id)."""
    stream: str  # "stdout" or "stderr"
    text: str


@dataclass
class ValuesReply:
    node_id: str
    values: TensorValues | None  # None: the tensor is gone


@dataclass
class ErrorReply:
    """The kernel side failed on a request (a bug in Torchscope, not in the script)."""
    request: str
    message: str
    traceback: str = ""


# Each panel's own messages live beside its model (core/model/<panel>.py: MESSAGES, REPLY_TO).
EXTENSIONS = (data_model, devices_model, tensor_view_model, creation_model)
REPLY_TO = {RunRequest: RunResult, BackwardRequest: RunResult, ZeroGradsRequest: RunResult,
            ValuesRequest: ValuesReply, ExportRequest: RunResult}
for _module in EXTENSIONS:
    REPLY_TO.update(_module.REPLY_TO)
TYPES = {t.__name__: t for t in (
    RunRequest, BackwardRequest, ZeroGradsRequest, ValuesRequest, ExportRequest, KernelInfo, Hello, ValuesReply, ErrorReply, OutputChunk,
    RunResult, RunError, Graph, TensorNode, ArrayNode, OpNode, SavedNode, ModuleNode, Edge, TensorValues, Stats,
    BackwardTrace, BackwardStep, GradInfo, *(t for m in EXTENSIONS for t in m.MESSAGES))}
_FIELDS = {t: [f.name for f in dataclasses.fields(t)] for t in TYPES.values()}


def encode(message, reply_to: str | None = None) -> tuple[dict, list]:
    """(JSON-safe dict, buffers) for one message."""
    buffers: list = []
    return {"version": PROTOCOL_VERSION, "reply_to": reply_to,
            "body": _encode(message, buffers)}, buffers


def decode(data: dict, buffers: list) -> tuple[object, str | None]:
    """(message, the msg_id of the request it answers or None). Raises ProtocolError
    for another protocol version or anything that is not one of TYPES."""
    if not isinstance(data, dict) or data.get("version") != PROTOCOL_VERSION:
        version = data.get("version") if isinstance(data, dict) else None
        raise ProtocolError(f"the kernel speaks protocol {version}, the window speaks "
                            f"{PROTOCOL_VERSION}")
    try:
        return _decode(data["body"], buffers), data.get("reply_to")
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ProtocolError(f"a malformed message: {exc!r}") from None


PACK_MAGIC = b"TSP1"
_HEAD = struct.Struct("<4sQI")  # magic, JSON length, number of buffers
_LEN = struct.Struct("<Q")


def pack(data: dict, buffers: list) -> bytes:
    """One byte string for an (data, buffers) pair from `encode`: PACK_MAGIC, the JSON
    length and the buffer count, the JSON text (UTF-8, strict: no NaN), then each
    buffer as its length and its bytes. Little-endian lengths."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":")).encode("utf-8")
    parts = [_HEAD.pack(PACK_MAGIC, len(text), len(buffers)), text]
    for b in buffers:
        raw = memoryview(b).cast("B")
        parts += [_LEN.pack(raw.nbytes), raw]
    return b"".join(parts)


def unpack(blob: bytes) -> tuple[dict, list]:
    """(data, buffers) from `pack`'s bytes; ProtocolError for anything else (a wrong
    magic, a length past the end, bytes left over, JSON that is not an object)."""
    view = memoryview(blob).cast("B")
    if len(view) < _HEAD.size:
        raise ProtocolError(f"a packed message of {len(view)} bytes is too short")
    magic, n_text, n_buffers = _HEAD.unpack_from(view)
    if magic != PACK_MAGIC:
        raise ProtocolError(f"not a packed message (magic {bytes(magic)!r})")
    pos = _HEAD.size

    def take(n: int) -> memoryview:
        nonlocal pos
        if n > len(view) - pos:
            raise ProtocolError("a packed message ends early")
        pos += n
        return view[pos - n:pos]

    try:
        data = json.loads(bytes(take(n_text)).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"a packed message with bad JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a packed message whose JSON is not an object")
    buffers = []
    for _ in range(n_buffers):
        (n,) = _LEN.unpack(take(_LEN.size))
        buffers.append(bytes(take(n)))
    if pos != len(view):
        raise ProtocolError(f"{len(view) - pos} bytes after a packed message")
    return data, buffers


def _encode(v, buffers: list):
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {"$float": repr(v)}
    t = type(v)
    if t in _FIELDS:
        out = {"$type": t.__name__}
        for name in _FIELDS[t]:
            out[name] = _encode(getattr(v, name), buffers)
        return out
    if isinstance(v, np.ndarray):
        arr = np.ascontiguousarray(v)  # at least 1-d: the shape comes from `v`
        buffers.append(memoryview(arr).cast("B") if arr.size else b"")
        return {"$array": len(buffers) - 1, "dtype": arr.dtype.str, "shape": list(v.shape)}
    if isinstance(v, (list, tuple)):
        return [_encode(x, buffers) for x in v]
    if isinstance(v, dict):
        return {str(k): _encode(x, buffers) for k, x in v.items()}
    if isinstance(v, complex):
        return {"$complex": [_encode(v.real, buffers), _encode(v.imag, buffers)]}
    if isinstance(v, np.generic):
        return _encode(v.item(), buffers)
    raise ProtocolError(f"cannot send a {t.__name__}")


def _decode(v, buffers: list):
    if isinstance(v, list):
        return [_decode(x, buffers) for x in v]
    if not isinstance(v, dict):
        return v
    if "$type" in v:
        cls = TYPES.get(v["$type"])
        if cls is None:
            raise ProtocolError(f"unknown message type {v['$type']!r}")
        return cls(**{name: _decode(v[name], buffers) for name in _FIELDS[cls] if name in v})
    if "$array" in v:
        dtype = np.dtype(v["dtype"])
        if dtype.hasobject:
            raise ProtocolError("object arrays are not accepted")
        return np.frombuffer(bytes(buffers[v["$array"]]), dtype=dtype).reshape(v["shape"])
    if "$float" in v:
        return float(v["$float"])
    if "$complex" in v:
        return complex(*(_decode(x, buffers) for x in v["$complex"]))
    return {k: _decode(x, buffers) for k, x in v.items()}
