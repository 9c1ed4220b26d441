"""Report of an ablation sweep folder: ablation.csv, ablation.md and PNG plots.

    python tools/ablation_report.py ablations/learner [--metric recall@20] [--shots 3] [--out DIR]

(``socialmeta-ablate`` runs this after its sweep; see socialmeta/ablation.py.)
"""
from __future__ import annotations

import argparse

from socialmeta.ablation import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir")
    parser.add_argument("--metric", default="recall@20")
    parser.add_argument("--shots", type=int, default=3, help="K of the per-factor bar charts")
    parser.add_argument("--out", default=None, help="where to write (default: SWEEP_DIR)")
    args = parser.parse_args()
    report = write_report(args.sweep_dir, args.metric, args.shots, args.out)
    for path in report["files"]:
        print(path)


if __name__ == "__main__":
    main()
