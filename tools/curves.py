"""Draw the learning curves of training runs (clean and robust accuracy per epoch, the eps ramp;
:func:`rbfi.evaluation.curves.learning_curves_png`) into one PNG.

    python -m tools.curves RUN_DIR [RUN_DIR ...] --out curves.png [--title TITLE]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rbfi.evaluation.curves import learning_curves_png, load_metrics
from rbfi.io import atomic_write_bytes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.curves", description="learning curves of training runs"
    )
    parser.add_argument("runs", nargs="+", help="run directories (holding metrics.jsonl)")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    try:
        runs = {Path(r).name: load_metrics(r) for r in args.runs}
    except (OSError, ValueError) as error:
        print(f"curves: {error}", file=sys.stderr)
        return 2
    atomic_write_bytes(args.out, learning_curves_png(runs, title=args.title))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
