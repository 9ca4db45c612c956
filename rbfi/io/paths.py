"""Paths as files record them: never the absolute path of the machine that wrote them.

A result, a log line or a recorded command is read on other machines, from other checkouts. A
path inside the working directory (the repository root, where rbfi's commands are run) is
therefore recorded relative to it; a reference that is not a path (``zoo:NAME``) or a relative
path is recorded as given; an absolute path outside the working directory stays as it is (there
is nothing portable to say instead).

    portable_path(Path.cwd() / "runs/a")                  -> "runs/a"
    portable_command(["train", f"--out={Path.cwd()}/runs/a"]) -> "train --out=runs/a"
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path


def portable_path(path: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """``path`` relative to ``base`` (default: the working directory) when it is an absolute
    path inside it; anything else (relative paths, ``zoo:NAME``, paths outside) as given."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return text
    root = Path(base if base is not None else Path.cwd())
    given = Path(os.path.normpath(text))
    for candidate, anchor in ((given, root), (given.resolve(), root.resolve())):
        try:
            relative = candidate.relative_to(anchor)
        except ValueError:
            continue
        return relative.as_posix() if relative.parts else "."
    return text


def portable_argument(arg: str, base: str | os.PathLike | None = None) -> str:
    """One command-line argument with its path made portable: ``PATH`` or ``--opt=PATH``."""
    if arg.startswith("-") and "=" in arg:
        option, value = arg.split("=", 1)
        return f"{option}={portable_path(value, base)}"
    return portable_path(arg, base)


def portable_command(argv: Iterable[str], base: str | os.PathLike | None = None) -> str:
    """The shell-quoted command line ``argv`` with every path argument inside ``base`` made
    relative (:func:`portable_argument`)."""
    return shlex.join(portable_argument(a, base) for a in argv)


__all__ = ["portable_argument", "portable_command", "portable_path"]
