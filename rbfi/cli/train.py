"""``rbfi train``: train a model on MNIST into a run directory (resumable)."""

from __future__ import annotations

import argparse

from rbfi.cli.options import add_common, add_config_options, config_from_args
from rbfi.training import TrainConfig

HELP = "train a model on MNIST"


def add_parser(sub) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP)
    add_config_options(p, TrainConfig)
    add_common(p, "threads", "no_progress")
    p.add_argument("--out", required=True, help="run directory (checkpoint, metrics.jsonl)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out (start it if absent)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.training import train

    config = config_from_args(TrainConfig, args)
    train(config, args.out, resume=args.resume, progress=not args.no_progress)
    return 0
