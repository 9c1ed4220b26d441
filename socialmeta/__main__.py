"""``python -m socialmeta <tool> [overrides]``; tools: data, train, export, eval, recommend, ablate."""
from __future__ import annotations

import sys

TOOLS = {"data": "socialmeta.cli.data", "train": "socialmeta.cli.train",
         "export": "socialmeta.cli.export", "eval": "socialmeta.cli.evaluate",
         "recommend": "socialmeta.cli.recommend", "ablate": "socialmeta.cli.ablate"}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TOOLS:
        print(f"usage: python -m socialmeta {{{','.join(TOOLS)}}} [overrides...]",
              file=sys.stderr)
        sys.exit(2)
    import importlib

    module = importlib.import_module(TOOLS[sys.argv[1]])
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
