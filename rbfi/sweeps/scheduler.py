"""Schedule tasks with dependencies on an engine: run what is ready, retry what fails, report
progress (done, running, left, ETA) and what failed, without losing the other tasks."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rbfi.sweeps.engine import Engine


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn`` ("module:function") called with ``payload`` and the output
    root. ``deps``: ids of tasks that must succeed first. ``cost``: estimated seconds (for the
    ETA). ``cpus``: threads it uses (and Ray CPUs it asks for)."""

    id: str
    fn: str
    payload: dict
    deps: tuple[str, ...] = ()
    cpus: int = 1
    cost: float = 1.0
    label: str = ""


@dataclass
class TaskReport:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id -> last error
    blocked: list[str] = field(default_factory=list)  # a dependency failed
    deferred: list[str] = field(default_factory=list)  # not started: would end after the deadline
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


def _eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def run_tasks(
    tasks: list[Task],
    root: str,
    engine: Engine,
    *,
    retries: int = 1,
    log: Callable[[str], None] | None = None,
    deadline: float | None = None,
) -> TaskReport:
    """Run ``tasks`` (each after its dependencies, in list order among the ready ones) on
    ``engine``; a task that fails is retried up to ``retries`` more times, then reported, and
    the tasks depending on it are blocked. Dependencies on ids not in ``tasks`` count as
    already satisfied. ``deadline``: seconds; a task starts only if its estimated ``cost``
    ends before it (running ones finish); the tasks left are reported as deferred, not
    failed."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    by_id = {t.id: t for t in tasks}
    if len(by_id) != len(tasks):
        raise ValueError("task ids must be unique")
    report = TaskReport()
    pending = [t.id for t in tasks]
    running: set[str] = set()
    done_cost, total_cost = 0.0, sum(t.cost for t in tasks) or 1.0
    started = time.perf_counter()

    def state(fresh: str) -> None:
        elapsed = time.perf_counter() - started
        left = len(pending)
        rate = done_cost / elapsed if elapsed > 0 and done_cost > 0 else None
        remaining = total_cost - done_cost
        eta = _eta(remaining / rate) if rate else "?"
        log(
            f"jobs: {len(report.done)} done, {len(running)} running, {left} left"
            + (f", {len(report.failed)} failed" if report.failed else "")
            + f", ETA {eta} | {fresh}"
        )

    if not tasks:
        return report
    engine.start()
    try:
        while pending or running:
            failed_ids = set(report.failed) | set(report.blocked)
            for task_id in list(pending):
                if any(d in failed_ids for d in by_id[task_id].deps):
                    pending.remove(task_id)
                    report.blocked.append(task_id)
            ready = [
                i for i in pending if all(d not in by_id or d in report.done for d in by_id[i].deps)
            ]
            if deadline is not None:
                # start only what the cost model says ends before the deadline
                left = deadline - (time.perf_counter() - started)
                ready = [i for i in ready if by_id[i].cost <= left]
                if pending and not ready and not running:
                    report.deferred += pending
                    pending.clear()
                    state(f"deadline: {len(report.deferred)} job(s) deferred")
            while ready and len(running) < engine.slots:
                task_id = ready.pop(0)
                pending.remove(task_id)
                running.add(task_id)
                report.attempts[task_id] = report.attempts.get(task_id, 0) + 1
                engine.submit(by_id[task_id], root)
            if not running:
                break  # only blocked tasks are left
            for outcome in engine.wait():
                running.discard(outcome.task_id)
                task = by_id[outcome.task_id]
                name = task.label or task.id
                if outcome.error is None:
                    report.done.append(task.id)
                    done_cost += task.cost
                    state(f"finished {name}")
                elif report.attempts[task.id] <= retries:
                    pending.insert(0, task.id)
                    state(f"{name} failed ({outcome.error}); retrying")
                else:
                    report.failed[task.id] = outcome.error
                    done_cost += task.cost
                    state(f"{name} FAILED: {outcome.error}")
    finally:
        engine.stop()
    return report
