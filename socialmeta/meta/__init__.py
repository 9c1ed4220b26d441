"""Meta-learners: pure functions of (params, task batch), vmapped over tasks."""
from socialmeta.meta.learners import (
    LEARNERS,
    InnerLoop,
    adapt,
    meta_gradient,
    outer_loss,
    reference_outer_loss,
)

__all__ = ["LEARNERS", "InnerLoop", "adapt", "meta_gradient", "outer_loss",
           "reference_outer_loss"]
