"""Every baseline on tiny hand-computed graphs."""
import math
from types import SimpleNamespace

import pytest
import torch

from socialmeta.baselines import BASELINES, ease_weights, make_baseline, personalized_pagerank, tune
from socialmeta.baselines.base import Sparse
from socialmeta.data import SocialGraph, generate_synthetic
from socialmeta.eval.protocol import evaluate_scorer
from socialmeta.tasks import TaskConfig, TaskSampler, UserSplit, split_temporal, split_users

EDGES = [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (4, 5), (1, 3), (6, 1), (6, 2), (6, 5)]


def _links(center, targets, width=4):
    ids = torch.full((1, width), -1)
    ids[0, :len(targets)] = torch.tensor(targets)
    return SimpleNamespace(num_tasks=1, center=torch.tensor([center]), support_ids=ids,
                           support_mask=ids >= 0, support_label=(ids >= 0).float())


def _friend_sampler():
    graph = SocialGraph.from_parts(user_ids=[str(i) for i in range(7)],
                                   friend_index=torch.tensor(EDGES).t())
    split = UserSplit(torch.arange(6), torch.zeros(0, dtype=torch.long), torch.tensor([6]), 7)
    return TaskSampler(graph, split, TaskConfig(kind="friend"))


@pytest.fixture(scope="module")
def friend_sampler():
    return _friend_sampler()


def _scores(kind, name, sampler, batch, **hyper):
    return make_baseline(kind, name, **hyper).fit(sampler).scores(batch)[0]


def test_friend_heuristics_by_hand(friend_sampler):
    # the new user 6 knows friends 1 and 2; user 6's edge to 5 is a test link, unseen
    batch = _links(6, [1, 2])
    s = lambda name: _scores("friend", name, friend_sampler, batch)  # noqa: E731
    # observed degrees: 0:2 1:3 2:3 3:3 4:2 5:1 6:0
    assert s("popularity")[:6].tolist() == [2, 3, 3, 3, 2, 1]
    assert s("common_neighbors").tolist() == [2, 1, 1, 2, 0, 0, 0]
    aa = s("adamic_adar")
    assert math.isclose(float(aa[0]), 2 / math.log(4), rel_tol=1e-6)
    assert math.isclose(float(aa[3]), 2 / math.log(4), rel_tol=1e-6)
    assert float(aa[4]) == 0.0
    ra = s("resource_allocation")
    assert math.isclose(float(ra[0]), 0.5, rel_tol=1e-6)
    jac = s("jaccard")
    assert math.isclose(float(jac[0]), 1.0) and math.isclose(float(jac[3]), 2 / 3, rel_tol=1e-6)


def test_ppr_equals_a_linear_solve(friend_sampler):
    batch = _links(6, [1, 2])
    alpha = 0.2
    got = _scores("friend", "ppr", friend_sampler, batch, alpha=alpha)
    a = torch.zeros(7, 7, dtype=torch.float64)
    for u, v in EDGES:
        if 6 not in (u, v):
            a[u, v] = a[v, u] = 1.0
    walk = a / a.sum(1, keepdim=True).clamp(min=1)
    r = torch.zeros(7, dtype=torch.float64)
    r[[1, 2]] = 0.5
    # p = alpha r + (1 - alpha) p W   <=>   p (I - (1 - alpha) W) = alpha r
    expected = torch.linalg.solve((torch.eye(7) - (1 - alpha) * walk).t(), alpha * r)
    assert torch.allclose(got.double(), expected, atol=1e-6)
    # the function itself, on a 2-task batch: each row is its own walk
    observed = torch.tensor(EDGES[:7]).t()
    adj = Sparse(torch.cat([observed, observed.flip(0)], 1), (7, 7))
    rows = torch.stack([r.float(), torch.eye(7)[4]])
    p = personalized_pagerank(adj, rows, alpha, iterations=200)
    assert torch.allclose(p[0].double(), expected, atol=1e-6)
    assert int(p[1].argmax()) == 4


def _item_sampler(kind="item", context=None, x=None):
    #            u0: i0 i1   u1: i0 i1 i2   u2: i2 i3   u3: i1    u4 (test): i0 i3
    inter = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 2), (2, 3), (3, 1), (4, 0), (4, 3)]
    graph = SocialGraph.from_parts(
        user_ids=[f"u{i}" for i in range(5)], item_ids=[f"i{i}" for i in range(4)],
        friend_index=torch.tensor([[4, 4, 0], [0, 2, 1]]),
        interaction_index=torch.tensor(inter).t(), x=x)
    split = UserSplit(torch.arange(4), torch.zeros(0, dtype=torch.long), torch.tensor([4]), 5)
    return TaskSampler(graph, split, TaskConfig(kind=kind, context=context))


def test_item_baselines_by_hand():
    sampler = _item_sampler()
    batch = _links(4, [0])
    s = lambda name, **h: _scores("item", name, sampler, batch, **h)  # noqa: E731
    assert s("popularity").tolist() == [2, 3, 2, 1]
    # friends of u4 are u0 and u2: items i0, i1 (u0) and i2, i3 (u2), one friend each
    assert torch.allclose(s("social_popularity"), torch.ones(4), atol=1e-5)
    knn = s("itemknn")   # cosine to i0 (users {0, 1})
    expected = torch.tensor([1.0, 2 / math.sqrt(6), 0.5, 0.0])
    assert torch.allclose(knn, expected, atol=1e-6)
    # user kNN, k=1: u0 ({i0, i1}) and u1 ({i0, i1, i2}) overlap with {i0};
    # cosines 1/sqrt(2) > 1/sqrt(3), so only u0 votes
    uk = s("userknn", k=1)
    assert uk[1] > uk[2] and math.isclose(float(uk[1]), 1 / math.sqrt(2), rel_tol=1e-4)


def test_ease_closed_form_equals_per_column_ridge():
    torch.manual_seed(0)
    x = (torch.rand(30, 6, dtype=torch.float64) < 0.4).double()
    lam = 3.0
    b = ease_weights(x, lam)
    for j in range(6):
        rest = [i for i in range(6) if i != j]
        xr = x[:, rest]
        direct = torch.linalg.solve(xr.t() @ xr + lam * torch.eye(5, dtype=torch.float64),
                                    xr.t() @ x[:, j])
        assert torch.allclose(b[rest, j], direct, atol=1e-10)
        assert b[j, j] == 0


def test_ease_sparse_gram_is_bit_identical_to_the_dense_one():
    """A sparse 0/1 user-item matrix (what the EASE baseline builds) gives the same
    weights as the dense one, bit for bit: the Gram matrix is counts either way."""
    torch.manual_seed(0)
    x = (torch.rand(300, 40, dtype=torch.float64) < 0.1).double()
    dense = ease_weights(x, 50.0)
    assert torch.equal(ease_weights(x.to_sparse(), 50.0), dense)
    assert dense.abs().sum() > 0


def test_ease_scores_and_min_users_cut():
    sampler = _item_sampler()
    ease = make_baseline("item", "ease", l2=1.0, min_users=2).fit(sampler)
    assert ease.kept.tolist() == [0, 1, 2]       # i3 has one training user
    scores = ease.scores(_links(4, [0]))[0]
    assert scores[3] < scores[:3].min()          # below every kept item


def _interest_batch(num_labels):
    # center 0; members 1 (hop 1, labels {0}), 2 (hop 1, {1}), 3 (hop 2, {1})
    labels = torch.zeros(1, 4, num_labels)
    labels[0, :, :2] = torch.tensor([[0, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.float)
    adj = torch.zeros(1, 4, 4)
    for u, v in [(0, 1), (0, 2), (2, 3)]:
        adj[0, u, v] = adj[0, v, u] = 1
    return SimpleNamespace(num_tasks=1, center=torch.tensor([0]), labels=labels,
                           label_mask=torch.tensor([[False, True, True, True]]),
                           hop=torch.tensor([[0, 1, 1, 2]]), adj=adj)


def test_interest_baselines_by_hand():
    graph = generate_synthetic(200, avg_degree=6, seed=0)
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="interest"))
    batch = _interest_batch(graph["user"].interests.size(1))
    nb = make_baseline("interest", "neighbors").fit(sampler).scores(batch)[0]
    # weights 1, 1, 1/2: label 0 gets 1/2.5, label 1 gets 1.5/2.5 (+ a 1e-6 prior tie-break)
    assert torch.allclose(nb[:2], torch.tensor([0.4, 0.6]), atol=1e-5)
    assert nb[2:].max() < 1e-5
    lp = make_baseline("interest", "label_propagation", alpha=0.5).fit(sampler)
    lp.iterations = 200
    w = batch.adj[0] / batch.adj[0].sum(1, keepdim=True)
    y = batch.labels[0] * batch.label_mask[0].unsqueeze(1)
    closed = 0.5 * torch.linalg.solve(torch.eye(4) - 0.5 * w, y)
    assert torch.allclose(lp.scores(batch)[0], closed[0], atol=1e-5)
    assert closed[0, 1] > closed[0, 0] > 0
    prior = make_baseline("interest", "prior").fit(sampler).scores(batch)[0]
    observed = sampler.observed["user"]
    expected = observed.interests[observed.interest_mask].float().mean(0)
    assert torch.allclose(prior, expected)


def test_feature_mlp_needs_features():
    graph = generate_synthetic(200, avg_degree=6, feature_dim=0, seed=0)
    with pytest.raises(ValueError, match="not available: dataset"):
        TaskSampler(graph, split_users(graph, seed=0),
                    TaskConfig(kind="interest", context=["friends", "features"]))
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="interest"))
    with pytest.raises(ValueError, match=r"needs the new user's features, which these "
                                         r"tasks hide \(task.context=\['friends'\]\); it "
                                         r"runs with task.context=\['friends', 'features'\]"):
        make_baseline("interest", "feature_mlp").fit(sampler)


def test_context_baselines_by_hand():
    # the test user u4 has items {i0, i3}; training users u0 {i0, i1}, u1 {i0, i1, i2},
    # u2 {i2, i3}, u3 {i1}; item counts over training users: 2, 3, 2, 1
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [2.0, 0.0]])
    sampler = _item_sampler("friend", ["items", "features"], x=x)
    batch = _links(4, [0])
    taste = _scores("friend", "taste", sampler, batch, idf=False)
    expected = torch.tensor([0.5, 1 / math.sqrt(6), 0.5, 0.0, 0.0])
    assert torch.allclose(taste, expected, atol=1e-6)
    w = [math.log(5 / 3), math.log(5 / 4), math.log(5 / 3), math.log(5 / 2)]
    idf = _scores("friend", "taste", sampler, batch, idf=True)
    norm4 = math.hypot(w[0], w[3])
    assert math.isclose(float(idf[0]), w[0] ** 2 / (norm4 * math.hypot(w[0], w[1])),
                        rel_tol=1e-5)
    assert math.isclose(float(idf[2]), w[3] ** 2 / (norm4 * math.hypot(w[2], w[3])),
                        rel_tol=1e-5)
    feat = _scores("friend", "feature_similarity", sampler, batch)
    assert torch.allclose(feat, torch.tensor([1.0, 1 / math.sqrt(2), 0.0, 0.0, 1.0]),
                          atol=1e-6)
    # the blend: each part divided by its largest score among the candidates (training
    # users except the center and its support friend u0)
    ppr = _scores("friend", "ppr", sampler, batch, alpha=0.3)
    cand = torch.tensor([False, True, True, True, False])
    for weight in (0.0, 0.25, 1.0):
        blend = _scores("friend", "ppr_taste", sampler, batch, alpha=0.3, idf=False,
                        weight=weight)
        expected = ((1 - weight) * ppr / ppr[cand].max()
                    + weight * taste / taste[cand].max())
        assert torch.allclose(blend, expected, atol=1e-6), weight
    blend = _scores("friend", "ppr_features", sampler, batch, alpha=0.3, weight=0.5)
    assert torch.allclose(blend, 0.5 * ppr / ppr[cand].max() + 0.5 * feat / feat[cand].max(),
                          atol=1e-6)
    # item tasks: social popularity blended with ItemKNN from the support item i0
    items = _item_sampler("item", ["friends"])
    social = _scores("item", "social_popularity", items, batch)
    knn = _scores("item", "itemknn", items, batch)
    cand = torch.tensor([False, True, True, True])
    got = _scores("item", "social_itemknn", items, batch, weight=0.75)
    expected = 0.25 * social / social[cand].max() + 0.75 * knn / knn[cand].max()
    assert torch.allclose(got, expected, atol=1e-6)


def test_context_baselines_refuse_hidden_relations():
    no_context = _item_sampler("friend", [])
    for name, relation in (("taste", "items"), ("ppr_taste", "items")):
        with pytest.raises(ValueError, match=rf"needs the new user's {relation}, which"):
            make_baseline("friend", name).fit(no_context)
    with pytest.raises(ValueError, match=r"needs the new user's friends, which"):
        make_baseline("item", "social_popularity").fit(_item_sampler("item", []))


def test_registry_errors_and_kinds(friend_sampler):
    with pytest.raises(ValueError, match="choose one of"):
        make_baseline("friend", "nope")
    with pytest.raises(ValueError, match="no hyper-parameter"):
        make_baseline("friend", "ppr", beta=1)
    with pytest.raises(ValueError, match="scores \\['item'\\] tasks"):
        make_baseline("item", "popularity").fit(friend_sampler)


@pytest.mark.parametrize("kind", ["friend", "item", "interest"])
def test_every_baseline_runs_the_protocol_and_tunes_on_val(kind):
    graph = generate_synthetic(300, avg_degree=8, num_items=60, seed=1)
    context = {"friend": ["items", "features"], "item": ["friends", "features"],
               "interest": ["friends", "items", "features"]}[kind]
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind=kind, context=context))
    for cls in BASELINES[kind].values():
        if cls.name in DRIFT:   # dated interactions and a temporal split: below
            with pytest.raises(ValueError, match="history|dated"):
                cls().fit(sampler)
            continue
        best, trials = tune(cls(), sampler, shots=3, max_users=40)
        assert len(trials) == max(1, math.prod(len(v) for v in cls.grid.values()))
        chosen = max(trials, key=lambda t: t[1])[0]
        assert all(best.hyper[k] == v for k, v in chosen.items())
        out = evaluate_scorer(best.scores, sampler, "test", (3,), max_users=40)[3]
        assert 0.0 <= out["recall@20"]["mean"] <= 1.0 and out["recall@20"]["users"] > 0


DRIFT = ("recent_popularity", "itemknn_history", "ease_history")


def test_drift_baselines_tune_on_val_under_the_temporal_protocol(ciaodvd):
    split = split_temporal(ciaodvd, 0.7, users="warm", seed=0)
    sampler = TaskSampler(ciaodvd, split, TaskConfig(kind="item", protocol="temporal",
                                                     context=("friends", "history")))
    for name in DRIFT[:2]:   # ease_history: by hand in tests/tasks/test_temporal.py
        cls = BASELINES["item"][name]
        best, trials = tune(cls(), sampler, shots=3, max_users=60)
        assert len(trials) == math.prod(len(v) for v in cls.grid.values())
        out = evaluate_scorer(best.scores, sampler, "test", (3,), max_users=60)[3]
        assert 0.0 <= out["recall@20"]["mean"] <= 1.0 and out["recall@20"]["users"] == 60


def test_members_baselines_by_hand():
    # members task: nodes 1..3 are members, node 1 labelled {0}, node 2 labelled {1};
    # node 3 (query) is adjacent to both 1 and 2
    graph = generate_synthetic(200, avg_degree=6, seed=0)
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind="interest", variant="members"))
    batch = _interest_batch(2)
    batch.label_mask = torch.tensor([[False, True, True, False]])
    batch.adj[0, 1, 3] = batch.adj[0, 3, 1] = 1
    nb = make_baseline("interest", "neighbors").fit(sampler).scores(batch)[0]
    assert nb.shape == (4, 2)
    assert torch.allclose(nb[3], torch.tensor([0.5, 0.5]))   # one neighbour of each label
    assert torch.allclose(nb[0], torch.tensor([0.5, 0.5]))   # the center: nodes 1 and 2
    prior = make_baseline("interest", "prior").fit(sampler).scores(batch)[0]
    assert torch.allclose(prior, torch.tensor([[0.5, 0.5]] * 4))
    lp = make_baseline("interest", "label_propagation").fit(sampler).scores(batch)
    assert lp.shape == (1, 4, 2)


def test_member_metrics_rank_members_per_label():
    from socialmeta.eval.protocol import member_metrics

    # one task, 4 nodes, 2 labels; query members are nodes 2 and 3
    scores = torch.tensor([[[9.0, 9.0], [9.0, 9.0], [0.1, 0.9], [0.8, 0.2]]])
    batch = SimpleNamespace(
        query_node_mask=torch.tensor([[False, False, True, True]]),
        query_labels=torch.tensor([[[0, 0], [0, 0], [0, 1], [1, 0]]], dtype=torch.float),
        label_valid=torch.tensor([[True, True]]))
    m = member_metrics(scores, batch)
    # label 0: node 3 is positive and ranked first among {2, 3}; label 1: node 2 first
    assert m["mrr"].tolist() == [1.0, 1.0] and m["auc"].tolist() == [1.0, 1.0]
    batch.label_valid = torch.tensor([[True, False]])
    assert member_metrics(scores, batch)["mrr"].numel() == 1


def test_lightgcn_propagation_and_fold_in(friend_sampler):
    from socialmeta.baselines.lightgcn import normalized_adjacency, propagate

    index = torch.tensor(EDGES[:7]).t()
    index = torch.cat([index, index.flip(0)], 1)
    emb = torch.randn(7, 3)
    a = torch.zeros(7, 7)
    a[index[0], index[1]] = 1
    d = a.sum(1).clamp(min=1).rsqrt()
    norm = d[:, None] * a * d[None, :]
    expected = (emb + norm @ emb + norm @ norm @ emb) / 3
    assert torch.allclose(propagate(normalized_adjacency(index, 7), emb, 2), expected,
                          atol=1e-6)
    gcn = make_baseline("friend", "lightgcn", epochs=2, dim=8).fit(friend_sampler)
    batch = _links(6, [1, 2])
    folded = gcn.fold_in(batch)[0]
    assert torch.allclose(folded, gcn.candidates[[1, 2]].mean(0), atol=1e-6)
    assert torch.allclose(gcn.scores(batch)[0], gcn.candidates @ folded, atol=1e-5)


def test_lightgcn_learns_communities():
    # two cliques joined by one edge: a new user whose support is in clique A must rank
    # the rest of clique A above clique B
    a, b = range(0, 6), range(6, 12)
    edges = [(u, v) for grp in (a, b) for u in grp for v in grp if u < v] + [(5, 6)]
    edges += [(12, 0), (12, 1), (12, 2)]           # user 12 (test) knows 0, 1, 2
    graph = SocialGraph.from_parts(user_ids=[str(i) for i in range(13)],
                                   friend_index=torch.tensor(edges).t())
    split = UserSplit(torch.arange(12), torch.zeros(0, dtype=torch.long), torch.tensor([12]),
                      13)
    sampler = TaskSampler(graph, split, TaskConfig(kind="friend"))
    gcn = make_baseline("friend", "lightgcn", epochs=150, dim=8, batch=64).fit(sampler)
    scores = gcn.scores(_links(12, [0, 1]))[0]
    assert scores[[2, 3, 4]].min() > scores[[7, 8, 9, 10, 11]].max()


def test_eval_baselines_all_leaves_out_ppr_push_which_runs_when_named(monkeypatch):
    # ppr_push approximates ppr (to epsilon x degree): "all" runs ppr only; named, it
    # runs and ranks as ppr does on the same test tasks
    from socialmeta.experiment import baseline_results

    graph = generate_synthetic(300, avg_degree=8, feature_dim=0, seed=0)
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="friend"))
    roster = {name: BASELINES["friend"][name] for name in ("popularity", "ppr", "ppr_push")}
    monkeypatch.setitem(BASELINES, "friend", roster)
    settings = {"sampler": sampler, "split": "test", "shots": (3,)}
    every = baseline_results("all", 3, "recall@20", **settings)
    assert sorted(label.split("(")[0] for label in every) == ["baseline: popularity",
                                                               "baseline: ppr"]
    named = baseline_results(["ppr_push"], 3, "recall@20", **settings)
    (label,) = named
    assert label.startswith("baseline: ppr_push(")
    ppr = next(v for k, v in every.items() if k.startswith("baseline: ppr("))
    alpha = label.split("alpha=")[1].split(",")[0]
    assert f"alpha={alpha})" in next(k for k in every if k.startswith("baseline: ppr("))
    assert named[label][3]["recall@20"]["mean"] == pytest.approx(
        ppr[3]["recall@20"]["mean"], abs=0.01)
