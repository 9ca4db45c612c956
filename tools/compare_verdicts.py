"""Set the paper's claims of two reproductions side by side and mark the verdicts that changed.

    python -m tools.compare_verdicts OUT_A OUT_B [--out FILE.md]

Reads each reproduction's ``index.json`` (e.g. ``results/paper-quick`` and
``results/paper-standard``) and prints one Markdown row per claim: its verdict in A, in B
(*holds*, *does not hold*, *undecided*: :data:`rbfi.stats.WORDS`), whether it changed, and B's
reason. Claims are matched by item and text; a claim or item only one side has is
listed as missing on the other. An item that B has not completed yet is shown as "not run".
Only a change between two verdicts counts as one ("missing" and "not run" do not).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rbfi.stats import WORDS

DECIDED = frozenset(WORDS.values())  # "not run" and "missing" are not verdicts


def claims_by_item(out: Path) -> dict[str, dict[str, dict] | None]:
    """Item name -> {claim text -> claim}, or None for an item that is not complete."""
    index = json.loads((out / "index.json").read_text())
    return {
        name: ({c["text"]: c for c in item.get("claims", [])} if item.get("complete") else None)
        for name, item in index["items"].items()
    }


def verdict(claims: dict[str, dict] | None, text: str) -> str:
    if claims is None:
        return "not run"
    if text not in claims:
        return "missing"
    return WORDS[claims[text]["holds"]]


def table(out_a: Path, out_b: Path) -> str:
    a, b = claims_by_item(out_a), claims_by_item(out_b)
    rows = [
        f"| item | claim | {out_a.name} | {out_b.name} | changed | reason in {out_b.name} |",
        "|---|---|---|---|---|---|",
    ]
    changed = 0
    for item in [*a, *(name for name in b if name not in a)]:
        claims_a, claims_b = a.get(item) or {}, b.get(item) or {}
        for text in [*claims_a, *(t for t in claims_b if t not in claims_a)]:
            va, vb = verdict(a.get(item), text), verdict(b.get(item), text)
            differs = va != vb and va in DECIDED and vb in DECIDED
            changed += differs
            reason = claims_b.get(text, {}).get("reason", "").replace("|", "/")
            rows.append(
                f"| {item} | {text} | {va} | {vb} | {'**yes**' if differs else ''} | {reason} |"
            )
    rows.append("")
    rows.append(f"{changed} verdict(s) changed between {out_a.name} and {out_b.name}.")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_verdicts")
    parser.add_argument("out_a", type=Path)
    parser.add_argument("out_b", type=Path)
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    for out in (args.out_a, args.out_b):
        if not (out / "index.json").is_file():
            print(f"compare_verdicts: {out / 'index.json'} not found", file=sys.stderr)
            return 2
    text = table(args.out_a, args.out_b)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
