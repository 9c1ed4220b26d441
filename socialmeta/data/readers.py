"""Line-aware readers for delimited text files.

Every row keeps the 1-based line number it came from, so that any later check (unknown
id, self-loop, duplicate, bad number) can name the exact line of the raw file.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from socialmeta.data.errors import GraphValidationError

#: the Unix seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the times a
#: calendar date can name (``datetime``'s range)
FIRST_TIME, LAST_TIME = -62135596800, 253402300799


@dataclass
class Table:
    r"""Columns of a delimited file as strings, with the line number of every row.

    Args:
        path (Path): The file the rows were read from.
        columns (dict[str, list[str]]): Column name to raw string values.
        lines (np.ndarray): 1-based line number of each row, ``int64 [num_rows]``.
        labels (dict[str, str]): The file's own name of a column that was renamed
            (e.g. RecBole's ``rating:float`` read as ``weight``), used in messages.
    """

    path: Path
    columns: dict[str, list[str]]
    lines: np.ndarray = field(repr=False)
    labels: dict[str, str] = field(default_factory=dict, repr=False)

    def label(self, name: str) -> str:
        """How the file itself names column :obj:`name` (for messages)."""
        return self.labels.get(name, name)

    def __len__(self) -> int:
        return int(self.lines.shape[0])

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def strings(self, name: str) -> np.ndarray:
        """Column :obj:`name` as a numpy array of stripped strings."""
        return np.asarray([v.strip() for v in self.columns[name]], dtype=str)

    def ids(self, name: str, kind: str, strip: bool = False,
            repairs: list[str] | None = None) -> np.ndarray:
        r"""Column :obj:`name` as ids, kept verbatim.

        An empty id or one holding a NUL byte or a line break (legal in a quoted CSV
        field, but an id file of one id per line could no longer be read back) is an
        error naming its line; so is an id with surrounding whitespace, unless
        :obj:`strip` (then it is stripped and the repair is reported in
        :obj:`repairs`).
        """
        values = self.columns[name]
        stripped = [v.strip() for v in values]
        for i, (raw, clean) in enumerate(zip(values, stripped)):
            if not clean or "\x00" in raw or "\n" in clean or "\r" in clean:
                what = ("an empty" if not clean else "a NUL byte in the" if "\x00" in raw
                        else "a line break in the")
                raise GraphValidationError(
                    f"{what} {kind} id {raw!r} in column {self.label(name)!r}", file=self.path,
                    line=int(self.lines[i]), expected=f"a non-empty {kind} id without "
                    "NUL bytes or line breaks")
        changed = [i for i, (raw, clean) in enumerate(zip(values, stripped)) if raw != clean]
        if changed and not strip:
            i = changed[0]
            raise GraphValidationError(
                f"{kind} id {values[i]!r} in column {self.label(name)!r} has surrounding whitespace; "
                "ids are kept verbatim", file=self.path, line=int(self.lines[i]),
                expected="no spaces around ids (or dataset.strip_ids=true to strip them, "
                "reported)")
        if changed and repairs is not None:
            repairs.append(f"{self.path.name}: stripped the whitespace around "
                           f"{len(changed)} {kind} id(s) in column {self.label(name)!r} (first on line "
                           f"{int(self.lines[changed[0]])}: {values[changed[0]]!r})")
        return np.asarray(stripped if strip else values, dtype=str)

    def floats(self, name: str) -> np.ndarray:
        """Column :obj:`name` parsed as float64; an unparsable cell names its line."""
        values = self.columns[name]
        try:
            parsed = np.asarray(values, dtype=np.float64)
        except ValueError:
            self._raise_unparsable(name, float, "a number")
        too_big = np.isfinite(parsed) & (np.abs(parsed) > np.finfo(np.float32).max)
        if too_big.any():
            i = int(np.flatnonzero(too_big)[0])
            raise GraphValidationError(
                f"value {values[i].strip()!r} in column {self.label(name)!r} overflows float32",
                file=self.path, line=int(self.lines[i]),
                expected=f"a magnitude of at most {float(np.finfo(np.float32).max):.4g}")
        return parsed

    def times(self, name: str) -> np.ndarray:
        r"""Column :obj:`name` as int64 Unix seconds (UTC), from ISO-8601 dates
        (``2013-11-28``, midnight UTC), date-times (``2013-11-28T14:03:00``, with an
        optional ``Z`` or ``±HH:MM`` offset; without one, UTC) or Unix seconds
        (``1385647380``; a fraction of a second is dropped). A missing or unparsable
        time names its line."""
        values = self.columns[name]
        out = np.empty(len(values), dtype=np.int64)
        for i, raw in enumerate(values):
            value = raw.strip()
            try:
                out[i] = _unix_seconds(value)
            except (ValueError, OverflowError):
                raise GraphValidationError(
                    f"{'missing' if not value else 'unparsable'} time {raw!r} in column "
                    f"{self.label(name)!r}", file=self.path, line=int(self.lines[i]),
                    expected="an ISO-8601 date or date-time, or Unix seconds") from None
            if not FIRST_TIME <= out[i] <= LAST_TIME:
                raise GraphValidationError(
                    f"time {raw!r} in column {self.label(name)!r} is outside the calendar "
                    "(years 1 to 9999)", file=self.path, line=int(self.lines[i]),
                    expected=f"Unix seconds from {FIRST_TIME} to {LAST_TIME} (or an "
                    "ISO-8601 date)")
        return out

    def ints(self, name: str) -> np.ndarray:
        """Column :obj:`name` parsed as int64; an unparsable cell names its line."""
        values = self.columns[name]
        try:
            return np.asarray([int(v) for v in values], dtype=np.int64)
        except ValueError:
            self._raise_unparsable(name, int, "an integer")

    def _raise_unparsable(self, name: str, convert, expected: str) -> NoReturn:
        """Raises the error naming the first cell of :obj:`name` that :obj:`convert`
        rejects (called once a whole-column parse has failed)."""
        for i, v in enumerate(self.columns[name]):
            try:
                convert(v)
            except ValueError:
                raise GraphValidationError(
                    f"unparsable value {v!r} in column {self.label(name)!r}",
                    file=self.path, line=int(self.lines[i]), expected=expected) from None
        raise AssertionError("unreachable")  # pragma: no cover


def _unix_seconds(value: str) -> int:
    """One time as Unix seconds (see :meth:`Table.times`)."""
    if not value:
        raise ValueError("empty")
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(value)
        return math.floor(seconds)
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return math.floor(when.timestamp())


def _split_rows(path: Path, sep: str | None, encoding: str):
    """Yields ``(first line, fields, last line)`` for every non-blank record (a quoted
    field may span lines)."""
    with open(path, newline="", encoding=encoding) as f:
        if sep is None:
            for lineno, raw in enumerate(f, start=1):
                fields = raw.split()
                if fields:
                    yield lineno, fields, lineno
        else:
            reader = csv.reader(f, delimiter=sep)
            last = 0   # the line the last record started on
            while True:
                start = reader.line_num + 1  # the line this record starts on
                try:
                    fields = next(reader)
                except StopIteration:
                    _check_last_quote(path, sep, encoding, last)
                    return
                except csv.Error as e:
                    raise GraphValidationError(
                        f"unreadable field ({e}); a quote opened on this line may never "
                        "close", file=path, line=start,
                        expected="fields of at most "
                        f"{csv.field_size_limit():,} characters, every quote closed"
                    ) from None
                last = start
                if fields and any(v.strip() for v in fields):
                    yield start, fields, reader.line_num


def _check_last_quote(path: Path, sep: str, encoding: str, start: int) -> None:
    """A quote that never closes runs its record to the end of the file, where the
    lenient reader returns it as a field holding the rest of the file: re-reads that
    last record (from line :obj:`start`) strictly, and names the line the quote opens
    on if it is still open at the end."""
    if start < 1:
        return
    with open(path, newline="", encoding=encoding) as f:
        tail = "".join(itertools.islice(f, start - 1, None))
    try:
        for _ in csv.reader(io.StringIO(tail), delimiter=sep, strict=True):
            pass
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            raise GraphValidationError(
                "a quote opened on this line never closes (the file ends inside it)",
                file=path, line=start, expected="every quote closed") from None


def read_table(
    path: str | Path,
    *,
    sep: str | None = ",",
    header: bool | Sequence[str] = True,
    required: Sequence[str] = (),
    encoding: str = "utf-8-sig",
    allow_extra_fields: bool = False,
    allowed: Sequence[str] | None = None,
) -> Table:
    r"""Reads a delimited file into a :class:`Table`.

    Args:
        path (str or Path): The file to read.
        sep (str, optional): Field separator; :obj:`None` splits on runs of whitespace
            (SNAP style). (default: :obj:`","`)
        header (bool or list[str]): :obj:`True` if the first non-blank line names the
            columns, else the column names to use. (default: :obj:`True`)
        required (list[str]): Columns that must be present. (default: :obj:`()`)
        encoding (str): Text encoding; ``utf-8-sig`` reads UTF-8 with or without the
            byte-order mark that spreadsheet programs write. (default: :obj:`"utf-8-sig"`)
        allow_extra_fields (bool): Keep rows with more fields than columns (the extra
            fields are ignored). (default: :obj:`False`)
        allowed (list[str], optional): The only columns the header may name (an
            unexpected or misnamed column is an error). (default: :obj:`None`, any)

    Raises:
        GraphValidationError: If the file is missing or not a file; its header has a
            blank, repeated, missing or (with :obj:`allowed`) unexpected column; a row
            has the wrong number of fields; or a quoted field never closes.

    Example:
        >>> table = read_table("friendships.csv", required=["src", "dst"])
        >>> table.strings("src")[:3]
    """
    path = Path(path)
    if not path.exists():
        raise GraphValidationError("file not found", file=path, expected="an existing file")
    if not path.is_file():
        raise GraphValidationError("not a file (a directory?)", file=path,
                                   expected="a regular file")
    rows = _split_rows(path, sep, encoding)
    try:
        if header is True:
            header_line, names, _ = next(rows)
            names = [n.strip() for n in names]
        else:
            header_line, names = 0, list(header)
        _check_header(path, header_line, names, required, allowed)
        num_cols = len(names)
        cells: list[list[str]] = [[] for _ in names]
        lines: list[int] = []
        for lineno, fields, last in rows:
            if len(fields) != num_cols and not (allow_extra_fields and len(fields) > num_cols):
                spans = (f"; the record runs from this line to line {last}: a quote opened "
                         "here may never close" if last > lineno else "")
                raise GraphValidationError(
                    f"unparsable row: {len(fields)} field(s) {_short(fields)}{spans}",
                    file=path, line=lineno, expected=f"{num_cols} fields {names}",
                )
            for col, value in zip(cells, fields):
                col.append(value)
            lines.append(lineno)
    except StopIteration:
        raise GraphValidationError("empty file", file=path, expected="a header line") from None
    except UnicodeDecodeError as e:
        line, column, byte = _undecodable(path, encoding)
        name = "UTF-8" if encoding.replace("-", "").lower().startswith("utf8") else encoding
        raise GraphValidationError(
            f"not {name} text: byte {byte} at column {column} ({e.reason})", file=path,
            line=line, expected=f"{name} text (convert the file, e.g. iconv -f latin1 -t "
            "utf-8)",
        ) from None
    return Table(path, dict(zip(names, cells)), np.asarray(lines, dtype=np.int64))


def _undecodable(path: Path, encoding: str) -> tuple[int, int, str]:
    """The 1-based line and column of the first byte of :obj:`path` that
    :obj:`encoding` cannot decode, and that byte as ``0xNN``."""
    for lineno, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            raw.decode(encoding)
        except UnicodeDecodeError as e:
            return lineno, e.start + 1, f"0x{raw[e.start]:02x}"
    return 0, 0, "?"   # pragma: no cover - the whole file failed, so some line does


def _short(fields: Sequence[str], width: int = 60) -> str:
    """The first fields of a row, each cut to :obj:`width` characters, for messages."""
    return repr([f if len(f) <= width else f[:width] + "..." for f in fields[:6]])


def _check_header(path: Path, line: int, names: Sequence[str], required: Sequence[str],
                  allowed: Sequence[str] | None) -> None:
    """Blank, repeated, missing and (with :obj:`allowed`) unexpected column names."""
    where = {"file": path, "line": line or None}
    for i, name in enumerate(names):
        if not name:
            raise GraphValidationError(f"column {i + 1} of the header has no name; header "
                                       f"has {list(names)}", **where,
                                       expected=f"named columns {list(required)}")
        if name in names[:i]:
            raise GraphValidationError(
                f"column {name!r} appears twice in the header (columns "
                f"{names.index(name) + 1} and {i + 1})", **where, expected="unique names")
    missing = [c for c in required if c not in names]
    if missing:
        raise GraphValidationError(f"missing column(s) {missing}; header has {list(names)}",
                                   **where, expected=f"columns {list(required)}")
    if allowed is not None:
        extra = [c for c in names if c not in allowed]
        if extra:
            raise GraphValidationError(
                f"unexpected column(s) {extra}; header has {list(names)}", **where,
                expected=f"only the columns {list(allowed)}")


class IdIndex:
    r"""Maps a dataset's own ids (strings) to contiguous indices ``0..n-1`` and back.

    Args:
        ids (list[str]): The raw ids, in index order; must be unique.
        kind (str): What the ids name, used in error messages. (default: :obj:`"user"`)
    """

    def __init__(self, ids: Sequence[str], kind: str = "user") -> None:
        self.ids = [str(i) for i in ids]
        self.kind = kind
        self._index = {raw: i for i, raw in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            seen: set[str] = set()
            dup = next(i for i in self.ids if i in seen or seen.add(i))
            raise GraphValidationError(f"duplicate {kind} id {dup!r}", expected="unique ids")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.kind}, num={len(self)})"

    def lookup(self, values: np.ndarray, table: Table | None = None,
               column: str | None = None) -> np.ndarray:
        """Indices of :obj:`values`; an unknown id raises an error naming its line."""
        index = self._index
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values.tolist()):
            j = index.get(v)
            if j is None:
                line = None if table is None else int(table.lines[i])
                shown = table.label(column) if table is not None and column else column
                where = f" in column {shown!r}" if column else ""
                raise GraphValidationError(
                    f"unknown {self.kind} id {v!r}{where}",
                    file=None if table is None else table.path, line=line,
                    expected=f"one of the {len(self)} known {self.kind} ids",
                )
            out[i] = j
        return out

    @classmethod
    def from_values(cls, *arrays: np.ndarray, kind: str = "user") -> IdIndex:
        """An index over the distinct values of :obj:`arrays`.

        Integer-like ids are sorted numerically; other ids keep first-seen order.
        """
        seen: dict[str, None] = {}
        for array in arrays:
            for v in array.tolist():
                seen.setdefault(v, None)
        ids = list(seen)
        try:
            ids.sort(key=int)
        except ValueError:
            pass
        return cls(ids, kind=kind)
