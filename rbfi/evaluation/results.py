"""What every results file of an evaluation shares: its header (format, model, settings,
provenance, the images and the clean predictions), the per-eps rows of certified accuracy, and
the schema pieces of both.

``rbfi certify`` (``certify.json``) and ``rbfi attack`` (``robustness.json``) start from the same
:func:`results_header` and store certificates as the same rows (:func:`certified_rows`), so the
two files cannot drift apart.

An accuracy over 0 images is undefined; an evaluation refuses an empty set of images
(:func:`require_images`, a one-line ValueError) instead of writing nan or 0.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone

import torch
from torch import Tensor, nn

from rbfi.bounds import certify
from rbfi.io import versions
from rbfi.io.schema import AnyValue, Const, Int, List, Map, Nullable, Num, Obj, Str
from rbfi.models import describe

EPS_KEY = r"\d+(\.\d+)?(e-?\d+)?"
BITS = Str(pattern=r"[01]*")
MARGIN_QUANTILES = ("0.1", "0.5", "0.9")
MARGIN_DIGITS = 6

# one row of certified accuracy at one eps (both result files)
CERTIFIED_ROW = Obj(
    {
        "accuracy": Num(0, 1),
        "certified": BITS,  # '1' where the example is certified at this eps
        "margin_quantiles": Map(Num()),
        "seconds": Num(min=0),
    },
    {
        "margins": List(Num()),  # every example's certified margin (certify.json only)
        # nets with a margin certificate (l_inf-distance nets): each method alone; the row's
        # own flags and accuracy are the better of them per example
        "methods": Map(Obj({"accuracy": Num(0, 1), "certified": BITS})),
    },
)


def mask(bit_string: str) -> Tensor:
    """'1' / '0' per example (still correct, certified, ...) as a bool tensor."""
    return torch.tensor([c == "1" for c in bit_string], dtype=torch.bool)


def bits(flags: Tensor) -> str:
    """The inverse of :func:`mask`."""
    return "".join("1" if v else "0" for v in flags.tolist())


def header_schema(format_name: str, version: int, settings: Obj) -> dict:
    """The schema entries of :func:`results_header`'s keys, for a file's :class:`Obj`."""
    return {
        "format": Const(format_name),
        "format_version": Const(version),
        "created": Str(),
        "model": Obj(
            {
                "description": Str(),
                "config": Nullable(Map(AnyValue())),
                "training_loss": Nullable(Str()),
            },
            {"checkpoint": Str()},
        ),
        "settings": settings,
        "versions": Map(Str()),
        "device": Str(),
        "threads": Int(min=1),
        "n_examples": Int(min=1),
        "labels": List(Int(0, 9)),
        "clean_predictions": List(Int(0, 9)),
        "clean_accuracy": Num(0, 1),
    }


def require_images(x: Tensor, y: Tensor) -> None:
    """ValueError (one line) for an empty set: an accuracy over 0 images is undefined."""
    if len(x) == 0 or len(y) == 0:
        raise ValueError("no test images to evaluate (an accuracy over 0 images is undefined)")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (cpu for a model without any)."""
    return next(iter(model.parameters()), torch.empty(0)).device


def results_header(
    model: nn.Module,
    y: Tensor,
    clean_predictions: Tensor,
    *,
    format_name: str,
    version: int,
    settings: dict,
) -> dict:
    """The keys every results file starts with (schema: :func:`header_schema`); ``y`` and
    ``clean_predictions`` are the labels and the model's predictions on the images."""
    require_images(clean_predictions, y)
    config_json = getattr(getattr(model, "config", None), "to_json", None)
    return {
        "format": format_name,
        "format_version": version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "description": describe(model),
            "config": config_json() if config_json else None,
            "training_loss": getattr(model, "loss", None),
        },
        "settings": settings,
        "versions": versions(),
        "device": str(model_device(model)),
        "threads": torch.get_num_threads(),
        "n_examples": len(y),
        "labels": y.tolist(),
        "clean_predictions": clean_predictions.tolist(),
        "clean_accuracy": (clean_predictions == y).float().mean().item(),
    }


def certified_rows(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps_grid: Sequence[float],
    batch_size: int,
    *,
    keep_margins: bool = False,
) -> dict:
    """eps key -> :data:`CERTIFIED_ROW`: the certified accuracy, the per-example flags (a
    '0'/'1' string), quantiles of the certified margins (lower bounds over the ball of
    s_y - max_{c != y} s_c, > 0 iff certified) and, with ``keep_margins``, every margin. For
    nets with a margin certificate (l_inf-distance nets) the row is the better of the interval
    and margin certificates per example, and ``methods`` holds each alone."""
    require_images(x, y)
    rows = {}
    for eps in eps_grid:
        start = time.perf_counter()
        cert = certify(model, x, y, eps, batch_size)
        margins = cert.margins.detach().cpu().double()
        row = {
            "accuracy": cert.accuracy,
            "certified": bits(cert.certified.cpu()),
            "margin_quantiles": {q: float(margins.quantile(float(q))) for q in MARGIN_QUANTILES},
            "seconds": time.perf_counter() - start,
        }
        if keep_margins:
            row["margins"] = [round(float(m), MARGIN_DIGITS) for m in margins]
        if cert.by_method is not None:
            row["methods"] = {
                name: {
                    "accuracy": cert.method_accuracy(name),
                    "certified": bits((bounds > 0).cpu()),
                }
                for name, bounds in cert.by_method.items()
            }
        rows[f"{eps:g}"] = row
    return rows


FLAG_KEYS = ("certified", "correct")  # the order per-example flags are looked up in


def row_flags(row: dict) -> list[bool]:
    """The per-example flags of one row of a results file (True where the example is still
    right under the attack, or certified): the one reader of them. Keys are looked up in the
    order of :data:`FLAG_KEYS`: a certified row keeps its flags under "certified" ("correct" in
    robustness.json before format 3), an attack's or the worst case's row under "correct"; no
    row holds both. ValueError (one line) for a row without flags."""
    for key in FLAG_KEYS:
        if isinstance(row.get(key), str):
            return [c == "1" for c in row[key]]
    raise ValueError(f"a result row without per-example flags (keys: {', '.join(row) or 'none'})")
