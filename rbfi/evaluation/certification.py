"""Certified accuracy of a model over a grid of eps: per-example flags and margins from interval
bound propagation (:func:`rbfi.bounds.certify`), and the reports of ``rbfi certify``:
``certify.json`` (checked against :data:`CERTIFY_SCHEMA`), ``certify.md`` and ``certify.png``."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

from rbfi.bounds import certify, unsupported
from rbfi.evaluation.checks import bits
from rbfi.evaluation.report import write_report
from rbfi.io import versions
from rbfi.io.schema import AnyValue, Const, Int, List, Map, Nullable, Num, Obj, Str
from rbfi.models import describe, predict

FORMAT = "rbfi-certify"
RESULT_FILES = ("certify.json", "certify.md", "certify.png")
MARGIN_DIGITS = 6

CERTIFY_SCHEMA = Obj(
    {
        "format": Const(FORMAT),
        "format_version": Const(1),
        "created": Str(),
        "model": Obj(
            {"description": Str(), "config": Nullable(Map(AnyValue()))}, {"checkpoint": Str()}
        ),
        "settings": Obj({"eps": List(Num(0, 1), min_len=1), "batch_size": Int(min=1)}),
        "versions": Map(Str()),
        "device": Str(),
        "n_examples": Int(min=0),
        "labels": List(Int(0, 9)),
        "clean_predictions": List(Int(0, 9)),
        "clean_accuracy": Num(0, 1),
        "certified": Map(
            Obj(
                {
                    "accuracy": Num(0, 1),
                    "certified": Str(pattern=r"[01]*"),
                    "margins": List(Num()),
                    "seconds": Num(min=0),
                }
            ),
            key=r"\d+(\.\d+)?(e-?\d+)?",
        ),
    }
)


def certify_grid(
    model: nn.Module, x: Tensor, y: Tensor, eps_grid: Sequence[float], batch_size: int = 1000
) -> dict:
    """The results of ``rbfi certify``: clean predictions, and per eps the certified accuracy,
    the per-example flags (a '0'/'1' string) and worst-case margins (lower bounds of
    s_y - max_{c != y} s_c over the ball; > 0 iff certified)."""
    missing = unsupported(model)
    if missing is not None:
        raise ValueError(f"cannot certify: {missing} has no interval rule (rbfi.bounds.interval)")
    device = next(iter(model.parameters()), torch.empty(0)).device
    x, y = x.to(device), y.to(device)
    clean = predict(model, x, batch_size)
    config = getattr(model, "config", None)
    results = {
        "format": FORMAT,
        "format_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "description": describe(model),
            "config": config.to_json() if hasattr(config, "to_json") else None,
        },
        "settings": {"eps": [float(e) for e in eps_grid], "batch_size": batch_size},
        "versions": versions(),
        "device": str(device),
        "n_examples": len(x),
        "labels": y.tolist(),
        "clean_predictions": clean.tolist(),
        "clean_accuracy": (clean == y).float().mean().item() if len(x) else 0.0,
        "certified": {},
    }
    for eps in eps_grid:
        start = time.perf_counter()
        cert = certify(model, x, y, eps, batch_size)
        results["certified"][f"{eps:g}"] = {
            "accuracy": cert.accuracy if len(x) else 0.0,
            "certified": bits(cert.certified.cpu()),
            "margins": [round(float(m), MARGIN_DIGITS) for m in cert.margins.cpu()],
            "seconds": time.perf_counter() - start,
        }
    return results


def summary(results: dict) -> dict:
    """{"clean": %, "certified": {eps: %}}: what ``rbfi certify --json`` prints."""
    return {
        "clean": round(100 * results["clean_accuracy"], 2),
        "certified": {k: round(100 * v["accuracy"], 2) for k, v in results["certified"].items()},
    }


def to_markdown(results: dict) -> str:
    keys = list(results["certified"])
    lines = [
        f"# Certified robustness of {results['model']['description']}",
        "",
        f"{results['n_examples']} test images (the first ones); l_inf balls intersected with "
        f"[0, 1]; interval bound propagation, exact per RBFI unit. An example is certified when "
        f"no input of the ball can change its class.",
        "",
        "| | clean | " + " | ".join(f"eps {k}" for k in keys) + " |",
        "|---|---:|" + "---:|" * len(keys),
        f"| accuracy (%) | {100 * results['clean_accuracy']:.2f} | "
        + " | ".join(f"{100 * results['certified'][k]['accuracy']:.2f}" for k in keys)
        + " |",
        "",
        "Median worst-case margin (lower bound of s_y - max_c s_c over the ball): "
        + ", ".join(
            f"eps {k}: {float(torch.tensor(v['margins']).median()):.4f}"
            for k, v in results["certified"].items()
            if v["margins"]
        ),
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict, path_or_buffer) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = [0.0] + [float(k) for k in results["certified"]]
    acc = [100 * results["clean_accuracy"]] + [
        100 * v["accuracy"] for v in results["certified"].values()
    ]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(eps, acc, "-o", color="crimson", linewidth=2.5, label="certified (IBP)")
    ax.axhline(100 * results["clean_accuracy"], color="grey", linestyle="--", label="clean")
    for e, a in zip(eps[1:], acc[1:]):
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
