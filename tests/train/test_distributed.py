"""Several processes, one run: two gloo processes on localhost end with the parameters
and metrics of one process with the same global batch; a killed torchrun run resumes to
the same end state; bad launches end with a message, never a hang."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from socialmeta.distributed import shard

pytestmark = pytest.mark.distributed

TINY = ["dataset.num_users=300", "train.steps=6", "train.eval_every=2", "train.batch_size=7",
        "train.val_users=20", "eval.shots=[3]", "eval.max_users=21", "eval.baselines=[ppr]",
        "task.node_cap=24", "task.fanouts=[8,4]", "dist_timeout=20"]


def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _torchrun(nproc, run_dir, *extra, check=True):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "socialmeta", "train",
           f"hydra.run.dir={run_dir}", *TINY, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    if check:  # the whole stderr of every rank, not CalledProcessError's truncated repr
        assert out.returncode == 0, f"torchrun exited {out.returncode}:\n{out.stderr[-6000:]}"
    return out


def _single(run_dir, *extra):
    return subprocess.run([sys.executable, "-m", "socialmeta", "train",
                           f"hydra.run.dir={run_dir}", *TINY, *extra], capture_output=True,
                          text=True, env=_env(), timeout=300, check=True)


def _max_diff(a, b):
    pa = torch.load(a, weights_only=True)["params"]
    pb = torch.load(b, weights_only=True)["params"]
    assert pa.keys() == pb.keys()
    return max(float((pa[k] - pb[k]).abs().max()) for k in pa)


def _assert_close(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-6, nan_ok=True), path
    else:
        assert a == b, path


def test_shard_splits_contiguously_and_covers_everything():
    for num in (1, 7, 8, 64, 65):
        for parts in (1, 2, 3):
            pieces = [list(range(num))[shard(num, p, parts)] for p in range(parts)]
            assert sum(pieces, []) == list(range(num))
            assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


@pytest.mark.parametrize("scorer", ["egonet", "hybrid"])
def test_two_gloo_processes_equal_one_process(tmp_path, scorer):
    """T=7 on 2 ranks (4 + 3 tasks: the rule for a world size that does not divide the
    batch) against T=7 in one process: the same losses, metrics and (ego-net scorer)
    parameters. The hybrid's softmax over every candidate is invariant to a constant
    added to all scores, so the pair MLP's output bias gets a gradient of rounding
    noise that Adam turns into steps of either sign: its parameters are compared
    through the losses and metrics they give."""
    extra = [f"model.scorer={scorer}", "meta=maml"]
    _single(tmp_path / "one", *extra)
    out = _torchrun(2, tmp_path / "two", *extra)
    assert "rank 0 of 2 processes (gloo)" in out.stderr
    if scorer == "egonet":
        assert _max_diff(tmp_path / "one" / "last.pt", tmp_path / "two" / "last.pt") <= 1e-6
        assert _max_diff(tmp_path / "one" / "best.pt", tmp_path / "two" / "best.pt") <= 1e-6

    def losses(run):
        rows = (tmp_path / run / "log.csv").read_text().strip().splitlines()[1:]
        return [float(r.split(",")[1]) for r in rows if r.split(",")[0] != "0"]

    assert losses("one") == pytest.approx(losses("two"), abs=1e-5)
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    _assert_close(one, two)
    # rank 0 alone wrote the log: one row per step, no duplicate
    rows = (tmp_path / "two" / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 6 + (scorer == "hybrid")   # + the fallback start's step 0


def test_killed_torchrun_run_resumes_to_the_same_end_state(tmp_path):
    steps = ["train.steps=40", "train.eval_every=4", "train.patience=100"]
    _torchrun(2, tmp_path / "full", *steps)
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "socialmeta", "train", f"hydra.run.dir={run}", *TINY, *steps]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(), start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill once a mid-training checkpoint exists
        last = run / "last.pt"
        if last.is_file():
            try:
                if 8 <= torch.load(last, weights_only=True)["step"] < 40:
                    break
            except Exception:  # being replaced this instant
                pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(run / "last.pt", weights_only=True)["step"]
    assert 8 <= killed_at < 40 and not (run / "metrics.json").exists()
    _torchrun(2, run, *steps, "resume=auto")
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 40
    assert _max_diff(tmp_path / "full" / "last.pt", run / "last.pt") <= 1e-6
    _assert_close(json.loads((tmp_path / "full" / "metrics.json").read_text()),
                  json.loads((run / "metrics.json").read_text()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank, port, run_dir, *extra):
    env = {**_env(), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    return subprocess.Popen([sys.executable, "-m", "socialmeta", "train",
                             f"hydra.run.dir={run_dir}", *TINY, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_bad_launches_end_with_a_message(tmp_path):
    env = {**_env(), "WORLD_SIZE": "2", "RANK": "0"}
    base = [sys.executable, "-m", "socialmeta", "train", *TINY]
    # no rendezvous in the environment
    out = subprocess.run(base + [f"hydra.run.dir={tmp_path / 'a'}"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert ("error: WORLD_SIZE=2 but ['MASTER_ADDR', 'MASTER_PORT'] not set: start several "
            "processes with torchrun") in out.stderr
    # no explicit run dir: each rank would resolve ${now:...} on its own
    out = subprocess.run(base, capture_output=True, text=True, env=env, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 2 and "pass hydra.run.dir=DIR" in out.stderr
    # fewer tasks than processes
    out = _torchrun(2, tmp_path / "b", "train.batch_size=1", check=False)
    assert "train.batch_size=1 is smaller than the 2 processes" in out.stderr
    # a rank that never arrives: the other gives up after dist_timeout with a message
    start = time.monotonic()
    lonely = _rank(0, _free_port(), tmp_path / "c", "dist_timeout=5")
    _, err = lonely.communicate(timeout=120)
    assert lonely.returncode == 2 and "cannot join the process group" in err, err
    assert time.monotonic() - start < 60


def test_a_rank_that_dies_mid_training_stops_the_other(tmp_path):
    port = _free_port()
    run = tmp_path / "run"
    ranks = [_rank(r, port, run, "train.steps=400", "train.eval_every=4",
                   "train.patience=1000", "dist_timeout=10") for r in (0, 1)]
    deadline = time.monotonic() + 120
    while not (run / "last.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    ranks[1].kill()
    start = time.monotonic()
    _, err = ranks[0].communicate(timeout=120)
    assert ranks[0].returncode != 0
    assert time.monotonic() - start < 60
    assert "Error" in err or "error" in err
