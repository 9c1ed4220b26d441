"""The meta-training loop, checkpoints, resume and loggers."""
from socialmeta.train.checkpoint import load_checkpoint, save_checkpoint
from socialmeta.train.loggers import LOGGERS, CSVLogger, TensorBoardLogger
from socialmeta.train.loop import TrainConfig, Trainer

__all__ = ["LOGGERS", "CSVLogger", "TensorBoardLogger", "TrainConfig", "Trainer",
           "load_checkpoint", "save_checkpoint"]
