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


#: the config sections that make a run what it is: a checkpoint written under other
#: values of these is another run's (``train``/``eval`` may change between resumes)
RUN_SECTIONS = ("dataset", "task", "model", "meta", "split", "seed")


def check_resumable(state: dict[str, Any], path: str | Path, config: dict[str, Any],
                    data_sha256: str | None, params: dict[str, torch.Tensor]) -> None:
    r"""Whether a run with :obj:`config` (resolved, plain), on data with digest
    :obj:`data_sha256` and with meta-parameters :obj:`params`, may continue from the
    checkpoint :obj:`state` read from :obj:`path` (``resume=auto``).

    Raises:
        CheckpointError: Naming the first difference: other data, another value of a
            :data:`RUN_SECTIONS` key, or parameters the model does not have (or lacks,
            or of another shape).
    """
    saved = state.get("data_sha256")
    if saved is not None and data_sha256 is not None and saved != data_sha256:
        raise CheckpointError(path, f"was written on other data (data hash {saved[:12]} "
                              f"vs {data_sha256[:12]} now); resume=auto continues the same "
                              "run: choose a new hydra.run.dir")
    old = state.get("config") or {}
    for section in RUN_SECTIONS:
        if section in old and section in config and old[section] != config[section]:
            key, before, now = _first_difference(section, old[section], config[section])
            raise CheckpointError(path, f"was written by a run with {key}={before!r}, this "
                                  f"run has {now!r}; resume=auto continues the same run: "
                                  "choose a new hydra.run.dir")
    extra = sorted(set(state["params"]) - set(params))
    missing = sorted(set(params) - set(state["params"]))
    if extra or missing:
        which = (f"has parameter {extra[0]!r} that this model does not" if extra
                 else f"lacks parameter {missing[0]!r} that this model has")
        raise CheckpointError(path, f"{which} (made for another model?)")
    for name, p in params.items():
        if tuple(state["params"][name].shape) != tuple(p.shape):
            raise CheckpointError(path, f"parameter {name!r} has shape "
                                  f"{tuple(state['params'][name].shape)}, this model's is "
                                  f"{tuple(p.shape)} (made for another model?)")


def _first_difference(key: str, a: Any, b: Any) -> tuple[str, Any, Any]:
    """The dotted key of the first value that differs between two nested configs."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return _first_difference(f"{key}.{k}", a.get(k), b.get(k))
    return key, a, b
