"""Where training curves go: a CSV file (always) and, optionally, TensorBoard."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from socialmeta.data import atomic_write


class CSVLogger:
    r"""Appends one row per meta-step to ``<run dir>/log.csv`` (step, loss, validation
    metric or empty, seconds). On resume, rows past the resumed step (written after
    the last checkpoint by the interrupted run) are dropped, so the file reads as one
    uninterrupted run."""

    name = "csv"

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / "log.csv"

    def resume(self, step: int) -> None:
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        if rows:
            with atomic_write(self.path, "w") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)

    def log(self, row: dict[str, float]) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """Scalars ``train/loss`` and ``val/<metric>`` under ``<run dir>/tensorboard``
    (needs the ``tensorboard`` package)."""

    name = "tensorboard"

    def __init__(self, out_dir: str | Path, val_metric: str = "val") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("logger=tensorboard needs tensorboard: pip install tensorboard"
                              ) from e
        self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))
        self.val_metric = val_metric

    def resume(self, step: int) -> None:
        pass

    def log(self, row: dict[str, float]) -> None:
        self.writer.add_scalar("train/loss", row["loss"], row["step"])
        if not math.isnan(row["val"]):
            self.writer.add_scalar(f"val/{self.val_metric}", row["val"], row["step"])

    def close(self) -> None:
        self.writer.close()


LOGGERS = {"csv": CSVLogger, "tensorboard": TensorBoardLogger}
