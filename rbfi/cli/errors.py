"""How the command line reports failures: one line on stderr, and an exit status.

- 2: the input was bad (options, files, checkpoints, data): nothing on disk was touched;
- 1: the run failed (training diverged, a soundness violation, an I/O failure mid-run);
- 130: interrupted.
"""

from __future__ import annotations

import argparse

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

# errors that mean "the input is bad"; ValueError covers CheckpointError, DataError,
# SchemaError and every config check. A failed write (rbfi.io.atomic.WriteError: disk full,
# permission lost mid-run, ...) is an OSError but none of these: the run failed, exit 1.
BAD_INPUT = (
    ValueError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
    argparse.ArgumentTypeError,
)


class UsageError(ValueError):
    """A bad combination of options."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
