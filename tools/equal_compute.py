"""The equal-compute shape of the relatives study: the widest l_inf-dist net (depth x width) whose
epochs fit the CPU minutes of the RBFI net it is compared with, from measured epoch times.

    python -m tools.equal_compute --budget RUN_OR_MINUTES --epochs N MEASURED [MEASURED ...]

``--budget``: minutes, or a run directory whose compute (train + eval seconds of all its epochs,
e.g. the certified RBFI net's job) is the budget. ``MEASURED``: runs of the net kind to fit
(e.g. a 3-epoch pilot of ``rbfi train --model linf-dist``, whose p annealing has the same
fractions as a full run), each a run directory (its mean train + eval seconds per epoch) or
``LAYERS=SECONDS`` (e.g. ``512,512,512,10=95``). Prints the widest width per depth, the pick
(:func:`rbfi.experiments.studies.compute.pick_shape`) and the profile setting to write
(``RelativesOptions(wide=(DEPTH, WIDTH), wide_epochs=N)`` in rbfi/experiments/profiles.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rbfi.experiments.studies.compute import layer_products, minutes, pick_shape


def run_minutes(run: Path) -> tuple[tuple[int, ...], list[float]]:
    """(layers, cumulative minutes per epoch) of a run directory."""
    index = json.loads((run / "checkpoint.json").read_text())
    metrics = index.get("metrics") or []
    if not metrics:
        raise ValueError(f"{run}: no epochs recorded")
    return tuple(index["model"]["layers"]), minutes(metrics)


def measured_entry(text: str) -> tuple[tuple[int, ...], float]:
    """(layers, seconds per epoch) from ``LAYERS=SECONDS`` or a run directory."""
    if "=" in text and not Path(text).exists():
        layers, seconds = text.split("=", 1)
        return tuple(int(n) for n in layers.split(",")), float(seconds)
    layers, at = run_minutes(Path(text))
    return layers, 60 * at[-1] / len(at)


def budget_minutes(text: str) -> float:
    path = Path(text)
    if path.is_dir():
        return run_minutes(path)[1][-1]
    return float(text)


def report(budget: float, epochs: int, measured: dict, depths, widths) -> str:
    choice = pick_shape(budget, epochs, measured, depths, widths)
    c0, c1 = choice.cost
    lines = [
        f"budget {budget:.1f} min for {epochs} epochs; seconds per epoch = {c0:.3g} + "
        f"{c1:.3g} x M (M = sum of inputs x units), fitted to "
        + ", ".join(f"{','.join(map(str, k))}: {v:.1f} s" for k, v in measured.items()),
        "",
        "| depth | widest width that fits | M | predicted minutes |",
        "|---:|---:|---:|---:|",
    ]
    for depth, best in choice.per_depth.items():
        if best is None:
            lines.append(f"| {depth} | none | – | – |")
            continue
        width, total = best
        lines.append(
            f"| {depth} | {width} | {layer_products((width,) * depth + (10,))} | {total:.1f} |"
        )
    if choice.shape is None:
        lines += ["", "nothing fits the budget"]
    else:
        depth, width = choice.shape
        lines += [
            "",
            f"pick: {depth} x {width}; set in rbfi/experiments/profiles.py: "
            f"RelativesOptions(wide=({depth}, {width}), wide_epochs={epochs})",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.equal_compute")
    parser.add_argument("measured", nargs="+", help="run directories or LAYERS=SECONDS")
    parser.add_argument("--budget", required=True, help="minutes, or a run directory")
    parser.add_argument("--epochs", type=int, required=True, help="epochs of the wide net")
    parser.add_argument("--depths", default="2,3,4,5,6", help="depths to try (default 2-6)")
    parser.add_argument(
        "--widths", default="64:8192:64", help="FIRST:LAST:STEP (default 64:8192:64)"
    )
    args = parser.parse_args(argv)
    try:
        depths = [int(d) for d in args.depths.split(",")]
        first, last, step = (int(x) for x in args.widths.split(":"))
        measured = dict(measured_entry(m) for m in args.measured)
        if args.epochs < 1:
            raise ValueError("--epochs must be >= 1")
        text = report(
            budget_minutes(args.budget), args.epochs, measured, depths, range(first, last + 1, step)
        )
    except (OSError, ValueError, KeyError) as error:
        print(f"equal_compute: error: {error}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
