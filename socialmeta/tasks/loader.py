"""Background sampling of task batches with ``torch.utils.data`` workers."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from socialmeta.tasks.batch import TaskBatch
from socialmeta.tasks.sampler import TaskSampler


class _EpochBatches(Dataset):
    def __init__(self, sampler: TaskSampler, epoch: int, batch_size: int,
                 num_batches: int) -> None:
        self.sampler, self.epoch = sampler, epoch
        self.batch_size, self.num_batches = batch_size, num_batches

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, index: int) -> TaskBatch:
        return self.sampler.train_batch(self.epoch, index, self.batch_size)


def _identity(batch: TaskBatch) -> TaskBatch:
    return batch


class _StepBatches(Dataset):
    """Item ``i``: the tasks ``index`` of meta-step ``start + i`` (its own epoch)."""

    def __init__(self, sampler: TaskSampler, start: int, end: int, index: torch.Tensor
                 ) -> None:
        self.sampler, self.start, self.end, self.index = sampler, start, end, index

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, i: int) -> tuple[int, TaskBatch]:
        step = self.start + i
        return step, self.sampler.train_tasks(step, self.index)


def step_batches(sampler: TaskSampler, start: int, end: int, index: torch.Tensor, *,
                 num_workers: int = 0) -> Iterator[tuple[int, TaskBatch]]:
    r"""``(step, batch)`` for meta-steps ``start .. end - 1``, where step ``s`` trains on
    tasks :obj:`index` of epoch ``s`` (what :class:`~socialmeta.train.Trainer` does).
    With :obj:`num_workers` > 0 the batches are built ahead in background processes
    while the caller computes, from the sampler's tensors moved to shared memory
    (:meth:`TaskSampler.share_memory`: the workers map the graph, not copy it). The
    batches are identical whatever :obj:`num_workers` is.
    """
    dataset = _StepBatches(sampler, start, end, index)
    if num_workers == 0:
        for i in range(len(dataset)):
            yield dataset[i]
        return
    sampler.share_memory()
    yield from DataLoader(dataset, batch_size=None, num_workers=num_workers,
                          collate_fn=_identity, prefetch_factor=2,
                          persistent_workers=False)


def task_batches(
    sampler: TaskSampler,
    epoch: int,
    batch_size: int,
    num_batches: int,
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
    start: int = 0,
) -> Iterator[TaskBatch]:
    r"""Batches ``start .. num_batches - 1`` of training tasks for :obj:`epoch`, built
    in :obj:`num_workers` background processes (0: in this process).

    Because every task is a function of (seed, epoch, task index), the batches are
    identical whatever :obj:`num_workers` is; :obj:`start` resumes mid-epoch.

    Example:
        >>> for batch in task_batches(sampler, epoch=0, batch_size=64, num_batches=100,
        ...                           num_workers=2):
        ...     loss = learner(params, batch.to("cuda", non_blocking=True))
    """
    dataset = _EpochBatches(sampler, epoch, batch_size, num_batches)
    indices = list(range(start, num_batches))
    if num_workers == 0:
        for i in indices:
            batch = dataset[i]
            yield batch.pin_memory() if pin_memory else batch
        return
    loader = DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=None,
                        num_workers=num_workers, collate_fn=_identity,
                        pin_memory=pin_memory, persistent_workers=False)
    yield from loader
