"""The hybrid interest scorer: its label features are the label-propagation baseline's
scores from the support labels only, batched == reference for every learner, and a
query label never reaches a logit."""
import pytest
import torch

from socialmeta.baselines import make_baseline
from socialmeta.data import generate_synthetic
from socialmeta.meta import LEARNERS, InnerLoop, meta_gradient, meta_parameters
from socialmeta.meta.inference import interest_logits
from socialmeta.models import HybridInterestModel
from socialmeta.models.hybrid import interest_pair_features
from socialmeta.tasks import TaskConfig, TaskSampler, split_users

GRADIENT_LEARNERS = [name for name in LEARNERS if name != "reptile"]


@pytest.fixture(scope="module")
def sampler():
    graph = generate_synthetic(600, avg_degree=10, feature_dim=0, seed=0)
    return TaskSampler(graph, split_users(graph, seed=0), TaskConfig(
        kind="interest", variant="center", shots=(5, 10), node_cap=32, fanouts=(10, 5)))


def _model(dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    model = HybridInterestModel(0, 20, num_hops=2, hidden_channels=12, **kwargs)
    for p in model.pair_gate.parameters():   # non-zero, so that both paths must use it
        torch.nn.init.normal_(p, std=0.3)
    return model.to(dtype)


@pytest.mark.parametrize("learner", GRADIENT_LEARNERS)
def test_hybrid_interest_batched_equals_reference(sampler, learner, assert_meta_equivalent):
    batch = sampler.train_batch(0, 0, 5).apply(
        lambda t: t.double() if t.is_floating_point() else t)
    assert_meta_equivalent(_model(torch.float64), batch, InnerLoop(learner, steps=2, lr=0.5))


def test_label_features_are_the_label_propagation_baselines_scores(sampler, ego_facebook):
    # center tasks: the center's row is the baseline's score (up to its 1e-6 tie-break)
    batch = sampler.eval_batch(sampler.eval_centers("test", 5)[:16], 5)
    phi = interest_pair_features(batch.adj, batch.labels, batch.label_mask)
    for c, alpha in enumerate((0.5, 0.8, 0.9, 0.99)):
        lp = make_baseline("interest", "label_propagation", alpha=alpha).fit(sampler)
        assert torch.allclose(phi[:, 0, :, c], lp.scores(batch), atol=2e-6)
    # members tasks (ego-Facebook circles): every member's row (the restart weights side
    # by side in one product against one at a time: equal up to float rounding); and the
    # neighbour channel is exactly the members-variant neighbour majority
    egos = torch.unique(ego_facebook["circle"].ego)
    circles = TaskSampler(ego_facebook, split_users(ego_facebook, seed=0, eval_pool=egos),
                          TaskConfig(kind="interest", variant="members",
                                     label_source="circles", fanouts=(-1,), node_cap=1100))
    batch = circles.eval_batch(circles.eval_centers("test", 3)[:2], 3)
    phi = interest_pair_features(batch.adj, batch.labels, batch.label_mask)
    for c, alpha in enumerate((0.5, 0.8, 0.9, 0.99)):
        lp = make_baseline("interest", "label_propagation", alpha=alpha).fit(circles)
        torch.testing.assert_close(phi[..., c], lp.scores(batch))
    neighbors = make_baseline("interest", "neighbors").fit(circles).scores(batch)
    assert torch.equal(phi[..., 4], neighbors)
    assert phi[..., :4].abs().sum() > 0


def test_query_labels_never_reach_the_features_or_logits(sampler):
    batch = sampler.eval_batch(sampler.eval_centers("test", 5)[:6], 5)
    flipped = batch.apply(lambda t: t)   # a copy whose unlabelled rows' labels change
    flipped.labels = torch.where(batch.label_mask.unsqueeze(-1), batch.labels,
                                 1.0 - batch.labels)
    assert not torch.equal(flipped.labels, batch.labels)
    assert torch.equal(interest_pair_features(batch.adj, batch.labels, batch.label_mask),
                       interest_pair_features(flipped.adj, flipped.labels,
                                              flipped.label_mask))
    model, inner = _model(), InnerLoop("maml", steps=1, lr=0.5)
    params = meta_parameters(model, inner)
    assert torch.equal(interest_logits(model, params, batch, inner),
                       interest_logits(model, params, flipped, inner))


def test_the_pair_mlp_is_meta_trained_and_the_gate_adapted(sampler):
    model = _model()
    params = meta_parameters(model, InnerLoop("maml"))
    names = InnerLoop("maml").adapted_names(model, params)
    assert not any(n.startswith("pair_mlp.") for n in names)
    assert any(n.startswith("pair_gate.") for n in names)
    _, grads = meta_gradient(model, sampler.train_batch(0, 0, 4), InnerLoop("maml"))
    assert any(grads[n].abs().sum() > 0 for n in grads if n.startswith("pair_mlp."))
    with pytest.raises(ValueError, match="alphas"):
        HybridInterestModel(0, 20, 2, alphas=(1.5,))


def test_a_model_started_from_a_channel_scores_as_that_baseline(sampler):
    model = HybridInterestModel(0, 20, num_hops=2, hidden_channels=12)
    model.start_from("label_propagation@0.9")
    batch = sampler.eval_batch(sampler.eval_centers("test", 5)[:16], 5)
    noadapt = InnerLoop("noadapt")
    logits = interest_logits(model, meta_parameters(model, noadapt), batch, noadapt)
    lp = make_baseline("interest", "label_propagation", alpha=0.9).fit(sampler)
    # logit = 10 (LP - 1/2): the baseline's ranking (its 1e-6 tie-break aside)
    assert torch.allclose(logits[:, 0], 10 * (lp.scores(batch) - 0.5), atol=1e-4)
    # and it still learns: the head and the pair MLP get meta-gradients
    _, grads = meta_gradient(model, sampler.train_batch(0, 0, 4), InnerLoop("maml"))
    assert grads["head.weight"].abs().sum() > 0 and grads["pair_mlp.2.weight"].abs().sum() > 0
    with pytest.raises(ValueError, match="unknown feature channel 'lp@0.9'"):
        model.start_from("lp@0.9")
