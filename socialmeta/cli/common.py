"""Shared plumbing of the Hydra entry points.

Kept light (no torch at import), so that a command can say something before the heavy
imports and ``socialmeta-data list`` answers at once.
"""
from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from socialmeta.config import ConfigError, choose, compose, config_dir
from socialmeta.errors import InputError

__all__ = ["ConfigError", "choose", "config_dir", "run_hydra"]


def _is_sweep(override: str) -> bool:
    """Whether :obj:`override` sweeps: a comma outside brackets and quotes
    (``meta=maml,anil``, ``task.context=[],[items]``) or a sweep function."""
    value = override.partition("=")[2]
    if value.startswith(("choice(", "range(", "interval(", "glob(", "sort(", "shuffle(")):
        return True
    depth, quote = 0, None
    for ch in value:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            return True
    return False


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _record_failure(error: BaseException) -> None:
    """Writes ``failed.json`` (error type, message, traceback) into the run's folder."""
    import json
    import traceback

    from hydra.core.hydra_config import HydraConfig

    from socialmeta.data.cache import atomic_write

    out = Path(HydraConfig.get().runtime.output_dir)
    message = f"{type(error).__name__}: {error}"
    print(f"error in {out}: {message}", file=sys.stderr)
    with atomic_write(out / "failed.json", "w") as f:
        json.dump({"error": message, "traceback": traceback.format_exc()}, f, indent=2)


#: errors of writing outputs that the user can fix (permissions, read-only, space)
_WRITE_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def _fail(error: InputError) -> None:
    print(f"error: {error}", file=sys.stderr)
    # the run's log file (train.log) gets the error too; the console has it above
    import logging

    record = logging.LogRecord("socialmeta", logging.ERROR, __file__, 0,
                               "error: %s", (error,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    sys.exit(2)


def run_hydra(task: Callable[[DictConfig], Any], config_name: str,
              argv: Sequence[str] | None, commands: Sequence[str] = ()) -> None:
    r"""Runs :obj:`task` as a Hydra app with :obj:`argv` as overrides.

    A leading word that is one of :obj:`commands` becomes ``command=<word>``. The
    overrides are checked first (:func:`socialmeta.config.compose`: unknown group
    options and keys, values of the wrong type). Errors in the user's input
    (:class:`~socialmeta.errors.InputError`: a bad file, config value or checkpoint)
    print one clear line and exit with status 2 instead of a traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in commands:
        args = [f"command={args[0]}"] + args[1:]
    if int(os.environ.get("RANK", "0")) > 0:  # torchrun: rank 0 alone writes Hydra's files
        args += ["hydra.output_subdir=null", "hydra/job_logging=none",
                 "hydra/hydra_logging=none"]
    # not --multirun, --help, --cfg ..., nor a sweep: those Hydra checks itself
    if not any(a.startswith("-") or _is_sweep(a) for a in args):
        try:
            compose(config_name, args)
        except InputError as e:
            _fail(e)

    @functools.wraps(task)
    def guarded(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as e:
            if _in_sweep():  # one failed run of a sweep: record it, go on with the rest
                _record_failure(e)
                return None
            if isinstance(e, InputError):
                _fail(e)
            if isinstance(e, OSError) and e.errno in _WRITE_ERRORS:
                # a folder the user cannot write, a read-only mount, a full disk
                where = f" {e.filename}" if e.filename else ""
                _fail(InputError(f"cannot write{where}: {e.strerror}"))
            raise

    app = hydra.main(config_path=config_dir(), config_name=config_name,
                     version_base="1.3")(guarded)
    saved = sys.argv
    sys.argv = [saved[0]] + args
    try:
        app()
    finally:
        sys.argv = saved
