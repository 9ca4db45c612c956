"""Re-render complete items of a committed reproduction from its jobs' results, running nothing.

    python -m tools.rerender OUT ITEM [ITEM ...]

After a change to how an item is rendered (a claim's test, its evidence, a table's labels), this
rewrites ``OUT/ITEM/`` (Markdown, JSON, PNG), the item's claims in ``OUT/index.json`` and
``OUT/summary.md`` from the job results already in ``OUT/jobs``. Everything that records the run
(the profile as run, ``runs``, ``resume``, each item's ``compute_seconds``) stays as it was, which
``rbfi reproduce`` cannot promise: it rewrites the profile with today's settings. The item's jobs
are those of the current code under the profile the run recorded (its name and pixel scale); an
item whose jobs are not all in ``OUT``, or whose job files cannot be read, is refused with a
one-line error and exit 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from rbfi.experiments.items import ITEMS
from rbfi.experiments.profiles import PROFILES, Profile
from rbfi.experiments.reproduce import item_entry, render_item, summary_markdown
from rbfi.experiments.spec import Results
from rbfi.io import atomic_write_bytes, atomic_write_json


def recorded_profile(index: dict) -> Profile:
    """The named profile with the pixel scale the run recorded."""
    recorded = index["profile"]
    return replace(PROFILES[recorded["name"]], pixel_scale=recorded["pixel_scale"])


def rerender(out: Path, names: list[str]) -> dict:
    """Re-render ``names`` in ``out`` and return the updated index (written to ``out``)."""
    index = json.loads((out / "index.json").read_text())
    profile = recorded_profile(index)
    for name in names:
        if name not in ITEMS:
            raise ValueError(f"no item {name!r} (items: {', '.join(ITEMS)})")
        if not index["items"].get(name, {}).get("complete"):
            raise ValueError(f"{name} is not complete in {out}: run rbfi reproduce to finish it")
        jobs = ITEMS[name].jobs(profile)
        damaged = next(((j, j.damage(out)) for j in jobs if j.damage(out)), None)
        if damaged:
            job, why = damaged
            raise ValueError(
                f"{name}: {job.label}: {why}; rbfi reproduce sets it aside and runs it again"
            )
        missing = [j.label for j in jobs if not j.is_done(out)]
        if missing:
            raise ValueError(
                f"{name}: {len(missing)} of its jobs under today's code are not in {out} "
                f"(first: {missing[0]}); it cannot be re-rendered without running them"
            )
    results = Results(out)
    for name in names:
        rendered = render_item(ITEMS[name], results, profile, out)
        compute = index["items"][name]["compute_seconds"]  # a measurement of the run: kept
        index["items"][name] = item_entry(ITEMS[name], rendered, compute)
    atomic_write_json(out / "index.json", index)
    atomic_write_bytes(out / "summary.md", summary_markdown(index, out).encode())
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.rerender")
    parser.add_argument("out", type=Path, help="a reproduction's directory (has index.json)")
    parser.add_argument("items", nargs="+", help="items to re-render, e.g. table2")
    args = parser.parse_args(argv)
    try:
        if not (args.out / "index.json").is_file():
            raise ValueError(f"{args.out / 'index.json'} not found")
        rerender(args.out, args.items)
    except (ValueError, KeyError, json.JSONDecodeError) as error:
        print(f"rerender: {error}", file=sys.stderr)
        return 2
    print(f"re-rendered {', '.join(args.items)} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
