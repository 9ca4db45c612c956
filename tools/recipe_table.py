"""The certified-training recipe table: clean and certified accuracy of several training runs,
read from their ``checkpoint.json`` (settings) and ``metrics.jsonl`` (one record per epoch).

    python -m tools.recipe_table runs/recipes/default runs/recipes/hinge ... --out results/recipes

writes ``recipes.json`` (settings, final and best numbers, every epoch's series), ``recipes.md``
(the table) and ``curves.png`` (certified accuracy at 0.3 and clean accuracy per epoch of every
run, one panel each; plus ``panels.png``, one panel per run with every monitored eps). Nothing
is typed by hand: every number comes from the runs' files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rbfi.models import ModelConfig

CERT = "test_certified_{:g}"
MONITORED = (0.1, 0.3)


def markers(section: str = "recipe-table") -> tuple[str, str]:
    """The lines that enclose a generated table in a Markdown file."""
    return f"<!-- {section}: tools/recipe_table.py -->", f"<!-- /{section} -->"


BEGIN, END = markers()


def load_run(run_dir: Path) -> dict:
    """{"name", "settings", "metrics"} of a training run directory."""
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines if line.strip()]
    if not metrics:
        raise ValueError(f"{run_dir}: no epoch recorded in metrics.jsonl")
    return {"name": run_dir.name, "settings": checkpoint["training"], "metrics": metrics}


def describe(settings: dict) -> str:
    """The recipe in one line: optimiser, loss, eps schedule, u bounds, start."""
    s = settings
    model = s["model"]
    parts = [
        f"{s['optimizer']} {s['lr']:g}"
        + (f" {s['lr_schedule']}" if s.get("lr_schedule") not in (None, "constant") else "")
    ]
    loss = s["certified_loss"]
    if loss == "clipped_hinge":
        loss += (
            f" (theta {s['certified_margin']:g}, width {s['certified_hinge_width']:g}, "
            f"{s['certified_reduce']})"
        )
    elif loss == "cross_entropy":
        loss = f"CE(-{s['certified_scale']:g} m)"
    parts.append(loss)
    if s.get("certified_ce", 0) > 0:
        parts.append(f"+ clean CE {s['certified_ce']:g} -> {s['certified_ce_end']:g}")
    if s["certified_weight"] < 1:
        parts.append(f"clean loss weight {1 - s['certified_weight']:g}")
    if s["certified_ramp"] == 0 and s["certified_warmup"] == 0:
        parts.append(f"eps {s['certified_eps']:g} fixed")
    else:
        parts.append(
            f"eps 0 -> {s['certified_eps']:g} (warm-up {s['certified_warmup']:g}, "
            f"ramp {s['certified_ramp']:g})"
        )
    parts.append(f"{s['certified_gradient']} gradients")
    if tuple(model.get("u_bounds", (0.01, 3.0))) != (0.01, 3.0):
        lo, hi = model["u_bounds"]
        parts.append(f"u in [{lo:g}, {hi:g}]")
    if s.get("init_from"):
        parts.append(f"from {Path(s['init_from']).name}")
    return ", ".join(parts)


def summarise(run: dict) -> dict:
    """Final and best numbers of one run (accuracies in %)."""
    metrics, settings = run["metrics"], run["settings"]
    last = metrics[-1]
    row = {
        "name": run["name"],
        "recipe": describe(settings),
        "net": ModelConfig.from_json(settings["model"]).describe(),
        "layers": settings["model"]["layers"],
        "epochs": last["epoch"],
        "test_images": settings.get("test_limit") or 10000,
        "train_images": settings.get("train_limit") or 60000,
        "clean": 100 * last["test_accuracy"],
        "seconds_per_epoch": sum(m["train_seconds"] for m in metrics) / len(metrics),
    }
    for eps in MONITORED:
        key = CERT.format(eps)
        row[f"certified_{eps:g}"] = 100 * last[key] if key in last else None
    key = CERT.format(0.3)
    if key in last:
        best = max(metrics, key=lambda m: m[key])
        row["best_certified_0.3"] = 100 * best[key]
        row["best_epoch"] = best["epoch"]
        row["rising_at_end"] = len(metrics) >= 3 and metrics[-1][key] > metrics[-3][key]
    row["curve"] = [
        {
            "epoch": m["epoch"],
            "clean": 100 * m["test_accuracy"],
            **{
                f"certified_{e:g}": 100 * m[CERT.format(e)]
                for e in MONITORED
                if CERT.format(e) in m
            },
        }
        for m in metrics
    ]
    return row


def markdown(rows: list[dict]) -> str:
    def pct(v) -> str:
        return "–" if v is None else f"{v:.1f}"

    nets = len({r["net"] for r in rows}) > 1  # a column of its own only where nets differ
    head = (
        "| run | "
        + ("net | " if nets else "")
        + "recipe | epochs | clean | cert. 0.1 | cert. 0.3 | best cert. 0.3 (epoch) "
        + "| s/epoch |\n|---|"
        + ("---|" if nets else "")
        + "---|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {r['name']} | "
        + (f"{r['net']} | " if nets else "")
        + f"{r['recipe']} | {r['epochs']} | {pct(r['clean'])} "
        f"| {pct(r['certified_0.1'])} | {pct(r['certified_0.3'])} "
        f"| {pct(r.get('best_certified_0.3'))} ({r.get('best_epoch', '–')}) "
        f"| {r['seconds_per_epoch']:.0f} |\n"
        for r in rows
    )
    images = sorted({(r["train_images"], r["test_images"]) for r in rows})
    note = "; ".join(
        f"{tr} training images, certified on the first {te} test images" for tr, te in images
    )
    return head + body + f"\nAccuracies in % after the last epoch ({note}).\n"


def overlay_png(rows: list[dict], path: Path) -> None:
    """Certified accuracy at 0.3 (left), at 0.1 (middle) and clean accuracy (right) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        ("certified_0.3", "certified at 0.3"),
        ("certified_0.1", "certified at 0.1"),
        ("clean", "clean"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (key, title) in zip(axes, keys):
        for row in rows:
            points = [(c["epoch"], c[key]) for c in row["curve"] if key in c]
            if points:
                ax.plot(*zip(*points), "-o", markersize=3, label=row["name"])
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training run directories")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--title", default="certified-training recipes")
    parser.add_argument(
        "--doc",
        type=Path,
        help="also write the table into this Markdown file, between the lines "
        f"{BEGIN!r} and {END!r} (with the name of --section)",
    )
    parser.add_argument("--section", default="recipe-table", help="the markers' name")
    args = parser.parse_args(argv)
    rows = [summarise(load_run(run)) for run in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recipes.json").write_text(json.dumps({"runs": rows}, indent=1) + "\n")
    (args.out / "recipes.md").write_text(f"# {args.title}\n\n" + markdown(rows))
    overlay_png(rows, args.out / "curves.png")
    try:
        from rbfi.evaluation.curves import learning_curves_png
    except ImportError:  # the panel plot is an extra
        learning_curves_png = None
    if learning_curves_png is not None:
        panels = {run.name: load_run(run)["metrics"] for run in args.runs}
        (args.out / "panels.png").write_bytes(learning_curves_png(panels, title=args.title))
    if args.doc:
        replace_section(args.doc, markdown(rows), args.section)
    print(markdown(rows))
    return 0


def replace_section(doc: Path, table: str, section: str = "recipe-table") -> None:
    """Put ``table`` between the marker lines of ``section`` in ``doc`` (both must be there)."""
    begin, end = markers(section)
    text = doc.read_text()
    if text.count(begin) != 1 or text.count(end) != 1:
        raise SystemExit(f"{doc}: needs exactly one {begin!r} and one {end!r} line")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{table}{end}{tail}")


if __name__ == "__main__":
    sys.exit(main())
