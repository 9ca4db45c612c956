"""``rbfi train``: train a model (MNIST, Fashion-MNIST or CIFAR-10) into a run directory
(resumable). The run holds the directory's lock while it trains: a second process on it exits 2
(:mod:`rbfi.io.lock`)."""

from __future__ import annotations

import argparse
import json
import sys

from rbfi.cli.options import add_common, add_config_options, config_from_args
from rbfi.training import TrainConfig

HELP = "train a model (MNIST, Fashion-MNIST or CIFAR-10) into a run directory"


def add_parser(sub) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP)
    add_config_options(p, TrainConfig)  # --limit (alias --test-limit): TrainConfig.test_limit
    add_common(
        p,
        "threads",
        "json",
        "no_progress",
        json={"help": 'print {"run": RUN, "last_epoch": {metrics}} on stdout (log: stderr)'},
    )
    p.add_argument("--out", required=True, help="run directory (checkpoint, metrics.jsonl)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out (start it if absent)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.training import train

    config = config_from_args(TrainConfig, args)
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    last = train(config, args.out, resume=args.resume, progress=not args.no_progress, log=log)
    if args.json:
        print(json.dumps({"run": str(args.out), "last_epoch": last}))
    return 0
