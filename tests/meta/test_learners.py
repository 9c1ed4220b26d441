"""Batched (vmap + torch.func) learners equal the per-task PyG reference loop."""
import pytest
import torch

from socialmeta.data import generate_synthetic
from socialmeta.meta import (
    LEARNERS,
    InnerLoop,
    meta_gradient,
    meta_parameters,
    outer_loss,
    reference_outer_loss,
)
from socialmeta.models.link import LinkModel
from socialmeta.tasks import TaskConfig, TaskSampler, split_users

GRADIENT_LEARNERS = [name for name in LEARNERS if name != "reptile"]


@pytest.fixture(scope="module")
def batch():
    graph = generate_synthetic(400, avg_degree=8, seed=3)
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind="friend", node_cap=32, fanouts=(10, 5)))
    return sampler.train_batch(epoch=0, batch_index=0, batch_size=5)


def _model(conv="sage", dtype=torch.float32):
    torch.manual_seed(0)
    return LinkModel(17, num_hops=2, conv=conv, hidden_channels=12).to(dtype)


def _batched_and_reference(model, batch, inner):
    """(loss, grads) of the vmapped path and of the per-task reference loop."""
    params = meta_parameters(model, inner)
    loss, grads = meta_gradient(model, batch, inner, params)
    ref, _ = reference_outer_loss(model, batch, inner, params)
    ref_grads = torch.autograd.grad(ref, list(params.values()), allow_unused=True)
    ref_grads = {n: torch.zeros_like(p) if g is None else g
                 for (n, p), g in zip(params.items(), ref_grads)}
    return loss, grads, ref.detach(), ref_grads


@pytest.mark.parametrize("learner", GRADIENT_LEARNERS)
@pytest.mark.parametrize("conv", ["sage", "gcn", "gat"])
def test_batched_equals_reference(batch, learner, conv):
    model = _model(conv)
    loss, grads, ref, ref_grads = _batched_and_reference(
        model, batch, InnerLoop(learner, steps=2, lr=0.3))
    assert torch.allclose(loss, ref, rtol=1e-4)
    assert set(grads) == set(ref_grads)
    for name, expected in ref_grads.items():
        # float32: rtol 1e-4 relative to the gradient tensor's scale; gradients that
        # are zero up to rounding (~1e-11, e.g. GAT's last att_dst) are compared at 1e-8
        scale = float(expected.abs().max()) or 1.0
        assert torch.allclose(grads[name], expected, rtol=1e-4, atol=1e-4 * scale + 1e-8), name


@pytest.mark.parametrize("learner", ["maml", "fomaml", "anil", "metasgd", "protonet"])
def test_batched_equals_reference_float64_elementwise(batch, learner, assert_meta_equivalent):
    b = batch.apply(lambda t: t.double() if t.is_floating_point() else t)
    assert_meta_equivalent(_model("sage", torch.float64), b,
                           InnerLoop(learner, steps=3, lr=0.3))


def test_reptile_moves_towards_the_adapted_weights(batch):
    model = _model("sage", torch.float64)
    b = batch.apply(lambda t: t.double() if t.is_floating_point() else t)
    inner = InnerLoop("reptile", steps=3, lr=0.3)
    params = meta_parameters(model, inner)
    loss, pseudo_grad = meta_gradient(model, b, inner, params)
    ref, adapted = reference_outer_loss(model, b, inner, params)
    assert torch.allclose(loss, ref.detach(), rtol=1e-10)
    for name, p in params.items():
        mean_adapted = torch.stack([a[name] for a in adapted]).mean(0)
        assert torch.allclose(pseudo_grad[name], p.detach() - mean_adapted.detach(),
                              rtol=1e-8, atol=1e-12), name
    assert max(float(g.abs().max()) for g in pseudo_grad.values()) > 0


def test_metasgd_learns_a_rate_per_entry(batch):
    model = _model()
    inner = InnerLoop("metasgd", steps=1, lr=0.2)
    params = meta_parameters(model, inner)
    rates = [n for n in params if n.startswith("lr::")]
    assert len(rates) == len(list(model.parameters()))
    assert all(torch.equal(params[n], torch.full_like(params[n], 0.2)) for n in rates)
    _, grads = meta_gradient(model, batch, inner, params)
    assert float(grads["lr::head.weight"].abs().sum()) > 0


@pytest.mark.parametrize("head", ["dot", "mlp"])
@pytest.mark.parametrize("learner", ["maml", "anil"])
def test_link_heads_batched_equals_reference(batch, head, learner, assert_meta_equivalent):
    torch.manual_seed(0)
    model = LinkModel(17, num_hops=2, hidden_channels=12, head=head).double()
    b = batch.apply(lambda t: t.double() if t.is_floating_point() else t)
    inner = InnerLoop(learner, steps=2, lr=0.3)
    assert_meta_equivalent(model, b, inner)
    # ANIL has a head to adapt
    assert any(n.startswith("head.") for n in inner.adapted_names(model, dict(
        model.named_parameters())))


@pytest.mark.parametrize("learner", ["maml", "fomaml", "metasgd", "protonet", "finetune"])
def test_softmax_list_loss_batched_equals_reference(batch, learner, assert_meta_equivalent):
    torch.manual_seed(0)
    model = LinkModel(17, num_hops=2, hidden_channels=12, loss="softmax", num_users=400).double()
    b = batch.apply(lambda t: t.double() if t.is_floating_point() else t)
    assert_meta_equivalent(model, b, InnerLoop(learner, steps=2, lr=0.3))


def test_second_order_differs_from_first_order(batch):
    model = _model()
    _, second = meta_gradient(model, batch, InnerLoop("maml", steps=2, lr=0.5))
    _, first = meta_gradient(model, batch, InnerLoop("fomaml", steps=2, lr=0.5))
    diff = max(float((second[n] - first[n]).abs().max()) for n in second)
    assert diff > 1e-4


def test_anil_adapts_only_the_head(batch):
    model = _model()
    inner = InnerLoop("anil", steps=1, lr=0.5)
    assert inner.adapted_names(model, dict(model.named_parameters())) == [
        "head.weight", "head.bias"]


def test_adapt_prefixes_choose_the_adapted_parameters(batch):
    model = _model()
    params = dict(model.named_parameters())
    inner = InnerLoop("maml", adapt_prefixes=["encoder.convs.1.", "head."])
    assert inner.adapted_names(model, params) == [
        "encoder.convs.1.lin_l.weight", "encoder.convs.1.lin_l.bias",
        "encoder.convs.1.lin_r.weight", "head.weight", "head.bias"]
    loss, grads, ref, ref_grads = _batched_and_reference(model, batch, inner)
    assert torch.allclose(loss, ref, rtol=1e-4)
    # the first layer does not adapt, but still gets a meta-gradient through the loss
    assert float(grads["encoder.convs.0.lin_l.weight"].abs().sum()) > 0


def test_maml_meta_gradient_matches_finite_differences(batch):
    model = _model(dtype=torch.float64)
    b = batch.apply(lambda t: t.double() if t.is_floating_point() else t)
    inner = InnerLoop("maml", steps=2, lr=0.5)
    _, grads = meta_gradient(model, b, inner)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    eps = 1e-6
    for name in ("encoder.convs.0.lin_l.weight", "head.weight", "encoder.convs.1.lin_r.weight"):
        for _ in range(3):
            idx = tuple(int(torch.randint(s, (1,), generator=gen)) for s in params[name].shape)
            plus, minus = dict(params), dict(params)
            plus[name] = params[name].clone()
            plus[name][idx] += eps
            minus[name] = params[name].clone()
            minus[name][idx] -= eps
            numeric = (outer_loss(model, plus, b, inner) - outer_loss(model, minus, b, inner)) \
                / (2 * eps)
            assert torch.isclose(grads[name][idx], numeric, rtol=1e-5, atol=1e-8), name


def test_unknown_learner():
    with pytest.raises(ValueError, match=r"unknown learner 'reptil'; choose one of"):
        InnerLoop("reptil")
