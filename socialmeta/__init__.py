"""socialmeta: meta-learning over ego-networks for cold-start users in social graphs."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Experiment", "Recommender", "__version__"]


def __getattr__(name: str) -> Any:
    # lazy, so that ``import socialmeta`` (e.g. for the version) stays light
    if name == "Recommender":
        from socialmeta.recommend import Recommender

        return Recommender
    if name == "Experiment":
        from socialmeta.experiment import Experiment

        return Experiment
    raise AttributeError(f"module 'socialmeta' has no attribute {name!r}")
