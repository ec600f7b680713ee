"""A tensor's values for the window (`core.model.tensors.TensorValues`): statistics
over finite values, nan/inf counts, the first elements, storage sharing.

Everything here runs where the tensor lives; what leaves is numpy."""
from __future__ import annotations

import numpy as np
import torch

from ..model.tensors import STATS_LIMIT, VALUES_LIMIT, Stats, TensorValues


def shape_of(t: torch.Tensor) -> list[int]:
    """The shape, or [] for tensors that have none (nested tensors)."""
    try:
        return list(t.shape)
    except RuntimeError:
        return []


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def to_numpy(t: torch.Tensor, limit: int | None = None) -> np.ndarray | None:
    """The values (the first `limit` of them, flat, if given) as a numpy array on the
    CPU; half and bfloat16 become float32. None for tensors without plain values."""
    try:
        if t.is_meta or t.layout != torch.strided or t.is_nested:
            return None
        x = t.detach()
        if limit is not None:
            x = x.reshape(-1)[:limit]
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.cpu().resolve_conj().resolve_neg().numpy().copy()
    except (RuntimeError, TypeError):  # quantized, float8 and other kinds numpy lacks
        return None


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


def tensor_values(t: torch.Tensor, limit: int = VALUES_LIMIT,
                  stats_limit: int | None = STATS_LIMIT) -> TensorValues:
    """`stats_limit`: tensors with more elements leave `stats` None (every run
    sends values; five passes over ResNet-50's 25M weights would cost 150 ms)."""
    try:
        grad = t.grad if (t.is_leaf or t.retains_grad) else None
    except RuntimeError:
        grad = None
    full = stats_limit is None or t.numel() <= stats_limit
    return TensorValues(
        numel=t.numel(), stats=tensor_stats(t) if full else None, preview=to_numpy(t, limit),
        grad_stats=tensor_stats(grad) if grad is not None and full else None,
        grad_preview=to_numpy(grad, limit) if grad is not None else None)


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
