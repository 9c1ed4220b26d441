"""``socialmeta-data`` composes the real configs and reports clear errors."""
import json
import subprocess
import sys

import pytest

from socialmeta.cli.data import main


def test_info_json_synthetic(capsys):
    main(["info", "dataset.num_users=300", "output=json"])
    info = json.loads(capsys.readouterr().out)
    assert info["users"] == 300 and info["friendships"] == 3000 and info["feature_dim"] == 16


def test_info_table_csv_example(capsys):
    main(["info", "dataset=csv", "dataset.root=graphs/example", "dataset.cache=false"])
    out = capsys.readouterr().out
    assert "users: 10" in out and "friendships: 12" in out


def test_unknown_option_lists_valid_ones(capsys):
    with pytest.raises(SystemExit) as e:
        main(["info", "+dataset.users=10"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option(s) ['users']" in err and "num_users" in err


def test_bad_output_choice(capsys):
    with pytest.raises(SystemExit):
        main(["info", "output=yaml", "dataset.num_users=100"])
    assert "choose one of ['json', 'table']" in capsys.readouterr().err


def test_self_loop_csv_fails_with_message(tmp_path):
    (tmp_path / "friendships.csv").write_text("src,dst\nx,y\ny,y\n")
    proc = subprocess.run([sys.executable, "-m", "socialmeta", "data", "info", "dataset=csv",
                           f"dataset.root={tmp_path}", "dataset.cache=false"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "line 3: self-loop on user 'y'" in proc.stderr
    assert "Traceback" not in proc.stderr
