"""``task.context``: what of the center is visible besides its K-shot support.

For every context variant, over thousands of training tasks and every test user's
cold-start task: nothing of the query relation is visible beyond the K support links;
the context relations are exactly the user's own data; the center's feature row is
hidden (zeroed and flagged) unless ``features`` is context.
"""
import pytest
import torch

from socialmeta.tasks import TaskConfig, TaskSampler, split_users

NUM_TRAIN_TASKS = 2000
BATCH = 500


def _links(index, n_targets):
    """Per source user, the set of its targets."""
    out: dict[int, set[int]] = {}
    for u, v in index.t().tolist():
        out.setdefault(u, set()).add(v)
    return out


def _center_row(batch, t, adj):
    return set(batch.node_ids[t][adj[t, 0].bool()].tolist())


def _center_items(batch, t):
    return set(batch.item_ids[t][batch.item_adj[t, 0].bool()].tolist())


def _check_task(batch, t, sampler, graph, friends, items):
    cfg, center = sampler.config, int(batch.center[t])
    sup = batch.support_mask[t] & (batch.support_label[t] == 1)
    qry = batch.query_mask[t] & (batch.query_label[t] == 1)
    support, query = set(batch.support_ids[t][sup].tolist()), set(
        batch.query_ids[t][qry].tolist())
    assert not support & query
    train_friends = {f for f in friends.get(center, ()) if sampler.is_train[f]}
    own_items = items.get(center, set()) if items is not None else set()
    visible_friends = _center_row(batch, t, batch.adj)
    visible_items = _center_items(batch, t) if batch.item_ids.size(1) else set()
    if cfg.kind == "friend":
        assert support <= train_friends and query <= train_friends
        assert visible_friends == support  # not one query friend is adjacent
        if cfg.observes("items"):  # the user's own items, all of them up to the cap
            assert visible_items <= own_items
            assert len(visible_items) == min(len(own_items), cfg.item_cap)
        else:
            assert not visible_items
    elif cfg.kind == "item":
        assert support <= own_items and query <= own_items
        assert visible_items == support  # not one query item is linked to the center
        if cfg.observes("friends"):
            assert visible_friends <= train_friends
            assert bool(visible_friends) == bool(train_friends)
        else:
            assert not visible_friends and int(batch.node_mask[t].sum()) == 1
    # features: the center's row is its own when observed, else zeroed and flagged
    x = graph["user"].x
    if x.size(1):
        if cfg.observes("features"):
            assert torch.equal(batch.x[t, 0, :-1], x[center]) and batch.x[t, 0, -1] == 0
        else:
            assert batch.x[t, 0, :-1].eq(0).all() and batch.x[t, 0, -1] == 1
        members = batch.node_mask[t].nonzero().view(-1)[1:]
        assert torch.equal(batch.x[t, members, :-1], x[batch.node_ids[t, members]])
        assert batch.x[t, members, -1].eq(0).all()
    else:
        assert batch.x.size(-1) == 0


def _run(graph, kind, context, split_seed=0, **options):
    split = split_users(graph, seed=split_seed)
    sampler = TaskSampler(graph, split, TaskConfig(kind=kind, context=context, seed=5,
                                                   **options))
    friends = _links(graph.friend_index, graph.num_users)
    items = _links(graph.interaction_index, graph.num_items) if graph.has_items else None
    for b in range(NUM_TRAIN_TASKS // BATCH):
        batch = sampler.train_batch(epoch=b, batch_index=b, batch_size=BATCH)
        assert sampler.is_train[batch.node_ids[batch.node_mask]].all()
        for t in range(0, BATCH, 4):
            _check_task(batch, t, sampler, graph, friends, items)
    for shots in (1, 3):
        users = sampler.eval_centers("test", shots)
        batch = sampler.eval_batch(users, shots)
        assert sampler.is_train[batch.node_ids[:, 1:][batch.node_mask[:, 1:]]].all()
        for t in range(batch.num_tasks):
            _check_task(batch, t, sampler, graph, friends, items)
            assert int(batch.num_shots[t]) == shots
    return sampler


@pytest.mark.parametrize("kind,context", [
    ("friend", []), ("friend", ["items"]), ("item", []), ("item", ["friends"])])
def test_context_lastfm(lastfm, kind, context):
    _run(lastfm, kind, context)


def test_context_lastfm_with_taste_neighbours(lastfm):
    """Taste neighbours come from what of the new user is visible (its context items,
    or an item task's support items), never from its query relation: the checks hold
    unchanged with them."""
    sampler = _run(lastfm, "friend", ["items"], taste_fanout=64)
    assert sampler.config.user_cap == 64 + 64
    # item tasks take them over the K support items only; items kept by how many
    # ego-net users hold them (as experiment=lastfm_item, with a smaller cap)
    sampler = _run(lastfm, "item", ["friends"], taste_fanout=32, item_cap=512,
                   item_order="shared")
    assert sampler.config.user_cap == 64 + 32


@pytest.mark.parametrize("context", [[], ["features"]])
def test_context_ego_facebook(ego_facebook, context):
    _run(ego_facebook, "friend", context, split_seed=1)


def test_interest_with_items_context(lastfm):
    split = split_users(lastfm, seed=3)
    sampler = TaskSampler(lastfm, split, TaskConfig(kind="interest",
                                                    context=["friends", "items"]))
    items = _links(lastfm.interaction_index, lastfm.num_items)
    y = lastfm["user"].interests.float()
    for batch in (sampler.train_batch(0, 0, 500),
                  sampler.eval_batch(sampler.eval_centers("test", 3), 3)):
        assert batch.labels[:, 0].eq(0).all() and not batch.label_mask[:, 0].any()
        for t in range(batch.num_tasks):
            own = items.get(int(batch.center[t]), set())
            visible = _center_items(batch, t)
            assert visible <= own and len(visible) == min(len(own), 64)
        assert torch.equal(batch.query_labels[:, 0], y[batch.center])


def test_context_defaults_and_validation():
    assert TaskConfig(kind="friend").context == ()
    assert TaskConfig(kind="item").context == ("friends",)
    assert TaskConfig(kind="interest").context == ("friends",)
    assert TaskConfig(kind="friend", context=["features", "items"]).context == (
        "items", "features")
    with pytest.raises(ValueError, match=r"unknown context 'friends' for 'friend' tasks; "
                                         r"choose from \['items', 'features'\]"):
        TaskConfig(kind="friend", context=["friends"])
    with pytest.raises(ValueError, match="unknown context 'items' for 'item' tasks"):
        TaskConfig(kind="item", context=["items"])
    with pytest.raises(ValueError, match="interest tasks need 'friends'"):
        TaskConfig(kind="interest", context=["items"])


def test_missing_context_relation_names_the_datasets_relations(lastfm, ego_facebook):
    with pytest.raises(ValueError, match=r"task context 'items' is not available: dataset "
                                         r"'ego_facebook' has only the relations "
                                         r"\['friends', 'features', 'circles'\]"):
        TaskSampler(ego_facebook, split_users(ego_facebook, seed=0),
                    TaskConfig(kind="friend", context=["items"]))
    with pytest.raises(ValueError, match=r"task context 'features' is not available: "
                                         r"dataset 'lastfm' has only the relations "
                                         r"\['friends', 'items', 'interests'\]"):
        TaskSampler(lastfm, split_users(lastfm, seed=0),
                    TaskConfig(kind="friend", context=["features"]))


def test_support_batch_uses_given_items_as_context(lastfm):
    """A new user described by friends *and* items: both are visible to a friend task
    that observes items."""
    sampler = TaskSampler(lastfm, split_users(lastfm, seed=0),
                          TaskConfig(kind="friend", context=["items"]))
    friends = sampler.split.train[:3]
    batch = sampler.support_batch(sampler.split.test[:1], friends=[friends],
                                  items=[torch.tensor([5, 7, 11])])
    assert _center_row(batch, 0, batch.adj) == set(friends.tolist())
    assert _center_items(batch, 0) == {5, 7, 11}


def test_item_support_input_false_hides_the_support_from_the_input(lastfm):
    """``support_input=False``: same targets as the default, but the support items
    are nowhere in the task's input (no center row, no taste neighbours from them);
    the ego-net is that of a task without taste neighbours and the same user cap."""
    split = split_users(lastfm, seed=0)
    options = dict(kind="item", seed=5, taste_fanout=16, item_cap=256, item_order="shared")
    shown = TaskSampler(lastfm, split, TaskConfig(**options))
    hidden = TaskSampler(lastfm, split, TaskConfig(**options, support_input=False))
    no_taste = TaskSampler(lastfm, split, TaskConfig(**{**options, "taste_fanout": 0,
                                                        "node_cap": 64 + 16}))
    users = shown.eval_centers("test", 3)
    batches = [(s.train_batch(0, 0, 300) for s in (shown, hidden, no_taste)),
               (s.eval_batch(users, 3) for s in (shown, hidden, no_taste))]
    for a, b, c in batches:
        for side in ("support", "query"):
            for field in ("ids", "label", "mask"):
                assert torch.equal(getattr(a, f"{side}_{field}"),
                                   getattr(b, f"{side}_{field}"))
        assert torch.equal(b.node_ids, c.node_ids) and torch.equal(b.adj, c.adj)
        assert not b.item_adj[:, 0].any()   # the center holds no visible item
        assert a.item_adj[:, 0].any(dim=-1).all()
        for t in range(b.num_tasks):
            assert _center_items(a, t) == set(
                a.support_ids[t][a.support_mask[t] & (a.support_label[t] == 1)].tolist())
            # every task item is held by another ego-net user
            held = b.item_adj[t].sum(0) > 0
            assert torch.equal(held, b.item_mask[t])
    with pytest.raises(ValueError, match="item tasks only, not 'friend'"):
        TaskConfig(kind="friend", support_input=False)
