"""Check that two reproductions rendered the same numbers (e.g. in-process vs on Ray).

    python -m tools.compare_reproductions OUT_A OUT_B

Compares every item's ``data.json``; prints the items and exits 1 on any difference. Wall
times (keys ending in ``seconds`` or ``minutes``, e.g. a net's ``train_seconds``, the minutes
of a learning curve's epochs, the relatives study's ``fits_against_minutes``) are measurements
of the machine, not results, and are left out of the comparison.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def without_timings(value):
    """``value`` with every dict entry whose key ends in "seconds" or "minutes" removed,
    recursively."""
    if isinstance(value, dict):
        return {
            k: without_timings(v)
            for k, v in value.items()
            if not (isinstance(k, str) and k.endswith(("seconds", "minutes")))
        }
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def numbers(out: Path) -> dict:
    return {
        p.parent.name: without_timings(json.loads(p.read_text())["data"])
        for p in out.glob("*/data.json")
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m tools.compare_reproductions OUT_A OUT_B", file=sys.stderr)
        return 2
    a, b = (numbers(Path(p)) for p in argv)
    if not a or set(a) != set(b):
        print(f"different items: {sorted(a)} vs {sorted(b)}")
        return 1
    differ = [item for item in a if a[item] != b[item]]
    for item in sorted(a):
        print(f"{item}: {'DIFFERENT' if item in differ else 'same numbers'}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
