"""Counter-based randomness: every random choice is a hash of what it is about.

A task's randomness is ``hash(seed, epoch, task_index, ...)``, never the state of a
shared generator, so a task is the same whatever batch, worker or rank builds it, and
the hashes of thousands of tasks are computed in one vectorised call.
"""
from __future__ import annotations

import torch
from torch import Tensor

_MASK = (1 << 64) - 1


def _to_signed(v: int) -> int:
    v &= _MASK
    return v - (1 << 64) if v >= 1 << 63 else v


_GOLDEN = _to_signed(0x9E3779B97F4A7C15)
_M1 = _to_signed(0xBF58476D1CE4E5B9)
_M2 = _to_signed(0x94D049BB133111EB)


def _shr(x: Tensor, s: int) -> Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def mix(x: Tensor) -> Tensor:
    """The splitmix64 finaliser on int64 tensors (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ _shr(x, 30)) * _M1
    x = (x ^ _shr(x, 27)) * _M2
    return x ^ _shr(x, 31)


def hash_keys(*keys: Tensor | int) -> Tensor:
    r"""A 64-bit hash of the broadcast :obj:`keys` (ints or int64 tensors).

    Example:
        >>> h = hash_keys(seed, epoch, task_index.view(-1, 1), node_ids)
    """
    out: Tensor | None = None
    for k in keys:
        k = torch.as_tensor(k, dtype=torch.long)
        out = mix(k) if out is None else mix(out ^ k)
    assert out is not None, "hash_keys needs at least one key"
    return out


def uniform(*keys: Tensor | int) -> Tensor:
    """Floats in ``[0, 1)`` determined by :obj:`keys` (53 random bits)."""
    return _shr(hash_keys(*keys), 11).double() / float(1 << 53)


def randint(high: Tensor | int, *keys: Tensor | int) -> Tensor:
    """Integers in ``[0, high)`` determined by :obj:`keys`."""
    return (uniform(*keys) * torch.as_tensor(high, dtype=torch.double)).long()


def priority(*keys: Tensor | int) -> Tensor:
    """Non-negative int64 priorities determined by :obj:`keys` (sort keys for random
    choices; a negative value always sorts first)."""
    return _shr(hash_keys(*keys), 1)
