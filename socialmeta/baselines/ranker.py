r"""A learned non-meta ranker over heuristic scores, trained with simulated cold start.

The strongest simple competitor of a meta-learner is not one heuristic but a small
model that weighs many of them. :class:`LearnedRanker` scores every candidate by an
MLP over that candidate's heuristic scores (several PageRank restart probabilities,
common neighbours, Adamic-Adar, resource allocation, Jaccard, 3-paths, degree, and the
similarities that the task's context allows; for items: popularity, ItemKNN, UserKNN
and, with the ``friends`` context, social popularity). It is trained on **training
users only**: a seeded subset of them is turned into pseudo-new users (their links are
removed from the graph the heuristics read, exactly as for real val/test users), their
K-shot tasks are built by the same sampler, and the loss is a softmax over the full
candidate list of each task (never sampled pairs alone).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from socialmeta import progress
from socialmeta.baselines.base import (
    Baseline,
    candidate_normalized,
    friend_matrix,
    support_matrix,
)
from socialmeta.baselines.friend import (
    AdamicAdar,
    CommonNeighbors,
    FeatureSimilarity,
    FriendsTaste,
    Jaccard,
    PersonalizedPageRank,
    Popularity,
    ResourceAllocation,
    TasteSimilarity,
)
from socialmeta.baselines.item import ItemKNN, ItemPopularity, SocialPopularity, UserKNN
from socialmeta.baselines.new_item import (
    GenreSimilarity,
    ItemToUserKNN,
    SocialSpread,
    UserActivity,
)
from socialmeta.tasks import (
    TaskBatch,
    TaskSampler,
    TemporalSplit,
    split_temporal,
)
from socialmeta.tasks.new_item import ItemSplit, item_feature_columns, split_items
from socialmeta.tasks.sampler import USER_TARGETS


def _components(sampler: TaskSampler) -> list[Baseline]:
    """The heuristics whose scores are the ranker's features (unfitted)."""
    cfg = sampler.config
    if cfg.kind == "new_item":
        out: list[Baseline] = [PersonalizedPageRank(alpha=a) for a in (0.05, 0.15, 0.3, 0.5)]
        out += [CommonNeighbors(), AdamicAdar(), ResourceAllocation(), Jaccard(),
                Popularity(), SocialSpread(), UserActivity(), ItemToUserKNN()]
        if cfg.observes("features") and item_feature_columns(sampler.graph).numel():
            out.append(GenreSimilarity())
        return out
    if cfg.kind == "friend":
        out: list[Baseline] = [PersonalizedPageRank(alpha=a) for a in (0.05, 0.15, 0.3, 0.5)]
        out += [CommonNeighbors(), AdamicAdar(), ResourceAllocation(), Jaccard(),
                Popularity()]
        if cfg.friends_taste:
            out.append(FriendsTaste())
        if cfg.observes("items"):
            out.append(TasteSimilarity(idf=True))
        if cfg.observes("features"):
            out.append(FeatureSimilarity())
        return out
    out = [ItemPopularity(), ItemKNN(), UserKNN(k=50)]
    if cfg.observes("friends"):
        out.append(SocialPopularity())
    return out


def _channel(part: Baseline) -> str:
    """The pair-feature channel name of a heuristic (``ppr@<alpha>`` for PageRank)."""
    return f"ppr@{float(part.hyper['alpha']):g}" if part.name == "ppr" else part.name


class _Features:
    """Heuristic features ``[T, C, F]`` of one sampler's tasks."""

    def __init__(self, sampler: TaskSampler) -> None:
        self.sampler = sampler
        self.parts = [c.fit(sampler) for c in _components(sampler)]
        self.paths = (friend_matrix(sampler) if sampler.config.kind in USER_TARGETS
                      else None)

    @property
    def channels(self) -> list[str]:
        """Each feature's name, in order, as the hybrid scorers name their pair
        feature channels (:mod:`socialmeta.features`)."""
        return [_channel(p) for p in self.parts] + (["paths3"] if self.paths is not None
                                                    else [])

    def __call__(self, batch: TaskBatch) -> tuple[Tensor, Tensor]:
        candidates = self.sampler.candidate_mask(batch)
        feats = [candidate_normalized(part.scores(batch), candidates) for part in self.parts]
        if self.paths is not None:  # paths of length 3 from the new user: s A A
            support = support_matrix(batch, self.sampler.num_users)
            feats.append(candidate_normalized(self.paths.rmul(self.paths.rmul(support)),
                                              candidates))
        return torch.stack(feats, -1), candidates


def _pseudo_sampler(sampler: TaskSampler, fraction: float, max_users: int) -> TaskSampler:
    """A sampler on the same graph whose "validation" users are a seeded subset of the
    training users, removed from the observed graph: simulated new users."""
    split = sampler.split
    gen = torch.Generator().manual_seed(sampler.config.seed + 7919)
    if isinstance(split, TemporalSplit):
        return _pseudo_temporal_sampler(sampler, max_users, gen)
    if isinstance(split, ItemSplit) and split.cut is not None:
        return _pseudo_dated_items_sampler(sampler, max_users, gen)
    eligible = sampler.train_centers()
    count = min(max_users, max(1, int(fraction * eligible.numel())))
    pseudo = eligible[torch.randperm(eligible.numel(), generator=gen)[:count]].sort().values
    keep = ~torch.isin(split.train, pseudo)
    # the real val/test users stay out of everything: they play "test" users here
    held_out = torch.cat([split.val, split.test]).sort().values
    # (replace keeps an item split's users: the candidates stay the same)
    pseudo_split = dataclasses.replace(split, train=split.train[keep], val=pseudo,
                                       test=held_out)
    return TaskSampler(sampler.graph, pseudo_split, sampler.config)


#: where the pseudo cut of a temporal split falls among the interactions before the cut
PSEUDO_CUT = 0.8


def _pseudo_temporal_sampler(sampler: TaskSampler, max_users: int,
                             gen: torch.Generator) -> TaskSampler:
    """Under the temporal protocol: the same protocol replayed inside the past. The
    graph is what is known at the cut (the sampler's observed graph), the pseudo cut
    is the :data:`PSEUDO_CUT` quantile of its times, and the pseudo-new (or pseudo-warm)
    users are training users who would be val/test users at that cut (all of them, up
    to :obj:`max_users`)."""
    split, past = sampler.split, sampler.observed
    at_pseudo_cut = split_temporal(past, PSEUDO_CUT, users=split.mode, val_fraction=1.0,
                                   test_fraction=0.0)
    eligible = at_pseudo_cut.val[sampler.is_train[at_pseudo_cut.val]]
    if eligible.numel() == 0:
        raise ValueError("no training user has interactions on both sides of the pseudo "
                         "cut: the learned ranker has nothing to learn from")
    # every eligible user up to max_users (fraction does not apply: at a time cut the
    # simulated users are few, and their past stays observed as the real ones' does)
    count = min(max_users, eligible.numel())
    pseudo = eligible[torch.randperm(eligible.numel(), generator=gen)[:count]].sort().values
    is_train = torch.ones(split.num_users, dtype=torch.bool)
    held_out = torch.cat([split.val, split.test]).sort().values
    is_train[pseudo] = False
    is_train[held_out] = False
    pseudo_split = TemporalSplit(is_train.nonzero().view(-1), pseudo, held_out,
                                 split.num_users, cut=at_pseudo_cut.cut,
                                 mode=split.mode)
    return TaskSampler(past, pseudo_split, sampler.config)


def _pseudo_dated_items_sampler(sampler: TaskSampler, max_users: int,
                                gen: torch.Generator) -> TaskSampler:
    """New items split by date: the same split replayed inside the past. The graph is
    what is known at the cut (the sampler's observed graph, every link before it), the
    pseudo cut is the :data:`PSEUDO_CUT` quantile of its dated links, and the pseudo-new
    items are the training items first taken up after it (all of them, up to
    :obj:`max_users`)."""
    split, past = sampler.split, sampler.observed
    at_pseudo_cut = split_items(past, cut=PSEUDO_CUT, val_fraction=1.0, test_fraction=0.0)
    eligible = at_pseudo_cut.val
    if eligible.numel() == 0:
        raise ValueError("no training item was first taken up between the pseudo cut and "
                         "the cut: the learned ranker has nothing to learn from")
    count = min(max_users, eligible.numel())
    pseudo = eligible[torch.randperm(eligible.numel(), generator=gen)[:count]].sort().values
    held_out = torch.cat([split.val, split.test]).sort().values
    is_train = torch.ones(split.num_users, dtype=torch.bool)
    is_train[pseudo] = is_train[held_out] = False
    pseudo_split = ItemSplit(is_train.nonzero().view(-1), pseudo, held_out,
                             split.num_users, people=split.people, cut=at_pseudo_cut.cut)
    return TaskSampler(past, pseudo_split, sampler.config)


class LearnedRanker(Baseline):
    r"""An MLP over per-candidate heuristic scores, trained on simulated cold-start
    tasks of training users with a softmax over every candidate.

    Hyper-parameters: ``hidden`` (MLP width), ``epochs`` (full passes of Adam over the
    simulated tasks), ``fraction``/``max_users`` (share and cap of training users
    turned into pseudo-new users).
    """

    name = "learned_ranker"
    kinds = ("friend", "item", "new_item")
    grid = {"hidden": (32,), "epochs": (150,), "fraction": (0.15,), "max_users": (300,)}

    def _fit(self, sampler: TaskSampler) -> None:
        pseudo = _pseudo_sampler(sampler, float(self.hyper["fraction"]),
                                 int(self.hyper["max_users"]))
        features = _Features(pseudo)
        xs, positives, masks = [], [], []
        for shots in pseudo.config.shots:
            users = pseudo.eval_centers("val", shots)
            for start in range(0, users.numel(), 64):
                progress.tick("  learned_ranker: features of simulated new users, K=%d",
                              shots)
                batch = pseudo.eval_batch(users[start:start + 64], shots)
                x, candidates = features(batch)
                positive = torch.zeros_like(candidates)
                ok = batch.query_mask & (batch.query_label > 0)
                positive[ok.nonzero()[:, 0], batch.query_ids[ok]] = True
                xs.append(x)
                positives.append(positive)
                masks.append(candidates)
        if not xs:
            raise ValueError("no training user can serve as a simulated new user")
        gen = torch.Generator().manual_seed(sampler.config.seed)
        width = xs[0].size(-1)
        hidden = int(self.hyper["hidden"])
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        for p in self.mlp.parameters():  # seeded init, independent of the global RNG
            p.data.uniform_(-1, 1, generator=gen).mul_(p.size(-1) ** -0.5)
        opt = torch.optim.Adam(self.mlp.parameters(), lr=1e-2)
        epochs = int(self.hyper["epochs"])
        for epoch in range(epochs):
            progress.tick("  learned_ranker: epoch %d/%d", epoch + 1, epochs)
            opt.zero_grad()
            total = sum(float(p.sum()) for p in positives)
            for x, positive, candidates in zip(xs, positives, masks):
                loss = list_softmax_loss(self.mlp(x).squeeze(-1), positive, candidates)
                (loss * positive.sum() / total).backward()
            opt.step()
        self.features = _Features(sampler)

    @torch.no_grad()
    def scores(self, batch: TaskBatch) -> Tensor:
        x, _ = self.features(batch)
        return self.mlp(x).squeeze(-1)

    @property
    def channels(self) -> list[str]:
        """The names of the MLP's inputs, in order (``ppr@0.15``, ``adamic_adar``,
        ...: the hybrid scorers' channel names), once fitted."""
        return self.features.channels


def list_softmax_loss(scores: Tensor, positive: Tensor, candidates: Tensor) -> Tensor:
    r"""``-mean_p log softmax(scores over candidates)[p]`` over the positives ``p`` of
    every row (``[T, C]`` tensors); rows without positives count zero."""
    log_z = torch.logsumexp(scores.masked_fill(~candidates, float("-inf")), -1, keepdim=True)
    picked = (scores - log_z).masked_fill(~positive, 0.0)
    return -picked.sum() / positive.sum().clamp(min=1)
