"""Learning curves: clean and robust accuracy per epoch of one or several training runs, from
the per-epoch records of ``metrics.jsonl`` (:mod:`rbfi.training.loop`).

Robust series are every record key of the form

- ``monitor_pgd<K>_<eps>``: accuracy under sign PGD-K at eps (adversarial training's monitor,
  on the first ``monitor_images`` test images),
- ``test_certified_<eps>``: certified accuracy at eps (certified training's monitor),

and clean accuracy is ``test_accuracy`` (the test images of the run). ``train_eps``, when
recorded, is drawn on a second axis (the eps ramp). From the command line:
``python -m tools.curves RUN_DIR ... --out curves.png``.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

ROBUST_KEY = re.compile(r"^(?:monitor_pgd(?P<steps>\d+)|test_certified)_(?P<eps>[0-9.]+)$")
Series = tuple[list[int], list[float]]


def load_metrics(run_dir: str | Path) -> list[dict]:
    """The per-epoch records of a run directory (``metrics.jsonl``, one JSON object a line)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl (not a training run directory)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def robust_label(key: str) -> str | None:
    """'PGD-20 at 0.3' for monitor_pgd20_0.3, 'certified at 0.1' for test_certified_0.1,
    None for any other key."""
    match = ROBUST_KEY.match(key)
    if match is None:
        return None
    if match["steps"]:
        return f"PGD-{match['steps']} at {match['eps']}"
    return f"certified at {match['eps']}"


def series(metrics: Sequence[dict]) -> dict[str, Series]:
    """{label: (epochs, accuracies)}: "clean" first, then each robust series in the order of
    eps; an epoch without a value is left out of that series."""
    keys: list[str] = []
    for record in metrics:
        keys += [k for k in record if robust_label(k) and k not in keys]
    keys.sort(key=lambda k: (k.startswith("test_certified"), float(ROBUST_KEY.match(k)["eps"])))
    out: dict[str, Series] = {}
    for label, key in [("clean", "test_accuracy")] + [(robust_label(k), k) for k in keys]:
        points = [(r["epoch"], r[key]) for r in metrics if r.get(key) is not None]
        if points:
            out[label] = ([e for e, _ in points], [v for _, v in points])
    return out


def learning_curves_png(
    runs: Mapping[str, Sequence[dict]], *, title: str = "", columns: int = 3
) -> bytes:
    """One panel per run ({name: per-epoch records}): accuracy (%) per epoch, clean and
    robust, and the training eps (dashed, right axis) when the records hold it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("no runs to draw")
    columns = min(columns, len(runs))
    rows = math.ceil(len(runs) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.6 * rows), squeeze=False)
    styles = ["-o", "-s", "-^", "-D", "-v", "-P", "-X"]
    for ax, (name, metrics) in zip(axes.flat, runs.items()):
        for k, (label, (epochs, values)) in enumerate(series(metrics).items()):
            ax.plot(epochs, [100 * v for v in values], styles[k % len(styles)], ms=3, label=label)
        ramp = [(r["epoch"], r["train_eps"]) for r in metrics if r.get("train_eps") is not None]
        if ramp:
            twin = ax.twinx()
            twin.plot([e for e, _ in ramp], [v for _, v in ramp], "--", color="gray", lw=1)
            twin.set_ylabel("training eps (dashed)", fontsize=8, color="gray")
            twin.set_ylim(0, max(0.05, 1.1 * max(v for _, v in ramp)))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    for ax in axes.flat[len(runs) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
