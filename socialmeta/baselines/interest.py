r"""Interest-prediction baselines for ``interest`` tasks with ``variant=center``: the
center's labels are ranked from its K labelled ego-net members (and, for the
feature MLP, its own features)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from socialmeta.baselines.base import Baseline
from socialmeta.tasks import TaskBatch, TaskSampler


class _InterestBaseline(Baseline):
    kinds = ("interest",)

    def _fit(self, sampler: TaskSampler) -> None:
        if sampler.config.variant != "center" or sampler.config.label_source != "interests":
            raise ValueError(f"baseline {self.name!r} predicts a center's interests "
                             "(task.variant=center, task.label_source=interests)")
        observed = sampler.observed["user"]
        labelled = observed.interest_mask
        self.train_labels = observed.interests[labelled].float()
        self.prior = self.train_labels.mean(0)

    def _tie_break(self, scores: Tensor) -> Tensor:
        """Adds the label prior at a weight too small to reorder distinct scores."""
        return scores + 1e-6 * self.prior / self.prior.max().clamp(min=1e-12)


class LabelPrior(_InterestBaseline):
    """Label frequency among training users (the same ranking for everyone)."""

    name = "prior"

    def scores(self, batch: TaskBatch) -> Tensor:
        return self.prior.expand(batch.num_tasks, -1).clone()


class NeighborMajority(_InterestBaseline):
    r"""Mean label vector of the K labelled members, each weighted by
    ``1 / hop`` (friends count more than friends of friends)."""

    name = "neighbors"

    def scores(self, batch: TaskBatch) -> Tensor:
        w = batch.label_mask.float() / batch.hop.clamp(min=1).float()
        votes = (w.unsqueeze(-1) * batch.labels).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-12)
        return self._tie_break(votes)


class LabelPropagation(_InterestBaseline):
    r"""Label propagation on the task's ego-net (Zhou et al., 2004): the K labelled
    members are seeds, ``F ← α D⁻¹ A F + (1 - α) Y`` for :obj:`iterations` steps,
    the center's row ranks its labels (``α`` tuned on validation users)."""

    name = "label_propagation"
    grid = {"alpha": (0.8, 0.5, 0.9, 0.99)}
    iterations = 20

    def scores(self, batch: TaskBatch) -> Tensor:
        alpha = float(self.hyper["alpha"])
        seeds = batch.labels * batch.label_mask.unsqueeze(-1)
        walk = batch.adj / batch.adj.sum(-1, keepdim=True).clamp(min=1)
        f = seeds.clone()
        for _ in range(self.iterations):
            f = alpha * walk @ f + (1 - alpha) * seeds
        return self._tie_break(f[:, 0])


class FeatureMLP(_InterestBaseline):
    r"""A feature-only MLP (one hidden layer) trained on training users' features and
    labels with binary cross-entropy; uses no graph at all. Needs user features."""

    name = "feature_mlp"
    grid = {"hidden": (64,), "epochs": (200,)}

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        x = sampler.graph["user"].x.float()
        if x.size(1) == 0:
            raise ValueError(f"baseline 'feature_mlp' needs user features; dataset "
                             f"{sampler.graph.name!r} has none")
        labelled = sampler.observed["user"].interest_mask
        gen = torch.Generator().manual_seed(sampler.config.seed)
        hidden = int(self.hyper["hidden"])
        self.mlp = nn.Sequential(nn.Linear(x.size(1), hidden), nn.ReLU(),
                                 nn.Linear(hidden, self.prior.numel()))
        for p in self.mlp.parameters():  # seeded init, independent of the global RNG
            p.data.uniform_(-1, 1, generator=gen).mul_(p.size(-1) ** -0.5)
        opt = torch.optim.Adam(self.mlp.parameters(), lr=1e-2)
        features, labels = x[labelled], self.train_labels
        for _ in range(int(self.hyper["epochs"])):
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(self.mlp(features), labels).backward()
            opt.step()
        self.features = x

    @torch.no_grad()
    def scores(self, batch: TaskBatch) -> Tensor:
        return self.mlp(self.features[batch.center])


INTEREST_BASELINES = {cls.name: cls for cls in (LabelPrior, NeighborMajority,
                                                LabelPropagation, FeatureMLP)}
