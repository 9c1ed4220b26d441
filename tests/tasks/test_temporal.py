"""The temporal protocol: time cuts, temporal splits, a worked example by hand, leakage
over thousands of CiaoDVD tasks (nothing dated after a task's cut reaches it) and
determinism whatever the batch or worker count."""
import dataclasses
import datetime

import pytest
import torch

from socialmeta.baselines import make_baseline
from socialmeta.data import INTERACTS, SocialGraph
from socialmeta.meta import InnerLoop, candidate_scores, meta_parameters
from socialmeta.models import ItemModel
from socialmeta.tasks import (
    TaskConfig,
    TaskSampler,
    TemporalSplit,
    split_temporal,
    split_users,
    task_batches,
    time_cut,
)
from socialmeta.tasks.split import observed_graph

DAY = 86400
T0 = int(datetime.datetime(2010, 1, 1, tzinfo=datetime.UTC).timestamp())


def _day(n: int) -> int:
    return T0 + n * DAY


def _small_graph() -> SocialGraph:
    r"""Six users, eight items. u0: items i0..i5 on days 1..6 (i2 again? no: each once);
    u1: i0 (day 2), i6 (day 9); u2: i1 (day 1), i2 (day 3); u3: i7 (day 8), i3 (day 9)
    (arrives after the cut); u4: i0 (day 1), i1 (day 2); u5: i4 (day 4). Friendships
    u0-u1, u0-u2, u1-u3, u2-u4, u4-u5."""
    rows = [(0, 0, 1), (0, 1, 2), (0, 2, 3), (0, 3, 4), (0, 4, 6), (0, 5, 7),
            (1, 0, 2), (1, 6, 9), (2, 1, 1), (2, 2, 3), (3, 7, 8), (3, 3, 9),
            (4, 0, 1), (4, 1, 2), (5, 4, 4)]
    index = torch.tensor([[u for u, _, _ in rows], [i for _, i, _ in rows]])
    times = torch.tensor([_day(d) for _, _, d in rows])
    friends = torch.tensor([[0, 0, 1, 2, 4], [1, 2, 3, 4, 5]])
    return SocialGraph.from_parts(user_ids=[f"u{i}" for i in range(6)], friend_index=friends,
                                  item_ids=[f"i{i}" for i in range(8)],
                                  interaction_index=index, interaction_time=times,
                                  name="dated")


def test_time_cut_forms():
    g = _small_graph()
    assert time_cut(g, _day(5)) == _day(5) == time_cut(g, str(_day(5)))
    assert time_cut(g, "2010-01-06") == _day(5)
    assert time_cut(g, "2010-01-06T00:00:00+01:00") == _day(5) - 3600
    times = g.interaction_time.sort().values
    assert time_cut(g, 0.5) == int(times[7]) == time_cut(g, "0.5")
    for bad, match in ((1.5, r"\(0, 1\)"), ("next week", "ISO-8601"), (True, "quantile")):
        with pytest.raises(ValueError, match=match):
            time_cut(g, bad)
    undated = SocialGraph.from_parts(user_ids=["a", "b"], friend_index=torch.tensor([[0], [1]]),
                                     item_ids=["x"], interaction_index=torch.tensor([[0], [0]]))
    with pytest.raises(ValueError, match="no times"):
        time_cut(undated, 0.5)


def test_split_temporal_users_and_observed_graph():
    g = _small_graph()
    cut = _day(5)
    warm = split_temporal(g, cut, users="warm", val_fraction=0.5, test_fraction=0.5, seed=0)
    # users with interactions before and after day 5: u0 (days 6, 7) and u1 (day 9)
    assert sorted(torch.cat([warm.val, warm.test]).tolist()) == [0, 1]
    assert sorted(warm.train.tolist()) == [2, 3, 4, 5]
    obs = observed_graph(g, warm)
    t = obs[INTERACTS].time
    assert bool((t < cut).all()) and t.numel() == int((g.interaction_time < cut).sum())
    assert obs.friend_index.size(1) == g.friend_index.size(1)   # known at the cut
    with pytest.raises(ValueError, match="only 1 new user"):   # one val and one test user
        split_temporal(g, cut, users="new", val_fraction=0.5, test_fraction=0.5)
    new = split_temporal(g, cut, users="new", val_fraction=0.0, test_fraction=1.0, seed=0)
    assert new.test.tolist() == [3] and new.val.numel() == 0  # first interaction after the cut
    obs = observed_graph(g, new)
    assert 3 not in obs.interaction_index[0].tolist()
    assert bool((obs[INTERACTS].time < cut).all())
    assert not (obs.friend_index == 3).any()  # a new user's friendships are not observed
    with pytest.raises(ValueError, match="move the cut"):
        split_temporal(g, _day(100), users="warm")
    with pytest.raises(ValueError, match="unknown temporal users"):
        split_temporal(g, cut, users="cold")


def test_sampler_checks_protocol_and_split():
    g = _small_graph()
    temporal = split_temporal(g, _day(5), users="warm", seed=0)
    with pytest.raises(ValueError, match="needs a temporal split"):
        TaskSampler(g, split_users(g, seed=0), TaskConfig(kind="item", protocol="temporal"))
    with pytest.raises(ValueError, match="needs task.protocol=temporal"):
        TaskSampler(g, temporal, TaskConfig(kind="item"))
    with pytest.raises(ValueError, match="'new' users"):
        TaskSampler(g, split_temporal(g, _day(5), users="new", val_fraction=0.0,
                                      test_fraction=1.0),
                    TaskConfig(kind="item", protocol="temporal", temporal_users="warm"))
    with pytest.raises(ValueError, match="defined for item and new-item tasks"):
        TaskConfig(kind="friend", protocol="temporal")
    with pytest.raises(ValueError, match="history"):
        TaskConfig(kind="item", context=("friends", "history"))


def test_worked_example_warm_user():
    """u0 rated i0..i5 on days 1, 2, 3, 4, 6, 7; the cut is day 5. At K=2 its support is
    its last two items before the cut (i2, i3), its older history (i1, i0, most recent
    first) is seen but neither input nor candidate unless the task observes
    ``history``, and its query is what it rated after the cut (i4, i5)."""
    g = _small_graph()
    split = TemporalSplit(torch.tensor([2, 3, 4, 5]), torch.tensor([1]), torch.tensor([0]), 6,
                          cut=_day(5), mode="warm")
    for context in (("friends",), ("friends", "history")):
        sampler = TaskSampler(g, split, TaskConfig(kind="item", protocol="temporal",
                                                   context=context, shots=(2,), seed=3))
        assert sampler.eval_centers("test", 2).tolist() == [0]
        assert sampler.eval_centers("test", 5).tolist() == []   # 4 items before the cut
        b = sampler.eval_batch(torch.tensor([0]), 2)
        sup = b.support_ids[0][b.support_mask[0] & (b.support_label[0] == 1)]
        assert sorted(sup.tolist()) == [2, 3]
        assert b.seen_ids[0].tolist() == [1, 0]
        assert sorted(b.query_ids[0][b.query_mask[0]].tolist()) == [4, 5]
        center_items = b.item_ids[0][b.item_adj[0, 0].bool()]
        expect = [0, 1, 2, 3] if "history" in context else [2, 3]
        assert sorted(center_items.tolist()) == expect
        cand = sampler.candidate_mask(b)[0]
        assert cand.nonzero().view(-1).tolist() == [4, 5, 6, 7]
        # the task's other users show only what they had before the cut: u1's i6 (day 9)
        # is not in the task
        assert 6 not in b.item_ids[0].tolist()


def test_worked_example_new_user():
    """u3 arrives after the cut (i7 on day 8, i3 on day 9): at K=1 its support is its
    first item, its query the next one."""
    g = _small_graph()
    split = split_temporal(g, _day(5), users="new", val_fraction=0.0, test_fraction=1.0)
    sampler = TaskSampler(g, split, TaskConfig(kind="item", protocol="temporal",
                                               temporal_users="new", shots=(1,)))
    b = sampler.eval_batch(torch.tensor([3]), 1)
    assert b.support_ids[0][b.support_label[0] == 1].tolist() == [7]
    assert b.query_ids[0][b.query_mask[0]].tolist() == [3]


def test_training_tasks_cut_inside_the_history():
    """Warm training tasks: support = the K items before a seeded position p, query =
    the ones from p on; all dated before the global cut; none of them in the input."""
    g = _small_graph()
    split = TemporalSplit(torch.tensor([0, 2, 4]), torch.tensor([1]), torch.tensor([3]), 6,
                          cut=_day(5), mode="warm")
    sampler = TaskSampler(g, split, TaskConfig(kind="item", protocol="temporal",
                                               shots=(1,), seed=0))
    assert sorted(sampler.train_centers().tolist()) == [0, 2, 4]
    day = {(int(u), int(i)): int(t) for (u, i), t in
           zip(g.interaction_index.t(), g.interaction_time)}
    for epoch in range(20):
        b = sampler.train_batch(epoch, 0, 3)
        for t in range(3):
            c = int(b.center[t])
            sup = b.support_ids[t][b.support_mask[t] & (b.support_label[t] == 1)].tolist()
            qry = b.query_ids[t][b.query_mask[t] & (b.query_label[t] == 1)].tolist()
            assert len(sup) == 1 and qry
            assert max(day[c, i] for i in sup) <= min(day[c, i] for i in qry) < _day(5)
            inputs = set(b.item_ids[t][b.item_adj[t, 0].bool()].tolist())
            assert not inputs & set(qry)


# ------------------------------------------------------------------ CiaoDVD
def _rewired(graph: SocialGraph, cut: int, eval_users=None, shots: int = 0,
             seed: int = 0) -> SocialGraph:
    """The graph with every interaction dated at or after :obj:`cut` moved to another
    item (same user, same time, same count): what must not change any task input. With
    :obj:`eval_users` (new users, who arrive after the cut) their first :obj:`shots`
    interactions stay, and so does any other of theirs dated no later than those: the
    task's own cut is after its K-th interaction."""
    out = graph.clone()
    index = graph.interaction_index.clone()
    when = graph.interaction_time
    limit = torch.full((graph.num_users,), cut, dtype=torch.long)
    if eval_users is not None:
        for u in eval_users.tolist():
            mine = when[index[0] == u].sort().values
            limit[u] = int(mine[min(shots, mine.numel()) - 1]) + 1
    late = when >= limit[index[0]]
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, graph.num_items, (int(late.sum()),), generator=gen)
    index[1, late] = (index[1, late] + shift) % graph.num_items
    out[INTERACTS].edge_index = index
    return out


INPUTS = ("center", "node_ids", "node_mask", "x", "adj", "hop", "item_ids", "item_mask",
          "item_adj", "support_ids", "support_label", "support_mask", "seen_ids",
          "num_shots")


def _equal_inputs(a, b, names):
    ta, tb = a.tensors(), b.tensors()
    for name in names:
        if name in ta:
            assert torch.equal(ta[name], tb[name]), name


@pytest.fixture(scope="module", params=["warm", "new"])
def ciao_pair(request, ciaodvd):
    mode = request.param
    split = split_temporal(ciaodvd, 0.7, users=mode, seed=1)
    context = ("friends", "history") if mode == "warm" else ("friends",)
    config = TaskConfig(kind="item", protocol="temporal", temporal_users=mode,
                        context=context, taste_fanout=4, seed=2)
    sampler = TaskSampler(ciaodvd, split, config)
    if mode == "warm":
        late = TaskSampler(_rewired(ciaodvd, split.cut), split, config)
        return mode, split, sampler, lambda k: late
    eval_users = torch.cat([split.val, split.test])
    cache = {}

    def late_for(k):   # the task's cut depends on K for new users
        if k not in cache:
            cache[k] = TaskSampler(_rewired(ciaodvd, split.cut, eval_users, k), split, config)
        return cache[k]

    return mode, split, sampler, late_for


def test_ciaodvd_future_never_reaches_a_task(ciao_pair):
    """Over 2,000 training tasks and every val/test user at K in {1, 3, 5, 10}: moving
    every interaction dated after the cut leaves training tasks bit-identical, and every
    evaluation task's input, candidates and baseline and model scores bit-identical."""
    mode, split, sampler, late_for = ciao_pair
    late = late_for(1)   # baselines read the observed graph: the same for every K
    names = ["popularity", "social_popularity", "itemknn", "userknn", "ease"]
    fitted = [(make_baseline("item", n).fit(sampler), make_baseline("item", n).fit(late))
              for n in names]
    tasks = 0
    for b in range(8):
        a, z = sampler.train_batch(b % 2, b, 250), late.train_batch(b % 2, b, 250)
        _equal_inputs(a, z, a.tensors())
        tasks += a.num_tasks
    assert tasks == 2000
    torch.manual_seed(0)
    model = ItemModel(sampler.in_channels, sampler.num_items, num_hops=2, hidden_channels=8)
    inner = InnerLoop("maml", steps=1, lr=0.1)
    params = meta_parameters(model, inner)
    evaluated = 0
    for which in ("val", "test"):
        for k in (1, 3, 5, 10):
            late = late_for(k)
            users = sampler.eval_centers(which, k)
            assert torch.equal(users, late.eval_centers(which, k))
            for start in range(0, users.numel(), 128):
                chunk = users[start:start + 128]
                a, z = sampler.eval_batch(chunk, k), late.eval_batch(chunk, k)
                _equal_inputs(a, z, INPUTS)
                assert torch.equal(sampler.candidate_mask(a), late.candidate_mask(z))
                for fa, fz in fitted:
                    assert torch.equal(fa.scores(a), fz.scores(z)), fa.name
                sa = candidate_scores(model, params, a, inner, sampler.num_items)
                assert torch.equal(sa, candidate_scores(model, params, z, inner,
                                                        sampler.num_items))
                evaluated += chunk.numel()
                # the query is the future itself: it must differ once rewired
                if k == 1 and start == 0:
                    assert not torch.equal(a.query_ids, z.query_ids)
    assert evaluated > 400


def test_ciaodvd_future_never_reaches_the_hybrid_item_scorer(ciao_pair, ciaodvd):
    """The hybrid item scorer's pair features (recent popularity included: it reads the
    interaction times) and scores: moving every interaction dated after the cut leaves
    400 training tasks' features and every test user's features and scores at K=3
    bit-identical."""
    from socialmeta.features import allowed_item_features
    from socialmeta.models import HybridItemModel

    mode, split, sampler, late_for = ciao_pair
    config = dataclasses.replace(sampler.config, pair_features=tuple(
        allowed_item_features(sampler.config.context, dated=True)))
    now = TaskSampler(ciaodvd, split, config)
    late = TaskSampler(late_for(3).graph, split, config)
    assert "recent_popularity@7" in now.pair_features.channels
    for b in range(2):
        a, z = now.train_batch(0, b, 200), late.train_batch(0, b, 200)
        assert torch.equal(a.pair_features, z.pair_features)
    torch.manual_seed(0)
    model = HybridItemModel(now.in_channels, now.num_items, 2,
                            num_pair_features=now.pair_features.num_channels,
                            hidden_channels=8)
    inner = InnerLoop("maml", steps=1, lr=0.1)
    params = meta_parameters(model, inner)
    users = now.eval_centers("test", 3)
    for start in range(0, users.numel(), 128):
        a, z = now.eval_batch(users[start:start + 128], 3), late.eval_batch(
            users[start:start + 128], 3)
        assert torch.equal(a.pair_features, z.pair_features)
        assert torch.equal(candidate_scores(model, params, a, inner, now.num_items),
                           candidate_scores(model, params, z, inner, now.num_items))


def test_ciaodvd_support_precedes_query(ciao_pair, ciaodvd):
    """Every task: the support's latest date <= the query's earliest, the support and
    history (warm) before the global cut, the query of evaluation tasks after it (warm)
    and the center's items in the input no later than its support."""
    mode, split, sampler, _ = ciao_pair
    g = ciaodvd
    key = g.interaction_index[0] * g.num_items + g.interaction_index[1]
    order = torch.argsort(key)
    key, when = key[order], g.interaction_time[order]

    def dates(center, ids):
        pos = torch.searchsorted(key, center * g.num_items + ids)
        assert torch.equal(key[pos], center * g.num_items + ids)   # real interactions
        return when[pos]

    batches = [(sampler.train_batch(0, b, 250), True) for b in range(4)]
    batches += [(sampler.eval_batch(sampler.eval_centers(s, 3), 3), False)
                for s in ("val", "test")]
    for batch, train in batches:
        for t in range(batch.num_tasks):
            c = batch.center[t]
            sup = batch.support_ids[t][batch.support_mask[t] & (batch.support_label[t] == 1)]
            qry = batch.query_ids[t][batch.query_mask[t] & (batch.query_label[t] == 1)]
            if not sup.numel() or not qry.numel():
                continue
            s_dates, q_dates = dates(c, sup), dates(c, qry)
            assert s_dates.max() <= q_dates.min()
            center_items = batch.item_ids[t][batch.item_adj[t, 0].bool()]
            assert dates(c, center_items).max() <= s_dates.max()
            if mode == "warm" or train:
                assert s_dates.max() < split.cut
            if mode == "warm" and not train:
                assert q_dates.min() >= split.cut


def test_temporal_tasks_independent_of_batch_and_workers(ciao_pair):
    mode, split, sampler, _ = ciao_pair
    whole = sampler.train_batch(epoch=3, batch_index=1, batch_size=24)
    parts = [sampler.train_tasks(3, torch.arange(24 + 8 * i, 32 + 8 * i)) for i in range(3)]
    for i, part in enumerate(parts):
        _equal_inputs(part, whole.apply(lambda t, i=i: t[8 * i:8 * i + 8]),
                      [n for n in part.tensors() if not n.startswith(("seen", "query"))])
    serial = list(task_batches(sampler, epoch=1, batch_size=16, num_batches=3))
    parallel = list(task_batches(sampler, epoch=1, batch_size=16, num_batches=3,
                                 num_workers=2))
    for a, b in zip(serial, parallel):
        _equal_inputs(a, b, a.tensors())
    users = sampler.eval_centers("test", 3)[:40]
    together = sampler.eval_batch(users, 3)
    for i in (0, 17, 39):
        alone = sampler.eval_batch(users[i:i + 1], 3)
        _equal_inputs(alone, together.apply(lambda t, i=i: t[i:i + 1]),
                      ("center", "support_ids", "support_label", "num_shots"))
        for name in ("query_ids", "seen_ids", "item_ids", "node_ids"):
            a = getattr(alone, name)[0]
            b = getattr(together, name)[i]
            assert torch.equal(a[a >= 0], b[b >= 0]), name


def test_learned_ranker_replays_the_protocol_inside_the_past(ciao_pair):
    """The learned ranker's simulated users under the temporal protocol: training users
    at a pseudo cut before the real one, on a graph with nothing after the real cut."""
    from socialmeta.baselines.ranker import _pseudo_sampler

    mode, split, sampler, _ = ciao_pair
    pseudo = _pseudo_sampler(sampler, fraction=0.15, max_users=300)
    assert isinstance(pseudo.split, TemporalSplit) and pseudo.split.mode == mode
    assert pseudo.split.cut < split.cut
    assert bool((pseudo.graph.interaction_time < split.cut).all())
    assert bool(sampler.is_train[pseudo.split.val].all())
    held_out = torch.cat([split.val, split.test])
    assert not torch.isin(held_out, pseudo.split.train).any()
    assert pseudo.eval_centers("val", 3).numel() > 20


# ------------------------------------------------------- drift baselines by hand
def _warm_sampler(context=("friends", "history")):
    g = _small_graph()
    split = TemporalSplit(torch.tensor([2, 3, 4, 5]), torch.tensor([1]), torch.tensor([0]), 6,
                          cut=_day(5), mode="warm")
    return TaskSampler(g, split, TaskConfig(kind="item", protocol="temporal",
                                            context=context, shots=(2,), seed=3))


def test_recent_popularity_by_hand():
    """Observed (before day 5): i0 on days 1, 2, 1; i1 on days 2, 1, 2; i2 on days 3, 3;
    i3 on day 4; i4 on day 4. With a one-day half-life each counts 2^-(5 - day)."""
    sampler = _warm_sampler()
    batch = sampler.eval_batch(torch.tensor([0]), 2)
    base = make_baseline("item", "recent_popularity", half_life=1.0).fit(sampler)
    w = {d: 2.0 ** -(5 - d) for d in range(1, 5)}
    recent = torch.tensor([w[1] + w[2] + w[1], w[2] + w[1] + w[2], 2 * w[3], w[4], w[4],
                           0.0, 0.0, 0.0])
    counts = torch.tensor([3.0, 3, 2, 1, 1, 0, 0, 0])
    expect = recent / recent.max() + 1e-6 * counts / counts.max()
    assert torch.allclose(base.scores(batch)[0], expect, atol=1e-7)
    # a long half-life tends to plain popularity: i0 and i1 tie above i2
    flat = make_baseline("item", "recent_popularity", half_life=1e6).fit(sampler)
    s = flat.scores(batch)[0]
    assert torch.isclose(s[0], s[1]) and s[1] > s[2] > s[3]
    with pytest.raises(ValueError, match="dated interactions"):
        undated = SocialGraph.from_parts(user_ids=["a", "b"], item_ids=["x"],
                                         friend_index=torch.tensor([[0], [1]]),
                                         interaction_index=torch.tensor([[0, 1], [0, 0]]))
        make_baseline("item", "recent_popularity").fit(
            TaskSampler(undated, split_users(undated, val_fraction=0.5, test_fraction=0.0),
                        TaskConfig(kind="item")))


def test_history_baselines_read_the_whole_history():
    """itemknn_history with weight w scores the profile support + w * history: with w=0
    it is ItemKNN from the recent K, with w=1 ItemKNN from every item before the cut."""
    sampler = _warm_sampler()
    batch = sampler.eval_batch(torch.tensor([0]), 2)
    recent = make_baseline("item", "itemknn").fit(sampler).scores(batch)
    none = make_baseline("item", "itemknn_history", history_weight=0.0).fit(sampler)
    assert torch.equal(none.scores(batch), recent)
    full = make_baseline("item", "itemknn_history", history_weight=1.0).fit(sampler)
    whole = batch.apply(lambda t: t)
    whole.support_ids = torch.tensor([[0, 1, 2, 3]])
    whole.support_mask = torch.ones(1, 4, dtype=torch.bool)
    whole.support_label = torch.ones(1, 4)
    whole.seen_ids = torch.zeros(1, 0, dtype=torch.long)
    assert torch.allclose(full.scores(batch), recent_knn := make_baseline(
        "item", "itemknn").fit(sampler).scores(whole))
    assert not torch.allclose(recent_knn, recent)
    ease = make_baseline("item", "ease_history", history_weight=1.0, l2=1.0).fit(sampler)
    assert torch.allclose(ease.scores(batch), make_baseline("item", "ease", l2=1.0).fit(
        sampler).scores(whole))
    with pytest.raises(ValueError, match="history"):
        make_baseline("item", "itemknn_history").fit(_warm_sampler(("friends",)))
