"""Progress a person can read: a live bar on a terminal, a few plain lines in a log file.

On a terminal (stderr is a TTY) :class:`Progress` draws a tqdm bar. Anywhere else (a log file,
a pipe, CI) it prints one line each time another ``lines_every`` fraction of the work is done
(default 10%), and one at the end (``final_line``): at most about a dozen lines per loop,
never hundreds of redraws.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """``with Progress(total, "epoch 3/10") as bar: bar.update(k); bar.set_postfix(loss=...)``."""

    def __init__(
        self,
        total: float,
        desc: str = "",
        *,
        unit: str = "it",
        enabled: bool = True,
        stream: TextIO | None = None,
        tty: bool | None = None,
        lines_every: float = 0.1,
        final_line: bool = True,
    ) -> None:
        self.total = float(total)
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.lines_every = lines_every
        self.final_line = final_line
        self.done = 0.0
        self.postfix: dict[str, str] = {}
        self.started = time.perf_counter()
        self._next_line = lines_every
        self._bar = None
        self._closed = False
        if enabled and self.tty:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit=unit, leave=False, file=self.stream, mininterval=0.2
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description(desc, refresh=False)

    def set_postfix(self, **values) -> None:
        self.postfix = {k: str(v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def update(self, n: float = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and self.total > 0:
            fraction = self.done / self.total
            if fraction >= self._next_line and fraction < 1.0:
                self._print_line()
                while self._next_line <= fraction:
                    self._next_line += self.lines_every

    def line(self) -> str:
        """The current state in one line: description, percent, counts, rate, elapsed, ETA."""
        elapsed = time.perf_counter() - self.started
        fraction = self.done / self.total if self.total > 0 else 1.0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        post = ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        eta_text = _format_seconds(eta) if eta == eta else "?"
        return (
            f"{self.desc}: {100 * fraction:3.0f}% {self.done:.4g}/{self.total:.4g} {self.unit}, "
            f"{_format_seconds(elapsed)} elapsed, ETA {eta_text}" + (f" | {post}" if post else "")
        )

    def _print_line(self) -> None:
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.total > 0 and self.final_line:
            self._print_line()
