"""The gaps found by drilling the CSV format with bad input: each is a clear error that
names the file and line (or column), or an opt-in reported repair; never a silent drop.
Plus a seeded random-mutation fuzz of the example folder."""
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from socialmeta.data import GraphValidationError, read_csv_graph
from socialmeta.data.csv_graph import csv_raw_files

EXAMPLE = Path(__file__).resolve().parents[2] / "graphs" / "example"


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "g"
    shutil.copytree(EXAMPLE, root)
    return root


def _fails(root, pattern):
    with pytest.raises(GraphValidationError) as info:
        read_csv_graph(root)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message
    return message


def _replace(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("file, header, pattern", [
    ("interactions.csv", "user_id,item_id,wieght",
     r"interactions.csv, line 1: unexpected column\(s\) \['wieght'\]; header has .* "
     r"\(expected only the columns \['user_id', 'item_id', 'weight', 'timestamp'\]\)"),
    ("interactions.csv", "user_id,item_id,",
     r"interactions.csv, line 1: column 3 of the header has no name"),
    ("interests.csv", "user_id,interest,source",
     r"interests.csv, line 1: unexpected column\(s\) \['source'\]"),
    ("friendships.csv", "src,dst,since",
     r"friendships.csv, line 1: unexpected column\(s\) \['since'\]"),
    ("friendships.csv", "src,src",
     r"friendships.csv, line 1: column 'src' appears twice in the header \(columns 1 and 2\)"),
])
def test_misnamed_extra_blank_and_repeated_columns(folder, file, header, pattern):
    path = folder / file
    lines = path.read_text().splitlines()
    if header.count(",") > lines[0].count(","):  # an extra column: give every row a field
        lines = [header] + [row + ",x" for row in lines[1:]]
    else:
        lines[0] = header
    path.write_text("\n".join(lines) + "\n")
    _fails(folder, pattern)


def test_huge_field_from_an_unclosed_quote_names_its_line(folder):
    path = folder / "interactions.csv"
    rows = path.read_text().splitlines()
    rows[2] = '"' + rows[2]  # opens a quote on line 3 that never closes
    path.write_text("\n".join(rows) + "\n" + ("x" * 1000 + "\n") * 200)
    _fails(folder, r"interactions.csv, line 3: unreadable field \(field larger than field "
                   r"limit \(131072\)\); a quote opened on this line may never close")


def test_small_unclosed_quote_blames_the_line_it_opens_on(folder):
    path = folder / "friendships.csv"
    rows = path.read_text().splitlines()
    rows[3] = '"' + rows[3]
    path.write_text("\n".join(rows) + "\n")
    _fails(folder, rf"friendships.csv, line 4: unparsable row: .*the record runs from this "
                   rf"line to line {len(rows)}: a quote opened here may never close")


def test_optional_file_that_is_a_directory(folder):
    (folder / "users.csv").unlink()
    (folder / "users.csv").mkdir()
    _fails(folder, r"users.csv: not a file \(a directory\?\)")
    with pytest.raises(GraphValidationError, match=r"users.csv: not a file"):
        csv_raw_files(folder)  # the cache key too: no silent skip on a cache hit


def test_items_without_interactions(folder):
    (folder / "interactions.csv").unlink()
    _fails(folder, r"items.csv: items.csv without interactions.csv: its items would link "
                   r"to no user")


@pytest.mark.parametrize("file, old, new, pattern", [
    ("friendships.csv", "alice,bob", ",bob",
     r"friendships.csv, line 2: an empty user id '' in column 'src'"),
    ("friendships.csv", "alice,bob", "alice,b\x00ob",
     r"friendships.csv, line 2: a NUL byte in the user id 'b\\x00ob' in column 'dst'"),
    # a line break in a quoted id (legal CSV) would shift an exported id file of one id
    # per line against the rows of its embedding matrix
    ("friendships.csv", "alice,bob", 'alice,"evil\nid"',
     r"friendships.csv, line 2: a line break in the user id 'evil\\nid' in column 'dst'"),
    ("interactions.csv", "alice,jazz-101", 'alice,"jazz\r101"',
     r"interactions.csv, line 2: a line break in the item id 'jazz\\r101' in column "
     r"'item_id'"),
    ("interests.csv", "alice,music", "alice,",
     r"interests.csv, line 2: an empty interest id '' in column 'interest'"),
    ("interactions.csv", "alice,jazz-101", "alice, jazz-101",
     r"interactions.csv, line 2: item id ' jazz-101' in column 'item_id' has surrounding "
     r"whitespace; ids are kept verbatim \(expected no spaces around ids \(or "
     r"dataset.strip_ids=true"),
])
def test_bad_ids(folder, file, old, new, pattern):
    _replace(folder / file, old, new)
    _fails(folder, pattern)


@pytest.mark.parametrize("stamp", ["99999999999999", "-99999999999999"])
def test_a_time_outside_the_calendar_names_its_line(folder, stamp):
    path = folder / "interactions.csv"
    rows = path.read_text().splitlines()
    rows[0] += ",timestamp"
    rows[1:] = [f"{row},{stamp if i == 2 else 1385647380}" for i, row in
                enumerate(rows[1:], start=1) if row]
    path.write_text("\n".join(rows) + "\n")
    _fails(folder, rf"interactions.csv, line 3: time '{stamp}' in column 'timestamp' is "
                   r"outside the calendar \(years 1 to 9999\)")


@pytest.mark.parametrize("weight", ["0", "-4"])
def test_a_weight_of_zero_or_below_names_its_line(folder, weight):
    _replace(folder / "interactions.csv", "alice,jazz-101,12", f"alice,jazz-101,{weight}")
    _fails(folder, rf"interactions.csv, line 2: weight {weight} \(expected a finite positive "
                   r"number \(a play count or rating")


def test_an_unclosed_quote_at_the_end_of_the_file_names_the_line_it_opens(folder):
    path = folder / "friendships.csv"
    rows = path.read_text().splitlines()
    rows[-1] = rows[-1].replace(",", ',"', 1)   # the last row's second id never closes
    path.write_text("\n".join(rows) + "\n")
    _fails(folder, rf"friendships.csv, line {len(rows)}: a quote opened on this line never "
                   r"closes \(the file ends inside it\)")


def test_a_file_that_is_not_utf8_names_its_line_and_byte(folder):
    path = folder / "users.csv"
    rows = path.read_bytes().split(b"\n")
    rows[2] = rows[2].replace(b"bob", b"b\xf6b")   # latin-1, as a spreadsheet may save it
    path.write_bytes(b"\n".join(rows))
    _fails(folder, r"users.csv, line 3: not UTF-8 text: byte 0xf6 at column 2 .*\(expected "
                   r"UTF-8 text")


def test_strip_ids_is_an_opt_in_reported_repair(folder):
    _replace(folder / "friendships.csv", "alice,bob", "alice , bob")
    graph = read_csv_graph(folder, strip_ids=True)
    assert graph.num_friendships == read_csv_graph(EXAMPLE).num_friendships
    assert any("stripped the whitespace around 1 user id(s) in column 'src' (first on "
               "line 2: 'alice ')" in r for r in graph.repairs), graph.repairs


def test_byte_order_mark_is_accepted(folder):
    for name in ("friendships.csv", "users.csv", "interactions.csv"):
        path = folder / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    graph = read_csv_graph(folder)
    assert graph.raw_ids["user"] == read_csv_graph(EXAMPLE).raw_ids["user"]


@pytest.mark.parametrize("file, old, new, pattern", [
    ("users.csv", "alice,34,5", "alice,1e39,5",
     r"users.csv, line 2: value '1e39' in column 'age' overflows float32"),
    ("interactions.csv", "alice,jazz-101,12", "alice,jazz-101,-4e38",
     r"interactions.csv, line 2: value '-4e38' in column 'weight' overflows float32"),
])
def test_float32_overflow_names_file_line_and_column(folder, file, old, new, pattern):
    _replace(folder / file, old, new)
    _fails(folder, pattern)


# --------------------------------------------------------------------- fuzz
_PIECES = ["", ",", '"', "\n", "\x00", '"a\nb"', "99999999999999", " ", "nan", "inf",
           "1e40", "-1", "alice", "zed", "user_id", "\ufeff", "\r\n", ",,", "é", "\xff"]


def _mutate(rng: random.Random, root: Path) -> None:
    files = sorted(root.iterdir())
    path = rng.choice(files)
    op = rng.randrange(6)
    if op == 0:
        path.unlink()
        return
    data = path.read_bytes()
    if op == 1 and data:  # drop a span
        a = rng.randrange(len(data))
        path.write_bytes(data[:a] + data[a + rng.randrange(1, 20):])
    elif op == 2:  # insert a piece
        a = rng.randrange(len(data) + 1)
        piece = rng.choice(_PIECES).encode("utf-8", "surrogateescape") \
            if rng.random() < 0.9 else bytes([rng.randrange(256)])
        path.write_bytes(data[:a] + piece + data[a:])
    elif op == 3:  # duplicate a line
        lines = data.split(b"\n")
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
        path.write_bytes(b"\n".join(lines))
    elif op == 4 and data:  # replace a byte
        a = rng.randrange(len(data))
        path.write_bytes(data[:a] + bytes([rng.randrange(256)]) + data[a + 1:])
    else:  # swap two lines
        lines = data.split(b"\n")
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        path.write_bytes(b"\n".join(lines))


def test_random_mutations_give_a_clean_error_or_a_valid_graph(tmp_path):
    rng = random.Random(20261202)
    outcomes = {"error": 0, "graph": 0}
    for case in range(300):
        root = tmp_path / f"case{case}"
        shutil.copytree(EXAMPLE, root)
        for _ in range(rng.randrange(1, 4)):
            _mutate(rng, root)
        try:
            graph = read_csv_graph(root)
        except GraphValidationError as e:
            message = str(e)
            assert "\n" not in message, (case, message)
            assert str(root) in message or re.search(r"(user|item|interest) id", message), \
                (case, message)
            outcomes["error"] += 1
        else:  # anything that loads is a valid graph
            ei = graph.friend_index
            assert ei.size(1) > 0 and (ei[0] != ei[1]).all()
            assert np.isfinite(graph["user"].x.numpy()).all()
            ids = [i for kind in graph.raw_ids.values() for i in kind]
            assert not any("\n" in i or "\r" in i for i in ids), case
            outcomes["graph"] += 1
        shutil.rmtree(root)
    assert outcomes["error"] > 100 and outcomes["graph"] > 20, outcomes
