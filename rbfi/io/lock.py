"""One owner per output directory: an exclusive lock that dies with its process.

    with run_lock(out_dir, "training"):      # RunLocked (a ValueError) if another process has it
        ...                                  # read, write, resume inside the directory

The lock is ``flock(LOCK_EX | LOCK_NB)`` on ``DIR/.rbfi.lock``. The kernel drops a flock when
the process that holds it ends, however it ends (``kill -9`` included), so a lock never
outlives its holder: a lock file left behind by a killed process is simply taken over. The
holder writes its pid, what it does and since when into the file, so the refusal names it.

The file is removed when the lock is released (a process that opened it just before finds the
path gone or replaced and tries again, so two processes never hold two different files), and
directories the lock created are removed again if nothing else was written into them; when
nothing else changed, the times of the directory are put back too. A command refused for bad
input therefore leaves the disk as it found it. Advisory only: it keeps rbfi processes apart,
not other programs, and relies on ``flock`` (POSIX; local file systems).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

LOCK_NAME = ".rbfi.lock"
READ_TRIES = 20  # a holder writes its name right after taking the lock: wait for it this long
READ_PAUSE = 0.01


class RunLocked(ValueError):
    """The directory is in use by another process (the message names its pid)."""

    def __init__(self, directory: Path, holder: dict | None) -> None:
        self.directory = directory
        self.holder = holder or {}
        pid = self.holder.get("pid")
        who = f"pid {pid}" if pid else "another process (pid unknown)"
        doing = [str(self.holder.get("what") or "rbfi")]
        if self.holder.get("since"):
            doing.append(f"since {self.holder['since']}")
        super().__init__(
            f"{directory} is in use by {who} ({', '.join(doing)}); wait for it to end or "
            f"choose another directory"
        )


def _missing_dirs(directory: Path) -> list[Path]:
    """``directory`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for path in (directory, *directory.absolute().parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _read_holder(fd: int) -> dict | None:
    """What the lock's holder wrote into the file. Right after taking the lock it may not have
    written it yet: the file is then empty, or still names the killed process before it."""
    for _ in range(READ_TRIES):
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        try:
            holder = json.loads(text) if text else None
        except ValueError:
            holder = None
        if isinstance(holder, dict) and _alive(holder.get("pid")):
            return holder
        time.sleep(READ_PAUSE)
    return None


def _listing(directory: Path) -> dict[str, tuple[int, int, int]] | None:
    """name -> (inode, mtime, size) of every entry of ``directory`` (None if unreadable)."""
    try:
        with os.scandir(directory) as entries:
            out = {}
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                out[entry.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
            return out
    except OSError:
        return None


class _Footprint:
    """A directory's times and entries now, to put its times back if its entries are the same
    later (only the lock's own file, or directory, came and went)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.stat = os.stat(directory)
        self.listing = _listing(directory)

    def restore(self) -> None:
        if self.listing is not None and _listing(self.directory) == self.listing:
            with contextlib.suppress(OSError):
                os.utime(self.directory, ns=(self.stat.st_atime_ns, self.stat.st_mtime_ns))


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def acquire(directory: Path, what: str) -> int:
    """Take the lock of ``directory`` (which exists); its file descriptor. RunLocked if held."""
    path = directory / LOCK_NAME
    while True:
        directory.mkdir(parents=True, exist_ok=True)  # again, if a holder just removed it
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(directory, holder) from None
        if _same_file(fd, path):  # not a file its previous holder removed meanwhile
            break
        os.close(fd)
    holder = {
        "pid": os.getpid(),
        "what": what,
        "since": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    return fd


def release(directory: Path, fd: int) -> None:
    """Remove the lock file (still holding it), then drop the lock."""
    with contextlib.suppress(OSError):
        if _same_file(fd, directory / LOCK_NAME):
            (directory / LOCK_NAME).unlink()
    os.close(fd)


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold the lock of ``directory`` (created if needed) for the block; ``what`` tells a
    refused process what the holder does ("training", ...). Raises :class:`RunLocked` when
    another process holds it, ValueError when ``directory`` exists and is not a directory."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a directory")
    created = _missing_dirs(directory)
    footprint = _Footprint(created[-1].parent if created else directory)  # the one that exists
    try:
        fd = acquire(directory, what)
        try:
            yield directory
        finally:
            release(directory, fd)
    finally:
        for path in created:  # deepest first; only the ones still empty
            with contextlib.suppress(OSError):
                path.rmdir()
        footprint.restore()
