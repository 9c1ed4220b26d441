"""tools/egonet_ceiling.py: the oracle ceilings of ego-net friend models."""
from socialmeta.data import generate_synthetic
from socialmeta.eval.protocol import evaluate_scorer
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


def _recall(tool, sampler, k=3):
    scorer = tool.oracles(sampler)["ego-net ceiling"]
    return evaluate_scorer(scorer, sampler, "test", shots=(k,))[k]["recall@20"]["mean"]


def _expected(sampler, k=3):
    """Mean over test users of min(query friends inside the ego-net, 20) / query friends."""
    batch = sampler.eval_batch(sampler.eval_centers("test", k), k)
    shares = []
    for t in range(batch.num_tasks):
        members = set(batch.node_ids[t, 1:][batch.node_mask[t, 1:]].tolist())
        query = batch.query_ids[t][batch.query_mask[t]].tolist()
        shares.append(min(sum(u in members for u in query), 20) / len(query))
    return sum(shares) / len(shares)


def test_ceiling_is_the_share_of_query_friends_inside_the_egonet(load_tool):
    tool = load_tool("egonet_ceiling")
    graph = generate_synthetic(2000, avg_degree=8, seed=0)
    split = split_users(graph, seed=0)
    # a 2-hop ego-net of up to 200 users and a tiny one
    full = TaskSampler(graph, split, TaskConfig(kind="friend", node_cap=200,
                                                fanouts=(-1, -1), seed=0))
    small = TaskSampler(graph, split, TaskConfig(kind="friend", node_cap=12, fanouts=(5, 5),
                                                 seed=0))
    assert 0.0 < _expected(small) < _expected(full) - 0.2
    for sampler in (full, small):
        expected = _expected(sampler)
        # tied outside users may put an outside friend in the top 20 by chance; rarely
        assert expected <= _recall(tool, sampler) <= expected + 0.05
