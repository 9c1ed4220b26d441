"""One process per run folder: a lock file that names its holder.

Two ``socialmeta-train`` processes given the same ``hydra.run.dir`` would interleave
their ``log.csv`` rows and overwrite each other's checkpoints and metrics; the second
is refused instead, with a message naming the first. A lock left by a process that no
longer runs (killed, machine restarted) is stale and taken over.
"""
from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from socialmeta.data.cache import process_alive
from socialmeta.errors import InputError

LOCK_NAME = ".socialmeta.lock"


class RunLockedError(InputError):
    """The run folder is in use by another live process."""


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None   # unreadable or half-written: treated as stale


@contextmanager
def run_lock(out_dir: str | Path) -> Iterator[None]:
    r"""Holds ``<out_dir>/.socialmeta.lock`` (pid, host, start time) while the block
    runs and removes it afterwards, also on an exception. Re-entrant within one
    process (``Experiment.fit`` inside ``socialmeta-train``).

    Raises:
        RunLockedError: When a live process on this host holds the lock (or any
            process on another host: its liveness cannot be checked from here).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(3):   # a stale lock removed by another process in between: try again
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is not None and holder.get("host") == me["host"] \
                    and holder.get("pid") == me["pid"]:
                yield   # this process holds it already
                return
            if holder is not None and (holder.get("host") != me["host"]
                                       or process_alive(int(holder.get("pid", -1)))):
                since = time.strftime("%Y-%m-%d %H:%M:%S",
                                      time.localtime(holder.get("started", 0)))
                raise RunLockedError(
                    f"run folder {out_dir} is in use by process {holder.get('pid')} on "
                    f"{holder.get('host')} (since {since}); wait for it or choose another "
                    f"hydra.run.dir (a stale lock is {path}: delete it if that process is "
                    "gone)") from None
            path.unlink(missing_ok=True)   # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
        return
    raise RunLockedError(f"run folder {out_dir}: could not take its lock {path}")
