"""The learned non-meta ranker: its loss, its training data (training users only) and
that it learns."""
import math

import pytest
import torch

from socialmeta.baselines import make_baseline
from socialmeta.baselines.ranker import _pseudo_sampler, list_softmax_loss
from socialmeta.data import SocialGraph, generate_synthetic
from socialmeta.eval.protocol import evaluate_scorer
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


def test_list_softmax_loss_by_hand():
    scores = torch.tensor([[1.0, 2.0, 3.0, 9.0], [0.0, 0.0, 0.0, 0.0]])
    positive = torch.tensor([[True, False, False, False], [False, True, False, False]])
    candidates = torch.tensor([[True, True, True, False], [True, True, False, False]])
    z0 = math.log(math.exp(1) + math.exp(2) + math.exp(3))  # the 9.0 is no candidate
    expected = ((z0 - 1.0) + math.log(2.0)) / 2
    assert math.isclose(float(list_softmax_loss(scores, positive, candidates)), expected,
                        rel_tol=1e-6)


@pytest.fixture(scope="module")
def graph():
    return generate_synthetic(400, avg_degree=10, num_items=80, seed=2)


def test_pseudo_new_users_are_training_users_removed_from_the_graph(graph):
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="friend"))
    pseudo = _pseudo_sampler(sampler, fraction=0.2, max_users=50)
    assert pseudo.split.val.numel() == 50
    assert sampler.is_train[pseudo.split.val].all()            # never val/test users
    assert not torch.isin(pseudo.split.train, pseudo.split.val).any()
    assert torch.equal(torch.sort(torch.cat([pseudo.split.train, pseudo.split.val])).values,
                       sampler.split.train)
    # neither their links nor any real val/test user's are in the graph it reads
    assert torch.equal(pseudo.split.test.sort().values,
                       torch.cat([sampler.split.val, sampler.split.test]).sort().values)
    assert not pseudo.is_train[sampler.split.val].any()
    assert not pseudo.is_train[sampler.split.test].any()
    src, dst = pseudo.observed.friend_index
    assert pseudo.is_train[src].all() and pseudo.is_train[dst].all()


def _rewire_test_users(graph, split, seed):
    """The same graph with every friendship of a test user replaced at random."""
    src, dst = graph.friend_index
    test = torch.isin(src, split.test) | torch.isin(dst, split.test)
    keep = torch.stack([src[~test], dst[~test]])
    gen = torch.Generator().manual_seed(seed)
    u = split.test[torch.randint(split.test.numel(), (200,), generator=gen)]
    v = split.train[torch.randint(split.train.numel(), (200,), generator=gen)]
    new = torch.cat([keep, torch.stack([u, v]), torch.stack([v, u])], 1)
    return SocialGraph.from_parts(user_ids=graph.raw_ids["user"], friend_index=new,
                                  x=graph["user"].x)


def test_ranker_never_reads_val_or_test_links(graph):
    split = split_users(graph, seed=0)
    config = TaskConfig(kind="friend")
    fitted = []
    for g in (graph, _rewire_test_users(graph, split, 1), _rewire_test_users(graph, split, 2)):
        sampler = TaskSampler(g, split, config)
        ranker = make_baseline("friend", "learned_ranker", epochs=20).fit(sampler)
        fitted.append(torch.cat([p.detach().flatten() for p in ranker.mlp.parameters()]))
    assert torch.equal(fitted[0], fitted[1]) and torch.equal(fitted[0], fitted[2])


@pytest.mark.parametrize("kind,context", [("friend", ["items"]), ("item", ["friends"])])
def test_ranker_beats_popularity_on_validation_users(graph, kind, context):
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind=kind, context=context))
    ranker = make_baseline(kind, "learned_ranker").fit(sampler)
    popularity = make_baseline(kind, "popularity").fit(sampler)
    got = {name: evaluate_scorer(b.scores, sampler, "val", (3,))[3]["recall@20"]["mean"]
           for name, b in (("ranker", ranker), ("popularity", popularity))}
    assert got["ranker"] > got["popularity"] + 0.05, got


def test_ranker_reads_the_support_friends_taste_when_the_task_asks(graph):
    from socialmeta.baselines.base import candidate_normalized
    from socialmeta.baselines.ranker import _Features

    split = split_users(graph, seed=0)
    plain = _Features(TaskSampler(graph, split, TaskConfig(kind="friend")))
    assert "friends_taste" not in plain.channels
    sampler = TaskSampler(graph, split, TaskConfig(kind="friend", friends_taste=True))
    feats = _Features(sampler)
    assert feats.channels == [*plain.channels[:-1], "friends_taste", "paths3"]
    batch = sampler.eval_batch(sampler.eval_centers("val", 3)[:16], 3)
    x, candidates = feats(batch)
    want = make_baseline("friend", "friends_taste").fit(sampler).scores(batch)
    assert want[candidates].abs().sum() > 0
    assert torch.equal(x[..., feats.channels.index("friends_taste")],
                       candidate_normalized(want, candidates))


def test_friends_taste_baselines_are_in_all_only_with_the_task_flag():
    from socialmeta.baselines import roster

    plain = roster("friend", TaskConfig(kind="friend"))
    assert plain == roster("friend")
    assert "friends_taste" not in plain and "ppr_friends_taste" not in plain
    flagged = roster("friend", TaskConfig(kind="friend", friends_taste=True))
    assert set(flagged) - set(plain) == {"friends_taste", "ppr_friends_taste"}
    assert [n for n in flagged if n in plain] == plain      # same order otherwise
