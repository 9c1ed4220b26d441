"""The hybrid whole-graph friend scorer: batched == reference for every learner, whole-
graph scores, and no leakage of query links into scores, tower or features."""
import pytest
import torch

from socialmeta.data import FRIEND, generate_synthetic
from socialmeta.features import allowed_friend_features
from socialmeta.meta import LEARNERS, InnerLoop, candidate_scores, meta_gradient, meta_parameters
from socialmeta.models import HybridLinkModel
from socialmeta.models.hybrid import PairMLP
from socialmeta.tasks import TaskConfig, TaskSampler, split_users
from socialmeta.tasks.random import hash_keys, priority
from socialmeta.tasks.sampler import EVAL_EPOCH
from socialmeta.tasks.split import observed_graph

GRADIENT_LEARNERS = [name for name in LEARNERS if name != "reptile"]


def _sampler(graph, context=(), seed=0, **task):
    config = TaskConfig(kind="friend", node_cap=32, fanouts=(10, 5), context=list(context),
                        pair_features=allowed_friend_features(context), **task)
    return TaskSampler(graph, split_users(graph, seed=seed), config)


def _model(sampler, parts=("egonet", "tower", "pairs"), dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    model = HybridLinkModel(sampler.in_channels, 2, sampler.num_users,
                            sampler.pair_features.num_channels, parts=parts,
                            hidden_channels=8, **kwargs)
    return model.set_graph(sampler.observed, sampler.split.train).to(dtype)


@pytest.fixture(scope="module")
def synthetic_sampler():
    return _sampler(generate_synthetic(300, avg_degree=8, seed=3))


def _double(batch):
    return batch.apply(lambda t: t.double() if t.is_floating_point() else t)


@pytest.mark.parametrize("learner", GRADIENT_LEARNERS)
def test_batched_equals_reference_for_every_learner(synthetic_sampler, learner,
                                                    assert_meta_equivalent):
    model = _model(synthetic_sampler, dtype=torch.float64)
    batch = _double(synthetic_sampler.train_batch(epoch=0, batch_index=0, batch_size=5))
    # atol 1e-9: the tower's last bias shifts every candidate's score alike, so the
    # softmax makes its gradient zero up to rounding (~1e-10); the others are ~1e-1
    assert_meta_equivalent(model, batch, InnerLoop(learner, steps=2, lr=0.3), atol=1e-9)


@pytest.mark.parametrize("parts", [("tower",), ("pairs",), ("egonet",), ("tower", "pairs")])
def test_batched_equals_reference_for_each_ablation(synthetic_sampler, parts,
                                                    assert_meta_equivalent):
    model = _model(synthetic_sampler, parts=parts, dtype=torch.float64)
    batch = _double(synthetic_sampler.train_batch(epoch=0, batch_index=1, batch_size=4))
    assert_meta_equivalent(model, batch, InnerLoop("maml", steps=1, lr=0.3), atol=1e-9)


def test_inner_loops_never_adapt_the_tower_or_the_pair_mlp(synthetic_sampler):
    model = _model(synthetic_sampler)
    params = meta_parameters(model, InnerLoop("maml"))
    names = InnerLoop("maml").adapted_names(model, params)
    assert names and not any(n.startswith(("tower.", "pair_mlp.")) for n in names)
    assert any(n.startswith("tower.") for n in params)
    anil = InnerLoop("anil").adapted_names(model, params)
    assert {n.split(".")[0] for n in anil} == {"head", "fold", "pair_gate"}
    # both are still meta-trained: the outer gradient reaches them
    _, grads = meta_gradient(model, synthetic_sampler.train_batch(0, 0, 4), InnerLoop("maml"))
    for part in ("tower.", "pair_mlp."):
        assert any(grads[n].abs().sum() > 0 for n in grads if n.startswith(part)), part


@pytest.mark.parametrize("dataset,context", [("lastfm", ()), ("ego_facebook", ())])
def test_users_outside_the_egonet_get_distinct_scores(request, dataset, context):
    graph = request.getfixturevalue(dataset)
    sampler = _sampler(graph, context)
    model = _model(sampler)
    inner = InnerLoop("maml", steps=1, lr=0.1)
    batch = sampler.eval_batch(sampler.eval_centers("test", 3)[:16], 3)
    scores = candidate_scores(model, meta_parameters(model, inner), batch, inner,
                              graph.num_users)
    candidates = sampler.candidate_mask(batch)
    for t in range(batch.num_tasks):
        outside = candidates[t].clone()
        outside[batch.node_ids[t][batch.node_mask[t]]] = False
        values = scores[t][outside]
        assert values.numel() > 100
        # every outside candidate shares one score in the ego-net-only model; here
        # nearly all differ
        assert torch.unique(values).numel() > 0.5 * values.numel()


def _rewire_query_links(graph, sampler, user, shots, seed):
    """The graph with every link of the eval :obj:`user` that is not among its first
    :obj:`shots` (its support) moved to a training user of lower support priority."""
    key = hash_keys(sampler.config.seed, EVAL_EPOCH, torch.tensor([user]))
    friends = graph.friend_index[1][graph.friend_index[0] == user]
    friends = friends[sampler.is_train[friends]]
    prio = priority(key.expand(friends.numel()), friends)
    order = torch.argsort(prio)
    support, query = friends[order[:shots]], friends[order[shots:]]
    bar = prio[order[shots - 1]]
    gen = torch.Generator().manual_seed(seed)
    pool = sampler.split.train[~torch.isin(sampler.split.train, friends)]
    pool = pool[priority(key.expand(pool.numel()), pool) > bar]
    new = pool[torch.randperm(pool.numel(), generator=gen)[:query.numel()]]
    src, dst = graph.friend_index
    drop = ((src == user) & torch.isin(dst, query)) | ((dst == user) & torch.isin(src, query))
    added = torch.stack([torch.full_like(new, user), new])
    edges = torch.cat([graph.friend_index[:, ~drop], added, added.flip(0)], 1)
    out = graph.clone()
    out[FRIEND].edge_index = edges
    return out, support


def test_rewiring_a_test_users_query_links_leaves_every_score_bit_identical(lastfm):
    sampler = _sampler(lastfm)
    model = _model(sampler)
    inner = InnerLoop("maml", steps=1, lr=0.1)
    params = meta_parameters(model, inner)
    users = sampler.eval_centers("test", 3)[:6]
    before = candidate_scores(model, params, sampler.eval_batch(users, 3), inner,
                              lastfm.num_users)
    for i, user in enumerate(users.tolist()):
        graph, support = _rewire_query_links(lastfm, sampler, user, 3, seed=i)
        other = TaskSampler(graph, sampler.split, sampler.config)
        batch = other.eval_batch(users, 3)
        sup = batch.support_ids[i][batch.support_label[i] > 0]
        assert set(sup.tolist()) == set(support.tolist())
        query = set(batch.query_ids[i][batch.query_mask[i]].tolist())
        assert query.isdisjoint(set(sampler.eval_batch(users, 3).query_ids[i].tolist()))
        after = candidate_scores(model, params, batch, inner, lastfm.num_users)
        assert torch.equal(after, before)


def test_a_training_centers_links_never_reach_its_tower(lastfm):
    sampler = _sampler(lastfm)
    model = _model(sampler)
    center = int(sampler.train_batch(0, 0, 1).center[0])
    fold = int(model.fold_of[center])
    friends = lastfm.friend_index[1][lastfm.friend_index[0] == center]
    # a graph where the center has other friends altogether
    src, dst = lastfm.friend_index
    mine = (src == center) | (dst == center)
    pool = sampler.split.train[~torch.isin(sampler.split.train, torch.cat([friends,
                                                                           torch.tensor([center])]))]
    new = pool[:friends.numel()]
    added = torch.stack([torch.full_like(new, center), new])
    graph = lastfm.clone()
    graph[FRIEND].edge_index = torch.cat([lastfm.friend_index[:, ~mine], added,
                                          added.flip(0)], 1)
    other = HybridLinkModel(sampler.in_channels, 2, lastfm.num_users,
                            sampler.pair_features.num_channels, hidden_channels=8)
    other.load_state_dict(model.state_dict())
    other.set_graph(observed_graph(graph, sampler.split), sampler.split.train)
    assert torch.equal(other.fold_of, model.fold_of)
    assert not torch.equal(other.graph_edges, model.graph_edges)
    assert torch.equal(other.tower_graph(fold), model.tower_graph(fold))
    with torch.no_grad():
        assert torch.equal(other.candidate_embeddings([fold])[fold],
                           model.candidate_embeddings([fold])[fold])
    # while the whole-graph tower (what new users read) does see them
    assert not torch.equal(other.tower_graph(model.tower_folds),
                           model.tower_graph(model.tower_folds))


def test_a_tasks_scores_do_not_depend_on_its_batch(synthetic_sampler):
    """Tower folds, not the batch's centers, decide what a task's tower omits."""
    model = _model(synthetic_sampler)
    inner = InnerLoop("maml", steps=1, lr=0.1)
    params = meta_parameters(model, inner)
    batch = synthetic_sampler.train_batch(epoch=0, batch_index=0, batch_size=6)
    whole = candidate_scores(model, params, batch, inner, synthetic_sampler.num_users)
    for i in (0, 3):
        alone = candidate_scores(model, params, batch.task(i), inner,
                                 synthetic_sampler.num_users)
        assert torch.allclose(alone[0], whole[i], atol=1e-5)


def test_hybrid_needs_its_graph(synthetic_sampler):
    model = HybridLinkModel(synthetic_sampler.in_channels, 2, synthetic_sampler.num_users,
                            synthetic_sampler.pair_features.num_channels)
    with pytest.raises(RuntimeError, match="set_graph"):
        meta_gradient(model, synthetic_sampler.train_batch(0, 0, 2), InnerLoop("maml"))
    with pytest.raises(ValueError, match="subset"):
        HybridLinkModel(4, 2, 10, 3, parts=("tower", "ppr"))
    with pytest.raises(ValueError, match="pair features"):
        HybridLinkModel(4, 2, 10, 0, parts=("pairs",))


def test_tower_cache_serves_refresh_batches_then_equals_a_fresh_forward(synthetic_sampler):
    from socialmeta.meta.learners import _call, shared_inputs

    model = _model(synthetic_sampler, tower_refresh=3)
    inner = InnerLoop("maml", steps=1, lr=0.1)
    params = meta_parameters(model, inner)
    batches = [synthetic_sampler.train_batch(0, i, 4) for i in range(4)]
    first = shared_inputs(model, params, batches[0])[0]["candidates"]
    assert first.requires_grad                      # a refresh: the tower gets gradients
    with torch.no_grad():
        fresh = _call(model, params)(mode="tower", folds=tuple(range(model.tower_folds)))
    # the batch reads the folds up to its last (never the whole-graph fold in training)
    assert first.size(0) <= model.tower_folds
    assert torch.equal(first.detach(), fresh[:first.size(0)])   # the cache = a fresh forward
    with torch.no_grad():                           # params move (an optimiser step)
        for name, p in params.items():
            if name.startswith("tower."):
                p.add_(0.01)
    for batch in batches[1:3]:                      # served from the cache, detached
        served = shared_inputs(model, params, batch)[0]["candidates"]
        assert not served.requires_grad and torch.equal(served, fresh[:served.size(0)])
    again = shared_inputs(model, params, batches[3])[0]["candidates"]   # third: refresh
    with torch.no_grad():
        moved = _call(model, params)(mode="tower", folds=tuple(range(model.tower_folds)))
    assert again.requires_grad and torch.equal(again.detach(), moved[:again.size(0)])
    assert not torch.equal(moved, fresh)
    # evaluation never reads the cache
    with torch.no_grad():
        model.clear_tower_cache()
        _ = shared_inputs(model, params, batches[0])
        assert model._cache is None


def test_kept_fold_graphs_equal_fresh_ones_and_outlive_meta_training(synthetic_sampler):
    """The tower's per-fold inputs and CSR graphs are built once outside any
    torch.func transform (so a deep copy after meta-training works: a wrapped tensor
    kept from inside ``grad`` would not copy), follow ``.to(dtype)``, and give the
    tower the embeddings of a PyG forward over each fold's edge index."""
    import copy

    from torch._C._functorch import is_functorch_wrapped_tensor

    from socialmeta.models.encoders import MeanAdjacency

    model = _model(synthetic_sampler)
    meta_gradient(model, synthetic_sampler.train_batch(0, 0, 4), InnerLoop("maml"))
    kept = model._fold_graphs
    assert {k for k in kept} == {(f, part) for f in [*range(model.tower_folds + 1), "stacked"]
                                 for part in ("inputs", "graph")}
    assert not any(is_functorch_wrapped_tensor(v if torch.is_tensor(v) else v._parts[0][2])
                   for v in kept.values())
    other = copy.deepcopy(model)
    with torch.no_grad():
        tower = model.candidate_embeddings(range(model.tower_folds + 1))
        assert torch.equal(other.candidate_embeddings(range(model.tower_folds + 1)), tower)
        for fold in range(model.tower_folds + 1):
            assert isinstance(kept[fold, "graph"], MeanAdjacency)
            pyg = model.tower.forward_sparse(kept[fold, "inputs"], model.tower_graph(fold))
            assert torch.allclose(tower[fold], pyg, atol=1e-5)
        same = model._fold_graphs[0, "graph"]
        model.float()                  # no change of device or dtype: nothing rebuilt
        assert model._fold_graphs[0, "graph"] is same
        model.double()
        assert model._fold_graphs[0, "inputs"].dtype == torch.float64
        assert torch.allclose(model.candidate_embeddings([0])[0], tower[0].double(),
                              atol=1e-5)
    sampled = _model(synthetic_sampler, tower_fanout=(3, 3))   # eval graph only
    assert {k for k in sampled._fold_graphs if k[1] == "graph"} == {
        (sampled.tower_folds, "graph")}


@pytest.mark.parametrize("conv", ["sage", "gcn"])
def test_stacked_tower_equals_one_forward_per_fold(synthetic_sampler, conv):
    """Several training folds go through the tower as one block-diagonal graph: the
    same embeddings as a forward per fold (bit for bit on the CSR sage path), the same
    weight gradients up to rounding, and zero rows, with no gradient, for the folds
    not asked for."""
    model = _model(synthetic_sampler, conv=conv)
    folds = model.tower_folds
    names = [n for n, _ in model.named_parameters() if n.startswith("tower.")]
    weight = torch.randn(folds + 1, model.num_users, 8, generator=torch.Generator().manual_seed(1))

    def run(asked, stacked):
        for p in model.parameters():
            p.grad = None
        if stacked:
            out = model.candidate_embeddings(asked)
        else:   # one fold at a time: the per-fold path
            out = torch.stack([model.candidate_embeddings([f])[f] if f in asked
                               else torch.zeros(model.num_users, 8) for f in range(folds + 1)])
        (out * weight).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                              if n in names}

    for asked in [tuple(range(folds + 1)), (0, 2), (1, 3, folds)]:
        out, grads = run(asked, stacked=True)
        ref, ref_grads = run(asked, stacked=False)
        if conv == "sage":
            assert torch.equal(out, ref)
        else:
            assert torch.allclose(out, ref, atol=1e-6)
        for n in names:
            assert torch.allclose(grads[n], ref_grads[n], rtol=1e-4, atol=1e-5), n
        unasked = [f for f in range(folds + 1) if f not in asked]
        assert not out[unasked].any()


@pytest.mark.parametrize("head", ["bilinear", "dot", "mlp"])
def test_a_model_started_from_a_channel_scores_as_that_feature(synthetic_sampler, head):
    channels = synthetic_sampler.pair_features.channels
    model = _model(synthetic_sampler, head=head, channels=channels)
    model.start_from("adamic_adar")
    noadapt = InnerLoop("noadapt")
    params = meta_parameters(model, noadapt)
    batch = synthetic_sampler.eval_batch(synthetic_sampler.eval_centers("test", 3)[:8], 3)
    scores = candidate_scores(model, params, batch, noadapt, model.num_users)
    want = 10 * batch.pair_features[..., channels.index("adamic_adar")]
    assert torch.allclose(scores, want, atol=1e-5)
    # every part still learns from there
    _, grads = meta_gradient(model, synthetic_sampler.train_batch(0, 0, 4), InnerLoop("maml"))
    for name in ("fold.weight", "pair_mlp.2.weight", "encoder.convs.0.lin_l.weight"):
        assert grads[name].abs().sum() > 0, name
    with pytest.raises(ValueError, match="unknown feature channel 'ppr'"):
        model.start_from("ppr")
    with pytest.raises(ValueError, match="needs the 'pairs' part"):
        _model(synthetic_sampler, parts=("tower",)).start_from("ppr@0.15")


# ------------------------------------------------------- neighbour-sampled tower
def test_sampled_tower_graph_is_a_fanout_capped_uniform_subset_of_each_fold_graph(
        synthetic_sampler):
    model = _model(synthetic_sampler, tower_fanout=(3, 5))
    folds = tuple(range(model.tower_folds + 1))
    sample = model.sampled_tower_graph(folds, draw=7)
    again = model.sampled_tower_graph(folds, draw=7)
    other = model.sampled_tower_graph(folds, draw=8)
    u = model.num_users
    for fold in folds:
        full = model.tower_graph(fold)
        full_keys = set((full[0] * u + full[1]).tolist())
        in_degree = torch.bincount(full[1], minlength=u)
        assert len(sample[fold]) == 2
        for layer, fanout in enumerate((3, 5)):
            edges = sample[fold][layer]
            keys = (edges[0] * u + edges[1]).tolist()
            # a subset of the fold's graph, no edge twice: no link of the fold's users
            assert set(keys) <= full_keys and len(set(keys)) == len(keys)
            # every user keeps min(in-degree, fanout) in-edges
            assert torch.equal(torch.bincount(edges[1], minlength=u),
                               in_degree.clamp(max=fanout))
            assert torch.equal(edges, again[fold][layer])            # keyed by the draw
        assert not torch.equal(sample[fold][0], other[fold][0])
    # uniform: over many draws, each in-edge of a busy user is kept ~fanout/degree
    graph = model.tower_graph(model.tower_folds)
    busy = int(torch.bincount(graph[1], minlength=u).argmax())
    neighbours = graph[0][graph[1] == busy]
    counts = torch.zeros(u)
    draws = 400
    for draw in range(draws):
        edges = model.sampled_tower_graph((model.tower_folds,), draw)[model.tower_folds][0]
        counts += torch.bincount(edges[0][edges[1] == busy], minlength=u).float()
    share = counts[neighbours] / draws
    expected = 3 / neighbours.numel()
    assert (share - expected).abs().max() < 4 * (expected * (1 - expected) / draws) ** 0.5


def test_sampled_tower_trains_on_samples_and_evaluates_on_the_whole_graph(synthetic_sampler):
    from socialmeta.meta.learners import _call, shared_inputs

    big = int(torch.bincount(synthetic_sampler.observed[FRIEND].edge_index[1]).max())
    full = _model(synthetic_sampler)
    capped = _model(synthetic_sampler, tower_fanout=(2, 2))
    wide = _model(synthetic_sampler, tower_fanout=(big, big))   # keeps every edge
    inner = InnerLoop("maml", steps=1, lr=0.1)
    params = meta_parameters(full, inner)
    batch = synthetic_sampler.train_batch(0, 0, 4)
    exact = shared_inputs(full, params, batch)[0]["candidates"]
    capped.begin_step(3)
    sampled = shared_inputs(capped, params, batch)[0]["candidates"]
    assert sampled.requires_grad and not torch.allclose(sampled, exact, atol=1e-3)
    with torch.no_grad():   # the same draw from the same step
        redo = _call(capped, params)(mode="tower", folds=tuple(range(capped.tower_folds)),
                                     draw=3)
    folds = torch.unique(capped.fold_of[batch.center])
    assert torch.equal(sampled.detach()[folds], redo[folds])
    capped.begin_step(3)
    assert torch.equal(shared_inputs(capped, params, batch)[0]["candidates"].detach(),
                       sampled.detach())
    assert not torch.equal(shared_inputs(capped, params, batch)[0]["candidates"].detach(),
                           sampled.detach())          # the next batch draws afresh
    # a fanout no user exceeds reads the whole graph (up to summation order)
    wide.begin_step(0)
    assert torch.allclose(shared_inputs(wide, params, batch)[0]["candidates"], exact,
                          atol=1e-5)
    # evaluation (no autograd) reads every neighbour: the same scores as without sampling
    test = synthetic_sampler.eval_batch(synthetic_sampler.eval_centers("test", 3)[:6], 3)
    assert torch.equal(candidate_scores(capped, params, test, inner, capped.num_users),
                       candidate_scores(full, params, test, inner, full.num_users))


def test_sampled_tower_batched_equals_reference(synthetic_sampler, assert_meta_equivalent):
    model = _model(synthetic_sampler, dtype=torch.float64, tower_fanout=(3, 3))
    batch = _double(synthetic_sampler.train_batch(epoch=0, batch_index=2, batch_size=4))

    inner = InnerLoop("maml", steps=1, lr=0.3)
    model.begin_step(5)
    _, grads = meta_gradient(model, batch, inner)
    model.begin_step(5)
    again = meta_gradient(model, batch, inner)[1]
    assert all(torch.equal(grads[n], again[n]) for n in grads)
    original = model.batch_inputs

    def keyed(call, b):   # both paths read the tower sample of step 5
        model.begin_step(5)
        return original(call, b)

    model.batch_inputs = keyed
    assert_meta_equivalent(model, batch, inner, atol=1e-9)


@pytest.mark.parametrize("fold", [0, 3, 5])
def test_tower_at_scored_users_equals_the_whole_sampled_tower_there(synthetic_sampler, fold):
    """The tower computed on a few users' sampled neighbourhoods only gives the rows
    of the whole neighbour-sampled tower of the same draw, and each user keeps the
    in-edges the whole sample keeps (fold 5: the whole observed graph)."""
    model = _model(synthetic_sampler, dtype=torch.float64, tower_fanout=(3, 2))
    gen = torch.Generator().manual_seed(fold)
    users = torch.unique(torch.randint(0, synthetic_sampler.num_users, (40,), generator=gen))
    whole = model.sampled_tower_graph([fold], 7)[fold]
    for layer in range(2):
        mine = model.sampled_in_edges(users, fold, 7, layer)
        want = whole[layer][:, torch.isin(whole[layer][1], users)]
        key = lambda e: torch.sort(e[1] * 10**6 + e[0]).values   # noqa: E731
        assert torch.equal(key(mine), key(want)) and mine.size(1) > 0
        assert torch.bincount(mine[1]).max() <= (3, 2)[layer]
    with torch.no_grad():
        full = model.candidate_embeddings([fold], draw=7)[fold]
        assert torch.allclose(model.tower_at(users, fold, 7), full[users], atol=1e-12)
        assert not torch.allclose(model.tower_at(users, fold, 8), full[users], atol=1e-6)


@pytest.mark.parametrize("learner", ["maml", "protonet", "finetune"])
def test_sampled_softmax_with_the_scored_tower_batched_equals_reference(
        synthetic_sampler, learner, assert_meta_equivalent):
    """Meta-training with the sampled softmax and a neighbour-sampled tower computes
    the tower at the batch's scored candidates only; the reference loop computes each
    task's whole sampled tower of the same draw and scores every user."""
    model = _sampled_model(synthetic_sampler, dtype=torch.float64, tower_fanout=(3, 2))
    # 8 tasks in all five folds, in an order that no fold-by-fold gather keeps
    batch = _double(synthetic_sampler.train_batch(epoch=0, batch_index=0, batch_size=8))
    assert len(torch.unique(model.fold_of[batch.center])) == 5
    from socialmeta.meta.learners import shared_inputs

    model.begin_step(4)
    shared, per_task = shared_inputs(model, meta_parameters(model, InnerLoop(learner)), batch)
    assert "candidates" not in shared and shared["tower_draw"] == 4
    assert per_task["scored_tower"].shape[:2] == per_task["scored_ids"].shape
    original = model.batch_inputs

    def keyed(call, b):   # both paths read the tower sample of step 4
        model.begin_step(4)
        return original(call, b)

    model.batch_inputs = keyed
    assert_meta_equivalent(model, batch, InnerLoop(learner, steps=2, lr=0.3), atol=1e-9)


def test_tower_fanout_errors():
    with pytest.raises(ValueError, match="one positive fanout per tower layer"):
        HybridLinkModel(4, 2, 10, 3, tower_fanout=(5,))
    with pytest.raises(ValueError, match="one positive fanout per tower layer"):
        HybridLinkModel(4, 2, 10, 3, tower_fanout=(5, 0))


# ------------------------------------------------------------ sampled softmax
def _softmax_case(seed=0, users=40):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(users, generator=gen, dtype=torch.float64)
    is_candidate = torch.rand(users, generator=gen) > 0.2
    cands = is_candidate.nonzero().view(-1)
    perm = cands[torch.randperm(cands.numel(), generator=gen)]
    center, support, query = perm[0], perm[1:4], perm[4:9]
    return scores, is_candidate, center, support, query


def _draw(is_candidate, weight, samples, seed=1):
    """``samples`` draws from Q proportional to ``weight`` over the candidates."""
    ids = is_candidate.nonzero().view(-1)
    q = weight[ids] / weight[ids].sum()
    pick = torch.multinomial(q, samples, replacement=True,
                             generator=torch.Generator().manual_seed(seed))
    return ids[pick], (q[pick] * samples).log()


@pytest.mark.parametrize("side", ["support", "query"])
def test_sampled_softmax_tends_to_the_full_softmax(side):
    from socialmeta.models.hybrid import sampled_softmax_loss, whole_graph_loss

    scores, is_candidate, center, support, query = _softmax_case()
    support_w = torch.tensor([1.0, 1.0, 0.0])          # the last support user a non-friend
    targets = support if side == "support" else query
    target_w = torch.ones(targets.numel())
    target_w[0] = 0.0 if side == "query" else 1.0       # a padded / negative target
    full = whole_graph_loss(scores, is_candidate, center, support, support_w, targets,
                            target_w, side)
    skewed = torch.linspace(0.05, 3.0, scores.numel(), dtype=torch.float64) ** 2
    for weight in (torch.ones_like(scores), skewed):
        ids, logq = _draw(is_candidate, weight, 400_000)
        sampled = sampled_softmax_loss(scores[targets], scores[ids], logq, ids, center,
                                       support, support_w, targets, target_w, side)
        assert float(sampled) == pytest.approx(float(full), abs=1e-2)
    # without the logQ correction a skewed proposal is biased
    ids, logq = _draw(is_candidate, skewed, 400_000)
    uncorrected = sampled_softmax_loss(scores[targets], scores[ids],
                                       torch.full_like(logq, logq.exp().mean().log()), ids,
                                       center, support, support_w, targets, target_w, side)
    assert abs(float(uncorrected) - float(full)) > 0.05


def _sampled_model(sampler, samples=64, dtype=torch.float32, **kwargs):
    return _model(sampler, dtype=dtype, softmax_samples=samples, sampled_above=0, **kwargs)


@pytest.mark.parametrize("learner", ["maml", "anil", "protonet", "metanet", "finetune"])
def test_sampled_softmax_batched_equals_reference(synthetic_sampler, learner,
                                                  assert_meta_equivalent):
    model = _sampled_model(synthetic_sampler, dtype=torch.float64, proposal="degree")
    assert model.sampled
    batch = _double(synthetic_sampler.train_batch(epoch=0, batch_index=2, batch_size=5))
    assert_meta_equivalent(model, batch, InnerLoop(learner, steps=2, lr=0.3), atol=1e-9)


def test_sampled_scores_equal_the_whole_graph_scores_at_the_drawn_users(synthetic_sampler):
    from socialmeta.meta.learners import _call, shared_inputs, task_tensors

    model = _sampled_model(synthetic_sampler)
    params = meta_parameters(model, InnerLoop("maml"))
    batch = synthetic_sampler.train_batch(epoch=0, batch_index=0, batch_size=3)
    shared, per_task = shared_inputs(model, params, batch)
    tasks = task_tensors(model, batch)
    assert "pair_scores" not in per_task        # no pair MLP over every candidate
    for i in range(3):
        task = {**{k: v[i] for k, v in {**tasks, **per_task}.items()}, **shared}
        scored = task.pop("scored_ids")
        at = task["negatives"]
        whole = model.score_all(_call(model, params), task)
        assert torch.allclose(model.score_all(_call(model, params), task, at=at), whole[at],
                              atol=1e-5)
        # the batch's scored candidates (support, query, draws) from their gathered
        # tower rows and pair features equal the whole-graph scores there
        k = task["support_ids"].numel() + task["query_ids"].numel()
        assert torch.equal(scored[k:], at)
        assert torch.equal(scored[:k], torch.cat([task["support_ids"],
                                                  task["query_ids"]]).clamp(min=0))
        task["scored_ids"] = scored
        assert torch.allclose(model.score_all(_call(model, params), task, at=scored),
                              whole[scored], atol=1e-5)


def test_negatives_are_candidates_drawn_per_task_and_only_in_meta_training(synthetic_sampler):
    from socialmeta.meta.learners import shared_inputs

    model = _sampled_model(synthetic_sampler, samples=5000, proposal="degree")
    params = meta_parameters(model, InnerLoop("maml"))
    batch = synthetic_sampler.train_batch(epoch=0, batch_index=0, batch_size=6)
    ids, logq = shared_inputs(model, params, batch)[1]["negatives"], None
    assert ids.shape == (6, 5000)
    assert bool(model.is_candidate[ids].all())
    # a task draws the same negatives in another batch (by its index and center)
    alone = model.draw_negatives(batch.task_index[3:4], batch.center[3:4])
    assert torch.equal(alone[0][0], ids[3])
    # the degree proposal: logQ is the proposal's, and the draws follow it
    ids, logq = model.draw_negatives(batch.task_index, batch.center)
    degree = torch.bincount(model.graph_edges[0], minlength=model.num_users).double()
    q = (degree + 1) ** 0.75 * model.is_candidate
    q = q / q.sum()
    assert torch.allclose(logq, (q[ids] * 5000).log().to(logq.dtype), atol=1e-5)
    counts = torch.bincount(ids.view(-1), minlength=model.num_users).double()
    assert torch.corrcoef(torch.stack([counts, q]))[0, 1] > 0.9
    # evaluation (no autograd) adapts with the full softmax
    with torch.no_grad():
        assert "negatives" not in shared_inputs(model, params, batch)[1]
    # below the threshold meta-training uses the full softmax too
    full = _model(synthetic_sampler, softmax_samples=64, sampled_above=10 ** 6)
    assert not full.sampled
    assert "negatives" not in shared_inputs(full, meta_parameters(full, InnerLoop("maml")),
                                            batch)[1]
    with pytest.raises(ValueError, match="proposal"):
        _model(synthetic_sampler, proposal="popular")


def test_a_sampled_task_loss_tends_to_its_full_loss(synthetic_sampler):
    from socialmeta.meta.learners import _call, shared_inputs, task_tensors

    model = _sampled_model(synthetic_sampler, samples=200_000)
    full_model = _model(synthetic_sampler)
    params = meta_parameters(model, InnerLoop("maml"))
    batch = synthetic_sampler.train_batch(epoch=0, batch_index=0, batch_size=2)
    for m in (model, full_model):
        shared, per_task = shared_inputs(m, params, batch)
        task = {**{k: v[0] for k, v in {**task_tensors(m, batch), **per_task}.items()},
                **shared}
        with torch.no_grad():
            m.loss_value = float(m.task_loss(_call(m, params), task, "query"))
    assert model.loss_value == pytest.approx(full_model.loss_value, abs=1e-2)


@pytest.mark.parametrize("learner", ["maml", "protonet", "metanet", "finetune"])
def test_hybrid_with_the_items_context_batched_equals_reference(learner,
                                                                assert_meta_equivalent):
    # the items context adds the new user's items to the ego-net encoder's input; the
    # hybrid's own task fields must survive it (the context once replaced them: a
    # KeyError on 'center' in every lastfm:friend:items run)
    graph = generate_synthetic(300, avg_degree=8, num_items=60, seed=1)
    sampler = _sampler(graph, ("items",))
    model = _model(sampler, dtype=torch.float64, num_items=graph.num_items)
    assert {"center", "node_ids", "pair_features", "item_ids", "item_adj"} <= set(
        model.task_fields)
    batch = _double(sampler.train_batch(epoch=0, batch_index=0, batch_size=4))
    assert_meta_equivalent(model, batch, InnerLoop(learner, steps=1, lr=0.3), atol=1e-9)
    # and the items reach the scores: without them a task scores differently
    params = meta_parameters(model, InnerLoop("maml"))
    with_items = candidate_scores(model, params, batch, InnerLoop("noadapt"), graph.num_users)
    batch.item_ids = torch.full_like(batch.item_ids, -1)
    without = candidate_scores(model, params, batch, InnerLoop("noadapt"), graph.num_users)
    assert not torch.allclose(with_items, without)


@pytest.mark.parametrize("chunk_rows", [16384, 0, 7])
def test_pair_mlp_equals_the_sequential_it_replaces(chunk_rows):
    """The pair MLP computes nn.Sequential(Linear, ReLU, Linear)'s function and
    gradients (its backward in a cheaper layout), whole or in row chunks (7: 120
    rows in 18 chunks, the last short): forward, torch.func.grad, vmap, double
    backward, and the Sequential's state_dict loads into it."""
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    mlp = PairMLP(6, 8)
    mlp.chunk_rows = chunk_rows
    mlp.load_state_dict(seq.state_dict())
    assert list(mlp.state_dict()) == list(seq.state_dict())
    seq, mlp = seq.double(), mlp.double()
    x = torch.randn(3, 40, 6, dtype=torch.double)
    assert mlp(x).shape == (3, 40, 1)
    torch.testing.assert_close(mlp(x), seq(x))
    params = {n: p.detach().requires_grad_() for n, p in seq.named_parameters()}
    weights = torch.randn(3, 40, dtype=torch.double)

    def loss(p, module):
        return (functional_call(module, p, (x,)).squeeze(-1) * weights).sum()

    for name, value in grad(loss)(params, mlp).items():
        torch.testing.assert_close(value, grad(loss)(params, seq)[name])
    torch.testing.assert_close(vmap(lambda xi: functional_call(mlp, params, (xi,)))(x),
                               seq(x))

    def curvature(p, module):   # a gradient of a gradient through the pair MLP
        g = grad(lambda w: functional_call(module, {**p, "2.weight": w}, (x,)).pow(2).sum()
                 )(p["2.weight"])
        return g.pow(2).sum()

    for name, value in grad(curvature)(params, mlp).items():
        torch.testing.assert_close(value, grad(curvature)(params, seq)[name])
    assert torch.autograd.gradcheck(
        lambda *w: functional_call(mlp, dict(zip(params, w)), (x[0, :5],)),
        tuple(params.values()))
