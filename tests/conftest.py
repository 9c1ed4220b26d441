"""Shared fixtures: real datasets come from ../shared/datasets, never the network."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SOCIALMETA_SHARED", REPO.parent / "shared")) / "datasets"
LASTFM_ROOT = SHARED / "hetrec-lastfm-2k"
EGO_FACEBOOK_ROOT = SHARED / "snap-ego-facebook"
CIAODVD_ROOT = SHARED / "ciaodvd"


def pytest_configure(config):
    """Under ``pytest -n N`` (pytest-xdist) each worker takes its share of the cores for
    torch's intra-op threads, so N workers do not oversubscribe the machine."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def _require(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"shared dataset folder {path} is not present")
    return path


@pytest.fixture(scope="session")
def lastfm_root() -> Path:
    return _require(LASTFM_ROOT)


@pytest.fixture(scope="session")
def ego_facebook_root() -> Path:
    return _require(EGO_FACEBOOK_ROOT)


@pytest.fixture(scope="session")
def ciaodvd_root() -> Path:
    return _require(CIAODVD_ROOT)


@pytest.fixture(scope="session")
def ciaodvd(ciaodvd_root):
    from socialmeta.data import load_dataset

    return load_dataset("ciaodvd", root=ciaodvd_root, cache_dir=None, download=False,
                        dedupe=True)


@pytest.fixture(scope="session")
def lastfm(lastfm_root):
    from socialmeta.data import load_dataset

    return load_dataset("lastfm", root=lastfm_root, cache_dir=None, download=False)


@pytest.fixture(scope="session")
def ego_facebook(ego_facebook_root):
    from socialmeta.data import load_dataset

    return load_dataset("ego_facebook", root=ego_facebook_root, cache_dir=None, download=False)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to reach another host from a test fails loudly (local Unix sockets,
    which DataLoader workers use, stay allowed)."""
    import socket

    connect = socket.socket.connect

    def guarded_connect(self, address, *args, **kwargs):
        if self.family == getattr(socket, "AF_UNIX", None):
            return connect(self, address, *args, **kwargs)
        raise RuntimeError(f"tests must not reach the network (tried {address!r})")

    def no_connection(*args, **kwargs):
        raise RuntimeError("tests must not reach the network")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", no_connection)


@pytest.fixture
def assert_meta_equivalent():
    """``check(model, batch, inner)``: the batched learner and the per-task reference
    loop give the same outer loss and meta-gradient (float64, elementwise)."""
    import torch

    from socialmeta.meta import meta_gradient, meta_parameters, reference_outer_loss

    def check(model, batch, inner, rtol=1e-8, atol=1e-12, params=None):
        params = meta_parameters(model, inner) if params is None else params
        loss, grads = meta_gradient(model, batch, inner, params)
        ref, _ = reference_outer_loss(model, batch, inner, params)
        ref_grads = torch.autograd.grad(ref, list(params.values()), allow_unused=True)
        assert torch.allclose(loss, ref.detach(), rtol=1e-10)
        for (name, p), g in zip(params.items(), ref_grads):
            g = torch.zeros_like(p) if g is None else g
            assert torch.allclose(grads[name], g, rtol=rtol, atol=atol), name

    return check


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("bench_quality")``: a script of ``tools/`` as a module."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def train_and_test():
    """``train_and_test(sampler, learner, steps=150)``: meta-trains an interest model on
    the sampler's tasks; (query loss, recall@10, test users) on its test users, K=5."""
    import torch

    from socialmeta.eval import ranking_metrics
    from socialmeta.meta import (
        InnerLoop,
        interest_logits,
        meta_gradient,
        meta_parameters,
        outer_loss,
    )
    from socialmeta.models import InterestModel

    def train_and_test(sampler, learner: str, steps: int = 150):
        """Meta-trains an interest model on :obj:`sampler`'s tasks; (query loss, recall@10,
        test users) on its test users at K=5."""
        torch.manual_seed(0)
        model = InterestModel(0, 20, num_hops=2, hidden_channels=32)
        inner = InnerLoop(learner, steps=1, lr=0.5)
        params = meta_parameters(model, inner)
        opt = torch.optim.Adam(params.values(), lr=3e-3)
        for step in range(steps):
            _, grads = meta_gradient(model, sampler.train_batch(0, step, 32), inner, params)
            for name, p in params.items():
                p.grad = grads[name]
            opt.step()
        test = sampler.eval_batch(sampler.eval_centers("test", 5), 5)
        detached = {n: p.detach() for n, p in params.items()}
        query_loss = float(outer_loss(model, detached, test, inner))
        logits = interest_logits(model, detached, test, inner)[:, 0]
        truth = test.query_labels[:, 0] > 0
        recall = ranking_metrics(logits, truth, torch.ones_like(truth), ks=(10,))["recall@10"]
        return query_loss, float(recall.nanmean()), test.num_tasks
    return train_and_test
