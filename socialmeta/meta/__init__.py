"""Meta-learners: pure functions of (params, task batch), vmapped over tasks."""
from socialmeta.meta.inference import candidate_scores, global_to_local, interest_logits
from socialmeta.meta.learners import (
    LEARNERS,
    InnerLoop,
    adapt,
    meta_gradient,
    meta_parameters,
    outer_loss,
    reference_outer_loss,
)

__all__ = ["LEARNERS", "InnerLoop", "adapt", "candidate_scores", "global_to_local",
           "interest_logits",
           "meta_gradient", "meta_parameters",
           "outer_loss", "reference_outer_loss"]
