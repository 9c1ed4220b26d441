"""Processed caches: weights-only loadable, atomic, invalidated by raw-file changes."""
import shutil

import pytest
import torch

import socialmeta.data.lastfm as lastfm_module
from socialmeta.data import atomic_write, load_dataset
from socialmeta.data.cache import torch_save_atomic


@pytest.fixture
def lastfm_copy(tmp_path, lastfm_root):
    root = tmp_path / "raw"
    shutil.copytree(lastfm_root, root)
    return root


def test_cache_is_weights_only_and_reused(tmp_path, lastfm_copy, monkeypatch):
    cache = tmp_path / "cache"
    g1 = load_dataset("lastfm", root=lastfm_copy, cache_dir=cache)
    files = list(cache.glob("lastfm-*.pt"))
    assert len(files) == 1
    d = torch.load(files[0], weights_only=True)
    assert d["friend_index"].shape == (2, 2 * 12717)
    assert d["raw_ids"]["user"][:2] == ["2", "3"]
    # a second load must not parse the raw files again
    monkeypatch.setattr(lastfm_module, "read_table", None)
    g2 = load_dataset("lastfm", root=lastfm_copy, cache_dir=cache)
    assert torch.equal(g1.friend_index, g2.friend_index)
    assert torch.equal(g1["user"].interests, g2["user"].interests)
    assert g1.raw_ids == g2.raw_ids


def test_changing_a_raw_file_invalidates(tmp_path, lastfm_copy):
    cache = tmp_path / "cache"
    before = load_dataset("lastfm", root=lastfm_copy, cache_dir=cache)
    friends = lastfm_copy / "user_friends.dat"
    lines = friends.read_text().splitlines()
    # drop the friendship 2<->275 (both directions)
    kept = [ln for ln in lines if ln.split("\t")[:2] not in (["2", "275"], ["275", "2"])]
    assert len(kept) == len(lines) - 2
    friends.write_text("\n".join(kept) + "\n")
    after = load_dataset("lastfm", root=lastfm_copy, cache_dir=cache)
    assert after.num_friendships == before.num_friendships - 1
    assert len(list(cache.glob("lastfm-*.pt"))) == 2


def test_changing_an_option_invalidates(tmp_path, lastfm_copy):
    cache = tmp_path / "cache"
    a = load_dataset("lastfm", root=lastfm_copy, cache_dir=cache, num_interests=10)
    b = load_dataset("lastfm", root=lastfm_copy, cache_dir=cache, num_interests=20)
    assert a["user"].interests.size(1) == 10 and b["user"].interests.size(1) == 20


def test_corrupt_cache_is_rebuilt(tmp_path, lastfm_copy):
    cache = tmp_path / "cache"
    load_dataset("lastfm", root=lastfm_copy, cache_dir=cache)
    (path,) = cache.glob("lastfm-*.pt")
    path.write_bytes(b"not a torch file")
    g = load_dataset("lastfm", root=lastfm_copy, cache_dir=cache)
    assert g.num_users == 1892
    assert torch.load(path, weights_only=True)["format"] == 1


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_outputs_follow_the_umask_like_plain_files(tmp_path, umask):
    """Temporary files renamed into place keep the mode open()/mkdir() would give, not
    mkstemp's 0600 (metrics.json, best.pt, ... beside the 0644 config.yaml)."""
    import os
    import stat

    from socialmeta.data.cache import atomic_dir

    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "metrics.json", "w") as f:
            f.write("{}")
        torch_save_atomic({"a": torch.zeros(1)}, tmp_path / "best.pt")
        with atomic_dir(tmp_path / "export") as out:
            (out / "manifest.json").write_text("{}")
        (tmp_path / "plain.txt").write_text("x")
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(old)

    def mode(p):
        return stat.S_IMODE((tmp_path / p).stat().st_mode)

    assert mode("metrics.json") == mode("best.pt") == mode("plain.txt") == 0o666 & ~umask
    assert mode("export") == mode("plain") == 0o777 & ~umask
