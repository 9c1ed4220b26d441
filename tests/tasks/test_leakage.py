"""No query link or label ever enters a task; val/test users never enter training."""
import pytest
import torch

from socialmeta.tasks import TaskConfig, TaskSampler, split_users

NUM_TRAIN_TASKS = 2000
BATCH = 250


def _edge_keys(edge_index, n):
    return set((edge_index[0] * n + edge_index[1]).tolist())


def _global_edges(batch, t):
    ids = batch.node_ids[t]
    i, j = batch.adj[t].nonzero().t()
    return ids[i], ids[j]


def _check_link_task(batch, t, sampler, train, n_targets, linked_keys):
    """Friend/item task t: the center sees only its support positives."""
    center = int(batch.center[t])
    sup = batch.support_mask[t] & (batch.support_label[t] == 1)
    qry = batch.query_mask[t] & (batch.query_label[t] == 1)
    sup_ids, qry_ids = set(batch.support_ids[t][sup].tolist()), set(
        batch.query_ids[t][qry].tolist())
    assert sup_ids and qry_ids and not sup_ids & qry_ids
    assert len(sup_ids) == int(batch.num_shots[t])
    # every positive is a real link of the center, every training negative is not; an
    # evaluation task's support negatives avoid only its support (they are drawn
    # without reading its query, which may contain them)
    for side, ids, label in (("support", batch.support_ids[t], batch.support_label[t]),
                             ("query", batch.query_ids[t], batch.query_label[t])):
        valid = ids >= 0
        keys = (center * n_targets + ids[valid]).tolist()
        is_link = torch.tensor([k in linked_keys for k in keys])
        if train or side == "query":
            assert torch.equal(is_link, label[valid].bool())
        else:
            positive = label[valid].bool()
            assert is_link[positive].all()
            assert not set(ids[valid][~positive].tolist()) & sup_ids
    if batch.kind == "friend":
        center_nbrs = set(batch.node_ids[t][batch.adj[t, 0].bool()].tolist())
        assert center_nbrs == sup_ids  # query friends are not adjacent to the center
    else:
        center_items = set(batch.item_ids[t][batch.item_adj[t, 0].bool()].tolist())
        assert center_items == sup_ids
        # friendships of the center are observed context (to training users only)
        assert all(sampler.is_train[batch.node_ids[t][batch.adj[t, 0].bool()]])


@pytest.mark.parametrize("kind", ["friend", "item"])
def test_link_tasks_lastfm(lastfm, kind):
    split = split_users(lastfm, seed=1)
    sampler = TaskSampler(lastfm, split, TaskConfig(kind=kind, seed=3))
    n = lastfm.num_users
    observed = _edge_keys(sampler.observed.friend_index, n)
    if kind == "friend":
        n_targets, linked = n, _edge_keys(lastfm.friend_index, n)
    else:
        n_targets = lastfm.num_items
        linked = _edge_keys(lastfm.interaction_index, n_targets)
    is_train = sampler.is_train
    for b in range(NUM_TRAIN_TASKS // BATCH):
        batch = sampler.train_batch(epoch=b % 3, batch_index=b, batch_size=BATCH)
        nodes = batch.node_ids[batch.node_mask]
        assert is_train[nodes].all()  # val/test users never appear in training
        if kind == "friend":
            targets = torch.cat([batch.support_ids[batch.support_mask],
                                 batch.query_ids[batch.query_mask]])
            assert is_train[targets].all()
        for t in range(0, BATCH, 5):
            _check_link_task(batch, t, sampler, True, n_targets, linked)
        # every non-center edge of every task is an observed (training) friendship
        for t in range(BATCH):
            gs, gd = _global_edges(batch, t)
            off_center = (gs != batch.center[t]) & (gd != batch.center[t])
            assert set((gs[off_center] * n + gd[off_center]).tolist()) <= observed
    # cold-start tasks of every test user: the K support links are all it shows
    for shots in (1, 3, 10):
        users = sampler.eval_centers("test", shots)
        batch = sampler.eval_batch(users, shots)
        others = batch.node_ids[:, 1:][batch.node_mask[:, 1:]]
        assert is_train[others].all()
        for t in range(batch.num_tasks):
            _check_link_task(batch, t, sampler, False, n_targets, linked)
            assert int(batch.num_shots[t]) == shots


def test_eval_query_is_every_remaining_link(lastfm):
    split = split_users(lastfm, seed=1)
    sampler = TaskSampler(lastfm, split, TaskConfig(kind="friend"))
    users = sampler.eval_centers("val", 3)
    batch = sampler.eval_batch(users, 3)
    src, dst = lastfm.friend_index
    for t in range(0, batch.num_tasks, 7):
        u = int(batch.center[t])
        friends = set(dst[(src == u) & sampler.is_train[dst]].tolist())
        sup = set(batch.support_ids[t][batch.support_mask[t] & (batch.support_label[t] == 1)]
                  .tolist())
        qry = set(batch.query_ids[t][batch.query_mask[t]].tolist())
        assert sup | qry == friends and not sup & qry
    # K=1 support is contained in K=3 support (same priorities)
    one, three = sampler.eval_batch(users[:20], 1), sampler.eval_batch(users[:20], 3)
    for t in range(20):
        assert set(one.support_ids[t][one.support_label[t] == 1].tolist()) <= set(
            three.support_ids[t][three.support_label[t] == 1].tolist())


def test_interest_center_hides_center_labels(lastfm):
    split = split_users(lastfm, seed=2)
    sampler = TaskSampler(lastfm, split, TaskConfig(kind="interest", variant="center"))
    y = lastfm["user"].interests.float()
    for b in range(NUM_TRAIN_TASKS // BATCH):
        batch = sampler.train_batch(epoch=0, batch_index=b, batch_size=BATCH)
        assert sampler.is_train[batch.node_ids[batch.node_mask]].all()
        assert not batch.label_mask[:, 0].any() and batch.labels[:, 0].eq(0).all()
        assert batch.query_node_mask[:, 0].all() and batch.query_node_mask[:, 1:].eq(0).all()
        assert torch.equal(batch.query_labels[:, 0], y[batch.center])
        hidden = batch.node_mask & ~batch.label_mask
        assert batch.labels[hidden].eq(0).all()
        shown = batch.label_mask
        assert torch.equal(batch.labels[shown], y[batch.node_ids[shown]])
    batch = sampler.eval_batch(sampler.eval_centers("test", 3), 3)
    assert sampler.is_train[batch.node_ids[:, 1:][batch.node_mask[:, 1:]]].all()
    assert batch.labels[:, 0].eq(0).all()


def test_interest_members_circles(ego_facebook):
    egos = ego_facebook["circle"].ego.unique()
    split = split_users(ego_facebook, val_fraction=0.2, test_fraction=0.2, seed=0,
                        eval_pool=egos)
    assert split.test.numel() == 2 and split.val.numel() == 2
    sampler = TaskSampler(ego_facebook, split, TaskConfig(
        kind="interest", variant="members", label_source="circles", node_cap=128,
        fanouts=(-1,)))
    for b in range(8):
        batch = sampler.train_batch(epoch=b, batch_index=0, batch_size=250)
        assert sampler.is_train[batch.node_ids[batch.node_mask]].all()
        assert sampler.is_train[batch.center].all()
        assert not (batch.label_mask & batch.query_node_mask).any()
        assert batch.labels[batch.query_node_mask].eq(0).all()
        assert batch.query_labels[batch.query_node_mask].sum() > 0
        assert not batch.label_mask[:, 0].any()
    test = sampler.eval_batch(split.test, 3)
    assert sampler.is_train[test.node_ids[:, 1:][test.node_mask[:, 1:]]].all()
    assert (test.label_valid.sum(1) > 0).all()


def test_missing_relation_is_a_clear_error(ego_facebook):
    split = split_users(ego_facebook, seed=0)
    with pytest.raises(ValueError, match=r"'item' task needs 'items', but dataset "
                                         r"'ego_facebook' has only \['friends', 'features'"):
        TaskSampler(ego_facebook, split, TaskConfig(kind="item"))
    with pytest.raises(ValueError, match=r"unknown task kind 'friends'; choose one of"):
        TaskConfig(kind="friends")


@pytest.mark.parametrize("kind", ["friend", "item"])
def test_candidates_are_the_full_catalogue(lastfm, kind):
    split = split_users(lastfm, seed=1)
    sampler = TaskSampler(lastfm, split, TaskConfig(kind=kind))
    batch = sampler.eval_batch(sampler.eval_centers("test", 3)[:16], 3)
    mask = sampler.candidate_mask(batch)
    size = lastfm.num_users if kind == "friend" else lastfm.num_items
    assert mask.shape == (16, size)
    expected = (split.train.numel() - 3) if kind == "friend" else size - 3
    assert mask.sum(1).tolist() == [expected] * 16  # the center is not a training user
    rows = batch.query_mask.nonzero()[:, 0]
    assert mask[rows, batch.query_ids[batch.query_mask]].all()
    sup = batch.support_mask & (batch.support_label == 1)
    assert not mask[sup.nonzero()[:, 0], batch.support_ids[sup]].any()


def test_friend_tasks_ego_facebook(ego_facebook):
    split = split_users(ego_facebook, seed=4)
    sampler = TaskSampler(ego_facebook, split, TaskConfig(kind="friend", seed=1))
    n = ego_facebook.num_users
    linked = _edge_keys(ego_facebook.friend_index, n)
    observed = _edge_keys(sampler.observed.friend_index, n)
    for b in range(NUM_TRAIN_TASKS // BATCH):
        batch = sampler.train_batch(epoch=0, batch_index=b, batch_size=BATCH)
        assert sampler.is_train[batch.node_ids[batch.node_mask]].all()
        for t in range(0, BATCH, 10):
            _check_link_task(batch, t, sampler, True, n, linked)
            gs, gd = _global_edges(batch, t)
            off = (gs != batch.center[t]) & (gd != batch.center[t])
            assert set((gs[off] * n + gd[off]).tolist()) <= observed
    batch = sampler.eval_batch(sampler.eval_centers("test", 5), 5)
    for t in range(batch.num_tasks):
        _check_link_task(batch, t, sampler, False, n, linked)
        # pure cold start (default context): the new user's feature row is hidden and
        # flagged; every other row is that user's own features, unflagged
        assert batch.x[t, 0, :-1].eq(0).all() and batch.x[t, 0, -1] == 1
        members = batch.node_mask[t].nonzero().view(-1)[1:]
        assert torch.equal(batch.x[t, members, :-1],
                           ego_facebook["user"].x[batch.node_ids[t, members]])
        assert batch.x[t, members, -1].eq(0).all()


def test_interest_members_on_interests(lastfm):
    split = split_users(lastfm, seed=0)
    sampler = TaskSampler(lastfm, split, TaskConfig(kind="interest", variant="members",
                                                    shots=(1, 2)))
    y = lastfm["user"].interests.float()
    for b in range(NUM_TRAIN_TASKS // BATCH):
        batch = sampler.train_batch(epoch=1, batch_index=b, batch_size=BATCH)
        assert sampler.is_train[batch.node_ids[batch.node_mask]].all()
        assert not (batch.label_mask & batch.query_node_mask).any()
        assert batch.labels[~batch.label_mask].eq(0).all()
        q = batch.query_node_mask
        assert torch.equal(batch.query_labels[q], y[batch.node_ids[q]])
        s = batch.label_mask
        assert torch.equal(batch.labels[s], y[batch.node_ids[s]])
        assert (batch.num_shots == batch.label_mask.sum(1)).all()
