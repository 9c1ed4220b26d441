"""The products of socialmeta.models.ops equal the plain ones they replace."""
import pytest
import torch
from torch.func import grad, vmap

from socialmeta.models.ops import matvec, t_matmul

PLAIN = {matvec: lambda a, v: a @ v, t_matmul: lambda a, v: a.transpose(-1, -2) @ v}


def _inputs(fn, tasks=4, rows=30, cols=5):
    torch.manual_seed(0)
    matrix = torch.randn(tasks, rows, cols, dtype=torch.double)
    other = (torch.randn(tasks, cols, dtype=torch.double) if fn is matvec
             else torch.randn(tasks, rows, 2, dtype=torch.double))
    return matrix, other


@pytest.mark.parametrize("fn", [matvec, t_matmul])
def test_equals_the_plain_product_batched_and_per_task(fn):
    matrix, other = _inputs(fn)
    plain = PLAIN[fn]
    expected = plain(matrix, other.unsqueeze(-1)).squeeze(-1) if fn is matvec \
        else plain(matrix, other)
    out = fn(matrix, other)                    # leading batch dimension
    assert out.shape == expected.shape == ((4, 30) if fn is matvec else (4, 5, 2))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(fn(matrix[1], other[1]), expected[1])   # unbatched
    torch.testing.assert_close(vmap(fn)(matrix, other), expected)
    # a matrix shared by every task (the hybrid's candidates), the other side per task
    torch.testing.assert_close(vmap(fn, in_dims=(None, 0))(matrix[0], other),
                               vmap(plain, in_dims=(None, 0))(matrix[0], other))


@pytest.mark.parametrize("fn", [matvec, t_matmul])
def test_gradients_and_second_order_equal_the_plain_products(fn):
    """Gradients in both inputs under vmap, and the gradient of an inner gradient step
    (MAML differentiates through the adapted vector and matrix)."""
    matrix, other = _inputs(fn)
    plain = PLAIN[fn]
    weights = torch.randn_like(vmap(plain)(matrix, other))

    def loss(a, v, form):
        return (vmap(form)(a, v) * weights).pow(2).sum()

    for argnum in (0, 1):
        torch.testing.assert_close(grad(loss, argnum)(matrix, other, fn),
                                   grad(loss, argnum)(matrix, other, plain))

    def adapted(a, v, form):    # one inner step on both inputs, then the loss again
        ga, gv = grad(loss, (0, 1))(a, v, form)
        return loss(a - 0.01 * ga, v - 0.01 * gv, form)

    for argnum in (0, 1):
        torch.testing.assert_close(grad(adapted, argnum)(matrix, other, fn),
                                   grad(adapted, argnum)(matrix, other, plain))
