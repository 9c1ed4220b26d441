"""Metrics and the cold-start evaluation protocol."""
from socialmeta.eval.metrics import mean_ci, rank_candidates, ranking_metrics

__all__ = ["mean_ci", "rank_candidates", "ranking_metrics"]
