"""``rbfi eval``: clean test accuracy of a checkpoint."""

from __future__ import annotations

import argparse
import json

from rbfi.cli.options import add_common, add_config_options, checkpoint_ref, config_from_args
from rbfi.evaluation.config import AccuracyConfig

HELP = "clean test accuracy of a checkpoint"


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=checkpoint_ref, help="run directory or zoo:NAME")
    add_config_options(p, AccuracyConfig)
    add_common(p, "limit", "data_dir", "device", "threads", "json")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.data import checkpoint_pixel_scale, load_mnist
    from rbfi.models import evaluate, load_model

    config = config_from_args(AccuracyConfig, args)
    model = load_model(args.checkpoint, map_location=args.device)
    pixel_scale = checkpoint_pixel_scale(args.checkpoint, config.pixel_scale)
    x, y = load_mnist("test", args.data_dir, pixel_scale)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    result = evaluate(model, x.to(args.device), y.to(args.device), None, config.batch_size)
    result = {
        "checkpoint": str(args.checkpoint),
        "images": len(x),
        "pixel_scale": pixel_scale,
        **result,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"clean test accuracy {result['accuracy']:.4f} on {len(x)} images "
            f"(pixels k / {pixel_scale})"
        )
    return 0
