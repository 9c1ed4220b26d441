"""Scoring every candidate after adaptation equals a per-task sparse computation."""
import pytest
import torch
from torch.func import functional_call

from socialmeta.data import generate_synthetic
from socialmeta.meta import InnerLoop, meta_parameters
from socialmeta.meta.inference import candidate_scores, global_to_local
from socialmeta.models.link import LinkModel, masked_bce
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


@pytest.fixture(scope="module")
def setup():
    graph = generate_synthetic(300, avg_degree=8, seed=2)
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind="friend", node_cap=32, fanouts=(10, 5)))
    batch = sampler.eval_batch(sampler.eval_centers("test", 3)[:6], 3)
    return graph, sampler, batch


@pytest.mark.parametrize("heuristics", [False, True])
@pytest.mark.parametrize("learner", ["noadapt", "maml", "anil", "protonet", "finetune"])
def test_candidate_scores_equal_sparse_loop(setup, learner, heuristics):
    graph, _, batch = setup
    torch.manual_seed(0)
    model = LinkModel(17, num_hops=2, hidden_channels=12, heuristics=heuristics).double()
    b = batch.apply(lambda t: t.double() if t.is_floating_point() else t)
    inner = InnerLoop(learner, steps=2, lr=0.3)
    params = meta_parameters(model, inner)
    scores = candidate_scores(model, params, b, inner, graph.num_users)
    local = global_to_local(b, graph.num_users)
    mode = "prototype" if learner == "protonet" else "pair"
    names = [] if learner in ("noadapt", "protonet") else inner.adapted_names(model, params)
    for t, data in enumerate(b.to_data_list()):
        fast = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
        args = (data.x, data.edge_index, data.hop, data.support_local, data.support_label)
        for _ in range(inner.steps if names else 0):
            s = functional_call(model, fast, (*args, data.support_local),
                                {"sparse": True, "mode": mode})
            loss = masked_bce(s, data.support_label, torch.ones_like(s, dtype=torch.bool))
            g = torch.autograd.grad(loss, [fast[n] for n in names])
            fast = {**fast, **{n: fast[n] - inner.lr * gi for n, gi in zip(names, g)}}
        expected = functional_call(model, fast, (*args, local[t]), {"sparse": True, "mode": mode})
        assert torch.allclose(scores[t], expected.detach(), rtol=1e-9, atol=1e-9)


def test_outside_users_share_one_score(setup):
    graph, _, batch = setup
    model = LinkModel(17, num_hops=2, hidden_channels=12)
    inner = InnerLoop("noadapt")
    scores = candidate_scores(model, meta_parameters(model, inner), batch, inner,
                              graph.num_users)
    outside = global_to_local(batch, graph.num_users)[0] < 0
    assert scores[0, outside].unique().numel() == 1


def test_target_gather_paths_agree():
    model = LinkModel(17, num_hops=2, hidden_channels=12)
    h = torch.randn(40, 12)
    many = torch.randint(-1, 40, (3000,))  # 3000 x 40 > one-hot limit: gathered by index
    gathered = model._targets(h, many)
    chunks = torch.cat([model._targets(h, c) for c in many.split(1000)])  # one-hot path
    assert torch.equal(gathered, chunks)
    assert torch.equal(gathered[many < 0], model.far.detach().expand(int((many < 0).sum()), -1))
