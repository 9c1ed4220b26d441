"""Interest tasks: batched = reference for every learner, and meta-learning works.

On a featureless synthetic graph whose communities prefer random interests, a model
cannot know a new user's interests from structure alone; the labels of its neighbours
reach the model only through the inner loop. MAML must beat no adaptation clearly.
"""
import pytest
import torch

from socialmeta.data import generate_synthetic
from socialmeta.meta import (
    LEARNERS,
    InnerLoop,
)
from socialmeta.models import InterestModel
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


@pytest.fixture(scope="module")
def graph():
    return generate_synthetic(1000, avg_degree=10, feature_dim=0, seed=0)


@pytest.fixture(scope="module")
def sampler(graph):
    return TaskSampler(graph, split_users(graph, seed=0), TaskConfig(
        kind="interest", variant="center", shots=(5, 10), node_cap=32, fanouts=(10, 5)))


@pytest.mark.parametrize("learner", [n for n in LEARNERS if n != "reptile"])
def test_batched_equals_reference_interest(sampler, learner, assert_meta_equivalent):
    batch = sampler.train_batch(0, 0, 5).apply(
        lambda t: t.double() if t.is_floating_point() else t)
    torch.manual_seed(0)
    model = InterestModel(0, 20, num_hops=2, hidden_channels=12).double()
    assert_meta_equivalent(model, batch, InnerLoop(learner, steps=2, lr=0.5))


def test_label_prototypes_by_hand():
    from socialmeta.models.interest import label_prototype_logits

    h = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    labels = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    labelled = torch.tensor([False, True, True, False])  # node 3's labels are hidden
    got = label_prototype_logits(h, labels, labelled)
    # label 0: liked = node 1 (1, 0), other = node 2 (0, 1); label 1: liked = none (0, 0),
    # other = mean of nodes 1, 2 = (0.5, 0.5)
    c = {(0, 1): torch.tensor([1.0, 0.0]), (0, 0): torch.tensor([0.0, 1.0]),
         (1, 1): torch.zeros(2), (1, 0): torch.tensor([0.5, 0.5])}
    for n in range(4):
        for label in range(2):
            expected = (-(h[n] - c[label, 1]).pow(2).sum() + (h[n] - c[label, 0]).pow(2).sum())
            assert torch.isclose(got[n, label], expected), (n, label)


def test_maml_beats_no_adaptation_on_held_out_users(sampler, train_and_test):
    maml_loss, maml_recall, num_users = train_and_test(sampler, "maml")
    base_loss, base_recall, _ = train_and_test(sampler, "noadapt")
    assert num_users >= 40
    assert maml_loss < base_loss - 0.03, (maml_loss, base_loss)
    assert maml_recall > base_recall + 0.1, (maml_recall, base_recall)
