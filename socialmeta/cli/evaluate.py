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
from socialmeta.cli.train import format_results, inner_loop, task_config
from socialmeta.data import atomic_write
from socialmeta.eval.protocol import evaluate_cold_start
from socialmeta.meta import InnerLoop
from socialmeta.tasks import TaskSampler, split_users


def eval_command(cfg: DictConfig) -> dict[str, Any]:
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"unknown split {cfg.split!r}; choose one of ['test', 'val']")
    model, params, graph, run = restore(cfg.checkpoint)
    split = split_users(graph, val_fraction=run.split.val_fraction,
                        test_fraction=run.split.test_fraction, seed=run.split.seed,
                        test_max_degree=run.split.test_max_degree)
    sampler = TaskSampler(graph, split, task_config(run.task, run.seed))
    inner = inner_loop(run.meta)
    settings = dict(sampler=sampler, split=cfg.split, shots=tuple(cfg.shots),
                    batch_size=cfg.batch_size, max_users=cfg.max_users)
    results = {inner.learner: evaluate_cold_start(model, params, inner=inner, **settings)}
    if cfg.no_adaptation and inner.learner != "noadapt":
        results[f"{inner.learner} without test-time adaptation"] = evaluate_cold_start(
            model, params, inner=InnerLoop("noadapt"), **settings)
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).parent / f"eval-{cfg.split}.json"
    metrics = {cfg.split: {m: {str(k): v for k, v in r.items()} for m, r in results.items()},
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
