"""The ``rbfi`` command line: one small module per subcommand.

Errors in what the user gave (options, files, checkpoints, data) print one line
``rbfi: error: ...`` and exit 2, before anything on disk is touched (:mod:`rbfi.cli.errors`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rbfi._version import __version__
from rbfi.cli import attack, certify, doctor, evaluate, info, reproduce, train, zoo
from rbfi.cli.errors import (
    BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    OneLineParser,
    UsageError,
    one_line,
)
from rbfi.io.threads import torch_threads

SUBCOMMANDS = (train, evaluate, info, attack, certify, reproduce, zoo, doctor)

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rbfi", description="RBFI networks: train, evaluate, attack, certify, reproduce."
    )
    parser.add_argument("--version", action="version", version=f"rbfi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rbfi.evaluation import SoundnessError
    from rbfi.experiments.reproduce import ReproduceFailed
    from rbfi.training import TrainingDiverged

    try:
        args = build_parser().parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        with torch_threads(getattr(args, "threads", None)):  # --threads: this command only
            return handler(args)
    except KeyboardInterrupt:
        print("rbfi: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingDiverged as exc:
        print(f"rbfi: training stopped: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except SoundnessError as exc:
        print(f"rbfi: soundness violation: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except ReproduceFailed as exc:
        print(f"rbfi: reproduce: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except BAD_INPUT as exc:
        print(f"rbfi: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a failure of the machine (disk full, ...), not of the input
        print(f"rbfi: failed: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
