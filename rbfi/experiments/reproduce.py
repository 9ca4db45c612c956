"""``rbfi reproduce``: the paper's experiment section from one command.

1. Build the job grid of the chosen items under a profile (jobs are shared between items).
2. Run the jobs whose results are missing (an interrupted reproduction resumes), on the local
   engine or on Ray; a failed job is retried, then reported, without losing the others.
3. Render every item whose jobs are all done: ``OUT/<item>/<item>.md``, ``data.json`` and its
   figures; then ``OUT/summary.md`` and ``OUT/index.json`` (every claim beside our numbers).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from rbfi.data import LEGACY_PIXEL_SCALE
from rbfi.experiments.paper import ITEMS
from rbfi.experiments.profiles import PROFILES, Profile
from rbfi.experiments.render import VERDICT_NOTE, VERDICTS, claims_markdown, table
from rbfi.experiments.spec import Item, Job, Rendered, Results
from rbfi.io import atomic_write_bytes, atomic_write_json, versions
from rbfi.sweeps import Engine, LocalEngine, Task, run_tasks

JOB_FUNCTION = "rbfi.experiments.jobs:run_job"


class ReproduceFailed(RuntimeError):
    """Some jobs failed (after their retries); what could be rendered was."""


def select_items(only: Sequence[str] | None) -> list[Item]:
    if not only:
        return list(ITEMS.values())
    unknown = [name for name in only if name not in ITEMS]
    if unknown:
        raise ValueError(f"unknown item(s) {', '.join(unknown)}; choose from {', '.join(ITEMS)}")
    return [ITEMS[name] for name in ITEMS if name in only]


def job_grid(items: Sequence[Item], profile: Profile) -> tuple[list[Job], dict[str, list[str]]]:
    """Every job of ``items`` once (training jobs first), and each item's job ids."""
    jobs: dict[str, Job] = {}
    per_item = {}
    for item in items:
        item_jobs = item.jobs(profile)
        per_item[item.name] = [j.id for j in item_jobs]
        for job in item_jobs:
            jobs.setdefault(job.id, job)
    ordered = sorted(jobs.values(), key=lambda j: j.kind != "train")
    return ordered, per_item


def estimate(items: Sequence[Item], profile: Profile, out: Path) -> str:
    """Markdown: per item, its jobs, how many are still to run and their estimated cost."""
    jobs, per_item = job_grid(items, profile)
    by_id = {j.id: j for j in jobs}
    rows, counted = [], set()
    for item in items:
        ids = per_item[item.name]
        todo = [i for i in ids if not by_id[i].is_done(out)]
        new = [i for i in todo if i not in counted]
        counted.update(new)
        hours = sum(by_id[i].cost for i in new) / 3600
        trains = sum(by_id[i].kind == "train" for i in ids)
        rows.append([item.name, str(len(ids)), str(trains), str(len(todo)), f"{hours:.2f}"])
    total = sum(by_id[i].cost for i in counted) / 3600
    rows.append(
        [
            "**total**",
            str(len(jobs)),
            str(sum(j.kind == "train" for j in jobs)),
            str(len(counted)),
            f"**{total:.2f}**",
        ]
    )
    return (
        f"Profile {profile.describe()}\n\n"
        + table(
            [
                "item",
                "jobs",
                "of which training",
                "still to run",
                "est. hours (2-core CPU; shared jobs counted once)",
            ],
            rows,
        )
        + "\n\nEstimates come from a simple cost model (seconds per training example and per "
        "attack pass measured on a 2-core CPU); a GPU or more cores divide them.\n"
    )


def _task(job: Job, profile: Profile) -> Task:
    payload = {"id": job.id, "kind": job.kind, **job.payload}
    return Task(job.id, JOB_FUNCTION, payload, job.deps, profile.threads, job.cost, job.label)


def render_item(item: Item, results: Results, profile: Profile, out: Path) -> Rendered:
    rendered = item.render(results, profile)
    directory = out / item.name
    directory.mkdir(parents=True, exist_ok=True)
    for name, png in rendered.figures.items():
        atomic_write_bytes(directory / name, png)
    atomic_write_json(
        directory / "data.json", {"item": item.name, "profile": profile.name, "data": rendered.data}
    )
    atomic_write_bytes(directory / f"{item.name}.md", (rendered.markdown + "\n").encode())
    return rendered


def reproduce(
    profile: Profile | str,
    out: str | Path,
    *,
    only: Sequence[str] | None = None,
    engine: Engine | None = None,
    retries: int = 1,
    log: Callable[[str], None] | None = None,
    command: str = "",
) -> dict:
    """Run and render (see the module docstring); returns the index written to
    ``OUT/index.json``. Raises :class:`ReproduceFailed` after rendering when jobs failed."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    profile = PROFILES[profile] if isinstance(profile, str) else profile
    out = Path(out)
    items = select_items(only)
    jobs, per_item = job_grid(items, profile)
    by_id = {j.id: j for j in jobs}
    out.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not j.is_done(out)]
    engine = engine or LocalEngine()
    log(
        f"reproduce ({profile.name}, {engine.name}): {len(items)} item(s), {len(jobs)} jobs, "
        f"{len(todo)} to run -> {out}"
    )
    started = time.perf_counter()
    report = run_tasks(
        [_task(j, profile) for j in todo], str(out), engine, retries=retries, log=log
    )
    seconds = time.perf_counter() - started
    results = Results(out)
    index = {
        "profile": asdict(profile) | {"strong": asdict(profile.strong)},
        "items": {},
        "versions": versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
    }
    for item in items:
        missing = [by_id[i].label for i in per_item[item.name] if not by_id[i].is_done(out)]
        if missing:
            index["items"][item.name] = {"title": item.title, "complete": False, "missing": missing}
            continue
        rendered = render_item(item, results, profile, out)
        index["items"][item.name] = {
            "title": item.title,
            "section": item.section,
            "complete": True,
            "compute_seconds": round(sum(job_seconds(by_id[i], out) for i in per_item[item.name])),
            "claims": [asdict(c) for c in rendered.claims],
            "markdown": f"{item.name}/{item.name}.md",
            "figures": [f"{item.name}/{name}" for name in rendered.figures],
        }
    previous = _read(out / "index.json").get("runs", [])
    index["runs"] = previous + [
        {
            "command": command,
            "engine": engine.name,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "jobs_run": len(report.done),
            "failed": report.failed,
            "blocked": report.blocked,
        }
    ]
    atomic_write_json(out / "index.json", index)
    atomic_write_bytes(out / "summary.md", summary_markdown(index, out).encode())
    if not report.ok:
        raise ReproduceFailed(
            f"{len(report.failed)} job(s) failed and {len(report.blocked)} could not run "
            f"(first: {next(iter(report.failed.items()), ('-', '-'))}); see {out / 'index.json'}"
        )
    return index


def job_seconds(job: Job, out: Path) -> float:
    """The compute a finished job took (training: its epochs' train + eval seconds)."""
    directory = job.directory(out)
    if job.kind == "train":
        metrics = _read(directory / "checkpoint.json").get("metrics", [])
        return sum(m.get("train_seconds", 0) + m.get("eval_seconds", 0) for m in metrics)
    return _read(directory / "result.json").get("job_seconds", 0.0)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def summary_markdown(index: dict, out: Path | None = None, link_prefix: str = "") -> str:
    """The claims of every item beside our numbers, with links to the items' pages."""
    profile = index["profile"]
    total = sum(run["seconds"] for run in index.get("runs", []))
    lines = [
        f"Profile `{profile['name']}`: {profile['epochs']} epochs, width {profile['width']}, "
        f"{profile['seeds_baseline']}/{profile['seeds_rbfi']} runs (ReLU, sigmoid / RBFI), "
        f"{profile['test_limit'] or 10000} test images, the paper's PGD on "
        f"{profile['pgd_limit']} and the strong suite on {profile['strong_limit']}; pixels "
        f"k/{profile.get('pixel_scale', LEGACY_PIXEL_SCALE)}; wall time "
        f"{total / 60:.0f} min over {len(index.get('runs', []))} invocation(s) "
        f"(`{index['runs'][-1]['command'] if index.get('runs') else ''}`).",
        "",
    ]
    timing = [
        [name, f"{item['compute_seconds'] / 60:.1f}"]
        for name, item in index["items"].items()
        if "compute_seconds" in item
    ]
    rows = []
    for item in index["items"].values():
        link = (
            f"[{item['title']}]({link_prefix}{item['markdown']})"
            if item.get("complete")
            else f"{item['title']} (incomplete)"
        )
        for claim in item.get("claims", []):
            verdict = VERDICTS[claim["holds"]]
            rows.append([link, claim["text"], verdict, claim["evidence"], claim.get("reason", "")])
            link = "〃"
        if not item.get("claims"):
            rows.append([link, "–", "–", "–", "–"])
    lines.append(
        table(["item", "the paper's claim", "here", "our numbers [95% CI]", "why"], rows, "lllll")
    )
    lines += ["", VERDICT_NOTE]
    if timing:
        lines += [
            "",
            "Compute per item (minutes, jobs shared between items counted in each):",
            "",
            table(["item", "minutes"], timing),
        ]
    return "\n".join(lines) + "\n"


__all__ = ["ReproduceFailed", "claims_markdown", "estimate", "reproduce", "select_items"]
