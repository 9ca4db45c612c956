"""``rbfi reproduce``: the paper's experiment section (Tables 1-4, Figures 2-5, Sec. 6.8-6.9)
from one command, in this process or on Ray; resumes an interrupted reproduction."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from rbfi.cli.options import _argparse_type
from rbfi.options import Choice, Int, Names, NonNegativeInt, PositiveInt, Text

HELP = "regenerate the paper's tables and figures (locally or on Ray)"
PROFILE_NAMES = ("smoke", "quick", "paper")


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help=HELP, description=HELP)
    p.add_argument(
        "--profile",
        type=_argparse_type(Choice(PROFILE_NAMES)),
        default="quick",
        metavar="{smoke,quick,paper}",
        help="how big (default: quick)",
    )
    p.add_argument(
        "--only",
        type=_argparse_type(Names()),
        default=None,
        metavar="NAME,...",
        help="only these items (table1, fig3, table2, table3, fig4, fig5, table4, sec68, sec69)",
    )
    p.add_argument(
        "--out",
        type=_argparse_type(Text()),
        default=None,
        help="output directory (default: results/paper-PROFILE)",
    )
    p.add_argument(
        "--ray",
        action="store_true",
        help="run the jobs as tasks of a local Ray instance started on the fly",
    )
    p.add_argument(
        "--ray-address",
        type=_argparse_type(Text()),
        default=None,
        metavar="ADDR",
        help="run the jobs on an existing Ray cluster",
    )
    p.add_argument(
        "--ray-cpus",
        type=_argparse_type(PositiveInt()),
        default=None,
        help="CPUs of the local Ray instance (default: all)",
    )
    p.add_argument(
        "--retries",
        type=_argparse_type(NonNegativeInt()),
        default=1,
        help="retries of a failed job (default: 1)",
    )
    p.add_argument(
        "--pixel-scale",
        type=_argparse_type(Int(255, 256)),
        default=None,
        metavar="{255,256}",
        help="train and test on pixels k / 255 or k / 256 (default: the profile's, 255; "
        "results/paper-quick was made with 256)",
    )
    p.add_argument(
        "--estimate-only", action="store_true", help="print the cost of each item and exit"
    )
    p.add_argument(
        "--readme",
        type=_argparse_type(Text()),
        default=None,
        metavar="PATH",
        help="also regenerate the results section of this README",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.experiments.profiles import PROFILES
    from rbfi.experiments.reproduce import estimate, reproduce, select_items
    from rbfi.io.checkpoint import check_run_directory

    profile = PROFILES[args.profile]
    if args.pixel_scale is not None:
        profile = replace(profile, pixel_scale=args.pixel_scale)
    items = select_items(args.only)
    out = Path(args.out or Path("results") / f"paper-{profile.name}")
    check_run_directory(out)
    if args.readme and not Path(args.readme).is_file():
        raise ValueError(f"--readme {args.readme}: no such file")
    if args.estimate_only:
        print(estimate(items, profile, out))
        return 0
    engine = None
    if args.ray or args.ray_address:
        from rbfi.sweeps.ray import RayEngine, _ray

        _ray()  # a missing Ray is a one-line error before anything starts
        engine = RayEngine(address=args.ray_address, num_cpus=args.ray_cpus)
    command = "rbfi " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    index = reproduce(
        profile, out, only=args.only, engine=engine, retries=args.retries, command=command
    )
    if args.readme:
        from rbfi.experiments.readme import update_readme

        update_readme(Path(args.readme))
    print((out / "summary.md").read_text())
    done = sum(item["complete"] for item in index["items"].values())
    print(f"{done} of {len(index['items'])} items rendered in {out}", file=sys.stderr)
    return 0
