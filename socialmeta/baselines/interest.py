r"""Interest-prediction baselines for ``interest`` tasks.

``variant=center``: the center's labels are ranked from its K labelled ego-net members
(and, for the feature MLP, its own features); scores are ``[T, L]``.
``variant=members`` (e.g. ego-Facebook circles): the members of each label are ranked
from K labelled members per label; scores are ``[T, N, L]``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from socialmeta import progress
from socialmeta.baselines.base import Baseline
from socialmeta.features.interest import label_propagation, neighbour_labels
from socialmeta.tasks import TaskBatch, TaskSampler


class _InterestBaseline(Baseline):
    kinds = ("interest",)

    def _fit(self, sampler: TaskSampler) -> None:
        self.members = sampler.config.variant == "members"
        self.prior = None
        if sampler.config.label_source == "interests":
            observed = sampler.observed["user"]
            self.train_labels = observed.interests[observed.interest_mask].float()
            self.prior = self.train_labels.mean(0)

    def _tie_break(self, scores: Tensor) -> Tensor:
        """Adds the label prior at a weight too small to reorder distinct scores."""
        if self.prior is None or self.members:
            return scores
        return scores + 1e-6 * self.prior / self.prior.max().clamp(min=1e-12)

    @staticmethod
    def _seeds(batch: TaskBatch) -> Tensor:
        """``[T, N, L]`` the support members' labels (zero elsewhere)."""
        return batch.labels * batch.label_mask.unsqueeze(-1)


class LabelPrior(_InterestBaseline):
    """Label frequency among training users (the same ranking for everyone)."""

    name = "prior"

    def scores(self, batch: TaskBatch) -> Tensor:
        if self.members:  # share of the task's labelled members that carry each label
            share = self._seeds(batch).sum(1) / batch.label_mask.sum(1, keepdim=True).clamp(1)
            return share.unsqueeze(1).expand(-1, batch.hop.size(1), -1).clone()
        return self.prior.expand(batch.num_tasks, -1).clone()


class NeighborMajority(_InterestBaseline):
    r"""Center tasks: mean label vector of the K labelled members, each weighted by
    ``1 / hop`` (friends count more than friends of friends). Members tasks: each
    member's mean over its labelled neighbours."""

    name = "neighbors"

    def scores(self, batch: TaskBatch) -> Tensor:
        if self.members:  # each member: the mean labels of its labelled neighbours
            return neighbour_labels(batch.adj, self._seeds(batch),
                                    batch.label_mask.to(batch.adj.dtype))
        w = batch.label_mask.float() / batch.hop.clamp(min=1).float()
        votes = (w.unsqueeze(-1) * batch.labels).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-12)
        return self._tie_break(votes)


class LabelPropagation(_InterestBaseline):
    r"""Label propagation on the task's ego-net (Zhou et al., 2004): the K labelled
    members are seeds, ``F ← α D⁻¹ A F + (1 - α) Y`` for :obj:`iterations` steps,
    the center's row ranks its labels, or every member's row its labels in members
    tasks (``α`` tuned on validation users)."""

    name = "label_propagation"
    grid = {"alpha": (0.8, 0.5, 0.9, 0.99)}
    iterations = 20

    def scores(self, batch: TaskBatch) -> Tensor:
        f = label_propagation(batch.adj, self._seeds(batch), (float(self.hyper["alpha"]),),
                              self.iterations)[..., 0]
        return f if self.members else self._tie_break(f[:, 0])


class FeatureMLP(_InterestBaseline):
    r"""A feature-only MLP (one hidden layer) trained on training users' features and
    labels with binary cross-entropy; uses no graph at all. Needs user features."""

    name = "feature_mlp"
    requires = ("features",)
    grid = {"hidden": (64,), "epochs": (200,)}

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        if self.prior is None or self.members:
            raise ValueError("baseline 'feature_mlp' predicts a center's interests "
                             "(task.variant=center, task.label_source=interests)")
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
        epochs = int(self.hyper["epochs"])
        for epoch in range(epochs):
            progress.tick("  %s: epoch %d/%d", self.name, epoch + 1, epochs)
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(self.mlp(features), labels).backward()
            opt.step()
        self.features = x

    @torch.no_grad()
    def scores(self, batch: TaskBatch) -> Tensor:
        return self.mlp(self.features[batch.center])


INTEREST_BASELINES = {cls.name: cls for cls in (LabelPrior, NeighborMajority,
                                                LabelPropagation, FeatureMLP)}
