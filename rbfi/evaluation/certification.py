"""Certified accuracy of a model over a grid of eps: per-example flags and margins from interval
bound propagation (:func:`rbfi.bounds.certify`), and the reports of ``rbfi certify``:
``certify.json`` (checked against :data:`CERTIFY_SCHEMA`), ``certify.md`` and ``certify.png``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from rbfi.bounds import unsupported
from rbfi.evaluation.report import write_report
from rbfi.evaluation.results import (
    CERTIFIED_ROW,
    EPS_KEY,
    certified_rows,
    header_schema,
    model_device,
    require_images,
    results_header,
)
from rbfi.io import Progress
from rbfi.io.schema import Int, List, Map, Num, Obj
from rbfi.models import predict

FORMAT = "rbfi-certify"
FORMAT_VERSION = 2  # 2: the header and rows shared with robustness.json (margin quantiles)
RESULT_FILES = ("certify.json", "certify.md", "certify.png")
METHODS = ("interval", "margin")
METHOD_LABELS = {
    "interval": "interval bounds",
    "margin": "margin > 2 L eps (L-Lipschitz logits)",
    "best": "better of the two, per example",
}

CERTIFY_SCHEMA = Obj(
    {
        **header_schema(
            FORMAT,
            FORMAT_VERSION,
            Obj(
                {"eps": List(Num(0, 1), min_len=1), "batch_size": Int(min=1)},
                {"pixel_scale": Int(255, 256)},
            ),
        ),
        "certified": Map(CERTIFIED_ROW, key=EPS_KEY),
    }
)


def certify_grid(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps_grid: Sequence[float],
    batch_size: int = 1000,
    pixel_scale: int | None = None,
    *,
    progress: bool = False,
) -> dict:
    """The results of ``rbfi certify``: the shared header (clean predictions, ...) and per eps
    the certified accuracy, the per-example flags and every example's certified margin
    (:func:`rbfi.evaluation.results.certified_rows`). ValueError for an empty set of images or
    a model without interval rules. ``pixel_scale``: the images' k / 255 or k / 256, recorded
    in the settings when given. ``progress``: a progress bar (or lines) over the eps."""
    missing = unsupported(model)
    if missing is not None:
        raise ValueError(f"cannot certify: {missing} has no interval rule (rbfi.bounds.interval)")
    require_images(x, y)
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    results = results_header(
        model,
        y,
        predict(model, x, batch_size),
        format_name=FORMAT,
        version=FORMAT_VERSION,
        settings={"eps": [float(e) for e in eps_grid], "batch_size": batch_size}
        | ({"pixel_scale": pixel_scale} if pixel_scale is not None else {}),
    )
    results["certified"] = {}
    with Progress(len(eps_grid), "certify", unit="eps", enabled=progress) as bar:
        for eps in eps_grid:
            rows = certified_rows(model, x, y, (eps,), batch_size, keep_margins=True)
            results["certified"].update(rows)
            bar.update(1)
    return results


def summary(results: dict) -> dict:
    """{"clean": %, "certified": {eps: %}}: what ``rbfi certify --json`` prints; for nets with a
    margin certificate also "certified_by": {method: {eps: %}} ("certified" is then the
    better of the two per example)."""
    rows = results["certified"]
    out = {
        "clean": round(100 * results["clean_accuracy"], 2),
        "certified": {k: round(100 * v["accuracy"], 2) for k, v in rows.items()},
    }
    methods = [m for m in METHODS if all(m in v.get("methods", {}) for v in rows.values())]
    if methods:
        out["certified_by"] = {
            m: {k: round(100 * v["methods"][m]["accuracy"], 2) for k, v in rows.items()}
            for m in methods
        }
    return out


def to_markdown(results: dict) -> str:
    keys = list(results["certified"])
    methods = summary(results).get("certified_by", {})
    how = "interval bound propagation, exact per RBFI unit"
    if methods:
        how = (
            "interval bound propagation (exact per unit) and the margin certificate of "
            "L-Lipschitz logits (margin > 2 L eps); an example counts when either certifies it"
        )
    lines = [
        f"# Certified robustness of {results['model']['description']}",
        "",
        f"{results['n_examples']} test images (the first ones); l_inf balls intersected with "
        f"[0, 1]; {how}. An example is certified when no input of the ball can change its "
        f"class.",
        "",
        "| | clean | " + " | ".join(f"eps {k}" for k in keys) + " |",
        "|---|---:|" + "---:|" * len(keys),
    ]
    for method, by_eps in methods.items():
        lines.append(
            f"| {METHOD_LABELS[method]} (%) | | "
            + " | ".join(f"{by_eps[k]:.2f}" for k in keys)
            + " |"
        )
    label = f"{METHOD_LABELS['best']} (%)" if methods else "accuracy (%)"
    lines += [
        f"| {label} | {100 * results['clean_accuracy']:.2f} | "
        + " | ".join(f"{100 * results['certified'][k]['accuracy']:.2f}" for k in keys)
        + " |",
        "",
        "Median certified margin (lower bound of s_y - max_c s_c over the ball): "
        + ", ".join(
            f"eps {k}: {v['margin_quantiles']['0.5']:.4f}" for k, v in results["certified"].items()
        ),
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict, path_or_buffer) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = [float(k) for k in results["certified"]]
    acc = [100 * v["accuracy"] for v in results["certified"].values()]
    if 0.0 not in eps:  # at eps 0 the certified accuracy is the clean one
        eps, acc = [0.0, *eps], [100 * results["clean_accuracy"], *acc]
    fig, ax = plt.subplots(figsize=(6, 4))
    methods = summary(results).get("certified_by", {})
    label = "certified (either certificate)" if methods else "certified (IBP)"
    ax.plot(eps, acc, "-o", color="crimson", linewidth=2.5, label=label)
    for (method, by_eps), style in zip(methods.items(), ("--", ":")):
        ax.plot(eps[1:], list(by_eps.values()), style, color="black", label=method)
    ax.axhline(100 * results["clean_accuracy"], color="grey", linestyle="--", label="clean")
    for e, a in ((e, a) for e, a in zip(eps, acc) if e > 0):
        ax.annotate(f"{a:.1f}", (e, a), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xlabel("eps (l_inf)")
    ax.set_ylabel("certified accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{results['model']['description']}, {results['n_examples']} images", fontsize=10)
    fig.tight_layout()
    fig.savefig(path_or_buffer, format="png", dpi=110)
    plt.close(fig)


def write_certify_results(
    results: dict, out_dir: str | os.PathLike, overwrite: bool = False
) -> list[Path]:
    """certify.{png,md,json}; see :func:`rbfi.evaluation.report.write_report`."""
    return write_report(
        results,
        out_dir,
        overwrite,
        stem="certify",
        schema=CERTIFY_SCHEMA,
        markdown=to_markdown,
        figure=plot,
    )
