"""Local-push PageRank: within its bound of the converged PageRank, with a task's center
removed, and the same for a task whatever else is in the batch."""
import pytest
import torch

from socialmeta.features.push import push_pagerank
from socialmeta.features.sparse import CSR


def _graph(num_users: int, pairs: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_users, (pairs,), generator=gen)
    dst = torch.randint(0, num_users, (pairs,), generator=gen)
    keep = src != dst
    both = torch.stack([torch.cat([src[keep], dst[keep]]), torch.cat([dst[keep], src[keep]])])
    return torch.unique(both, dim=1)


def _converged(edges, num_users, restart, alpha, center):
    """PageRank by 3,000 power steps on the dense graph without :obj:`center`."""
    adj = torch.zeros(num_users, num_users, dtype=torch.double)
    adj[edges[0], edges[1]] = 1.0
    adj[center, :] = 0.0
    adj[:, center] = 0.0
    degree = adj.sum(1)
    inv = torch.where(degree > 0, 1.0 / degree.clamp(min=1.0), torch.zeros_like(degree))
    x, p = restart.clone(), torch.zeros_like(restart)
    for _ in range(3000):
        p += alpha * x
        x = (1 - alpha) * (adj @ (x * inv))
    return p, degree


@pytest.mark.parametrize("epsilon", [1e-3, 1e-5, 1e-9])
def test_push_is_within_its_bound_of_the_converged_pagerank(epsilon):
    """``0 <= p - p̂ <= ε d`` for every node (d: its degree without the center), with a
    leaf of the center (degree 0 once the center is gone) and isolated nodes."""
    n = 200
    edges = _graph(n, 500)
    center = torch.tensor([3, 50, 77])
    leaf = torch.tensor([[3, n - 1], [n - 1, 3]])     # node n-1 hangs off center 3 only
    edges = edges[:, (edges != n - 1).all(0)]
    edges = torch.unique(torch.cat([edges, leaf], 1), dim=1)
    degree = torch.bincount(edges[0], minlength=n).double()
    restart = torch.zeros(3, n, dtype=torch.double)
    restart[0, [5, 9, 11]] = 1.0
    restart[1, [5]] = 1.0
    restart[2, [20, 21, 22, 23]] = 1.0
    restart /= restart.sum(1, keepdim=True)
    alphas = [0.05, 0.5]
    got = push_pagerank(CSR.from_edge_index(edges, n, n), degree, restart, alphas, epsilon,
                        center=center)
    for a, alpha in enumerate(alphas):
        for t in range(3):
            want, d = _converged(edges, n, restart[t], alpha, int(center[t]))
            error = want - got[a][t]
            assert error.min() >= -1e-12
            assert (error <= epsilon * d + 1e-12).all()
            assert got[a][t, center[t]] == 0
            if epsilon == 1e-9:
                assert error.abs().max() < 1e-6
    # the leaf of center 3 receives nothing in task 0 (its only link is gone)
    assert got[0][0, n - 1] == 0


def test_a_column_does_not_depend_on_its_batch():
    n = 3000
    edges = _graph(n, 30000, seed=1)
    degree = torch.bincount(edges[0], minlength=n).float()
    csr = CSR.from_edge_index(edges, n, n)
    gen = torch.Generator().manual_seed(2)
    restart = torch.zeros(6, n)
    restart[torch.arange(6).repeat_interleave(3), torch.randint(0, n, (18,), generator=gen)] = 1
    restart /= restart.sum(1, keepdim=True)
    center = torch.randint(0, n, (6,), generator=gen)
    alphas = [0.05, 0.3]
    whole = push_pagerank(csr, degree, restart, alphas, 1e-6, center=center)
    part = push_pagerank(csr, degree, restart[[4, 1]], alphas, 1e-6, center=center[[4, 1]])
    for a in range(2):
        assert torch.equal(part[a], whole[a][[4, 1]])
        assert (whole[a] > 0).sum(1).min() > 10


def test_push_errors():
    csr = CSR.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 2, 2)
    with pytest.raises(ValueError, match="epsilon > 0"):
        push_pagerank(csr, torch.ones(2), torch.tensor([[1.0, 0.0]]), [0.15], 0.0)
