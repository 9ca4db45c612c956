"""``rbfi certify``: certified accuracy of a checkpoint over a grid of eps (interval bounds);
writes certify.{json,md,png}; ``--json`` prints {"clean": %, "certified": {eps: %}} (and, for
l_inf-distance nets, "certified_by": {"interval": {eps: %}, "margin": {eps: %}})."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rbfi.cli.options import add_common, add_config_options, checkpoint_ref, config_from_args
from rbfi.evaluation.config import CertifyConfig

HELP = (
    "certified accuracy over a grid of eps (interval bound propagation; l_inf-distance nets "
    "also by their margin certificate)"
)


def add_parser(sub) -> None:
    p = sub.add_parser("certify", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=checkpoint_ref, help="run directory or zoo:NAME")
    add_config_options(p, CertifyConfig)
    add_common(
        p,
        "limit",
        "out",
        "overwrite",
        "json",
        "device",
        "data_dir",
        "threads",
        out={"default": None, "help": "results directory (default: results/certify-RUN)"},
        json={"help": 'print {"clean": ACC, "certified": {EPS: ACC}} (accuracies in %%) on stdout'},
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.data import checkpoint_pixel_scale, load_mnist
    from rbfi.evaluation.certification import (
        RESULT_FILES,
        certify_grid,
        summary,
        to_markdown,
        write_certify_results,
    )
    from rbfi.evaluation.report import refuse_overwrite
    from rbfi.models import load_model

    config = config_from_args(CertifyConfig, args)
    name = Path(args.checkpoint).resolve().name
    out_dir = Path(args.out or Path("results") / f"certify-{name}")
    refuse_overwrite(out_dir, args.overwrite, RESULT_FILES)
    model = load_model(args.checkpoint, map_location=args.device)
    pixel_scale = checkpoint_pixel_scale(args.checkpoint, config.pixel_scale)
    x, y = load_mnist("test", args.data_dir, pixel_scale)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    results = certify_grid(model, x, y, config.eps, config.batch_size, pixel_scale)
    results["model"]["checkpoint"] = str(args.checkpoint)
    paths = write_certify_results(results, out_dir, overwrite=args.overwrite)
    print(json.dumps(summary(results)) if args.json else to_markdown(results))
    print(f"results: {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
