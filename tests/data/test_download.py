"""The download path, exercised with file:// URLs (no network)."""
import zipfile

import pytest

import socialmeta.data.datasets as datasets
from socialmeta.data import GraphValidationError, load_dataset
from socialmeta.data.datasets import DATASETS
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


def test_missing_files_without_download(tmp_path):
    with pytest.raises(GraphValidationError, match=r"not found under .*dataset.download=true"):
        load_dataset("lastfm", root=tmp_path, download=False)


def test_unknown_dataset_and_option():
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; choose one of \['ciaodvd', 'csv'"):
        load_dataset("nope")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['users'\].*num_users"):
        load_dataset("synthetic", users=10)
