"""The meta-training loop, checkpoints and resume."""
from socialmeta.train.checkpoint import load_checkpoint, save_checkpoint
from socialmeta.train.loop import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer", "load_checkpoint", "save_checkpoint"]
