"""Friend pair features: each equals its baseline's score; a training center's own
links never reach its features."""
from types import SimpleNamespace

import pytest
import torch

from socialmeta.baselines import make_baseline
from socialmeta.baselines.base import friend_matrix, support_matrix
from socialmeta.data import FRIEND, SocialGraph
from socialmeta.features import FRIEND_FEATURES, FriendPairFeatures
from socialmeta.features.sparse import indicator
from socialmeta.tasks import TaskConfig, TaskSampler, UserSplit, split_users
from socialmeta.tasks.split import observed_graph

#: the features every dataset allows (no context, no items)
ALL = [n for n in FRIEND_FEATURES if n not in ("taste", "friends_taste", "feature_similarity")]


def _baseline_scores(sampler, batch):
    """Baseline score of every feature channel on :obj:`batch` (``[T, U]`` each)."""
    out = {}
    config = sampler.config
    for alpha in config.ppr_alphas:   # the local features' PageRank is the push baseline's
        ppr = (make_baseline("friend", "ppr_push", alpha=alpha, epsilon=config.ppr_epsilon)
               if config.pair_local else make_baseline("friend", "ppr", alpha=alpha))
        out[f"ppr@{alpha:g}"] = ppr.fit(sampler).scores(batch)
    for name in ("common_neighbors", "adamic_adar", "resource_allocation", "jaccard",
                 "popularity"):
        out[name] = make_baseline("friend", name).fit(sampler).scores(batch)
    adj = friend_matrix(sampler)
    out["paths3"] = adj.rmul(adj.rmul(support_matrix(batch, sampler.num_users)))
    if sampler.config.observes("items"):
        out["taste"] = make_baseline("friend", "taste", idf=True).fit(sampler).scores(batch)
    if "friends_taste" in config.pair_features:
        out["friends_taste"] = make_baseline("friend", "friends_taste").fit(sampler).scores(
            batch)
    if sampler.config.observes("features"):
        out["feature_similarity"] = make_baseline("friend", "feature_similarity").fit(
            sampler).scores(batch)
    return out


def _raw(sampler, batch):
    feats = sampler.pair_features
    support = support_matrix(batch, sampler.num_users)
    items = x = None
    if "taste" in feats.names:
        items = indicator(*sampler.context_items(batch.center), batch.num_tasks,
                          sampler.num_items)
    if "feature_similarity" in feats.names:
        x = sampler.graph["user"].x[batch.center]
    return feats.raw(batch.center, support, items, x)


def _assert_close_off_center(got, want, center, name):
    keep = torch.ones_like(want, dtype=torch.bool)
    keep[torch.arange(center.numel()), center] = False
    assert torch.allclose(got[keep], want[keep], rtol=1e-5, atol=1e-7), name
    assert (got[~keep] == 0).all(), name


@pytest.mark.parametrize("local", [False, True], ids=["whole-graph", "local"])
@pytest.mark.parametrize("dataset,context", [("lastfm", ["items"]),
                                             ("ego_facebook", ["features"])])
def test_every_feature_equals_its_baseline_on_test_tasks(request, dataset, context, local):
    graph = request.getfixturevalue(dataset)
    names = ALL + (["friends_taste", "taste"] if "items" in context
                   else ["feature_similarity"])
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind="friend", context=context, pair_features=names,
                                     pair_local=local))
    # the local-push baseline walks task by task in Python: fewer tasks keep CI fast
    batch = sampler.eval_batch(sampler.eval_centers("test", 3)[:16 if local else 48], 3)
    want = _baseline_scores(sampler, batch)
    got = _raw(sampler, batch)
    assert list(got) == sampler.pair_features.channels
    assert set(got) == set(want)
    for name in got:
        _assert_close_off_center(got[name], want[name], batch.center, name)
        assert want[name][batch.candidates if hasattr(batch, "candidates") else
                          sampler.candidate_mask(batch)].abs().sum() > 0, name
    # the batch carries them scaled by the largest candidate value
    scaled = batch.pair_features
    assert scaled.shape == (batch.num_tasks, graph.num_users, len(got))
    cand = sampler.candidate_mask(batch)
    top = scaled.abs().masked_fill(~cand.unsqueeze(-1), 0).amax(1)
    assert torch.allclose(top[top > 0], torch.ones_like(top[top > 0]))


@pytest.mark.parametrize("local", [False, True], ids=["whole-graph", "local"])
def test_training_features_equal_the_baseline_with_the_center_held_out(lastfm, local):
    """A training task's features are its baseline's scores on the observed graph with
    the center made a new user (all its links and items removed)."""
    split = split_users(lastfm, seed=0)
    config = TaskConfig(kind="friend", context=["items"],
                        pair_features=ALL + ["friends_taste", "taste"], pair_local=local)
    sampler = TaskSampler(lastfm, split, config)
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=2 if local else 4)
    got = _raw(sampler, batch)
    for i in range(batch.num_tasks):
        center = batch.center[i:i + 1]
        held = UserSplit(split.train[split.train != center], split.val,
                         torch.cat([split.test, center]).sort().values, split.num_users)
        alone = TaskSampler(lastfm, held, config)
        one = SimpleNamespace(num_tasks=1, center=center,
                              support_ids=batch.support_ids[i:i + 1],
                              support_mask=batch.support_mask[i:i + 1],
                              support_label=batch.support_label[i:i + 1])
        want = _baseline_scores(alone, one)
        for name, value in want.items():
            _assert_close_off_center(got[name][i:i + 1], value, center, name)


def _rewired(graph: SocialGraph, center: int, keep: set[int], seed: int) -> SocialGraph:
    """:obj:`graph` with every friendship of :obj:`center` outside :obj:`keep` moved to
    another (random) user."""
    src, dst = graph.friend_index
    und = torch.stack([src, dst])[:, src < dst]
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for a, b in und.t().tolist():
        other = b if a == center else a if b == center else None
        if other is not None and other not in keep:
            while True:
                new = int(torch.randint(graph.num_users, (1,), generator=gen))
                if new != center and new not in keep:
                    break
            a, b = center, new
        rows.append((min(a, b), max(a, b)))
    edges = torch.tensor(sorted(set(rows))).t()
    out = graph.clone()
    out[FRIEND].edge_index = torch.cat([edges, edges.flip(0)], 1)
    return out


@pytest.mark.parametrize("local", [False, True], ids=["whole-graph", "local"])
def test_a_training_centers_own_links_never_reach_its_features(lastfm, local):
    split = split_users(lastfm, seed=0)
    config = TaskConfig(kind="friend", pair_features=ALL, pair_local=local)
    sampler = TaskSampler(lastfm, split, config)
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=8)
    support = support_matrix(batch, sampler.num_users)
    before = _raw(sampler, batch)
    for i in range(batch.num_tasks):
        center = int(batch.center[i])
        keep = set(batch.support_ids[i][batch.support_label[i] > 0].tolist())
        graph = _rewired(lastfm, center, keep, seed=i)
        observed = observed_graph(graph, split)
        assert not torch.equal(observed[FRIEND].edge_index,
                               sampler.observed[FRIEND].edge_index)
        feats = FriendPairFeatures(observed[FRIEND].edge_index, graph.num_users, ALL,
                                   local=local)
        after = feats.raw(batch.center[i:i + 1], support[i:i + 1])
        for name, value in after.items():
            assert torch.equal(value, before[name][i:i + 1]), name


@pytest.mark.parametrize("local", [False, True], ids=["whole-graph", "local"])
def test_pair_features_of_a_task_do_not_depend_on_its_batch(lastfm, local):
    sampler = TaskSampler(lastfm, split_users(lastfm, seed=0),
                          TaskConfig(kind="friend", context=["items"], seed=4,
                                     pair_features=ALL + ["taste"], pair_local=local))
    # 40 tasks: past the PPR walk's 32-column padding; 2 and 1: below it
    whole = sampler.train_batch(epoch=1, batch_index=0, batch_size=40)
    part = sampler.train_tasks(1, torch.tensor([7, 2]))
    one = sampler.train_tasks(1, torch.tensor([35]))
    # scaled per task: bit-identical whatever else is in the batch
    assert torch.equal(part.pair_features, whole.pair_features[[7, 2]])
    assert torch.equal(one.pair_features, whole.pair_features[[35]])
    assert whole.pair_features.shape == (40, lastfm.num_users, 4 + 6 + 1)


def test_pair_feature_config_errors():
    with pytest.raises(ValueError, match="unknown pair feature 'pagerank'"):
        TaskConfig(kind="friend", pair_features=["pagerank"])
    with pytest.raises(ValueError, match="'feature_similarity' reads the center's features"):
        TaskConfig(kind="friend", pair_features=["feature_similarity"])
    with pytest.raises(ValueError, match=r"defined for \['friend', 'new_item', 'item'\] "
                       r"tasks, not 'interest'"):
        TaskConfig(kind="interest", pair_features=["ppr"])
    with pytest.raises(ValueError, match="at least one restart probability"):
        FriendPairFeatures(torch.zeros(2, 0, dtype=torch.long), 3, ["ppr"], alphas=())


def test_friends_taste_needs_no_context_and_reads_the_support_friends_items(lastfm):
    """Without any context the feature is the baseline's score; it moves with the
    support friends' items and not with the new user's own."""
    split = split_users(lastfm, seed=0)
    sampler = TaskSampler(lastfm, split, TaskConfig(kind="friend",
                                                    pair_features=["friends_taste"]))
    batch = sampler.eval_batch(sampler.eval_centers("test", 3)[:32], 3)
    got = _raw(sampler, batch)["friends_taste"]
    want = make_baseline("friend", "friends_taste").fit(sampler).scores(batch)
    _assert_close_off_center(got, want, batch.center, "friends_taste")
    cand = sampler.candidate_mask(batch)
    assert (want[cand] > 0).float().mean() > 0.05      # a real signal, not all zero
    # by hand for one task: cosine with the sum of the friends' unit idf vectors
    u, i = sampler.observed["user", "interacts", "item"].edge_index
    r = torch.zeros(lastfm.num_users, lastfm.num_items)
    r[u, i] = 1.0
    idf = torch.log(lastfm.num_users / (1.0 + r.sum(0))).clamp(min=0.0)
    w = r * idf
    norm = w.norm(dim=1)
    friends = batch.support_ids[0][(batch.support_label[0] > 0) & batch.support_mask[0]]
    pooled = (w[friends] / norm[friends].clamp(min=1e-12).unsqueeze(-1)).sum(0)
    by_hand = (w @ pooled) / (norm * pooled.norm()).clamp(min=1e-12)
    assert torch.allclose(got[0], by_hand * (torch.arange(lastfm.num_users)
                                             != batch.center[0]), rtol=1e-4, atol=1e-6)
    # the center's own items (not context here) never reach it: a training task's
    # feature is the same with every item of its center removed (up to the sparse
    # products' rounding; one item more in the counts moves the idf by ~1e-3)
    train = sampler.train_batch(epoch=0, batch_index=0, batch_size=6)
    support = support_matrix(train, lastfm.num_users)
    before = sampler.pair_features.raw(train.center, support)["friends_taste"]
    for t in range(train.num_tasks):
        graph = lastfm.clone()
        ui = graph["user", "interacts", "item"]
        keep = ui.edge_index[0] != train.center[t]
        assert not keep.all()
        for key in list(ui.keys()):
            if torch.is_tensor(ui[key]) and ui[key].size(-1) == keep.numel():
                ui[key] = ui[key][..., keep]
        alone = TaskSampler(graph, split, sampler.config)
        after = alone.pair_features.raw(train.center[t:t + 1], support[t:t + 1])
        assert torch.allclose(after["friends_taste"], before[t:t + 1], rtol=1e-6, atol=1e-9)


def test_friends_taste_config(lastfm, ego_facebook):
    from omegaconf import OmegaConf

    from socialmeta.experiment import hybrid_pair_features

    with pytest.raises(ValueError, match="friends_taste is defined for friend tasks"):
        TaskConfig(kind="item", friends_taste=True)
    model = OmegaConf.create({"scorer": "hybrid", "pair_features": "auto"})
    assert "friends_taste" not in hybrid_pair_features(model, TaskConfig(kind="friend"))
    names = hybrid_pair_features(model, TaskConfig(kind="friend", friends_taste=True))
    assert "friends_taste" in names and "taste" not in names
    with pytest.raises(ValueError, match="'friends_taste' needs the observed interactions"):
        TaskSampler(ego_facebook, split_users(ego_facebook, seed=0),
                    TaskConfig(kind="friend", pair_features=["friends_taste"]))
    with pytest.raises(ValueError, match="reads the support friends' items; dataset "
                                         "'ego_facebook' has none"):
        make_baseline("friend", "friends_taste").fit(
            TaskSampler(ego_facebook, split_users(ego_facebook, seed=0),
                        TaskConfig(kind="friend")))
