"""``rbfi reproduce``: the paper's experiment section (Tables 1-4, Figures 2-5, Sec. 6.8-6.9)
and the studies beyond it (baselines, conv nets) from one command, in this process or on Ray;
resumes an interrupted reproduction. It holds the lock of --out while it runs
(:mod:`rbfi.io.lock`): a second reproduction there exits 2."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from rbfi.cli.errors import UsageError
from rbfi.cli.options import _argparse_type, add_common, add_config_options, config_from_args
from rbfi.experiments.config import ReproduceConfig
from rbfi.io.paths import portable_command
from rbfi.options import Text

HELP = "regenerate the paper's tables and figures and the studies beyond them (locally or on Ray)"


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help=HELP, description=HELP)
    add_config_options(p, ReproduceConfig)
    add_common(
        p,
        "out",
        "estimate_only",
        "threads",
        "json",
        "no_progress",
        threads={"help": "torch threads of each job (default: the profile's; Ray CPUs per task)"},
        json={"help": 'print {"out", "items": {ITEM: complete}, "resume": {...}} on stdout'},
        no_progress={"help": "no line per job started or finished (stderr)"},
        out={
            "type": _argparse_type(Text()),
            "default": None,
            "help": "output directory (default: results/paper-PROFILE)",
        },
        estimate_only={"help": "print the cost of each item and exit"},
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.experiments.profiles import PROFILES
    from rbfi.experiments.reproduce import estimate, select_items
    from rbfi.io.checkpoint import check_run_directory
    from rbfi.io.lock import run_lock

    config = config_from_args(ReproduceConfig, args)
    profile = PROFILES[config.profile]
    if config.pixel_scale is not None:
        profile = replace(profile, pixel_scale=config.pixel_scale)
    if args.threads is not None:
        profile = replace(profile, threads=args.threads)
    items = select_items(config.only)
    out = Path(args.out or Path("results") / f"paper-{profile.name}")
    check_run_directory(out)
    if args.estimate_only:
        if args.json:
            raise UsageError("--json prints the result of a run; --estimate-only prints a table")
        print(estimate(items, profile, out))
        return 0
    with run_lock(out, "reproduce"):
        return _reproduce(args, config, profile, items, out)


def _reproduce(args: argparse.Namespace, config: ReproduceConfig, profile, items, out) -> int:
    from rbfi.experiments.reproduce import reproduce

    engine = None
    if config.ray or config.ray_address:
        from rbfi.sweeps.ray import RayEngine, _ray

        _ray()  # a missing Ray is a one-line error before anything starts
        engine = RayEngine(address=config.ray_address, num_cpus=config.ray_cpus)
    command = "rbfi " + portable_command(sys.argv[1:]) if sys.argv else ""
    index = reproduce(
        profile,
        out,
        only=config.only,
        engine=engine,
        retries=config.retries,
        command=command,
        stop_after=None if config.stop_after is None else config.stop_after * 60,
        log=(lambda line: None) if args.no_progress else None,
    )
    if args.json:
        complete = {name: entry["complete"] for name, entry in index["items"].items()}
        print(json.dumps({"out": str(out), "items": complete, "resume": index["resume"]}))
    else:
        print((out / "summary.md").read_text())
    done = sum(index["items"][item.name]["complete"] for item in items)
    print(f"{done} of {len(items)} items rendered in {out}", file=sys.stderr)
    resume = index["resume"]
    if resume["jobs_left"]:
        print(
            f"{resume['jobs_left']} job(s) left (about {resume['hours_left_estimate']:.1f} h on "
            f"2 cores): run the same command to continue; it needs the "
            f"{len(resume['needed_weights'])} weights file(s) listed in {out / 'index.json'}",
            file=sys.stderr,
        )
    return 0
