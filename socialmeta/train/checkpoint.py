"""Checkpoints as plain dicts of tensors and primitives (``weights_only`` loadable)."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from socialmeta.data.cache import torch_save_atomic
from socialmeta.errors import InputError

#: what every training checkpoint holds
REQUIRED_KEYS = ("params", "optimizer", "step", "best", "bad_evals", "rng", "config")


class CheckpointError(InputError):
    r"""A checkpoint file that cannot be used; the message names the file and why.

    Args:
        path: The checkpoint file.
        what: What is wrong with it.
    """

    def __init__(self, path: str | Path, what: str) -> None:
        self.path, self.what = str(path), what
        super().__init__(f"checkpoint {self.path}: {what}")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Writes :obj:`state` atomically (temp file + ``os.replace``)."""
    torch_save_atomic(state, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    r"""Loads a training checkpoint with ``torch.load(weights_only=True)``: a file whose
    pickle would run code is refused, never executed.

    Raises:
        CheckpointError: If the file is missing, empty, truncated or not a torch file,
            would run code when unpickled, or lacks one of :data:`REQUIRED_KEYS`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "does not exist" if not path.exists() else "is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise CheckpointError(path, "not a torch checkpoint (torch.save writes a zip "
                                  "archive; this file has no zip header)")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # "Unsupported global", "unsupported GLOBAL"
            raise CheckpointError(path, "refused: unpickling it would run code or build "
                                  "objects other than tensors and primitives (loaded with "
                                  "weights_only=True; nothing was executed)") from None
        raise CheckpointError(path, "not a torch checkpoint (its pickle is corrupt)") from None
    except Exception as e:  # zip and storage errors of a truncated or damaged file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(path, f"unreadable, truncated or damaged ({type(e).__name__}: "
                              f"{first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a socialmeta "
                              "training checkpoint (a dict)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(path, f"missing key(s) {missing}: not a socialmeta training "
                              "checkpoint")
    if not isinstance(state["params"], dict) or not isinstance(state["config"], dict):
        raise CheckpointError(path, "'params' and 'config' must be dicts")
    for name, value in state["params"].items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(path, f"parameter {name!r} is a {type(value).__name__}, "
                                  "not a tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(path, f"parameter {name!r} holds NaN or infinite values "
                                  "(saved from a diverged run?)")
    return state
