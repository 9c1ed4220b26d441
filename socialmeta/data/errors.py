"""The one error type the data layer raises for bad input."""
from __future__ import annotations

from pathlib import Path

from socialmeta.errors import InputError


class GraphValidationError(InputError):
    r"""Raised when a raw file or an assembled graph breaks the SocialGraph contract.

    The message always says *where* (file and line, or the offending id) and *what was
    expected*, so that a user can fix the input without reading the loader.

    Args:
        what (str): What is wrong, e.g. ``"self-loop on user 'u7'"``.
        file (str or Path, optional): The raw file the problem was found in.
            (default: :obj:`None`)
        line (int, optional): 1-based line number in :obj:`file` (header included).
            (default: :obj:`None`)
        expected (str, optional): What the loader expected instead. (default: :obj:`None`)

    Example:
        >>> raise GraphValidationError("self-loop on user 'a'", file="f.csv", line=3)
        Traceback (most recent call last):
        ...
        socialmeta.data.errors.GraphValidationError: f.csv, line 3: self-loop on user 'a'
    """

    def __init__(
        self,
        what: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        expected: str | None = None,
    ) -> None:
        self.what = what
        self.file = None if file is None else str(file)
        self.line = line
        self.expected = expected
        where = ""
        if self.file is not None:
            where = self.file if line is None else f"{self.file}, line {line}"
            where += ": "
        message = f"{where}{what}"
        if expected:
            message += f" (expected {expected})"
        super().__init__(message)
