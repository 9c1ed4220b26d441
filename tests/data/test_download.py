"""The download path, exercised with file:// URLs (no network)."""
import zipfile

import pytest

import socialmeta.data.datasets as datasets
from socialmeta.data import GraphValidationError, load_dataset
from socialmeta.data.datasets import DATASETS
from socialmeta.data.download import ensure_raw_files
from socialmeta.data.lastfm import LASTFM_FILES


def test_lastfm_downloads_and_flattens_archive(tmp_path, lastfm_root, monkeypatch):
    archive = tmp_path / "hetrec2011-lastfm-2k.zip"
    with zipfile.ZipFile(archive, "w") as z:  # the real archive wraps files in a folder
        for f in LASTFM_FILES:
            z.write(lastfm_root / f, f"hetrec2011-lastfm-2k/{f}")
    spec = DATASETS["lastfm"]
    monkeypatch.setitem(datasets.DATASETS, "lastfm",
                        type(spec)(**{**spec.__dict__, "urls": (archive.as_uri(),)}))
    g = load_dataset("lastfm", root=tmp_path / "data", cache_dir=None)
    assert g.num_users == 1892 and g.num_items == 17632
    assert all((tmp_path / "data" / f).is_file() for f in LASTFM_FILES)
    # the archive's wrapper folder and the staging folder are gone
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(LASTFM_FILES)


def _zip(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path.as_uri()


def test_failed_download_leaves_no_folder_behind(tmp_path):
    root = tmp_path / "datasets" / "lastfm"
    url = (tmp_path / "nowhere.zip").as_uri()
    with pytest.raises(GraphValidationError, match=r"downloading .*nowhere.zip failed"):
        ensure_raw_files(root, ["a.txt"], [url])
    assert not (tmp_path / "datasets").exists()   # neither root nor the parent it made


def test_archive_without_a_required_file_leaves_nothing_half_written(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "mine.txt").write_text("kept")
    url = _zip(tmp_path / "a.zip", {"a.txt": "1", "sub/b.txt": "2"})
    with pytest.raises(GraphValidationError, match=r"\['c.txt'\] still missing under"):
        ensure_raw_files(root, ["a.txt", "sub/b.txt", "c.txt"], [url])
    assert [p.name for p in root.iterdir()] == ["mine.txt"]   # no a.txt, sub/, staging


def test_download_keeps_files_already_in_place(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "b.txt").write_text("mine")
    url = _zip(tmp_path / "a.zip", {"a.txt": "1", "sub/b.txt": "theirs", "sub/c.txt": "3"})
    assert ensure_raw_files(root, ["a.txt", "sub/b.txt", "sub/c.txt"], [url]) == root
    assert (root / "sub" / "b.txt").read_text() == "mine"
    assert (root / "a.txt").read_text() == "1" and (root / "sub" / "c.txt").read_text() == "3"
    assert sorted(p.name for p in root.iterdir()) == ["a.txt", "sub"]


def test_missing_files_without_download(tmp_path):
    with pytest.raises(GraphValidationError, match=r"not found under .*dataset.download=true"):
        load_dataset("lastfm", root=tmp_path, download=False)


def test_unknown_dataset_and_option():
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; choose one of \['ciaodvd', 'csv'"):
        load_dataset("nope")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['users'\].*num_users"):
        load_dataset("synthetic", users=10)
