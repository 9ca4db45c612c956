"""Engines run tasks; the in-process :class:`LocalEngine` is the default (nothing to start).

Every engine runs a task through :func:`execute`, which fixes torch's thread count to the
task's ``cpus`` for its duration: float summation orders depend on the thread count, so this is
what makes a task's results identical whichever engine ran it.
"""

from __future__ import annotations

import importlib
import traceback
from dataclasses import dataclass
from pathlib import Path

from rbfi.io.threads import torch_threads


def execute(fn: str, payload: dict, root: str, cpus: int) -> None:
    """Import ``fn`` ("module:function") and call it as ``function(payload, Path(root))``,
    with torch limited to ``cpus`` threads."""
    module, _, name = fn.partition(":")
    function = getattr(importlib.import_module(module), name)
    with torch_threads(cpus):
        function(payload, Path(root))


@dataclass
class Outcome:
    """What an engine reports of a finished task: None when it succeeded, else the error."""

    task_id: str
    error: str | None = None


class Engine:
    """How tasks run. ``slots`` tasks may run at once; :meth:`submit` starts one, :meth:`wait`
    returns at least one finished task (blocking)."""

    name = "engine"
    slots = 1

    def start(self) -> None:
        """Prepare (e.g. connect to Ray); called once before the first task."""

    def submit(self, task, root: str) -> None:
        raise NotImplementedError

    def wait(self) -> list[Outcome]:
        raise NotImplementedError

    def stop(self) -> None:
        """Release what :meth:`start` took."""


class LocalEngine(Engine):
    """Tasks one after another in this process (``submit`` runs it; ``wait`` reports it)."""

    name = "local"

    def __init__(self) -> None:
        self._finished: list[Outcome] = []

    def submit(self, task, root: str) -> None:
        try:
            execute(task.fn, task.payload, root, task.cpus)
            self._finished.append(Outcome(task.id))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed task is reported, others go on
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self._finished.append(Outcome(task.id, detail))

    def wait(self) -> list[Outcome]:
        finished, self._finished = self._finished, []
        return finished
