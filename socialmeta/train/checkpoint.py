"""Checkpoints as plain dicts of tensors and primitives (``weights_only`` loadable)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from socialmeta.data.cache import torch_save_atomic


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Writes :obj:`state` atomically (temp file + ``os.replace``)."""
    torch_save_atomic(state, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    r"""Loads a checkpoint with ``torch.load(weights_only=True)``: a file whose pickle
    would run code is refused (``UnpicklingError``), never executed."""
    return torch.load(path, weights_only=True, map_location="cpu")
