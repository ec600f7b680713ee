"""A tensor's values for the window (`core.model.tensors.TensorValues`): statistics
over finite values, nan/inf counts, the first elements, storage sharing.

Every kind of tensor is summarized without raising: sparse tensors by their stored
values and the zeros they leave out, quantized ones dequantized, nested ones by the
values of their components, dtypes numpy lacks (bfloat16, float8, complex32)
widened; meta tensors have no values at all. Everything here runs where the tensor
lives; what leaves is numpy."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..model.tensors import STATS_LIMIT, VALUES_LIMIT, Stats, TensorValues

SPARSE_PREVIEW_LIMIT = STATS_LIMIT  # sparse tensors bigger than this (dense) get no preview


def shape_of(t: torch.Tensor) -> list[int]:
    """The shape, or [] for tensors that have none (nested tensors: their ragged
    sizes are not plain ints)."""
    try:
        return [] if t.is_nested else [int(s) for s in t.shape]
    except (RuntimeError, TypeError):
        return []


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def numel_of(t: torch.Tensor) -> int:
    try:
        return t.numel()
    except RuntimeError:
        return 0


def _widened(x: torch.Tensor) -> torch.Tensor:
    """float32/float64/complex64/complex128 for the float and complex dtypes numpy
    and some reductions lack (half, bfloat16, float8, complex32); others as they are."""
    if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
        return x.float()
    if x.is_complex() and x.dtype not in (torch.complex64, torch.complex128):
        return x.to(torch.complex64)
    return x


def stored_values(t: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """(a plain strided tensor of the values the tensor holds, how many zeros it
    stands for without storing them), detached and widened. Dense tensors: themselves
    and 0. Sparse: the stored values (duplicates summed) and the zeros left out.
    Nested: the components' values, flat. None for meta tensors (no values)."""
    x, implicit_zeros = t.detach(), 0
    if x.is_meta:
        return None
    if x.is_nested:
        parts = [c.reshape(-1) for c in x.unbind()]
        x = torch.cat(parts) if parts else torch.empty(0, dtype=x.dtype, device=x.device)
    elif x.layout != torch.strided:  # sparse COO, CSR, CSC, BSR, BSC
        x = (x.coalesce() if x.layout == torch.sparse_coo else x).values()
        implicit_zeros = t.numel() - x.numel()
    if x.is_quantized:
        x = x.dequantize()
    return _widened(x), implicit_zeros


def _first_elements(x: torch.Tensor, limit: int) -> torch.Tensor:
    """The first `limit` elements in row-major order, flat, copying only the rows
    they lie in (an expanded or transposed view of a huge tensor stays cheap)."""
    for d in range(x.dim()):
        inner = math.prod(x.shape[d + 1:])
        if inner == 0:
            break
        need = -(-limit // inner)
        if need < x.shape[d]:
            x = x.narrow(d, 0, need)
        if inner <= limit:
            break
    return x.reshape(-1)[:limit]


def to_numpy(t: torch.Tensor, limit: int | None = None) -> np.ndarray | None:
    """The values (the first `limit` of them, flat, if given) as a numpy array on the
    CPU; dtypes numpy lacks are widened (half, bfloat16, float8 -> float32),
    quantized tensors dequantized, sparse ones made dense (up to SPARSE_PREVIEW_LIMIT
    elements), nested ones flattened component by component. None for meta tensors
    and anything else without plain values."""
    try:
        x = t.detach()
        if x.is_meta:
            return None
        if x.is_nested:
            x = stored_values(x)[0]
        elif x.layout != torch.strided:
            if x.numel() > SPARSE_PREVIEW_LIMIT:
                return None
            x = x.to_dense()
        if x.is_quantized:
            x = x.dequantize()
        if limit is not None:
            x = _first_elements(x, limit)
        return _widened(x).cpu().resolve_conj().resolve_neg().numpy().copy()
    except Exception:  # a tensor subclass or dtype numpy cannot take: no preview
        return None


def _stats_of(x: torch.Tensor, implicit_zeros: int = 0) -> Stats:
    """Stats of the real values `x` (any shape) plus `implicit_zeros` zeros."""
    x = x.double() if x.dtype == torch.float64 or not x.is_floating_point() else x.float()
    nan = int(torch.isnan(x).sum())
    inf = int(torch.isinf(x).sum())
    finite = x[torch.isfinite(x)] if (nan or inf) else x.reshape(-1)
    count = finite.numel() + implicit_zeros
    if count == 0:
        return Stats(nan=nan, inf=inf)
    if implicit_zeros == 0:
        lo, hi = torch.aminmax(finite)
        std = float(finite.std()) if count > 1 else 0.0
        return Stats(min=float(lo), max=float(hi), mean=float(finite.mean()), std=std,
                     nan=nan, inf=inf)
    # Sparse: the zeros it leaves out count like stored ones.
    lo, hi = (float(v) for v in torch.aminmax(finite)) if finite.numel() else (0.0, 0.0)
    mean = float(finite.double().sum()) / count
    squares = float(((finite.double() - mean) ** 2).sum()) + implicit_zeros * mean * mean
    return Stats(min=min(lo, 0.0), max=max(hi, 0.0), mean=mean,
                 std=math.sqrt(squares / (count - 1)) if count > 1 else 0.0, nan=nan, inf=inf)


def tensor_stats(t: torch.Tensor) -> Stats:
    """min/max/mean/std over finite values, and how many are nan or inf, over the
    values the tensor stands for (a sparse tensor's zeros included). Complex tensors:
    only the nan/inf counts (no order). Bool: as 0 and 1. Meta tensors: empty."""
    try:
        values = stored_values(t)
        if values is None:
            return Stats()
        x, implicit_zeros = values
        if x.is_complex():
            return Stats(nan=int(torch.isnan(x).sum()), inf=int(torch.isinf(x).sum()))
        return _stats_of(x, implicit_zeros)
    except Exception:  # a tensor subclass without these ops: no statistics
        return Stats()


def grad_of(t: torch.Tensor) -> torch.Tensor | None:
    """t.grad where torch keeps one (leaves, retain_grad()), without the warning a
    non-leaf's .grad gives."""
    try:
        return t.grad if (t.is_leaf or t.retains_grad) else None
    except RuntimeError:
        return None


def tensor_values(t: torch.Tensor, limit: int = VALUES_LIMIT,
                  stats_limit: int | None = STATS_LIMIT) -> TensorValues:
    """`stats_limit`: tensors with more elements leave `stats` None (every run
    sends values; five passes over ResNet-50's 25M weights would cost 150 ms)."""
    grad = grad_of(t)
    numel = numel_of(t)
    full = stats_limit is None or numel <= stats_limit
    return TensorValues(
        numel=numel, stats=tensor_stats(t) if full else None, preview=to_numpy(t, limit),
        grad_stats=tensor_stats(grad) if grad is not None and full else None,
        grad_preview=to_numpy(grad, limit) if grad is not None else None)


def storage_groups(named: list[tuple[str, torch.Tensor]]) -> dict[str, list[str]]:
    """name -> other names whose tensors share its storage (views, from_numpy twins).
    Tensors without a storage of their own (sparse, nested, meta) share with none."""
    by_ptr: dict[tuple[str, int], list[str]] = {}
    for name, t in named:
        try:
            if t.is_meta or t.layout != torch.strided or t.is_nested:
                continue
            ptr = t.untyped_storage().data_ptr()
        except Exception:  # a tensor subclass without a storage
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
