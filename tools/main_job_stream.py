"""Times the main job's output stream: when its first line comes, the longest silence
between lines, and the total run time (the README says "a line about every 10 s").

    python tools/main_job_stream.py                     # the default socialmeta-train
    python tools/main_job_stream.py dataset.num_users=400 train.steps=30
"""
from __future__ import annotations

import subprocess
import sys
import time


def main(argv: list[str]) -> None:
    start = time.monotonic()
    proc = subprocess.Popen(["socialmeta-train", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    times = []
    assert proc.stdout is not None
    for line in proc.stdout:
        times.append(time.monotonic() - start)
        print(f"{times[-1]:7.2f} {line}", end="", flush=True)
    code = proc.wait()
    end = time.monotonic() - start
    gaps = [b - a for a, b in zip([0.0, *times], [*times, end])]
    print(f"exit {code}; first line after {times[0]:.2f} s; longest silence "
          f"{max(gaps):.2f} s; total {end:.1f} s; {len(times)} lines")


if __name__ == "__main__":
    main(sys.argv[1:])
