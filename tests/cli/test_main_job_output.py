"""The main job talks: a line within 5 s of start, then at least one every 30 s, a
``train.log`` with the same lines, and a final summary that fits a screen."""
import subprocess
import sys
import threading
import time


def _stream(argv, cwd):
    """Runs ``socialmeta-train`` and returns ``(seconds since start, line)`` for every
    line of its merged stdout and stderr, and its exit status."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "socialmeta", "train", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, env={**__import__("os").environ,
                                            "PYTHONUNBUFFERED": "1"})
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(
        (time.monotonic() - start, line.rstrip("\n")) for line in proc.stdout))
    reader.start()
    code = proc.wait(timeout=600)
    reader.join()
    return lines, code, time.monotonic() - start


def test_main_job_prints_progress_and_a_short_summary(tmp_path):
    run = tmp_path / "run"
    lines, code, total = _stream(
        [f"hydra.run.dir={run}", "dataset.num_users=400", "train.steps=30",
         "train.eval_every=10", "train.batch_size=8", "train.val_users=30",
         "eval.max_users=30"], tmp_path)
    text = "\n".join(line for _, line in lines)
    assert code == 0, text
    times = [t for t, _ in lines]
    assert times[0] < 5.0, lines[:3]
    gaps = [b - a for a, b in zip([0.0, *times], [*times, total])]
    assert max(gaps) < 30.0, (max(gaps), text)
    # one line per phase: training, validation, test-time evaluation, each baseline
    for phase in ("loading dataset synthetic", "meta-training metasgd", "step 10/30",
                  "evaluating metasgd on test users, K=1", "evaluating metasgd on test users, K=10",
                  "evaluating metasgd without test-time adaptation on test users, K=3",
                  "baseline 1/12 popularity: tuning on validation users at K=3",
                  "baseline 12/12 learned_ranker"):
        assert phase in text, phase
    # the summary: everything after the last progress line fits 25 lines
    summary = [line for _, line in lines][[i for i, (_, line) in enumerate(lines)
                                            if line.endswith("] done")][-1] + 1:]
    assert 5 <= len(summary) <= 25, summary
    assert summary[0].startswith("synthetic · friend · sage · metasgd · 30 steps")
    assert summary[1].startswith("test users at K=3 (30 users")
    assert sum(line.startswith("| baseline: ") for line in summary) == 3
    assert any(line.startswith("| metasgd without test-time adaptation |") for line in summary)
    # the same progress lines are in train.log; the full table is in results.md
    log = (run / "train.log").read_text()
    assert "meta-training metasgd" in log and "baseline 12/12 learned_ranker" in log
    table = (run / "results.md").read_text()
    for k in (1, 3, 5, 10):
        assert f"| metasgd | {k} |" in table and f"| baseline: popularity | {k} |" in table
