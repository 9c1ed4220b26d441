"""``socialmeta-train``: meta-train, early-stop on validation users, test cold-start.

Examples::

    socialmeta-train                                   # synthetic, friend, SAGE, MAML
    socialmeta-train task=interest meta=anil train.steps=500
    socialmeta-train dataset=lastfm dataset.root=../shared/datasets/hetrec-lastfm-2k task=item
    socialmeta-train hydra.run.dir=runs/a resume=auto  # continue an interrupted run
    torchrun --standalone --nproc_per_node=2 -m socialmeta train hydra.run.dir=runs/b

The run is built by :class:`socialmeta.Experiment`; this module parses, prints and
writes the run's files (``metrics.json``, ``results.md``, ``train.log``, checkpoints).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from socialmeta.cli.common import ConfigError, choose, run_hydra

log = logging.getLogger("socialmeta")


def train_command(cfg: DictConfig) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig

    if cfg.resume not in (None, "auto"):
        raise ConfigError(f"unknown resume {cfg.resume!r}; choose one of [null, 'auto']")
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun
        if not any(o.startswith("hydra.run.dir=") for o in HydraConfig.get().overrides.hydra):
            raise ConfigError("under torchrun every rank needs the same run dir: pass "
                              "hydra.run.dir=DIR (the default has the time in it)")
        if int(os.environ.get("RANK", "0")) > 0:
            log.setLevel(logging.WARNING)  # rank 0 alone talks
    if cfg.skip_done and (out_dir / "metrics.json").is_file():
        print(f"already complete, skipped: {out_dir}")
        return json.loads((out_dir / "metrics.json").read_text())
    log.info("socialmeta-train: %s · %s · %s · %s, run dir %s", cfg.dataset.name,
             cfg.task.kind, cfg.model.conv, cfg.meta.learner, out_dir)
    # after the first line: importing torch and PyG takes seconds
    from socialmeta import distributed
    from socialmeta.device import resolve_device
    from socialmeta.train.lock import run_lock

    try:
        device = resolve_device(cfg.device)
    except ValueError as e:
        raise ConfigError(f"device: {e}") from None
    try:
        if distributed.init_from_env(device, cfg.get("dist_timeout", 300)):
            log.info("rank 0 of %d processes (%s)", distributed.world_size(),
                     "nccl" if device.type == "cuda" else "gloo")
        # one process per run folder (rank 0 holds it for a torchrun group)
        with run_lock(out_dir) if distributed.is_main() else contextlib.nullcontext():
            metrics = _train(cfg, out_dir, device)
        # every rank tears the group down together: a rank that destroys it and exits
        # while another still writes files leaves that one's gloo pairs to a closed peer
        distributed.barrier()
        return metrics
    finally:
        distributed.shutdown()


def _train(cfg: DictConfig, out_dir: Path, device) -> dict[str, Any]:
    import torch

    from socialmeta import distributed
    from socialmeta.data import atomic_write
    from socialmeta.eval.report import format_results, format_summary, results_json
    from socialmeta.experiment import Experiment, check_baseline_names
    from socialmeta.train import LOGGERS

    main_rank = distributed.is_main()
    if main_rank:
        (out_dir / "failed.json").unlink(missing_ok=True)  # a re-run replaces an old failure
    torch.manual_seed(cfg.seed)
    if cfg.dataset.get("root"):  # checkpoints name the data absolutely (eval/export anywhere)
        cfg.dataset.root = str(Path(cfg.dataset.root).expanduser().resolve())
    check_baseline_names(cfg.eval.baselines, cfg.task.kind)   # before any training
    exp = Experiment(cfg)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    resuming = cfg.resume == "auto" and (out_dir / "last.pt").is_file()
    if main_rank and not resuming:   # a resumed run's is written once last.pt is checked
        (out_dir / "config.yaml").write_text(config_yaml)
    loggers = []
    for name in cfg.logger.names if main_rank else ():
        logger_cls = choose(LOGGERS, name, "logger")
        try:
            loggers.append(logger_cls(out_dir, exp.train_config.val_metric)
                           if name == "tensorboard" else logger_cls(out_dir))
        except ImportError as e:
            raise ConfigError(str(e)) from None
    exp.fit(out_dir, resume=cfg.resume == "auto", device=device, loggers=loggers)
    if main_rank and resuming:
        (out_dir / "config.yaml").write_text(config_yaml)
    trainer = exp.trainer
    results = {}
    if cfg.eval.get("test", True):  # false: a hyper-parameter search never sees test users
        results = exp.evaluate("test", baselines=cfg.eval.baselines)
    val_metric = exp.train_config.val_metric
    metrics = {"test": results_json(results),
               "best_val": trainer.best, "val_metric": val_metric,
               "steps": trainer.steps_run, "best_step": trainer.step,
               "dataset": exp.graph.name, "task": exp.task.kind,
               "learner": exp.inner.learner, "encoder": cfg.model.conv}
    if not main_rank:
        return metrics
    with atomic_write(out_dir / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=2)
    title = (f"{exp.graph.name} · {exp.task.kind} · {cfg.model.conv} · {exp.inner.learner} · "
             f"{trainer.steps_run} steps · best val {val_metric} {trainer.best:.4f} "
             f"(step {trainer.step})")
    if results:
        with atomic_write(out_dir / "results.md", "w") as f:
            f.write(f"# {title}\n\nTest users, every K and method (mean ± 95% interval "
                    f"over users):\n\n{format_results(results)}\n")
    log.info("done")
    print(title)
    if results:
        print(format_summary(results, cfg.eval.get("summary_shots", 3), val_metric,
                             cfg.eval.get("summary_baselines", 3)))
        print(f"full table: {out_dir / 'results.md'}, metrics: {out_dir / 'metrics.json'}")
    else:
        print("test users not evaluated (eval.test=false)")
    print(f"outputs: {out_dir}")
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``socialmeta-train``."""
    run_hydra(train_command, "train", argv)


if __name__ == "__main__":
    main()
