"""socialmeta.Recommender and socialmeta-recommend: adapt to one user, rank candidates."""
import dataclasses
import json

import pytest
import torch

from socialmeta import Recommender
from socialmeta.cli.recommend import main as recommend_main
from socialmeta.cli.train import main as train_main
from socialmeta.data import INTERACTS
from socialmeta.models.item import item_neighbours

TINY = ["dataset.num_users=300", "dataset.feature_dim=0", "train.steps=4",
        "train.eval_every=2", "train.batch_size=8", "train.val_users=20", "eval.shots=[3]",
        "eval.max_users=10", "eval.baselines=null"]
# uncapped ego-nets: the task then depends only on the links, not on hashed ids
UNCAPPED = ["task.node_cap=300", "task.fanouts=[-1,-1]"]


@pytest.fixture(scope="module")
def friend_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("friend")
    train_main([f"hydra.run.dir={out}", *TINY, *UNCAPPED])
    return out / "best.pt"


@pytest.fixture(scope="module")
def rec(friend_run):
    return Recommender.from_checkpoint(friend_run)


def _training_friends(rec, user):
    u = rec.graph.raw_ids["user"].index(user)
    src, dst = rec.graph.friend_index
    friends = dst[(src == u) & rec.split.is_train()[dst]]
    return [rec.graph.raw_ids["user"][int(f)] for f in friends]


def _a_test_user(rec, min_friends=3):
    for u in rec.split.test.tolist():
        user = rec.graph.raw_ids["user"][u]
        if len(_training_friends(rec, user)) >= min_friends:
            return user
    raise AssertionError("no test user with enough friends")


def test_new_user_equals_an_existing_user_with_the_same_links(rec):
    # a featureless graph and uncapped ego-nets: only the links can matter
    user = _a_test_user(rec)
    friends = _training_friends(rec, user)
    by_id = rec.recommend(user=user, k=15)
    by_links = rec.recommend(friends=friends, k=15)
    assert [r.id for r in by_id] == [r.id for r in by_links]
    assert torch.allclose(torch.tensor([r.score for r in by_id]),
                          torch.tensor([r.score for r in by_links]), atol=1e-5)


def test_recommendations_are_sorted_candidates_only(rec):
    user = _a_test_user(rec)
    friends = set(_training_friends(rec, user))
    recs = rec.recommend(user=user, k=50)
    assert len(recs) == 50
    ids = [r.id for r in recs]
    assert len(set(ids)) == 50 and user not in ids and not friends & set(ids)
    train = {rec.graph.raw_ids["user"][u] for u in rec.split.train.tolist()}
    assert set(ids) <= train
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)


def test_adaptation_changes_the_ranking(rec):
    # different support friends, different recommendations
    a = rec.recommend(friends=["u1", "u2", "u3"], k=10)
    b = rec.recommend(friends=["u100", "u200", "u250"], k=10)
    assert [r.id for r in a] != [r.id for r in b]


def test_bad_requests_name_the_problem(rec):
    with pytest.raises(ValueError, match="unknown user id 'nope'"):
        rec.recommend(friends=["u1", "nope"])
    with pytest.raises(ValueError, match="not both"):
        rec.recommend(user="u1", friends=["u2"])
    with pytest.raises(ValueError, match="friends=\\[...\\] only"):
        rec.recommend(friends=["u1"], items=["i1"])
    with pytest.raises(ValueError, match="describe the new user"):
        rec.recommend()
    with pytest.raises(ValueError, match="k must be"):
        rec.recommend(user="u1", k=0)
    # a repeated friend would count twice in the support and change the ranking
    with pytest.raises(ValueError, match="friends: id 'u5' is given twice; give each once"):
        rec.recommend(friends=["u5", "u5", "u17"])


def test_cli_table_and_json(friend_run, capsys):
    recommend_main([f"checkpoint={friend_run}", "user=u5", "k=3"])
    out = capsys.readouterr().out
    assert out.startswith("top 3 friends for user u5 (") and out.count("\n| ") == 4
    recommend_main([f"checkpoint={friend_run}", "friends=[u1,u2]", "k=4", "output=json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    with pytest.raises(SystemExit):
        recommend_main([f"checkpoint={friend_run}", "friends=[zzz]"])
    assert "unknown user id 'zzz'" in capsys.readouterr().err


def test_item_and_interest_runs(tmp_path, capsys):
    train_main([f"hydra.run.dir={tmp_path / 'item'}", "task=item", *TINY])
    rec = Recommender.from_checkpoint(tmp_path / "item" / "best.pt")
    items = rec.graph.raw_ids["item"][:3]
    recs = rec.recommend(items=items, friends=["u1"], k=10)
    assert len(recs) == 10 and not set(items) & {r.id for r in recs}
    assert {r.id for r in recs} <= set(rec.graph.raw_ids["item"])
    with pytest.raises(ValueError, match="items=\\[...\\]"):
        rec.recommend(friends=["u1"])
    with pytest.raises(ValueError, match=f"items: id {items[0]!r} is given twice"):
        rec.recommend(items=[items[0], items[0]], friends=["u1"])
    train_main([f"hydra.run.dir={tmp_path / 'interest'}", "task=interest", *TINY])
    rec = Recommender.from_checkpoint(tmp_path / "interest" / "best.pt")
    recs = rec.recommend(friends=["u1", "u2", "u3"], k=5)
    assert {r.id for r in recs} <= set(rec.graph.interest_names) and len(recs) == 5
    # members-variant runs (ego_facebook circles) label an ego's members, not one user
    train_main([f"hydra.run.dir={tmp_path / 'members'}", "task=interest",
                "task.variant=members", *TINY])
    with pytest.raises(ValueError, match=r"task.variant=members.*socialmeta-eval"):
        Recommender.from_checkpoint(tmp_path / "members" / "best.pt")
    with pytest.raises(SystemExit):           # the CLI: a message, not a traceback
        recommend_main([f"checkpoint={tmp_path / 'members' / 'best.pt'}", "friends=[u1]"])
    err = capsys.readouterr().err
    assert "task.variant=members" in err and "Traceback" not in err


def test_friend_run_with_items_context_and_taste_neighbours(tmp_path):
    """A friend run whose tasks observe items (with taste neighbours and heuristic
    inputs): a new user given as friends + items gets exactly the ranking of the
    existing user with those links, and the items change the ranking."""
    run = tmp_path / "friend-items"
    train_main([f"hydra.run.dir={run}", *TINY, *UNCAPPED, "task.context=[items]",
                "task.taste_fanout=8", "model.link_heuristics=true"])
    rec = Recommender.from_checkpoint(run / "best.pt")
    assert rec.sampler.config.user_cap == 300 + 8
    user = _a_test_user(rec)
    u = rec.graph.raw_ids["user"].index(user)
    own = rec.sampler.context_items(torch.tensor([u]))[1]
    items = [rec.graph.raw_ids["item"][int(i)] for i in own]
    assert items
    by_id = rec.recommend(user=user, k=15)
    by_links = rec.recommend(friends=_training_friends(rec, user), items=items, k=15)
    assert [r.id for r in by_id] == [r.id for r in by_links]
    assert torch.allclose(torch.tensor([r.score for r in by_id]),
                          torch.tensor([r.score for r in by_links]), atol=1e-5)
    without = rec.recommend(friends=_training_friends(rec, user), k=15)
    assert [r.score for r in without] != [r.score for r in by_links]


def test_item_run_with_item_heuristics_new_user_equals_existing_user(tmp_path):
    """An item run whose score reads the ego-net (item bias + holder counts): a new user
    given as its items + friends gets the task, and so the scores, of the existing user
    with those links (all items in every task, uncapped ego-nets), and the holder counts
    make the friends matter. Compared without test-time adaptation: the inner loop's
    sampled negative items are hashed by the user, so adapted scores of a user and of
    its placeholder twin differ slightly (friend runs use no sampled negatives)."""
    run = tmp_path / "item-heuristics"
    train_main([f"hydra.run.dir={run}", "task=item", *TINY, *UNCAPPED, "task.item_cap=100000",
                "task.item_order=shared", "model.item_heuristics=true", "model.item_knn=20"])
    rec = Recommender.from_checkpoint(run / "best.pt")
    assert rec.model.heuristics
    # the restored ItemKNN tables are the training users' (never val/test users' items)
    index, weight = item_neighbours(rec.sampler.observed[INTERACTS].edge_index,
                                    rec.graph.num_items, 20, rec.model.knn_group, 5)
    assert torch.equal(rec.model.knn_weight, weight.reshape(-1, 20)) and weight.sum() > 0
    assert (rec.model.knn_group[rec.split.train] < 5).all()
    test = rec.split.test[rec.split.test < rec.model.knn_group.numel()]  # others: last table
    assert test.numel() and (rec.model.knn_group[test] == 5).all()
    leaky = item_neighbours(rec.graph.interaction_index, rec.graph.num_items, 20)[1]
    assert not torch.equal(leaky[0], weight[5])
    rec.inner = dataclasses.replace(rec.inner, steps=0)
    src, dst = rec.graph.interaction_index
    for user in [rec.graph.raw_ids["user"][u] for u in rec.split.test.tolist()[:3]]:
        u = rec.graph.raw_ids["user"].index(user)
        items = [rec.graph.raw_ids["item"][int(i)] for i in dst[src == u]]
        friends = _training_friends(rec, user)
        by_id = rec.recommend(user=user, k=15)
        by_links = rec.recommend(items=items, friends=friends, k=15)
        assert [r.id for r in by_id] == [r.id for r in by_links]
        assert torch.allclose(torch.tensor([r.score for r in by_id]),
                              torch.tensor([r.score for r in by_links]), atol=1e-5)
        alone = rec.recommend(items=items, k=15)
        assert [r.score for r in alone] != [r.score for r in by_links]


def test_item_run_with_softmax_loss_adapted_new_user_equals_existing_user(tmp_path):
    """With the softmax item loss (``model.item_loss=softmax``) the inner loop ranks the
    whole catalogue and uses no sampled negatives, so even the adapted scores of a new
    user given an existing user's items + friends are that user's."""
    run = tmp_path / "item-softmax"
    train_main([f"hydra.run.dir={run}", "task=item", *TINY, *UNCAPPED, "task.item_cap=100000",
                "task.item_order=shared", "model.item_heuristics=true",
                "model.item_loss=softmax"])
    rec = Recommender.from_checkpoint(run / "best.pt")
    assert rec.model.loss == "softmax" and rec.inner.steps > 0
    src, dst = rec.graph.interaction_index
    for user in [rec.graph.raw_ids["user"][u] for u in rec.split.test.tolist()[:3]]:
        u = rec.graph.raw_ids["user"].index(user)
        items = [rec.graph.raw_ids["item"][int(i)] for i in dst[src == u]]
        by_id = rec.recommend(user=user, k=15)
        by_links = rec.recommend(items=items, friends=_training_friends(rec, user), k=15)
        assert [r.id for r in by_id] == [r.id for r in by_links]
        assert torch.allclose(torch.tensor([r.score for r in by_id]),
                              torch.tensor([r.score for r in by_links]), atol=1e-5)
        adapting, rec.inner = rec.inner, dataclasses.replace(rec.inner, steps=0)
        unadapted = rec.recommend(user=user, k=15)
        rec.inner = adapting
        assert [r.score for r in unadapted] != [r.score for r in by_id]
