"""TensorSummary: what the inspector shows of one tensor, cheap to send.

Statistics are computed in the kernel, where the tensor lives; only a capped
preview of the values travels (as a numpy buffer, see `core.protocol`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

PREVIEW_LIMIT = 256  # elements sent with every run; the full tensor only on request
STATS_LIMIT = 1 << 16  # bigger tensors get their statistics when the inspector asks


@dataclass
class Stats:
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    nan: int = 0
    inf: int = 0


@dataclass
class TensorSummary:
    name: str | None
    shape: list[int]
    dtype: str
    device: str
    requires_grad: bool
    is_leaf: bool
    grad_fn: str | None
    numel: int
    stats: Stats | None  # None: not computed yet (a big tensor; see STATS_LIMIT)
    preview: np.ndarray | None = None  # flat, first PREVIEW_LIMIT elements
    grad_stats: Stats | None = None
    grad_preview: np.ndarray | None = None
    shares_storage_with: list[str] = field(default_factory=list)


def tensor_stats(t: torch.Tensor) -> Stats:
    """min/max/mean/std over finite values, and how many are nan or inf.
    Empty for tensors without plain strided values (meta, sparse, nested, complex)."""
    try:
        if (t.numel() == 0 or t.is_complex() or t.dtype == torch.bool or t.is_meta
                or t.layout != torch.strided or t.is_nested):
            return Stats()
    except RuntimeError:
        return Stats()
    x = t.detach()
    x = x.double() if x.dtype == torch.float64 or not x.is_floating_point() else x.float()
    nan = int(torch.isnan(x).sum())
    inf = int(torch.isinf(x).sum())
    finite = x[torch.isfinite(x)] if (nan or inf) else x
    if finite.numel() == 0:
        return Stats(nan=nan, inf=inf)
    lo, hi = torch.aminmax(finite)
    std = float(finite.std()) if finite.numel() > 1 else 0.0
    return Stats(min=float(lo), max=float(hi), mean=float(finite.mean()), std=std,
                 nan=nan, inf=inf)



def preview(t: torch.Tensor, limit: int = PREVIEW_LIMIT) -> np.ndarray | None:
    if t.is_meta or t.layout != torch.strided or t.is_nested:
        return None
    flat = t.detach().reshape(-1)[:limit]
    if flat.dtype == torch.bfloat16 or flat.dtype == torch.float16:
        flat = flat.float()
    return flat.cpu().resolve_conj().numpy().copy()


def summarize(name: str | None, t: torch.Tensor, limit: int = PREVIEW_LIMIT,
              stats_limit: int | None = STATS_LIMIT) -> TensorSummary:
    """`stats_limit`: tensors with more elements leave `stats` None (every run
    sends summaries; five passes over ResNet-50's 25M weights would cost 150 ms)."""
    try:
        grad = t.grad if (t.is_leaf or t.retains_grad) else None
    except RuntimeError:
        grad = None
    full = stats_limit is None or t.numel() <= stats_limit
    return TensorSummary(
        name=name, shape=list(t.shape), dtype=str(t.dtype).removeprefix("torch."),
        device=str(t.device), requires_grad=t.requires_grad, is_leaf=t.is_leaf,
        grad_fn=type(t.grad_fn).__name__ if t.grad_fn is not None else None,
        numel=t.numel(), stats=tensor_stats(t) if full else None, preview=preview(t, limit),
        grad_stats=tensor_stats(grad) if grad is not None and full else None,
        grad_preview=preview(grad, limit) if grad is not None else None)


def storage_groups(named: list[tuple[str, torch.Tensor]]) -> dict[str, list[str]]:
    """name -> other names whose tensors share its storage (views, from_numpy twins)."""
    by_ptr: dict[tuple[str, int], list[str]] = {}
    for name, t in named:
        try:
            ptr = t.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):
            continue
        if ptr:
            by_ptr.setdefault((str(t.device), ptr), []).append(name)
    out: dict[str, list[str]] = {}
    for names in by_ptr.values():
        for n in names:
            others = [o for o in names if o != n]
            if others:
                out[n] = others
    return out
