"""Item pair features: each equals its baseline's score on evaluation tasks; a training
center's own items never reach its features."""
from types import SimpleNamespace

import pytest
import torch

from socialmeta.baselines import make_baseline
from socialmeta.baselines.base import context_friends, support_matrix
from socialmeta.data import INTERACTS
from socialmeta.features import ITEM_FEATURES, RECENT_HALF_LIVES, ItemPairFeatures
from socialmeta.tasks import TaskConfig, TaskSampler, UserSplit, split_temporal, split_users

#: the features of undated data (``recent_popularity`` needs interaction times)
UNDATED = [n for n in ITEM_FEATURES if n != "recent_popularity"]


def _baseline_scores(sampler, batch):
    out = {"itemknn": make_baseline("item", "itemknn").fit(sampler).scores(batch),
           "userknn": make_baseline("item", "userknn", k=50).fit(sampler).scores(batch),
           "popularity": make_baseline("item", "popularity").fit(sampler).scores(batch)}
    if sampler.config.observes("friends"):
        out["social_popularity"] = make_baseline("item", "social_popularity").fit(
            sampler).scores(batch)
    return out


def _raw(sampler, batch):
    feats = sampler.pair_features
    friends = (context_friends(sampler, batch) if "social_popularity" in feats.names
               else None)
    return feats.raw(batch.center, support_matrix(batch, sampler.num_items), friends)


@pytest.mark.parametrize("context", [["friends"], []])
def test_every_item_feature_equals_its_baseline_on_test_tasks(lastfm, context):
    names = [n for n in UNDATED if context or n != "social_popularity"]
    sampler = TaskSampler(lastfm, split_users(lastfm, seed=0),
                          TaskConfig(kind="item", context=context, pair_features=names))
    batch = sampler.eval_batch(sampler.eval_centers("test", 3)[:48], 3)
    want, got = _baseline_scores(sampler, batch), _raw(sampler, batch)
    assert list(got) == names == sampler.pair_features.channels and set(got) == set(want)
    cand = sampler.candidate_mask(batch)
    for name in got:
        assert torch.allclose(got[name], want[name], rtol=1e-5, atol=1e-9), name
        assert want[name][cand].abs().sum() > 0, name
    # the batch carries them scaled by each task's largest candidate value
    scaled = batch.pair_features
    assert scaled.shape == (batch.num_tasks, lastfm.num_items, len(names))
    top = scaled.abs().masked_fill(~cand.unsqueeze(-1), 0).amax(1)
    assert torch.allclose(top, torch.ones_like(top))


def test_training_item_features_equal_the_baselines_with_the_center_held_out(lastfm):
    """A training task's features are its baselines' scores on the observed graph with
    the center made a new user (its items removed; its friends stay context)."""
    split = split_users(lastfm, seed=0)
    config = TaskConfig(kind="item", context=["friends"], pair_features=UNDATED)
    sampler = TaskSampler(lastfm, split, config)
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=4)
    got = _raw(sampler, batch)
    friends = context_friends(sampler, batch)
    for i in range(batch.num_tasks):
        center = batch.center[i:i + 1]
        held = UserSplit(split.train[split.train != center], split.val,
                         torch.cat([split.test, center]).sort().values, split.num_users)
        alone = TaskSampler(lastfm, held, config)
        assert alone.observed[INTERACTS].edge_index.size(1) < \
            sampler.observed[INTERACTS].edge_index.size(1)
        one = SimpleNamespace(num_tasks=1, center=center,
                              support_ids=batch.support_ids[i:i + 1],
                              support_mask=batch.support_mask[i:i + 1],
                              support_label=batch.support_label[i:i + 1])
        # the held-out center's training friends are the same users
        assert torch.equal(context_friends(alone, one)[0], friends[i])
        for name, value in _baseline_scores(alone, one).items():
            assert torch.allclose(got[name][i:i + 1], value, rtol=1e-5, atol=1e-9), name


def test_a_training_centers_query_items_never_reach_its_features(lastfm):
    """Replacing a training center's non-support items by others leaves its features
    bit-identical."""
    split = split_users(lastfm, seed=0)
    config = TaskConfig(kind="item", context=["friends"], pair_features=UNDATED)
    sampler = TaskSampler(lastfm, split, config)
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=6)
    before = _raw(sampler, batch)
    u, i = sampler.observed[INTERACTS].edge_index
    gen = torch.Generator().manual_seed(0)
    for t in range(batch.num_tasks):
        center = int(batch.center[t])
        keep = set(batch.support_ids[t][batch.support_label[t] > 0].tolist())
        mine = (u == center) & ~torch.isin(i, torch.tensor(sorted(keep)))
        moved = i.clone()
        moved[mine] = torch.randint(sampler.num_items, (int(mine.sum()),), generator=gen)
        feats = ItemPairFeatures(torch.stack([u, moved]), sampler.num_users,
                                 sampler.num_items, UNDATED)
        one = SimpleNamespace(num_tasks=1, center=batch.center[t:t + 1])
        after = feats.raw(one.center, support_matrix(batch, sampler.num_items)[t:t + 1],
                          context_friends(sampler, batch)[t:t + 1])
        for name, value in after.items():
            assert torch.equal(value, before[name][t:t + 1]), name


def test_item_pair_feature_errors():
    with pytest.raises(ValueError, match="unknown pair feature 'ppr' for item tasks"):
        TaskConfig(kind="item", pair_features=["ppr"])
    with pytest.raises(ValueError, match="'social_popularity' reads the center's friends"):
        TaskConfig(kind="item", context=[], pair_features=["social_popularity"])
    with pytest.raises(ValueError, match="pair_features are defined for"):
        TaskConfig(kind="interest", pair_features=["itemknn"])


# ------------------------------------------------------------ recent popularity
@pytest.fixture(scope="module")
def drift(ciaodvd):
    split = split_temporal(ciaodvd, 0.7, users="warm", seed=0)
    return TaskSampler(ciaodvd, split, TaskConfig(
        kind="item", protocol="temporal", context=("friends", "history"),
        pair_features=["popularity", "recent_popularity"]))


def test_recent_popularity_equals_its_baseline_at_every_half_life(ciaodvd):
    # cold-start users under the temporal protocol: nothing of theirs is observed, so
    # each channel is the baseline's score (warm users' own history is left out of
    # their features, as a training center's is: the next test)
    cold = TaskSampler(ciaodvd, split_temporal(ciaodvd, 0.7, users="new", seed=0),
                       TaskConfig(kind="item", protocol="temporal", temporal_users="new",
                                  context=("friends",),
                                  pair_features=["popularity", "recent_popularity"]))
    batch = cold.eval_batch(cold.eval_centers("test", 3)[:32], 3)
    got = cold.pair_features.raw(batch.center, support_matrix(batch, cold.num_items))
    names = [f"recent_popularity@{h:g}" for h in RECENT_HALF_LIVES]
    assert list(got) == ["popularity", *names] == cold.pair_features.channels
    for h, name in zip(RECENT_HALF_LIVES, names):
        want = make_baseline("item", "recent_popularity", half_life=h).fit(cold).scores(batch)
        assert torch.allclose(got[name], want, rtol=1e-5, atol=1e-9), name
    # the half-lives rank differently (else one channel would do)
    assert not torch.equal(got[names[0]].argsort(1)[:, -50:], got[names[-1]].argsort(1)[:, -50:])


def test_recent_popularity_of_a_training_task_leaves_out_the_centers_own_ratings(drift):
    batch = drift.train_batch(epoch=0, batch_index=0, batch_size=4)
    feats = drift.pair_features
    got = feats.raw(batch.center, support_matrix(batch, drift.num_items))
    index, when = drift.observed[INTERACTS].edge_index, drift.observed.interaction_time
    for t in range(batch.num_tasks):
        mine = index[0] == batch.center[t]
        assert mine.any()
        # the features of the graph without the center's ratings, where it is a new user
        alone = ItemPairFeatures(index[:, ~mine], drift.num_users, drift.num_items,
                                 ["popularity", "recent_popularity"], times=when[~mine],
                                 cut=drift.split.cut)
        want = alone.raw(batch.center[t:t + 1], support_matrix(batch, drift.num_items)[t:t + 1])
        for name, value in want.items():
            assert torch.allclose(got[name][t:t + 1], value, rtol=1e-5, atol=1e-7), name
        # moving the center's ratings elsewhere changes nothing
        moved = index.clone()
        moved[1, mine] = (moved[1, mine] + 7) % drift.num_items
        other = ItemPairFeatures(moved, drift.num_users, drift.num_items,
                                 ["popularity", "recent_popularity"], times=when,
                                 cut=drift.split.cut)
        again = other.raw(batch.center[t:t + 1],
                          support_matrix(batch, drift.num_items)[t:t + 1])
        for name, value in again.items():
            assert torch.allclose(got[name][t:t + 1], value, rtol=1e-6, atol=1e-9), name


def test_recent_popularity_needs_times(lastfm):
    index = torch.tensor([[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="'recent_popularity' needs dated interactions"):
        ItemPairFeatures(index, 2, 2, ["recent_popularity"])
    with pytest.raises(ValueError, match="3 interaction times for 2 interactions"):
        ItemPairFeatures(index, 2, 2, ["recent_popularity"], times=torch.arange(3))
    undated = lastfm.clone()
    if "time" in undated[INTERACTS]:
        del undated[INTERACTS].time
    with pytest.raises(ValueError, match="'recent_popularity' needs dated interactions; "
                       "dataset"):
        TaskSampler(undated, split_users(undated, seed=0),
                    TaskConfig(kind="item", pair_features=["recent_popularity"]))


def test_drift_features_are_bounded_and_zero_on_the_history(ciaodvd, drift):
    import dataclasses

    from socialmeta.features import allowed_item_features
    from socialmeta.features.item import ITEM_FEATURE_CLIP

    drift = TaskSampler(ciaodvd, drift.split, dataclasses.replace(
        drift.config, pair_features=tuple(allowed_item_features(drift.config.context,
                                                                dated=True))))
    batch = drift.train_batch(epoch=0, batch_index=0, batch_size=32)
    phi = batch.pair_features
    cand = drift.candidate_mask(batch)
    keep = cand | (support_matrix(batch, drift.num_items) > 0)
    assert (~keep).any()                          # history items the task never ranks
    assert (phi[~keep] == 0).all()
    assert phi.abs().max() <= ITEM_FEATURE_CLIP
    # unclipped, some support item's channel is far above every candidate's
    raw = _raw(drift, batch)
    from socialmeta.features.sparse import candidate_normalized
    assert max(float(candidate_normalized(v, cand).abs().max()) for v in raw.values()) \
        > ITEM_FEATURE_CLIP
