"""The meta-training loop, checkpoints, resume and loggers."""
from socialmeta.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from socialmeta.train.loggers import LOGGERS, CSVLogger, TensorBoardLogger
from socialmeta.train.loop import DivergenceError, TrainConfig, Trainer

__all__ = ["LOGGERS", "CheckpointError", "CSVLogger", "DivergenceError", "TensorBoardLogger", "TrainConfig", "Trainer",
           "load_checkpoint", "save_checkpoint"]
