"""Several processes, one run: ``torchrun --nproc_per_node=N socialmeta-train ...``.

Plain ``torch.distributed`` (gloo on CPU, NCCL on CUDA), launched by ``torchrun`` or
``python -m torch.distributed.run``. Every rank holds the whole graph and the same
meta-parameters; each meta-step's T tasks are split into contiguous shards, one per
rank (:func:`shard`); each rank computes the meta-gradient of its shard and the shards'
gradients are averaged with weights ``tasks on the rank / T`` by one all-reduce
(:func:`average_gradients`), so every rank takes the same optimiser step as one process
with the whole batch would. DDP is not used: it cannot wrap the ``torch.func`` inner
loops (DESIGN §10). Evaluation users are split the same way and the per-user metrics
gathered (:func:`gather`). Rank 0 alone logs and writes files.

The process group is global state, as in ``torch.distributed`` itself: functions here
are no-ops in a single process.

Example:
    >>> from socialmeta import distributed
    >>> distributed.init_from_env(timeout_s=300)      # under torchrun; else nothing
    >>> part = distributed.shard(64)                  # this rank's tasks of the batch
"""
from __future__ import annotations

import datetime as dt
import os

import torch
import torch.distributed as torch_dist
from torch import Tensor

from socialmeta.config import ConfigError

#: the environment torchrun sets for every worker
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """Whether this process was started by torchrun with more than one worker."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_initialized() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return torch_dist.get_rank() if is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return torch_dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """Whether this process logs and writes files (rank 0)."""
    return rank() == 0


def init_from_env(device: torch.device | str = "cpu", timeout_s: float = 300.0) -> bool:
    r"""Joins the process group that torchrun describes in the environment (gloo for
    CPU, NCCL for CUDA), with :obj:`timeout_s` on every collective: a rank that dies
    makes the others fail with a message after that long instead of hanging. Returns
    whether a group was joined (``False`` in a single process).

    Raises:
        ConfigError: The environment names several workers but no usable rendezvous
            (``MASTER_ADDR``/``MASTER_PORT`` missing: start with torchrun), or the
            rendezvous cannot be reached.
    """
    if is_initialized() or not launched():
        return is_initialized()
    missing = [k for k in ENV[:2] + ENV[3:] if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {missing} not set: "
                          "start several processes with torchrun --nproc_per_node=N "
                          "(or python -m torch.distributed.run), which sets them")
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        torch_dist.init_process_group(backend, timeout=dt.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"cannot join the process group at {os.environ['MASTER_ADDR']}:"
                          f"{os.environ['MASTER_PORT']} as rank {os.environ['RANK']} of "
                          f"{os.environ['WORLD_SIZE']} ({backend}): {first}") from None
    return True


def shutdown() -> None:
    if is_initialized():
        torch_dist.destroy_process_group()


def shard(num: int, part: int | None = None, parts: int | None = None) -> slice:
    r"""The contiguous share of ``range(num)`` of rank :obj:`part` of :obj:`parts`
    (default: this rank of the group). When :obj:`parts` does not divide :obj:`num`,
    the first ``num % parts`` ranks take one more (as ``numpy.array_split``); the
    weighted average of :func:`average_gradients` keeps the step exactly one
    process's."""
    part = rank() if part is None else part
    parts = world_size() if parts is None else parts
    size, extra = divmod(num, parts)
    start = part * size + min(part, extra)
    return slice(start, start + size + (part < extra))


def check_batch(batch_size: int) -> None:
    """A meta-batch needs at least one task per rank."""
    if batch_size < world_size():
        raise ConfigError(f"train.batch_size={batch_size} is smaller than the {world_size()} "
                          "processes: every rank needs at least one task of each meta-batch")


def average_gradients(grads: dict[str, Tensor], loss: Tensor, share: float
                      ) -> tuple[dict[str, Tensor], Tensor]:
    r"""The average over ranks of :obj:`grads` and :obj:`loss`, rank ``r`` weighted by
    :obj:`share` (its tasks / T), in one flat all-reduce. Identity in one process."""
    if not is_initialized():
        return grads, loss
    names = list(grads)
    flat = torch.cat([grads[n].reshape(-1) for n in names] + [loss.reshape(1)]) * share
    torch_dist.all_reduce(flat)
    out, offset = {}, 0
    for n in names:
        size = grads[n].numel()
        out[n] = flat[offset:offset + size].view_as(grads[n])
        offset += size
    return out, flat[-1]


def gather(values: Tensor) -> Tensor:
    """The concatenation over ranks (in rank order) of each rank's 1-d :obj:`values`;
    :obj:`values` itself in one process."""
    if not is_initialized():
        return values
    parts: list = [None] * world_size()
    torch_dist.all_gather_object(parts, values.cpu())
    return torch.cat(parts)


def barrier() -> None:
    if is_initialized():
        torch_dist.barrier()
