"""New-item tasks: the adoption graph, the item split, tasks centered on items (leakage:
a held-out item's query users never reach its task), the new-item baselines by hand,
a run through the Experiment; and under the temporal protocol: items split by the date
they were first taken up, support = an item's first K users by date, nothing dated
after a task's cut reaching it (CiaoDVD, thousands of tasks), determinism, and the
learned ranker's replay of the split inside the past."""
import pytest
import torch

from socialmeta.baselines import BASELINES, make_baseline
from socialmeta.data import UNDATED, SocialGraph, generate_synthetic
from socialmeta.data.graph import INTERACTS
from socialmeta.meta import InnerLoop, candidate_scores, meta_parameters
from socialmeta.models import LinkModel
from socialmeta.tasks import (
    ItemSplit,
    TaskConfig,
    TaskSampler,
    adoption_graph,
    item_nodes,
    observed_graph,
    split_items,
    split_users,
    task_batches,
    task_feature_channels,
)
from socialmeta.tasks.new_item import ITEM_FLAG, item_feature_columns


def _small_graph() -> SocialGraph:
    r"""Six users, four items with a genre each (i0, i2: genre 0; i1, i3: genre 1).
    Friendships u0-u1, u1-u2, u2-u3, u4-u5. Holdings: i0 by u0, u1, u2, u3; i1 by u0,
    u2; i2 by u4, u5; i3 by u1, u3, u5."""
    friends = torch.tensor([[0, 1, 2, 4], [1, 2, 3, 5]])
    rows = [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (2, 1), (4, 2), (5, 2), (1, 3), (3, 3),
            (5, 3)]
    index = torch.tensor(rows).t()
    genre = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    return SocialGraph.from_parts(
        user_ids=[f"u{i}" for i in range(6)], friend_index=friends,
        x=torch.arange(12, dtype=torch.float).view(6, 2),
        feature_names=["age", "posts"], item_ids=[f"i{i}" for i in range(4)],
        item_x=genre, interaction_index=index, name="small")


def _dated_small_graph() -> SocialGraph:
    """The small graph with each interaction dated (day numbers, as Unix seconds): i0
    taken up by u0 (1), u1 (2), u2 (5), u3 (6); i1 by u0 (3), u2 (4); i2 by u4 (1),
    u5 (2); i3 by u1 (4), u3 (7), u5 (8)."""
    g = _small_graph()
    days = {(0, 0): 1, (1, 0): 2, (2, 0): 5, (3, 0): 6, (0, 1): 3, (2, 1): 4, (4, 2): 1,
            (5, 2): 2, (1, 3): 4, (3, 3): 7, (5, 3): 8}
    rows = [tuple(e) for e in g.interaction_index.t().tolist()]
    return SocialGraph.from_parts(
        user_ids=g.raw_ids["user"], friend_index=g.friend_index, x=g["user"].x,
        feature_names=g.feature_names, item_ids=g.raw_ids["item"], item_x=g["item"].x,
        interaction_index=g.interaction_index,
        interaction_time=torch.tensor([days[r] for r in rows]), name="small")


def test_adoption_graph_by_hand():
    g = adoption_graph(_small_graph())
    assert g.num_users == 10 and g.raw_ids["user"][6:] == ["item:i0", "item:i1", "item:i2",
                                                          "item:i3"]
    assert g.feature_names == ["age", "posts", "item:0", "item:1", ITEM_FLAG]
    assert item_nodes(g).tolist() == [False] * 6 + [True] * 4
    assert item_feature_columns(g).tolist() == [2, 3]
    x = g["user"].x
    assert torch.equal(x[:6, :2], torch.arange(12, dtype=torch.float).view(6, 2))
    assert torch.equal(x[6:, 2:4], torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 1]]))
    assert x[:6, 2:].abs().sum() == 0 and x[6:, :2].abs().sum() == 0
    pairs = {tuple(e) for e in g.friend_index.t().tolist()}
    expected = {(0, 1), (1, 2), (2, 3), (4, 5)} | {(u, 6 + i) for u, i in
                                                   [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1),
                                                    (2, 1), (4, 2), (5, 2), (1, 3), (3, 3),
                                                    (5, 3)]}
    assert pairs == expected | {(b, a) for a, b in expected}
    assert task_feature_channels(g) == 6


def test_adoption_graph_errors():
    plain = SocialGraph.from_parts(user_ids=["a", "b"], friend_index=torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="needs? user-item interactions"):
        adoption_graph(plain)
    clash = SocialGraph.from_parts(user_ids=["a", "item:b"],
                                   friend_index=torch.tensor([[0], [1]]), item_ids=["x"],
                                   interaction_index=torch.tensor([[0], [0]]))
    with pytest.raises(ValueError, match="'item:b' starts with 'item:'"):
        adoption_graph(clash)
    with pytest.raises(ValueError, match="already an adoption graph"):
        adoption_graph(adoption_graph(_small_graph()))
    with pytest.raises(ValueError, match="not an adoption graph"):
        item_nodes(plain)


@pytest.fixture(scope="module")
def synthetic_view():
    graph = generate_synthetic(300, avg_degree=6, num_items=60, avg_items=6, seed=2)
    view = adoption_graph(graph)
    return graph, view, split_items(view, val_fraction=0.2, test_fraction=0.2, seed=1)


def test_split_items(synthetic_view):
    graph, view, split = synthetic_view
    assert isinstance(split, ItemSplit)
    is_item = item_nodes(view)
    assert torch.equal(split.people, torch.arange(graph.num_users))
    assert is_item[split.val].all() and is_item[split.test].all()
    assert torch.isin(split.people, split.train).all()        # every user trains
    assert is_item[split.train_pool].all() and split.train_pool.numel() + split.val.numel() \
        + split.test.numel() == graph.num_items
    degree = torch.bincount(view.friend_index[0], minlength=view.num_users)
    eligible = int((is_item & (degree >= 2)).sum())
    assert split.val.numel() == round(0.2 * eligible) == split.test.numel()
    assert (degree[split.val] >= 2).all() and (degree[split.test] >= 2).all()
    again = split_items(view, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert torch.equal(again.val, split.val) and torch.equal(again.test, split.test)
    assert not torch.equal(split_items(view, val_fraction=0.2, test_fraction=0.2,
                                       seed=2).test, split.test)
    with pytest.raises(ValueError, match="not an adoption graph"):
        split_items(graph)


def test_sampler_needs_the_view_and_the_item_split(synthetic_view):
    graph, view, split = synthetic_view
    with pytest.raises(ValueError, match="adoption graph"):
        TaskSampler(graph, split_users(graph), TaskConfig(kind="new_item"))
    with pytest.raises(ValueError, match="item split"):
        TaskSampler(view, split_users(view), TaskConfig(kind="new_item"))
    with pytest.raises(ValueError, match="item split is for new-item tasks"):
        TaskSampler(view, split, TaskConfig(kind="friend"))
    with pytest.raises(ValueError, match="needs items split by date"):
        TaskSampler(view, split, TaskConfig(kind="new_item", protocol="temporal"))
    with pytest.raises(ValueError, match="by date need task.protocol=temporal"):
        TaskSampler(view, split_items(adoption_graph(_dated_small_graph()), cut=3),
                    TaskConfig(kind="new_item"))
    with pytest.raises(ValueError, match="split by date needs dated interactions"):
        split_items(view, cut=0.5)
    with pytest.raises(ValueError, match="unknown context 'items' for 'new_item'"):
        TaskConfig(kind="new_item", context=["items"])


def _config(**kw):
    return TaskConfig(**{"kind": "new_item", "node_cap": 48, "fanouts": (10, 5), **kw})


def test_tasks_center_items_and_rank_users(synthetic_view):
    graph, view, split = synthetic_view
    sampler = TaskSampler(view, split, _config())
    is_item = item_nodes(view)
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=32)
    assert is_item[batch.center].all()
    assert not torch.isin(batch.center, torch.cat([split.val, split.test])).any()
    for side in ("support", "query"):
        ids = getattr(batch, f"{side}_ids")[getattr(batch, f"{side}_mask")]
        assert not is_item[ids].any()      # targets (positives and negatives) are users
    # positives are the item's users, negatives are not
    for t in range(batch.num_tasks):
        holders = set(view.friend_index[1, view.friend_index[0] == batch.center[t]].tolist())
        for side in ("support", "query"):
            m = getattr(batch, f"{side}_mask")[t]
            ids, label = getattr(batch, f"{side}_ids")[t][m], getattr(batch, f"{side}_label")[t][m]
            assert all((int(i) in holders) == bool(y) for i, y in zip(ids, label))
    users = sampler.eval_centers("test", 3)
    ev = sampler.eval_batch(users, 3)
    cand = sampler.candidate_mask(ev)
    support = ev.support_mask & (ev.support_label == 1)
    for t in range(ev.num_tasks):
        expected = ~is_item.clone()
        expected[ev.support_ids[t][support[t]]] = False
        assert torch.equal(cand[t], expected)   # every user but the support, no item
        query = ev.query_ids[t][ev.query_mask[t]]
        holders = view.friend_index[1, view.friend_index[0] == ev.center[t]]
        assert set(query.tolist()) | set(ev.support_ids[t][support[t]].tolist()) == set(
            holders.tolist())


def _check_query_never_reaches(view, split, cfg, shot_counts, baselines):
    """Rewiring every val/test item's query links (moving them to other users) leaves
    each evaluation task's inputs, candidates and the baselines' and an adapted
    model's scores bit-identical (same support); the item's task graph holds no query
    user as its holder (no edge between the center and a query user)."""
    sampler = TaskSampler(view, split, cfg)
    is_item = item_nodes(view)
    for shots in shot_counts:
        items = torch.cat([sampler.eval_centers("val", shots),
                           sampler.eval_centers("test", shots)])
        batch = sampler.eval_batch(items, shots)
        qm = batch.query_mask
        q_local = batch.query_local
        # no task graph edge between the item (local 0) and any of its query users
        rows = qm.nonzero()[:, 0]
        inside = q_local[qm] >= 0
        assert (batch.adj[rows[inside], 0, q_local[qm][inside]] == 0).all()
        # the rewired graph: each held-out item's query users replaced by non-holders
        src, dst = view.friend_index
        keep = torch.ones(src.numel(), dtype=torch.bool)
        added = []
        gen = torch.Generator().manual_seed(0)
        for t in range(batch.num_tasks):
            item, query = int(batch.center[t]), batch.query_ids[t][qm[t]]
            keep &= ~(((src == item) & torch.isin(dst, query))
                      | ((dst == item) & torch.isin(src, query)))
            holders = dst[src == item]
            others = (~is_item & ~torch.isin(torch.arange(view.num_users), holders)
                      ).nonzero().view(-1)
            pick = others[torch.randperm(others.numel(), generator=gen)[:query.numel()]]
            added += [(item, int(u)) for u in pick]
        edges = torch.cat([view.friend_index[:, keep], torch.tensor(added).t()], 1)
        rewired = SocialGraph.from_parts(user_ids=view.raw_ids["user"], friend_index=edges,
                                         x=view["user"].x, feature_names=view.feature_names,
                                         name=view.name)
        other = TaskSampler(rewired, split, cfg)
        # the same support (the rewired holders would draw another one), all else rebuilt
        support = [ids[(lab > 0) & m].tolist() for ids, lab, m in
                   zip(batch.support_ids, batch.support_label, batch.support_mask)]
        batch = sampler.support_batch(items, friends=support)
        again = other.support_batch(items, friends=support)
        for name in ("node_ids", "x", "adj", "hop", "support_ids", "support_label"):
            assert torch.equal(getattr(batch, name), getattr(again, name)), name
        assert torch.equal(sampler.candidate_mask(batch), other.candidate_mask(again))
        for name in baselines:
            a = make_baseline("new_item", name).fit(sampler).scores(batch)
            b = make_baseline("new_item", name).fit(other).scores(again)
            assert torch.equal(a, b), name
        torch.manual_seed(0)
        model = LinkModel(sampler.in_channels, num_hops=2, hidden_channels=8,
                          num_users=view.num_users)
        inner = InnerLoop("maml", steps=2, lr=0.3)
        params = meta_parameters(model, inner)
        a = candidate_scores(model, params, batch, inner, view.num_users)
        b = candidate_scores(model, params, again, inner, view.num_users)
        assert torch.equal(a, b)


def test_query_users_never_reach_the_items_task(synthetic_view):
    graph, view, split = synthetic_view
    _check_query_never_reaches(view, split, _config(), (1, 3, 5),
                               ("social_spread", "user_activity", "itemknn", "ppr",
                                "common_neighbors", "adamic_adar", "popularity"))


def test_ciaodvd_query_users_never_reach_the_items_task(ciaodvd):
    """The same on CiaoDVD, every val and test movie at K = 3 (1,540 tasks), genre
    as the new movie's content."""
    view = adoption_graph(ciaodvd)
    split = split_items(view, seed=0)
    _check_query_never_reaches(view, split, TaskConfig(kind="new_item"), (3,),
                               ("social_spread", "itemknn", "genre"))


def test_new_item_baselines_by_hand():
    """On the small graph with i1 held out (its users u0, u2; support u0): every score
    worked out by hand."""
    view = adoption_graph(_small_graph())
    is_train = torch.ones(10, dtype=torch.bool)
    is_train[7] = False
    split = ItemSplit(is_train.nonzero().view(-1), torch.tensor([7]), torch.zeros(0).long(),
                      10, people=torch.arange(6))
    sampler = TaskSampler(view, split, TaskConfig(kind="new_item", fanouts=(5, 5),
                                                  node_cap=10, negatives=0))
    batch = sampler.eval_batch(torch.tensor([7]), 1)
    assert batch.support_ids[0][batch.support_mask[0]].tolist() in ([0], [2])
    s = int(batch.support_ids[0, 0])
    # activity (training items held): u0 1 (i0), u1 2, u2 1, u3 2, u4 1, u5 2
    activity = torch.tensor([1.0, 2, 1, 2, 1, 2])
    tie = 1e-6 * activity / 2
    score = {n: make_baseline("new_item", n).fit(sampler).scores(batch)[0, :6]
             for n in ("social_spread", "user_activity", "common_neighbors")}
    friends_of = {0: [1], 2: [1, 3]}[s]
    spread = torch.zeros(6)
    spread[friends_of] = 1.0
    assert torch.allclose(score["social_spread"], spread + tie, atol=0, rtol=1e-7)
    assert torch.equal(score["common_neighbors"], spread)   # CN on the view = social spread
    assert torch.equal(score["user_activity"], activity)
    # ItemKNN: the support {s} shares i0 with 4 users -> cos = 1 / sqrt(1 * 4); i3 (u1,
    # u3, u5) and i2 (u4, u5) share nothing; every holder of i0 gets 0.5
    knn = make_baseline("new_item", "itemknn", k=50).fit(sampler).scores(batch)[0, :6]
    assert torch.allclose(knn, torch.tensor([0.5, 0.5, 0.5, 0.5, 0, 0]) + tie, rtol=1e-6)
    # genre: i1 is genre 1; profiles (genre 0, genre 1) over training items i0, i2, i3:
    # u0 (1, 0), u1 (1, 1), u2 (1, 0), u3 (1, 1), u4 (1, 0), u5 (1, 1)
    dot = make_baseline("new_item", "genre", normalize=False).fit(sampler).scores(batch)
    assert torch.allclose(dot[0, :6], torch.tensor([0.0, 1, 0, 1, 0, 1]) + tie, rtol=1e-6)
    cos = make_baseline("new_item", "genre", normalize=True).fit(sampler).scores(batch)
    half = 2 ** -0.5
    assert torch.allclose(cos[0, :6], torch.tensor([0, half, 0, half, 0, half]) + tie,
                          rtol=1e-6)
    with pytest.raises(ValueError, match="which these tasks hide"):
        make_baseline("new_item", "genre").fit(TaskSampler(view, split, TaskConfig(
            kind="new_item", context=[], fanouts=(5, 5), node_cap=10)))


def test_new_item_baseline_roster():
    roster = BASELINES["new_item"]
    for name in ("social_spread", "user_activity", "itemknn", "genre", "lightgcn",
                 "learned_ranker", "ppr", "common_neighbors"):
        assert name in roster
    assert "taste" not in roster and "feature_similarity" not in roster


def test_learned_ranker_and_lightgcn_on_new_items(synthetic_view):
    graph, view, split = synthetic_view
    sampler = TaskSampler(view, split, _config())
    batch = sampler.eval_batch(sampler.eval_centers("test", 3), 3)
    cand = sampler.candidate_mask(batch)
    for name, hyper in (("learned_ranker", {"epochs": 5}), ("lightgcn", {"epochs": 2})):
        model = make_baseline("new_item", name, **hyper).fit(sampler)
        scores = model.scores(batch)
        assert scores.shape == (batch.num_tasks, view.num_users)
        assert torch.isfinite(scores[cand]).all()
        assert scores[cand].std() > 0


# ------------------------------------------------------------- models and runs
# the learners differ in what they adapt (all, the head, nothing but the prototypes, a
# set encoder's FiLM); every learner runs on both models in tests/meta and tests/models
GRADIENT_LEARNERS = ["maml", "anil", "protonet", "metanet"]


@pytest.mark.parametrize("learner", GRADIENT_LEARNERS)
def test_batched_equals_reference_on_new_item_tasks(synthetic_view, learner,
                                                    assert_meta_equivalent):
    """The ego-net link model and the hybrid whole-graph scorer on new-item batches:
    the vmapped learner equals the per-task reference loop (float64)."""
    from socialmeta.features import allowed_friend_features
    from socialmeta.models import HybridLinkModel

    graph, view, split = synthetic_view
    names = [n for n in allowed_friend_features(()) if n != "feature_similarity"]
    sampler = TaskSampler(view, split, _config(pair_features=names))
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=3)
    batch = batch.apply(lambda t: t.double() if t.is_floating_point() else t)
    inner = InnerLoop(learner, steps=2, lr=0.3)
    torch.manual_seed(0)
    link = LinkModel(sampler.in_channels, num_hops=2, hidden_channels=8, loss="softmax",
                     num_users=view.num_users).double()
    assert_meta_equivalent(link, batch, inner)
    torch.manual_seed(0)
    hybrid = HybridLinkModel(sampler.in_channels, 2, view.num_users,
                             sampler.pair_features.num_channels, hidden_channels=8)
    hybrid = hybrid.set_graph(sampler.observed, split.train,
                              candidates=split.candidate_users).double()
    assert hybrid.is_candidate.sum() == split.people.numel()
    assert_meta_equivalent(hybrid, batch, inner, atol=1e-9)


@pytest.mark.parametrize("scorer", ["egonet", "hybrid"])
def test_new_item_experiment_trains_evaluates_and_recommends(tmp_path, scorer):
    from socialmeta import Experiment

    exp = Experiment.from_config(overrides=[
        "dataset=synthetic", "dataset.num_users=300", "task=new_item", "train.steps=2",
        "train.eval_every=2", "train.batch_size=8", "eval.shots=[3]",
        f"model.scorer={scorer}", "split.val_fraction=0.2", "split.test_fraction=0.2",
        "meta=maml"])
    assert exp.graph.name == "synthetic:adoption" and isinstance(exp.split, ItemSplit)
    if scorer == "hybrid":  # no feature similarity: an item's and a user's never overlap
        assert "ppr" in exp.task.pair_features
        assert "feature_similarity" not in exp.task.pair_features
    exp.fit(tmp_path / "run")
    results = exp.evaluate(shots=[3], baselines=["social_spread", "itemknn"])
    assert set(results) == {"maml", "maml without test-time adaptation",
                            "baseline: social_spread", "baseline: itemknn(k=50)"}
    for method, table in results.items():
        assert 0.0 <= table[3]["recall@20"]["mean"] <= 1.0, method
    rec = exp.recommender()
    users = [r.id for r in rec.recommend(users=["u3", "u17"], k=300)]
    assert users and all(u.startswith("u") for u in users)      # users only, never items
    assert not {"u3", "u17"} & set(users)                       # the support is excluded
    item_node = int(exp.split.test[0])
    item = exp.graph.raw_ids["user"][item_node][len("item:"):]
    holders = {exp.graph.raw_ids["user"][int(u)] for u in
               exp.graph.friend_index[1, exp.graph.friend_index[0] == item_node]}
    top = [r.id for r in rec.recommend(item=item, k=10)]
    assert top and not holders & set(top)
    with pytest.raises(ValueError, match="new-item run: give item=ID"):
        rec.recommend(friends=["u3"])
    with pytest.raises(ValueError, match="unknown item id 'nope'"):
        rec.recommend(item="nope")
    again = Experiment.from_checkpoint(tmp_path / "run" / "best.pt")
    assert torch.equal(again.split.test, exp.split.test)


def test_new_item_config_errors():
    from socialmeta import Experiment
    from socialmeta.config import ConfigError

    with pytest.raises(ConfigError, match="split.test_max_degree is not used by task=new_item"):
        Experiment.from_config(overrides=["dataset=synthetic", "dataset.num_users=200",
                                          "task=new_item", "split.test_max_degree=5"])
    with pytest.raises(ConfigError, match="task=new_item: new-item tasks need user-item"):
        Experiment.from_config(overrides=["dataset=karate", "task=new_item"])


# ------------------------------------------------ the temporal protocol: dated items
DATED = TaskConfig(kind="new_item", protocol="temporal", node_cap=48, fanouts=(10, 5))


def test_adoption_graph_keeps_interaction_times_as_link_times():
    g = _dated_small_graph()
    view = adoption_graph(g)
    assert view.has_link_times
    src, dst = view.friend_index
    when = dict(zip(zip(src.tolist(), dst.tolist()), view.link_time.tolist()))
    for (u, i), t in zip(g.interaction_index.t().tolist(), g.interaction_time.tolist()):
        assert when[(u, 6 + i)] == when[(6 + i, u)] == t
    for a, b in g.friend_index.t().tolist():
        assert when[(a, b)] == UNDATED
    # the times survive to_dict/from_dict (placeholders for recommend)
    more = view.with_placeholder_users(["item:new"])
    assert torch.equal(more.link_time, view.link_time)


def test_split_items_by_date_by_hand():
    """Cut at day 3: i0 (first day 1), i2 (1) and i3's... first days are i0 1, i1 3,
    i2 1, i3 4. Items first taken up at or after day 3 with two users: i1 (days 3, 4)
    and i3 (4, 7, 8): the new items. The observed graph keeps the links before day 3
    and every friendship."""
    view = adoption_graph(_dated_small_graph())
    split = split_items(view, cut=3, val_fraction=0.5, test_fraction=0.5, seed=0)
    assert isinstance(split, ItemSplit) and split.cut == 3
    new = sorted(split.val.tolist() + split.test.tolist())
    assert new == [7, 9] and split.val.numel() == split.test.numel() == 1
    observed = observed_graph(view, split)
    pairs = {tuple(e) for e in observed.friend_index.t().tolist()}
    items = {(u, i) for u, i in pairs if i >= 6}
    assert items == {(0, 6), (1, 6), (4, 8), (5, 8)}       # i0 days 1, 2; i2 days 1, 2
    assert {(0, 1), (1, 2), (2, 3), (4, 5)} <= pairs           # friendships stay
    assert (observed.link_time < 3).all()
    # a quantile reads the dated links only (friendships are undated)
    assert split_items(view, cut=0.5, val_fraction=1.0, test_fraction=0.0).cut == 4
    with pytest.raises(ValueError, match="first taken up at or after the cut"):
        split_items(view, cut=8)


def test_support_is_the_first_users_by_date():
    """i3 (users u1 day 4, u3 day 7, u5 day 8) as a new item: its support at K=1 is
    u1, at K=2 u1 and u3; the query is what comes after."""
    view = adoption_graph(_dated_small_graph())
    split = split_items(view, cut=3, val_fraction=0.5, test_fraction=0.5, seed=0)
    sampler = TaskSampler(view, split, DATED)
    which = "val" if 9 in split.val.tolist() else "test"
    for k, support, query in ((1, [1], [3, 5]), (2, [1, 3], [5])):
        assert 9 in sampler.eval_centers(which, k).tolist()
        b = sampler.eval_batch(torch.tensor([9]), k)
        pos = b.support_mask[0] & (b.support_label[0] == 1)
        assert sorted(b.support_ids[0][pos].tolist()) == support
        assert sorted(b.query_ids[0][b.query_mask[0]].tolist()) == query
    # training items are the old ones, on their links before the cut: i0 (u0, u1) and
    # i2 (u4, u5); i0's later users u2, u3 (days 5, 6) are never a training target
    assert sampler.train_centers().tolist() == [6, 8]
    batch = sampler.train_batch(0, 0, 16)
    for t in range(batch.num_tasks):
        for side in ("support", "query"):
            ids = getattr(batch, f"{side}_ids")[t]
            pos = getattr(batch, f"{side}_mask")[t] & (getattr(batch, f"{side}_label")[t] > 0)
            assert set(ids[pos].tolist()) <= ({0, 1} if batch.center[t] == 6 else {4, 5})


# ------------------------------------------------------------------ CiaoDVD
def _late_rewired(graph: SocialGraph, cut: int, supports: dict[int, list[int]],
                  num_users_view: int, seed: int = 0) -> SocialGraph:
    """:obj:`graph` with every interaction that a task may not see moved to another
    user: a new item's interactions other than its support (:obj:`supports`, item ->
    support users, in view ids) go to a user not holding it, a day later; every other
    interaction dated at or after :obj:`cut` goes to another user at the same time."""
    n = graph.num_users
    user, item = graph.interaction_index.clone()
    when = graph.interaction_time.clone()
    holders: dict[int, set[int]] = {}
    for u, i in zip(user.tolist(), item.tolist()):
        holders.setdefault(i, set()).add(u)
    gen = torch.Generator().manual_seed(seed)
    new_items = {node - n: set(s) for node, s in supports.items()}
    for k in range(user.numel()):
        i, u = int(item[k]), int(user[k])
        if i in new_items:
            if u in new_items[i]:
                continue
            when[k] += 86400
        elif when[k] < cut:
            continue
        while True:
            other = int(torch.randint(n, (1,), generator=gen))
            if other not in holders[i]:
                break
        holders[i].add(other)
        user[k] = other
    return SocialGraph.from_parts(
        user_ids=graph.raw_ids["user"], friend_index=graph.friend_index, x=graph["user"].x,
        feature_names=graph.feature_names, item_ids=graph.raw_ids["item"],
        item_x=graph["item"].x, interaction_index=torch.stack([user, item]),
        interaction_time=when, name=graph.name)


INPUTS = ("center", "node_ids", "node_mask", "x", "adj", "hop", "support_ids",
          "support_label", "support_mask", "num_shots")


@pytest.fixture(scope="module")
def ciao_dated(ciaodvd):
    view = adoption_graph(ciaodvd)
    split = split_items(view, cut=0.7, seed=1)
    config = TaskConfig(kind="new_item", protocol="temporal", seed=2)
    return ciaodvd, view, split, TaskSampler(view, split, config)


def test_ciaodvd_future_never_reaches_a_new_item_task(ciao_dated):
    """Over 2,000 training tasks and every val/test movie at K in {1, 3, 10}: moving
    every interaction dated after the cut to other users (and each new movie's users
    after its first K) leaves training tasks bit-identical and every evaluation task's
    input, candidates, the baselines' and an adapted model's scores bit-identical."""
    graph, view, split, sampler = ciao_dated
    assert (sampler.observed.link_time < split.cut).all()
    # (PPR reads the same observed graph; 20 s a call on this view, so it is left to
    # the friend-task leakage tests)
    names = ("social_spread", "user_activity", "itemknn", "genre")
    torch.manual_seed(0)
    model = LinkModel(sampler.in_channels, num_hops=2, hidden_channels=8,
                      num_users=view.num_users)
    inner = InnerLoop("maml", steps=1, lr=0.1)
    params = meta_parameters(model, inner)
    evaluated = trained = 0
    for k in (1, 3, 10):
        items = torch.cat([sampler.eval_centers(s, k) for s in ("val", "test")])
        batch = sampler.eval_batch(items, k)
        supports = {int(c): ids[(lab > 0) & m].tolist() for c, ids, lab, m in zip(
            batch.center, batch.support_ids, batch.support_label, batch.support_mask)}
        late_view = adoption_graph(_late_rewired(graph, split.cut, supports, view.num_users))
        late = TaskSampler(late_view, split, sampler.config)
        if k == 1:   # training tasks read only the past
            for b in range(8):
                a, z = sampler.train_batch(b % 2, b, 250), late.train_batch(b % 2, b, 250)
                for name in a.tensors():
                    assert torch.equal(a.tensors()[name], z.tensors()[name]), name
                trained += a.num_tasks
        assert torch.equal(items, torch.cat([late.eval_centers(s, k) for s in
                                             ("val", "test")]))
        again = late.eval_batch(items, k)
        for name in INPUTS:
            assert torch.equal(getattr(batch, name), getattr(again, name)), name
        assert not torch.equal(batch.query_ids, again.query_ids)   # the future moved
        assert torch.equal(sampler.candidate_mask(batch), late.candidate_mask(again))
        for name in names:
            a = make_baseline("new_item", name).fit(sampler).scores(batch)
            z = make_baseline("new_item", name).fit(late).scores(again)
            assert torch.equal(a, z), name
        a = candidate_scores(model, params, batch, inner, view.num_users)
        assert torch.equal(a, candidate_scores(model, params, again, inner, view.num_users))
        evaluated += items.numel()
    assert trained == 2000 and evaluated > 1000


def test_ciaodvd_new_item_support_precedes_query(ciao_dated):
    graph, view, split, sampler = ciao_dated
    src, dst = view.friend_index
    when = dict(zip((src * view.num_users + dst).tolist(), view.link_time.tolist()))
    batches = [(sampler.train_batch(0, b, 200), True) for b in range(3)]
    batches += [(sampler.eval_batch(sampler.eval_centers(s, 3), 3), False)
                for s in ("val", "test")]
    checked = 0
    for batch, train in batches:
        for t in range(batch.num_tasks):
            c = int(batch.center[t])
            sup = batch.support_ids[t][batch.support_mask[t] & (batch.support_label[t] == 1)]
            qry = batch.query_ids[t][batch.query_mask[t] & (batch.query_label[t] == 1)]
            s_dates = [when[c * view.num_users + u] for u in sup.tolist()]
            q_dates = [when[c * view.num_users + u] for u in qry.tolist()]
            assert max(s_dates) <= min(q_dates)
            if train:
                assert max(q_dates) < split.cut
            else:
                assert min(s_dates) >= split.cut
            checked += 1
    assert checked > 600


def test_dated_new_item_tasks_independent_of_batch_and_workers(ciao_dated):
    graph, view, split, sampler = ciao_dated
    whole = sampler.train_batch(epoch=3, batch_index=1, batch_size=24)
    parts = [sampler.train_tasks(3, torch.arange(24 + 8 * i, 32 + 8 * i)) for i in range(3)]
    for i, part in enumerate(parts):
        for name in part.tensors():
            if not name.startswith("query"):
                assert torch.equal(part.tensors()[name],
                                   whole.apply(lambda t, i=i: t[8 * i:8 * i + 8]
                                               ).tensors()[name]), name
    serial = list(task_batches(sampler, epoch=1, batch_size=16, num_batches=3))
    parallel = list(task_batches(sampler, epoch=1, batch_size=16, num_batches=3,
                                 num_workers=2))
    for a, b in zip(serial, parallel):
        for name in a.tensors():
            assert torch.equal(a.tensors()[name], b.tensors()[name]), name
    items = sampler.eval_centers("test", 3)[:40]
    together = sampler.eval_batch(items, 3)
    for i in (0, 17, 39):
        alone = sampler.eval_batch(items[i:i + 1], 3)
        for name in ("center", "support_ids", "support_label", "num_shots"):
            assert torch.equal(getattr(alone, name), getattr(together, name)[i:i + 1]), name
        a, b = alone.query_ids[0], together.query_ids[i]
        assert torch.equal(a[a >= 0], b[b >= 0])


def test_learned_ranker_replays_the_dated_split_inside_the_past(ciao_dated):
    from socialmeta.baselines.ranker import _pseudo_sampler

    graph, view, split, sampler = ciao_dated
    pseudo = _pseudo_sampler(sampler, fraction=0.15, max_users=300)
    assert isinstance(pseudo.split, ItemSplit) and pseudo.split.cut < split.cut
    dated = pseudo.graph.link_time != UNDATED
    assert bool((pseudo.graph.link_time[dated] < split.cut).all())
    assert sampler.is_train[pseudo.split.val].all()
    assert not torch.isin(torch.cat([split.val, split.test]), pseudo.split.train).any()
    assert pseudo.eval_centers("val", 3).numel() > 20


def test_experiment_builds_the_dated_split(ciaodvd_root):
    from socialmeta import Experiment
    from socialmeta.config import ConfigError

    exp = Experiment.from_config(overrides=[
        "dataset=ciaodvd", f"dataset.root={ciaodvd_root}", "task=new_item",
        "task.protocol=temporal", "task.time_cut=2009-01-01"])
    assert isinstance(exp.split, ItemSplit) and exp.split.cut == 1230768000
    assert INTERACTS not in exp.graph.edge_types and exp.graph.has_link_times
    with pytest.raises(ConfigError, match="split by date needs dated interactions"):
        Experiment.from_config(overrides=["dataset=synthetic", "dataset.num_users=200",
                                          "task=new_item", "task.protocol=temporal"])
