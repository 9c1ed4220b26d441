"""One process per run folder: a second socialmeta-train on the same hydra.run.dir is
refused with a line naming the first; a stale lock is taken over; the lock goes away
when the run ends, also when it fails."""
import json
import os
import subprocess
import sys
import time

import pytest

from socialmeta.cli.train import main as train_main
from socialmeta.train.lock import LOCK_NAME, RunLockedError, run_lock

TINY = ["dataset.num_users=300", "train.steps=2", "train.eval_every=2", "train.batch_size=4",
        "train.val_users=10", "eval.shots=[3]", "eval.max_users=5", "eval.baselines=null",
        "task.node_cap=24", "task.fanouts=[8,4]"]


def test_a_second_process_is_refused_and_the_lock_is_released(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from socialmeta.train.lock import run_lock\n"
        f"with run_lock({str(tmp_path)!r}):\n"
        "    print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"run folder {tmp_path} is in use by "
                           rf"process {holder.pid} on "):
            with run_lock(tmp_path):
                pass
        # through the CLI: exit 2, one line, nothing written into the folder
        out = subprocess.run([sys.executable, "-m", "socialmeta", "train",
                              f"hydra.run.dir={tmp_path}", *TINY], capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 2, out.stderr
        assert f"error: run folder {tmp_path} is in use by process {holder.pid}" in out.stderr
        assert not (tmp_path / "log.csv").exists() and not (tmp_path / "last.pt").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_and_removed_at_the_end(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()   # a pid that no longer runs
    import socket

    (tmp_path / LOCK_NAME).write_text(json.dumps(
        {"pid": dead.pid, "host": socket.gethostname(), "started": time.time()}))
    train_main([f"hydra.run.dir={tmp_path}", *TINY])
    assert (tmp_path / "metrics.json").is_file() and not (tmp_path / LOCK_NAME).exists()


def test_the_lock_is_reentrant_and_released_on_errors(tmp_path):
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path):
            with run_lock(tmp_path):   # the same process: fine
                assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
            raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
