"""Numeric features as users give them: z-scored on the training users.

A raw ``age`` column (16-70) beside unit-scale columns gives a GNN inputs hundreds of
times larger than the rest: training diverges or ranks by that column alone. The runs
on your own data (``dataset=csv``, ``dataset=recbole``) therefore standardise every
user feature column on the **training** users of the split (validation and test users
never enter the statistics) and every item feature column on the catalogue; the
statistics are recomputed from the data and split a checkpoint names, and written into
the export manifest for new users served elsewhere. ``dataset.standardize=false`` keeps
the features as given.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from socialmeta.data.graph import SocialGraph


@dataclass(frozen=True)
class FeatureScaling:
    r"""Per-column ``(x - mean) / scale`` of one node type's features.

    Args:
        names: The columns' names.
        mean: ``[F]`` means over the rows the statistics came from.
        scale: ``[F]`` standard deviations there; 1 for a column without spread (it
            is only centred).
    """

    names: tuple[str, ...]
    mean: Tensor
    scale: Tensor

    @classmethod
    def fit(cls, x: Tensor, names: list[str] | tuple[str, ...]) -> FeatureScaling:
        """The statistics of the rows of :obj:`x` (float64 sums, stored as float32)."""
        rows = x.double()
        mean = rows.mean(0)
        std = rows.std(0, unbiased=False) if rows.size(0) > 1 else torch.zeros_like(mean)
        scale = torch.where(std > 1e-12, std, torch.ones_like(std))
        return cls(tuple(names), mean.float(), scale.float())

    def apply(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.scale

    def to_dict(self) -> dict[str, list]:
        """Plain lists, for a JSON manifest."""
        return {"names": list(self.names), "mean": self.mean.tolist(),
                "scale": self.scale.tolist()}


def standardize_features(graph: SocialGraph, train_users: Tensor
                         ) -> tuple[SocialGraph, dict[str, FeatureScaling]]:
    r"""A shallow copy of :obj:`graph` whose user features are z-scored on
    :obj:`train_users` (node indices) and whose item features are z-scored on every
    item, with the statistics per node type (``{"user": ..., "item": ...}``, only the
    types that have feature columns). :obj:`graph` itself is left as it was."""
    out = copy.copy(graph)
    scaling: dict[str, FeatureScaling] = {}
    x = graph["user"].x
    if x.size(1):
        scaling["user"] = FeatureScaling.fit(x[train_users], graph.feature_names)
        out["user"].x = scaling["user"].apply(x)
    if graph.has_items and "x" in graph["item"] and graph["item"].x.size(1):
        item_x = graph["item"].x
        names = [f"item_feature_{j}" for j in range(item_x.size(1))]
        scaling["item"] = FeatureScaling.fit(item_x, names)
        out["item"].x = scaling["item"].apply(item_x)
    return out, scaling
