"""``rbfi attack``: the robustness evaluation (attack suite over an eps grid, the worst case,
the certified lower bound, masking checks); writes robustness.{json,md,png} into --out
(default ``runs/attack-RUN-SUITE``), holding its lock (:mod:`rbfi.io.lock`); ``--json`` prints
the accuracies (:func:`rbfi.evaluation.report.summary`)."""

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
from rbfi.evaluation import EvalConfig

HELP = "robustness evaluation under a suite of attacks, with the certified lower bound"


def add_parser(sub) -> None:
    p = sub.add_parser("attack", help=HELP, description=HELP)
    p.add_argument(
        "checkpoint", type=checkpoint_ref, help="run directory or zoo:NAME of the model to attack"
    )
    add_config_options(p, EvalConfig)
    add_config_options(p, DataOptions)
    add_common(
        p,
        "limit",
        "out",
        "overwrite",
        "device",
        "threads",
        "no_progress",
        "estimate_only",
        "json",
        limit={"default": 1000, "help": "first N test images (default: 1000)"},
        out={"default": None, "help": "results directory (default: runs/attack-RUN-SUITE)"},
        json={
            "help": 'print {"clean", "worst_case", "certified", "attacks": ...} (accuracies in '
            "%%) on stdout; with --estimate-only the cost estimate"
        },
    )
    p.add_argument(
        "--transfer-source",
        default=None,
        type=checkpoint_ref,
        help="checkpoint (run directory or zoo:NAME) of a separately trained ReLU net",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.io.checkpoint import check_run_directory
    from rbfi.io.lock import run_lock

    config = config_from_args(EvalConfig, args)
    name = Path(args.checkpoint).resolve().name
    out_dir = Path(args.out or Path("runs") / f"attack-{name}-{config.suite}")
    if args.estimate_only:  # writes nothing
        return _attack(args, config, out_dir)
    with run_lock(check_run_directory(out_dir), "attack"):
        return _attack(args, config, out_dir)


def _attack(args: argparse.Namespace, config: EvalConfig, out_dir: Path) -> int:
    from dataclasses import replace

    from rbfi.evaluation import SoundnessError, evaluate_robustness, to_markdown, write_results
    from rbfi.evaluation.report import refuse_overwrite, summary
    from rbfi.models import load_model

    if not args.estimate_only:
        refuse_overwrite(out_dir, args.overwrite)
    model = load_model(args.checkpoint, map_location=args.device)
    source = (
        load_model(args.transfer_source, map_location=args.device) if args.transfer_source else None
    )
    test = checkpoint_test_data(args, config.pixel_scale)
    config = replace(config, pixel_scale=test.pixel_scale)
    x, y = test.x, test.y
    try:
        results = evaluate_robustness(
            model,
            x,
            y,
            config,
            transfer_source=source,
            progress=not args.no_progress,
            estimate_only=args.estimate_only,
        )
    except SoundnessError as error:  # keep the evidence, then fail loudly
        error.results["model"]["checkpoint"] = str(args.checkpoint)
        paths = write_results(error.results, out_dir, overwrite=args.overwrite)
        print(f"results (with the violation): {paths[-1]}", file=sys.stderr)
        raise
    results["model"]["checkpoint"] = str(args.checkpoint)
    if args.estimate_only:
        if args.json:
            print(json.dumps(results["cost_estimate"]))
        return 0
    paths = write_results(results, out_dir, overwrite=args.overwrite)
    print(json.dumps(summary(results)) if args.json else to_markdown(results))
    print(f"results: {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
