"""``socialmeta-eval``: the cold-start protocol on a trained checkpoint.

Example::

    socialmeta-eval checkpoint=outputs/2026-11-24/18-47-04/best.pt split=test
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from socialmeta.cli.common import ConfigError, run_hydra
from socialmeta.cli.export import restore
from socialmeta.cli.train import (
    cold_start_results,
    format_results,
    inner_loop,
    results_json,
    split_from_config,
    task_config,
)
from socialmeta.data import atomic_write
from socialmeta.tasks import TaskSampler


def eval_command(cfg: DictConfig) -> dict[str, Any]:
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"unknown split {cfg.split!r}; choose one of ['test', 'val']")
    model, params, graph, run = restore(cfg.checkpoint)
    sampler = TaskSampler(graph, split_from_config(graph, run.split),
                          task_config(run.task, run.seed))
    results = cold_start_results(
        model, params, inner_loop(run.meta), cfg.no_adaptation, sampler=sampler,
        split=cfg.split, shots=tuple(cfg.shots), batch_size=cfg.batch_size,
        max_users=cfg.max_users)
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).parent / f"eval-{cfg.split}.json"
    metrics = {cfg.split: results_json(results),
               "checkpoint": str(cfg.checkpoint)}
    with atomic_write(out, "w") as f:
        json.dump(metrics, f, indent=2)
    print(format_results(results))
    print(f"metrics: {out}")
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``socialmeta-eval``."""
    run_hydra(eval_command, "eval", argv)


if __name__ == "__main__":
    main()
