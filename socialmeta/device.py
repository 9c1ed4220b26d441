"""Choosing the compute device by name."""
from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    r"""``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
    ``"cuda:N"``. Asking for CUDA on a machine without it is a clear error.

    Example:
        >>> device = resolve_device("auto")
        >>> batch = batch.to(device, non_blocking=True)
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for, but torch {torch.__version__} "
                             "sees no CUDA device; use device=cpu or device=auto")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; choose one of {list(DEVICES)} or 'cuda:N'")
