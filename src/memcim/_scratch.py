"""Reusable buffers for the large temporaries of the hot loops.

A hardware-aware training step interpolates noise tables for every weight: a handful of
weight-sized temporaries per tile and step. Fresh allocations of that size are costly on CPUs
(the allocator returns them to the system and takes them back, page by page), so the hot loops
write their intermediates into buffers kept here, one set per thread (a thread never sees
another's). A buffer grows to the largest size asked for and is kept: 28 bytes per weight of
the largest tile a thread has trained (the noise's normals, positions, indices and table
look-ups) and 4 per weight of its largest layer (the clipping limit's deviations).
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.by_key: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}
        # Views of the buffers by shape, so that a step asks no tensor operation of them.
        self.views: dict[tuple, tuple[Tensor, Tensor]] = {}


_buffers = _Buffers()


def scratch(name: str, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A contiguous buffer of ``like``'s shape and device (and its dtype, or ``dtype``), whose
    contents are undefined. The same ``name`` returns the same memory until a larger shape is
    asked for: a caller uses it only until it asks for ``name`` again, and never returns it."""
    dtype = like.dtype if dtype is None else dtype
    key = (name, dtype, like.device)
    buf = _buffers.by_key.get(key)
    cached = _buffers.views.get((key, like.shape))
    if cached is not None and cached[0] is buf:
        return cached[1]
    n = like.numel()
    if buf is None or buf.numel() < n:
        buf = _buffers.by_key[key] = torch.empty(n, dtype=dtype, device=like.device)
        # The smaller buffer's views would keep it alive.
        _buffers.views = {k: v for k, v in _buffers.views.items() if k[0] != key}
    view = buf[:n].view(like.shape)
    _buffers.views[(key, like.shape)] = (buf, view)
    return view
