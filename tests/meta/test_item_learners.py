"""Item tasks: the user-item model's batched learners equal the reference loop."""
import pytest
import torch

from socialmeta.data import generate_synthetic
from socialmeta.meta import InnerLoop, meta_parameters
from socialmeta.models import ItemModel
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


@pytest.fixture(scope="module")
def setup():
    graph = generate_synthetic(400, avg_degree=8, seed=4)
    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split,
                          TaskConfig(kind="item", node_cap=24, item_cap=40, fanouts=(8, 4)))
    batch = sampler.train_batch(0, 0, 4).apply(
        lambda t: t.double() if t.is_floating_point() else t)
    return graph, batch, split


@pytest.mark.parametrize("learner", ["maml", "fomaml", "anil", "metasgd", "finetune",
                                     "noadapt", "protonet"])
@pytest.mark.parametrize("social,heuristics,item_knn,loss",
                         [(True, False, 0, "bce"), (False, False, 0, "bce"),
                          (True, True, 0, "bce"), (True, True, 6, "bce"),
                          (True, False, 0, "softmax")])
def test_item_batched_equals_reference(setup, learner, social, heuristics, item_knn, loss,
                                       assert_meta_equivalent):
    graph, batch, split = setup
    torch.manual_seed(0)
    model = ItemModel(17, graph.num_items, num_hops=2, hidden_channels=8, social=social,
                      item_features=torch.randn(graph.num_items, 3),
                      heuristics=heuristics, item_knn=item_knn, loss=loss).double()
    if heuristics:  # non-zero biases, so that the reference path must gather them too
        torch.nn.init.normal_(model.item_bias.weight)
    if item_knn:  # the ItemKNN input is non-zero for the tasks' targets; per-fold tables
        model.set_item_neighbours(graph.interaction_index, split.train)
    assert_meta_equivalent(model, batch, InnerLoop(learner, steps=2, lr=0.5))


def test_social_edges_matter_only_when_used(setup):
    graph, batch, split = setup
    b = batch.apply(lambda t: t.float() if t.is_floating_point() else t)
    torch.manual_seed(0)
    with_social = ItemModel(17, graph.num_items, num_hops=2, hidden_channels=8)
    torch.manual_seed(0)
    without = ItemModel(17, graph.num_items, num_hops=2, hidden_channels=8, social=False)
    args = (b.x[0], b.adj[0], b.hop[0], b.item_ids[0], b.item_adj[0], b.query_ids[0],
            b.node_mask[0])
    empty = (b.x[0], torch.zeros_like(b.adj[0]), *args[2:])
    assert torch.allclose(without(*args), without(*empty))
    assert not torch.allclose(with_social(*args), with_social(*empty))


@pytest.mark.parametrize("heuristics,item_knn", [(False, 0), (True, 0), (True, 6)])
def test_item_candidate_scores_match_direct_scores(setup, heuristics, item_knn):
    from socialmeta.meta import candidate_scores

    graph, batch, split = setup
    torch.manual_seed(0)
    model = ItemModel(17, graph.num_items, num_hops=2, hidden_channels=8,
                      heuristics=heuristics, item_knn=item_knn).double()
    if item_knn:
        model.set_item_neighbours(graph.interaction_index)
    inner = InnerLoop("noadapt")
    scores = candidate_scores(model, meta_parameters(model, inner), batch, inner,
                              graph.num_items)
    assert scores.shape == (batch.num_tasks, graph.num_items)
    t = 1
    direct = model(batch.x[t], batch.adj[t], batch.hop[t], batch.item_ids[t],
                   batch.item_adj[t], torch.arange(graph.num_items), batch.node_mask[t])
    assert torch.allclose(scores[t], direct.detach())


def test_item_prototypes_by_hand(setup):
    """ProtoNet item scores: -|z - c_liked|^2 + |z - c_other|^2 with z = e_item * user."""
    graph, batch, split = setup
    b = batch.apply(lambda t: t.float() if t.is_floating_point() else t)
    torch.manual_seed(0)
    model = ItemModel(17, graph.num_items, num_hops=2, hidden_channels=8)
    args = (b.x[0], b.adj[0], b.hop[0], b.item_ids[0], b.item_adj[0], b.query_ids[0],
            b.node_mask[0])
    ids, label, valid = b.support_ids[0], b.support_label[0], b.support_mask[0]
    assert bool((valid & (label > 0)).any()) and bool((valid & (label == 0)).any())
    got = model(*args, support=(ids, label, valid))
    # the center's user vector: the pair scores are e_item . user for every item
    user = torch.linalg.lstsq(model.items(b.query_ids[0]), model(*args).unsqueeze(-1)
                              ).solution.squeeze(-1)
    z = model.items(b.query_ids[0]) * user
    liked = (model.items(ids[valid & (label > 0)]) * user).mean(0)
    other = (model.items(ids[valid & (label == 0)]) * user).mean(0)
    expected = -(z - liked).pow(2).sum(-1) + (z - other).pow(2).sum(-1)
    assert torch.allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("learner", ["maml", "anil", "protonet"])
def test_friend_and_interest_models_with_items_context(learner, assert_meta_equivalent):
    """Friend and interest tasks that observe the center's items: every task user's
    taste enters the model, batched = reference, and the items change the scores."""
    from socialmeta.models import InterestModel, LinkModel

    graph = generate_synthetic(400, avg_degree=8, seed=4)
    split = split_users(graph, seed=0)
    for kind, make in (
            ("friend", lambda: LinkModel(17, num_hops=2, hidden_channels=8,
                                         num_items=graph.num_items)),
            ("interest", lambda: InterestModel(17, graph["user"].interests.size(1),
                                               num_hops=2, hidden_channels=8,
                                               num_items=graph.num_items))):
        context = ["items"] if kind == "friend" else ["friends", "items"]
        sampler = TaskSampler(graph, split, TaskConfig(kind=kind, context=context,
                                                       node_cap=24, item_cap=40,
                                                       fanouts=(8, 4)))
        batch = sampler.train_batch(0, 0, 4).apply(
            lambda t: t.double() if t.is_floating_point() else t)
        assert batch.item_adj[:, 0].sum() > 0  # the centers' items are in the tasks
        torch.manual_seed(0)
        model = make().double()
        assert_meta_equivalent(model, batch, InnerLoop(learner, steps=2, lr=0.5))
        if kind == "friend":
            task = {f: getattr(batch, f)[0] for f in model.task_fields}
            with_items = model.score_targets(model, task, task["query_local"])
            task["item_adj"] = torch.zeros_like(task["item_adj"])
            assert not torch.allclose(with_items,
                                      model.score_targets(model, task, task["query_local"]))


def test_item_list_loss_by_hand():
    """Softmax over the whole catalogue, the positive support items left out of the
    query side's candidates; padding and sampled negatives play no part."""
    from socialmeta.models.item import item_list_loss

    scores = torch.tensor([0.5, 2.0, -1.0, 0.0, 1.0])
    support_ids, support_positive = torch.tensor([1, 3, -1]), torch.tensor([1.0, 0.0, 0.0])
    target_ids, target_positive = torch.tensor([4, 2, 0, -1]), torch.tensor([1.0, 1, 0, 0])
    query = item_list_loss(scores, support_ids, support_positive, target_ids,
                           target_positive, "query")
    log_z = torch.logsumexp(scores[[0, 2, 3, 4]], 0)  # item 1 is a known support item
    assert torch.isclose(query, ((log_z - 1.0) + (log_z + 1.0)) / 2)
    support = item_list_loss(scores, support_ids, support_positive, support_ids,
                             support_positive, "support")
    assert torch.isclose(support, torch.logsumexp(scores, 0) - 2.0)
    with pytest.raises(ValueError, match="unknown item loss 'hinge'"):
        ItemModel(0, 5, num_hops=2, loss="hinge")
