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


def eval_command(cfg: DictConfig) -> dict[str, Any]:
    from socialmeta.data import atomic_write
    from socialmeta.eval.report import format_results, results_json
    from socialmeta.experiment import Experiment, cold_start_results

    if cfg.split not in ("val", "test"):
        raise ConfigError(f"unknown split {cfg.split!r}; choose one of ['test', 'val']")
    exp = Experiment.from_checkpoint(cfg.checkpoint,
                                     allow_other_data=cfg.get("allow_other_data", False))
    settings = exp.evaluation_settings(cfg.split, tuple(cfg.shots))
    settings.update(batch_size=cfg.batch_size, max_users=cfg.max_users)
    results = cold_start_results(exp.model, exp.params, exp.inner, cfg.no_adaptation,
                                 **settings)
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).parent / f"eval-{cfg.split}.json"
    metrics = {cfg.split: results_json(results), "checkpoint": str(cfg.checkpoint)}
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
