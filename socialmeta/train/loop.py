"""The meta-training loop: optimiser, validation, early stopping, checkpoints, resume."""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from socialmeta import distributed, progress
from socialmeta.errors import InputError
from socialmeta.eval.protocol import evaluate_cold_start
from socialmeta.meta import InnerLoop, meta_gradient, meta_parameters
from socialmeta.meta.learners import MAX_LR
from socialmeta.tasks import TaskSampler
from socialmeta.tasks.loader import step_batches
from socialmeta.train.checkpoint import check_resumable, load_checkpoint, save_checkpoint
from socialmeta.train.loggers import CSVLogger


class DivergenceError(InputError):
    """Meta-training diverged: the loss or a meta-gradient became NaN or infinite.
    The message names the step and what to lower; the checkpoints on disk are the last
    finite ones (nothing is written after the first non-finite value)."""


PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    r"""Meta-training settings.

    Args:
        steps: Meta-steps (one batch of tasks each). (default: :obj:`300`)
        batch_size: T, tasks per meta-step. (default: :obj:`32`)
        lr: Adam learning rate of the meta-parameters. (default: :obj:`3e-3`)
        eval_every: Validate every this many steps. (default: :obj:`50`)
        patience: Stop after this many validations without improvement.
        val_shots: K of the validation tasks. (default: :obj:`3`)
        val_metric: Metric that selects the best checkpoint. (default: ``"recall@20"``)
        val_users: At most this many validation users per check (speed).
        val_batch_size: Validation tasks scored at once (memory: a whole-graph scorer holds
            ``[val_batch_size, U, ...]`` tensors; lower it for 10^6 users).
        stop_after: Stop (as if interrupted) after this many steps of this run.
        num_workers: Background processes that build the next meta-batches while the
            current one trains (0: built in the loop). Batches are the same either way.
            (default: :obj:`0`)
        precision: ``"fp32"`` or ``"bf16"``: the meta-gradient of the batched path under
            ``torch.autocast`` in bfloat16 (matrix products in bf16, parameters,
            optimiser state and evaluation in float32). (default: ``"fp32"``)
        eval_at_start: Validate the initial meta-parameters too (step 0, before any
            training), so that early stopping can keep them: for models that start as
            a baseline (``HybridInterestModel.start_from``). (default: :obj:`False`)
    """

    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    eval_every: int = 50
    patience: int = 3
    val_shots: int = 3
    val_metric: str = "recall@20"
    val_users: int | None = 200
    val_batch_size: int = 64
    stop_after: int | None = None
    precision: str = "fp32"
    num_workers: int = 0
    eval_at_start: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "patience", "val_shots",
                     "val_users", "val_batch_size", "stop_after", "num_workers"):
            value = getattr(self, name)
            lowest = 0 if name in ("steps", "stop_after", "num_workers") else 1
            if value is None and name in ("val_users", "stop_after"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
                raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")
        if (not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool)
                or not 0 < self.lr <= MAX_LR):
            raise ValueError(f"lr must be a positive number of at most {MAX_LR:g}, got "
                             f"{self.lr!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of "
                             f"{list(PRECISIONS)}")
        if not isinstance(self.eval_at_start, bool):
            raise ValueError(f"eval_at_start must be true or false, got {self.eval_at_start!r}")
        if not isinstance(self.val_metric, str):
            raise ValueError(f"val_metric must be a metric name, got {self.val_metric!r}")


class Trainer:
    r"""Meta-trains :obj:`model` with :obj:`inner`'s learner on :obj:`sampler`'s tasks.

    Step ``s`` trains on the tasks of "epoch" ``s`` (a fresh seeded permutation of the
    training centers), so the task stream is a function of the step alone and a
    resumed run sees exactly the tasks an uninterrupted run would. ``last.pt`` and
    ``best.pt`` hold the meta-parameters, the optimiser state, the step, the early-
    stopping state, the RNG state and the config; they load with
    ``torch.load(weights_only=True)`` and are written atomically. With
    :obj:`data_sha256` (:func:`~socialmeta.data.cache.graph_digest` of the graph) they
    also record the data they were trained on, so that a checkpoint is not restored on
    other data by mistake. With :obj:`start_candidate` (meta-parameters with the same
    names, e.g. the model as its best pair feature channel:
    ``model.pair_init=fallback``) step 0 validates those as the first best checkpoint,
    which training from the model's own parameters must then beat.

    Example:
        >>> trainer = Trainer(model, InnerLoop("maml"), sampler, TrainConfig(), "runs/x")
        >>> history = trainer.fit(resume=True)
    """

    def __init__(self, model: nn.Module, inner: InnerLoop, sampler: TaskSampler,
                 config: TrainConfig, out_dir: str | Path,
                 device: torch.device | str = "cpu", run_config: dict | None = None,
                 loggers: Sequence[Any] | None = None, data_sha256: str | None = None,
                 start_candidate: dict[str, torch.Tensor] | None = None) -> None:
        self.data_sha256 = data_sha256
        self.start_candidate = start_candidate
        self.model, self.inner, self.sampler, self.config = model, inner, sampler, config
        self.out_dir, self.device = Path(out_dir), torch.device(device)
        self.run_config = run_config or {}
        self.loggers = list(loggers) if loggers is not None else [CSVLogger(self.out_dir)]
        if not distributed.is_main():  # rank 0 alone logs
            self.loggers = []
        self.model.to(self.device)
        self.params = meta_parameters(model, inner)
        self.optimizer = torch.optim.Adam(self.params.values(), lr=config.lr)
        self.step, self.best, self.bad_evals = 0, -math.inf, 0
        self.steps_run = 0  # steps done when fit() returned (step is the best's after a load)

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        return {"params": {n: p.detach().cpu() for n, p in self.params.items()},
                "optimizer": self.optimizer.state_dict(), "step": self.step,
                "best": self.best, "bad_evals": self.bad_evals,
                "rng": torch.get_rng_state(), "learner": self.inner.learner,
                "train_config": asdict(self.config), "config": self.run_config,
                "data_sha256": self.data_sha256}

    def load_state(self, state: dict[str, Any]) -> None:
        self._copy_params(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.best, self.bad_evals = state["step"], state["best"], state["bad_evals"]
        torch.set_rng_state(state["rng"])

    # ------------------------------------------------------------------- loop
    def validate(self) -> float:
        result = evaluate_cold_start(self.model, self.params, self.sampler, self.inner,
                                     "val", (self.config.val_shots,),
                                     batch_size=self.config.val_batch_size,
                                     max_users=self.config.val_users)
        return result[self.config.val_shots][self.config.val_metric]["mean"]

    def fit(self, resume: bool = False) -> list[dict[str, float]]:
        r"""Runs (or, with :obj:`resume`, continues from ``last.pt``) meta-training.
        Returns the rows written to ``log.csv``."""
        cfg, last = self.config, self.out_dir / "last.pt"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        distributed.check_batch(cfg.batch_size)
        if resume and last.is_file():
            state = load_checkpoint(last)
            check_resumable(state, last, self.run_config, self.data_sha256, self.params)
            self.load_state(state)
            progress.info("resumed from %s at step %d", last, self.step)
        for logger in self.loggers:
            logger.resume(self.step)
        rows: list[dict[str, float]] = []
        if ((cfg.eval_at_start or self.start_candidate is not None) and self.step == 0
                and self.best == -math.inf):
            rows.append(self._validate_start())
        progress.info("meta-training %s: steps %d-%d of %d tasks, validation every %d",
                      self.inner.learner, self.step + 1, cfg.steps, cfg.batch_size,
                      cfg.eval_every)
        end = cfg.steps if cfg.stop_after is None else min(cfg.steps,
                                                           self.step + cfg.stop_after)
        start_step, started = self.step, time.perf_counter()
        if self.bad_evals >= cfg.patience:  # resumed after early stopping: nothing to do
            end = self.step
        index = torch.arange(cfg.batch_size)[distributed.shard(cfg.batch_size)]
        batches = step_batches(self.sampler, self.step, end, index,
                               num_workers=cfg.num_workers)
        for step, batch in batches:
            assert step == self.step
            if hasattr(self.model, "begin_step"):   # step-keyed model randomness
                self.model.begin_step(self.step)
            loss, grads = self._meta_gradient(batch, index.numel() / cfg.batch_size)
            self._check_finite(loss, grads)
            for name, p in self.params.items():
                p.grad = grads[name]
            self.optimizer.step()
            self.step += 1
            row = {"step": self.step, "loss": float(loss), "val": float("nan"),
                   "seconds": round(time.perf_counter() - started, 2)}
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                row["val"] = self.validate()
                if row["val"] > self.best:
                    self.best, self.bad_evals = row["val"], 0
                    self._save(self.out_dir / "best.pt")
                else:
                    self.bad_evals += 1
                self._save(last)
            rows.append(row)
            for logger in self.loggers:
                logger.log(row)
            if row["val"] == row["val"]:  # not NaN: a validation step
                progress.info("step %d/%d  loss %.4f  val %s %.4f%s", self.step, cfg.steps,
                              row["loss"], cfg.val_metric, row["val"],
                              "  (best)" if self.bad_evals == 0 else "")
            else:
                progress.tick("step %d/%d  loss %.4f  (%.1f steps/s)", self.step, cfg.steps,
                              row["loss"], (self.step - start_step) / max(row["seconds"], 1e-9))
            if self.bad_evals >= cfg.patience:  # early stop: no batch is built past it
                break
        batches.close()  # stops background workers of an early-stopped run
        self._save(last)
        for logger in self.loggers:
            logger.close()
        self.steps_run = self.step
        return rows

    def _validate_start(self) -> dict[str, float]:
        """Validates the initial meta-parameters (step 0), or the start candidate when
        there is one: they become the best checkpoint, which later validations must
        beat. Training goes on from the initial meta-parameters either way."""
        initial = None
        if self.start_candidate is not None:
            initial = {n: p.detach().clone() for n, p in self.params.items()}
            self._copy_params(self.start_candidate)
        row = {"step": 0, "loss": float("nan"), "val": self.validate(), "seconds": 0.0}
        self.best = row["val"]
        self._save(self.out_dir / "best.pt")
        if initial is not None:
            self._copy_params(initial)
        self._save(self.out_dir / "last.pt")
        for logger in self.loggers:
            logger.log(row)
        progress.info("step 0/%d  val %s %.4f  (%s)", self.config.steps,
                      self.config.val_metric, row["val"],
                      "initial parameters" if initial is None else "the start candidate")
        return row

    def _check_finite(self, loss: torch.Tensor, grads: dict[str, torch.Tensor]) -> None:
        """Stops meta-training at the first non-finite loss or meta-gradient, before the
        optimiser applies it (so no checkpoint ever holds a NaN)."""
        bad = None if torch.isfinite(loss).all() else "loss"
        if bad is None:
            bad = next((n for n, g in grads.items() if not torch.isfinite(g).all()), None)
            bad = None if bad is None else f"meta-gradient of {bad!r}"
        if bad is not None:
            raise DivergenceError(
                f"meta-training diverged at step {self.step + 1}: the {bad} is "
                f"{float(loss) if bad == 'loss' else 'NaN or infinite'}; lower train.lr "
                f"(now {self.config.lr:g}) or meta.inner_lr (now {self.inner.lr:g}). The "
                f"checkpoints in {self.out_dir} are from the last finite step")

    def _copy_params(self, values: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(values[name].to(p.device))

    def _meta_gradient(self, batch, share: float
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss and meta-gradient of this step's :obj:`batch`: under torchrun this
        rank's shard of the T tasks (a :obj:`share` of them), averaged over the ranks
        weighted by their task counts, equal to one process's."""
        if self.device.type == "cuda":  # one pinned host buffer per tensor, async copy
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.config.precision == "bf16"):
            loss, grads = meta_gradient(self.model, batch, self.inner, self.params)
        grads = {n: g.float() for n, g in grads.items()}
        grads, loss = distributed.average_gradients(grads, loss, share)
        return loss, grads

    def _save(self, path: Path) -> None:
        """Rank 0 writes the checkpoint; the others wait until it is there."""
        if distributed.is_main():
            save_checkpoint(path, self.state())
        distributed.barrier()
