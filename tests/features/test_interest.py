import pytest
import torch

from socialmeta.features import label_propagation


def _one_weight_at_a_time(adj, seeds, alpha, iterations):
    """The recursion as written: F <- a D^-1 A F + (1 - a) Y, from F = Y."""
    walk = adj / adj.sum(-1, keepdim=True).clamp(min=1)
    f = seeds.clone()
    for _ in range(iterations):
        f = alpha * walk @ f + (1 - alpha) * seeds
    return f


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_label_propagation_equals_the_recursion_one_weight_at_a_time(dtype):
    torch.manual_seed(0)
    adj = (torch.rand(3, 40, 40) < 0.15).to(dtype)
    adj = ((adj + adj.transpose(1, 2)) > 0).to(dtype)
    adj[:, -5:] = 0                      # padded rows: no edges
    adj[:, :, -5:] = 0
    seeds = (torch.rand(3, 40, 7) < 0.2).to(dtype)
    alphas = (0.5, 0.8, 0.9, 0.99)
    f = label_propagation(adj, seeds, alphas, iterations=12)
    assert f.shape == (3, 40, 7, 4)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}
    for c, alpha in enumerate(alphas):
        torch.testing.assert_close(f[..., c], _one_weight_at_a_time(adj, seeds, alpha, 12),
                                   **tol)
    # a row without edges receives nothing: its restart term, (1 - a) Y
    torch.testing.assert_close(f[:, -5:], seeds[:, -5:, :, None]
                               * (1 - torch.tensor(alphas, dtype=dtype)), **tol)
    # one weight alone is the same as that weight among others
    torch.testing.assert_close(label_propagation(adj, seeds, (0.9,), 12)[..., 0], f[..., 2],
                               **tol)
    # unbatched input, no iterations: the seeds
    torch.testing.assert_close(label_propagation(adj[0], seeds[0], alphas, 0),
                               seeds[0, :, :, None].expand(-1, -1, 4))
