"""The hybrid item scorer: batched == reference for every learner, its scores are the
item model's plus the pair-feature terms, and the features of a test user's task are
functions of its support (query items rewired: scores bit-identical)."""
import pytest
import torch

from socialmeta.data import INTERACTS, generate_synthetic
from socialmeta.features import allowed_item_features
from socialmeta.meta import LEARNERS, InnerLoop, candidate_scores, meta_gradient, meta_parameters
from socialmeta.models import HybridItemModel, ItemModel
from socialmeta.tasks import TaskConfig, TaskSampler, split_users

GRADIENT_LEARNERS = [name for name in LEARNERS if name != "reptile"]


@pytest.fixture(scope="module")
def sampler():
    graph = generate_synthetic(400, avg_degree=8, seed=4)
    return TaskSampler(graph, split_users(graph, seed=0),
                       TaskConfig(kind="item", node_cap=24, item_cap=40, fanouts=(8, 4),
                                  context=["friends"],
                                  pair_features=allowed_item_features(["friends"])))


def _model(sampler, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    model = HybridItemModel(sampler.in_channels, sampler.num_items, 2,
                            sampler.pair_features.num_channels, hidden_channels=8, **kwargs)
    for p in model.pair_gate.parameters():   # non-zero, so that both paths must use it
        torch.nn.init.normal_(p, std=0.3)
    return model.to(dtype)


def _double(batch):
    return batch.apply(lambda t: t.double() if t.is_floating_point() else t)


@pytest.mark.parametrize("learner", GRADIENT_LEARNERS)
def test_hybrid_item_batched_equals_reference(sampler, learner, assert_meta_equivalent):
    model = _model(sampler, torch.float64, heuristics=True)
    batch = _double(sampler.train_batch(epoch=0, batch_index=0, batch_size=4))
    assert batch.pair_features.shape == (4, sampler.num_items, 4)
    assert_meta_equivalent(model, batch, InnerLoop(learner, steps=2, lr=0.3), atol=1e-9)


def test_hybrid_item_scores_are_the_item_models_plus_the_pair_terms(sampler):
    model = _model(sampler)
    plain = ItemModel(sampler.in_channels, sampler.num_items, 2, hidden_channels=8,
                      loss="softmax")
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.startswith(("pair_mlp.", "pair_gate."))})
    inner = InnerLoop("noadapt")
    batch = sampler.eval_batch(sampler.eval_centers("test", 3)[:8], 3)
    hybrid = candidate_scores(model, meta_parameters(model, inner), batch, inner,
                              sampler.num_items)
    base = candidate_scores(plain, meta_parameters(plain, inner), batch, inner,
                            sampler.num_items)
    with torch.no_grad():
        phi = batch.pair_features
        user = torch.stack([plain.center_embedding(plain, {k: getattr(batch, k)[t] for k in
                                                           plain.task_fields})
                            for t in range(batch.num_tasks)])
        want = base + model.pair_mlp(phi).squeeze(-1) + (phi @ model.pair_gate(user)
                                                         .unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(hybrid, want, atol=1e-5)
    # the pair MLP is meta-trained, never adapted; the gate is adapted
    names = InnerLoop("maml").adapted_names(model, meta_parameters(model, InnerLoop("maml")))
    assert not any(n.startswith("pair_mlp.") for n in names)
    assert any(n.startswith("pair_gate.") for n in names)
    _, grads = meta_gradient(model, sampler.train_batch(0, 0, 4), InnerLoop("maml"))
    assert any(grads[n].abs().sum() > 0 for n in grads if n.startswith("pair_mlp."))


def test_a_test_users_query_items_never_reach_its_scores(sampler):
    """Moving a test user's query items to other items leaves its task's features and
    the hybrid's scores bit-identical."""
    graph = sampler.graph
    user = int(sampler.eval_centers("test", 3)[0])
    batch = sampler.eval_batch(torch.tensor([user]), 3)
    keep = set(batch.support_ids[0][batch.support_label[0] > 0].tolist())
    u, i = graph.interaction_index
    mine = (u == user) & ~torch.isin(i, torch.tensor(sorted(keep)))
    assert mine.any()
    moved = graph.clone()
    new_i = i.clone()
    new_i[mine] = (i[mine] + 7) % graph.num_items
    moved[INTERACTS].edge_index = torch.stack([u, new_i])
    other = TaskSampler(moved, sampler.split, sampler.config)
    again = other.eval_batch(torch.tensor([user]), 3)
    assert torch.equal(again.support_ids, batch.support_ids)
    assert not torch.equal(again.query_ids, batch.query_ids)
    assert torch.equal(again.pair_features, batch.pair_features)
    model, inner = _model(sampler), InnerLoop("maml", steps=1, lr=0.1)
    params = meta_parameters(model, inner)
    assert torch.equal(candidate_scores(model, params, batch, inner, sampler.num_items),
                       candidate_scores(model, params, again, inner, sampler.num_items))


@pytest.mark.parametrize("heuristics", [False, True])
def test_a_model_started_from_a_channel_ranks_as_that_feature(sampler, heuristics):
    channels = sampler.pair_features.channels
    model = _model(sampler, heuristics=heuristics, channels=channels)
    model.start_from("userknn")
    noadapt = InnerLoop("noadapt")
    batch = sampler.eval_batch(sampler.eval_centers("test", 3)[:8], 3)
    scores = candidate_scores(model, meta_parameters(model, noadapt), batch, noadapt,
                              sampler.num_items)
    want = 10 * batch.pair_features[..., channels.index("userknn")]
    assert torch.allclose(scores, want, atol=1e-5)
    _, grads = meta_gradient(model, sampler.train_batch(0, 0, 4), InnerLoop("maml"))
    assert grads["head.weight"].abs().sum() > 0 and grads["pair_mlp.2.weight"].abs().sum() > 0
    with pytest.raises(ValueError, match="4 channel names for 3 pair features"):
        HybridItemModel(sampler.in_channels, sampler.num_items, 2, 3, channels=channels)
