"""``rbfi eval``: clean test accuracy of a checkpoint."""

from __future__ import annotations

import argparse
import json

from rbfi.cli.options import (
    add_common,
    add_config_options,
    checkpoint_ref,
    checkpoint_test_data,
    config_from_args,
)
from rbfi.data import DataOptions
from rbfi.evaluation.config import AccuracyConfig

HELP = "clean test accuracy of a checkpoint"


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=checkpoint_ref, help="run directory or zoo:NAME")
    add_config_options(p, AccuracyConfig)
    add_config_options(p, DataOptions)
    add_common(p, "limit", "device", "threads", "json")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.models import evaluate, load_model

    config = config_from_args(AccuracyConfig, args)
    model = load_model(args.checkpoint, map_location=args.device)
    test = checkpoint_test_data(args, config.pixel_scale)
    x, y, pixel_scale = test.x, test.y, test.pixel_scale
    result = evaluate(model, x.to(args.device), y.to(args.device), None, config.batch_size)
    result = {
        "checkpoint": str(args.checkpoint),
        "dataset": test.dataset,
        "images": len(x),
        "pixel_scale": pixel_scale,
        **result,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"clean test accuracy {result['accuracy']:.4f} on {len(x)} {test.dataset} images "
            f"(pixels k / {pixel_scale})"
        )
    return 0
