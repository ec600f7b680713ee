"""The versioned message schema between kernel and app.

A message is plain JSON plus a list of binary buffers (Jupyter Comm messages
carry both). Tensors travel as raw numpy buffers referenced from the JSON by
index; nothing is pickled.
"""
from __future__ import annotations

import numpy as np

from core.backward import BackwardStep, BackwardTrace, GradInfo
from core.graph import graph_from_dict, graph_to_dict, json_safe
from core.probe import RunError, Snapshot
from core.tensors import Stats, TensorSummary

PROTOCOL_VERSION = 1


class ProtocolError(ValueError):
    pass


def _array_ref(arr: np.ndarray | None, buffers: list) -> dict | None:
    if arr is None:
        return None
    arr = np.ascontiguousarray(arr)
    buffers.append(memoryview(arr).cast("B"))
    return {"buffer": len(buffers) - 1, "dtype": arr.dtype.str, "shape": list(arr.shape)}


def _array_from(ref: dict | None, buffers: list) -> np.ndarray | None:
    if ref is None:
        return None
    raw = buffers[ref["buffer"]]
    return np.frombuffer(bytes(raw), dtype=np.dtype(ref["dtype"])).reshape(ref["shape"])


def _stats_to_dict(s: Stats | None) -> dict | None:
    """Stats as strict JSON: an overflowing std travels as the string "inf"."""
    if s is None:
        return None
    return {k: json_safe(v) for k, v in s.__dict__.items()}


def _stats_from_dict(d: dict | None) -> Stats | None:
    if d is None:
        return None
    return Stats(**{k: float(v) if isinstance(v, str) else v for k, v in d.items()})


def _summary_to_dict(s: TensorSummary, buffers: list) -> dict:
    d = dict(s.__dict__)
    d["stats"] = _stats_to_dict(s.stats)
    d["grad_stats"] = _stats_to_dict(s.grad_stats)
    d["preview"] = _array_ref(s.preview, buffers)
    d["grad_preview"] = _array_ref(s.grad_preview, buffers)
    return d


def _summary_from_dict(d: dict, buffers: list) -> TensorSummary:
    d = dict(d)
    d["stats"] = _stats_from_dict(d["stats"])
    d["grad_stats"] = _stats_from_dict(d["grad_stats"])
    d["preview"] = _array_from(d["preview"], buffers)
    d["grad_preview"] = _array_from(d["grad_preview"], buffers)
    return TensorSummary(**d)


def _info_to_dict(g: GradInfo | None) -> dict | None:
    return None if g is None else {k: json_safe(v) for k, v in g.__dict__.items()}


def _info_from_dict(d: dict | None) -> GradInfo | None:
    if d is None:
        return None
    return GradInfo(**{k: float(v) if k in ("norm", "min", "max") and isinstance(v, str) else v
                       for k, v in d.items()})


def trace_to_wire(trace: BackwardTrace | None) -> dict | None:
    if trace is None:
        return None
    d = dict(trace.__dict__)
    d.pop("keep_alive")
    d["steps"] = [{**s.__dict__, "grad_outputs": [_info_to_dict(g) for g in s.grad_outputs],
                   "grad_inputs": [_info_to_dict(g) for g in s.grad_inputs],
                   "leaf_grad": _info_to_dict(s.leaf_grad)} for s in trace.steps]
    return d


def trace_from_wire(d: dict | None) -> BackwardTrace | None:
    if d is None:
        return None
    d = dict(d)
    d["steps"] = [BackwardStep(**{**s, "grad_outputs": [_info_from_dict(g) for g in s["grad_outputs"]],
                                  "grad_inputs": [_info_from_dict(g) for g in s["grad_inputs"]],
                                  "leaf_grad": _info_from_dict(s["leaf_grad"])}) for s in d["steps"]]
    return BackwardTrace(**d)


def encode_snapshot(snap: Snapshot, run_id: int) -> tuple[dict, list]:
    buffers: list = []
    data = {
        "type": "snapshot", "version": PROTOCOL_VERSION, "run_id": run_id,
        "graph": graph_to_dict(snap.graph) if snap.graph is not None else None,
        "summaries": {k: _summary_to_dict(s, buffers) for k, s in snap.summaries.items()},
        "stdout": snap.stdout, "stderr": snap.stderr,
        "error": dict(snap.error.__dict__) if snap.error else None,
        "timings": snap.timings,
        "backward": trace_to_wire(snap.backward),
        "explanation": snap.explanation,
        "grad_history": {k: [_info_to_dict(g) for g in v] for k, v in snap.grad_history.items()},
    }
    return data, buffers


def decode_snapshot(data: dict, buffers: list) -> tuple[int, Snapshot]:
    if data.get("type") != "snapshot":
        raise ProtocolError(f"not a snapshot message: {data.get('type')!r}")
    if data.get("version") != PROTOCOL_VERSION:
        raise ProtocolError(f"kernel speaks protocol {data.get('version')}, "
                            f"the app speaks {PROTOCOL_VERSION}")
    snap = Snapshot(
        graph=graph_from_dict(data["graph"]) if data["graph"] is not None else None,
        summaries={k: _summary_from_dict(s, buffers) for k, s in data["summaries"].items()},
        stdout=data["stdout"], stderr=data["stderr"],
        error=RunError(**data["error"]) if data["error"] else None,
        timings=data["timings"],
        backward=trace_from_wire(data.get("backward")),
        explanation=data.get("explanation", ""),
        grad_history={k: [_info_from_dict(g) for g in v]
                      for k, v in data.get("grad_history", {}).items()})
    return data["run_id"], snap


def encode_summary(node_id: str, summary: TensorSummary, run_id: int) -> tuple[dict, list]:
    """The full summary of one tensor, sent when the inspector asks for it."""
    buffers: list = []
    return {"type": "summary", "version": PROTOCOL_VERSION, "run_id": run_id,
            "node_id": node_id, "summary": _summary_to_dict(summary, buffers)}, buffers


def decode_summary(data: dict, buffers: list) -> tuple[int, str, TensorSummary]:
    if data.get("type") != "summary":
        raise ProtocolError(f"not a summary message: {data.get('type')!r}")
    return data["run_id"], data["node_id"], _summary_from_dict(data["summary"], buffers)
