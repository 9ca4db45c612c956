"""``rbfi certify``: certified accuracy of a checkpoint over a grid of eps (interval bounds);
writes certify.{json,md,png} into --out (default ``runs/certify-RUN``), holding its lock
(:mod:`rbfi.io.lock`); ``--json`` prints {"clean": %, "certified": {eps: %}} (and, for
l_inf-distance nets, "certified_by": {"interval": {eps: %}, "margin": {eps: %}})."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rbfi.cli.options import (
    add_common,
    add_config_options,
    checkpoint_ref,
    checkpoint_test_data,
    config_from_args,
)
from rbfi.data import DataOptions
from rbfi.evaluation.config import CertifyConfig

HELP = (
    "certified accuracy over a grid of eps (interval bound propagation; l_inf-distance nets "
    "also by their margin certificate)"
)


def add_parser(sub) -> None:
    p = sub.add_parser("certify", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=checkpoint_ref, help="run directory or zoo:NAME")
    add_config_options(p, CertifyConfig)
    add_config_options(p, DataOptions)
    add_common(
        p,
        "limit",
        "out",
        "overwrite",
        "json",
        "device",
        "threads",
        "no_progress",
        out={"default": None, "help": "results directory (default: runs/certify-RUN)"},
        json={"help": 'print {"clean": ACC, "certified": {EPS: ACC}} (accuracies in %%) on stdout'},
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.io.checkpoint import check_run_directory
    from rbfi.io.lock import run_lock

    config = config_from_args(CertifyConfig, args)
    name = Path(args.checkpoint).resolve().name
    out_dir = check_run_directory(args.out or Path("runs") / f"certify-{name}")
    with run_lock(out_dir, "certify"):
        return _certify(args, config, out_dir)


def _certify(args: argparse.Namespace, config: CertifyConfig, out_dir: Path) -> int:
    from rbfi.evaluation.certification import (
        RESULT_FILES,
        certify_grid,
        summary,
        to_markdown,
        write_certify_results,
    )
    from rbfi.evaluation.report import refuse_overwrite
    from rbfi.models import load_model

    refuse_overwrite(out_dir, args.overwrite, RESULT_FILES)
    model = load_model(args.checkpoint, map_location=args.device)
    test = checkpoint_test_data(args, config.pixel_scale)
    results = certify_grid(
        model,
        test.x,
        test.y,
        config.eps,
        config.batch_size,
        test.pixel_scale,
        progress=not args.no_progress,
    )
    results["model"]["checkpoint"] = str(args.checkpoint)
    paths = write_certify_results(results, out_dir, overwrite=args.overwrite)
    print(json.dumps(summary(results)) if args.json else to_markdown(results))
    print(f"results: {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
