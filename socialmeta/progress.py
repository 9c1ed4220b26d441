"""Progress lines for long work, through the ``socialmeta`` logger.

The library never prints: it logs. The command-line tools configure the logger (console
and ``<run dir>/<tool>.log``); a Python user who wants the lines calls
``logging.basicConfig(level=logging.INFO)``.

:func:`info` writes a line now (a phase starts or ends); :func:`tick` writes one only
when no line has been written for :data:`HEARTBEAT_SECONDS`, so that a loop can report
where it stands without flooding the log.

Example:
    >>> from socialmeta import progress
    >>> progress.info("evaluating %d users", 200)
    >>> for i in range(200):
    ...     progress.tick("  %d/%d users", i, 200)
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("socialmeta")

#: the longest a long loop stays silent
HEARTBEAT_SECONDS = 10.0
_last_line = time.monotonic()


def info(message: str, *args: object) -> None:
    """Logs :obj:`message` at INFO level now."""
    global _last_line
    log.info(message, *args)
    _last_line = time.monotonic()


def tick(message: str, *args: object) -> None:
    """Logs :obj:`message` if no progress line was written for
    :data:`HEARTBEAT_SECONDS`."""
    if time.monotonic() - _last_line >= HEARTBEAT_SECONDS:
        info(message, *args)
