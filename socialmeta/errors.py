"""The base class of every error that reports bad input from the user.

Kept free of heavy imports (no torch), so that the command-line entry points can catch
it before they load the rest of the package.
"""
from __future__ import annotations


class InputError(ValueError):
    r"""Bad input from the user: a data file, a configuration value or a checkpoint.

    Its message is one line that names where the problem is (file and line, config key,
    id) and what was expected. The ``socialmeta-*`` commands print it as
    ``error: <message>`` and exit with status 2 instead of showing a traceback.
    Subclasses: :class:`~socialmeta.data.GraphValidationError`,
    :class:`~socialmeta.config.ConfigError`,
    :class:`~socialmeta.train.CheckpointError`.
    """
