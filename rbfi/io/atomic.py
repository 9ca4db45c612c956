"""Atomic writes: every file goes to a temporary name in its directory, then is renamed into
place, so a reader (or a crash) sees the old file or the new one, never half of one.

A write that fails (disk full, file too large, permission lost, safetensors' own
``SafetensorError``) raises :class:`WriteError`, an ``OSError`` with a one-line message, and
leaves what was at the path before untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor


class WriteError(OSError):
    """Writing a file failed; the file that was there before is unchanged. The message is one
    line: ``cannot write PATH: REASON``; ``cause_errno`` is the failing call's errno, if any."""

    def __init__(self, path: str | os.PathLike, cause: BaseException) -> None:
        text = str(cause).strip()
        reason = text.splitlines()[0] if text else type(cause).__name__
        super().__init__(f"cannot write {path}: {reason}")
        self.path = str(path)
        self.cause_errno: int | None = getattr(cause, "errno", None)


def _readable_by_all(path: str) -> None:
    """mkstemp creates files 0600; give them the permissions a plain open() would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    """Run ``write(tmp)`` on a temporary file beside ``path``, fsync it, rename it to ``path``;
    :class:`WriteError` if any of it fails (the temporary file is removed)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise WriteError(path, exc) from exc
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _readable_by_all(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(path, exc) from exc
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory + rename."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    _atomic(Path(path), write)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """``obj`` as JSON (plus a final newline), written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=indent) + "\n").encode())


def atomic_save_tensors(path: str | os.PathLike, tensors: dict[str, Tensor]) -> str:
    """Save ``tensors`` as a safetensors file, atomically; returns the file's SHA-256."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    digest: list[str] = []
    plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}

    def write(tmp: str) -> None:
        try:
            save_file(plain, tmp)
        except SafetensorError as exc:  # an I/O failure, but not an OSError
            raise WriteError(path, exc) from exc
        digest.append(sha256_file(tmp))

    _atomic(Path(path), write)
    return digest[0]


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (not atomic: for logs); :class:`WriteError` on failure."""
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as exc:
        raise WriteError(path, exc) from exc


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes by ``algorithm`` (a :func:`hashlib.new` name), read in
    1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")
