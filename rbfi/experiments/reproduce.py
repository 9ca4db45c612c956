"""``rbfi reproduce``: the paper's experiment section, and the studies beyond it, from one
command (the items: :mod:`rbfi.experiments.items`).

1. Build the job grid of the chosen items under a profile (jobs are shared between items).
2. Set aside the files of any job that cannot be used (a truncated or corrupt result or
   checkpoint index, weights that fail their checksum): moved to
   ``OUT/jobs/<id>.corrupt-<time>``, said in one line, and the job runs again; nothing is ever
   rendered from a broken file.
3. Run the jobs whose results are missing (an interrupted reproduction resumes), on the local
   engine or on Ray; a failed job is retried, then reported, without losing the others.
4. Render every item whose jobs are all done: ``OUT/<item>/<item>.md``, ``data.json`` and its
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
from rbfi.experiments.items import ITEMS
from rbfi.experiments.profiles import PROFILES, Profile, reductions
from rbfi.experiments.render import VERDICT_NOTE, table, verdict_cell
from rbfi.experiments.spec import Item, Job, Rendered, Results
from rbfi.io import atomic_write_bytes, atomic_write_json, versions
from rbfi.io.provenance import cpu_name
from rbfi.sweeps import Engine, LocalEngine, Task, run_tasks

JOB_FUNCTION = "rbfi.experiments.jobs:run_job"
MAX_CELL = 300  # characters of a cell of the summary's claims table (the item's page has all)


class ReproduceFailed(RuntimeError):
    """Some jobs failed (after their retries); what could be rendered was."""


def select_items(only: Sequence[str] | None) -> list[Item]:
    if not only:
        return list(ITEMS.values())
    unknown = [name for name in only if name not in ITEMS]
    if unknown:
        raise ValueError(f"unknown item(s) {', '.join(unknown)}; choose from {', '.join(ITEMS)}")
    return [ITEMS[name] for name in dict.fromkeys(only)]  # in the order given: run first


def job_grid(items: Sequence[Item], profile: Profile) -> tuple[list[Job], dict[str, list[str]]]:
    """Every job of ``items`` once, item by item (each item's trainings, then its
    evaluations), so that a run stopped early leaves whole items done; and each item's job
    ids."""
    jobs: dict[str, Job] = {}
    per_item = {}
    for item in items:
        item_jobs = item.jobs(profile)
        per_item[item.name] = [j.id for j in item_jobs]
        for job in sorted(item_jobs, key=lambda j: j.kind != "train"):
            jobs.setdefault(job.id, job)
    return list(jobs.values()), per_item


def set_aside_damaged(jobs: Sequence[Job], out: Path, log: Callable[[str], None]) -> list[Path]:
    """Move the directory of every job whose done-marking file cannot be read
    (:meth:`Job.damage`) to ``jobs/<id>.corrupt-<UTC time>`` beside it, with one line each,
    so that the job runs again; returns where they went."""
    moved = []
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for job in jobs:
        damage = job.damage(out)
        if damage is None:
            continue
        directory = job.directory(out)
        target = directory.with_name(f"{directory.name}.corrupt-{stamp}")
        for k in range(2, 1000):
            if not target.exists():
                break
            target = directory.with_name(f"{directory.name}.corrupt-{stamp}-{k}")
        directory.rename(target)
        moved.append(target)
        log(
            f"reproduce: {job.label}: {damage}; moved {directory.relative_to(out)} to "
            f"{target.relative_to(out)}, the job runs again"
        )
    return moved


def weights_file(job: Job, out: Path) -> Path | None:
    """The final weights of a finished training job (None when it has not finished)."""
    saved = _read(job.directory(out) / "checkpoint.json")
    if not job.is_done(out) or "weights" not in saved:
        return None
    return job.directory(out) / saved["weights"]["file"]


def needed_weights(jobs: Sequence[Job], out: Path) -> list[Path]:
    """The weights files of finished trainings that jobs still to run will read: what a
    partial reproduction must keep (or commit) to resume elsewhere."""
    by_id = {j.id: j for j in jobs}
    needed: dict[str, Path] = {}
    for job in jobs:
        if job.is_done(out):
            continue
        for dep in job.deps:
            source = by_id.get(dep)
            path = source and weights_file(source, out)
            if path is not None:
                needed[str(path)] = path
    return sorted(needed.values())


def check_resumable(jobs: Sequence[Job], out: Path) -> None:
    """Refuse (ValueError, one line) to start when a finished training's weights, needed by a
    job still to run, are missing (e.g. a fresh clone of a partial reproduction whose weights
    were not committed)."""
    missing = [p for p in needed_weights(jobs, out) if not p.is_file()]
    if missing:
        raise ValueError(
            f"{len(missing)} finished training job(s) lack the weights that jobs still to run "
            f"need (first: {missing[0]}); restore them, or delete "
            f"{missing[0].parent} to train that net again"
        )


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
        + "\n\nSettings reduced from the `paper` profile's: "
        + ("; ".join(reductions(profile)) or "none")
        + "."
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


def item_entry(item: Item, rendered: Rendered, compute_seconds: int) -> dict:
    """A complete item's entry in ``index.json``: its claims and where its files are (and
    ``"study": true`` for a study beyond the paper, whose claims are ours)."""
    return {
        "title": item.title,
        "section": item.section,
        "complete": True,
        "compute_seconds": compute_seconds,
        "claims": [asdict(c) for c in rendered.claims],
        "markdown": f"{item.name}/{item.name}.md",
        "figures": [f"{item.name}/{name}" for name in rendered.figures],
    } | ({} if item.paper else {"study": True})


def reproduce(
    profile: Profile | str,
    out: str | Path,
    *,
    only: Sequence[str] | None = None,
    engine: Engine | None = None,
    retries: int = 1,
    log: Callable[[str], None] | None = None,
    command: str = "",
    stop_after: float | None = None,
) -> dict:
    """Run and render (see the module docstring); returns the index written to
    ``OUT/index.json``. Raises :class:`ReproduceFailed` after rendering when jobs failed.
    ``stop_after``: seconds; a job starts only if its estimated cost ends within them (running
    ones finish), the rest is deferred: the same call later goes on."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    profile = PROFILES[profile] if isinstance(profile, str) else profile
    out = Path(out)
    items = select_items(only)
    # the whole grid, the chosen items first (in --only order): theirs are the jobs to run, the
    # rest says what is left for the index
    rest = [item for item in ITEMS.values() if item not in items]
    every_job, per_item = job_grid([*items, *rest], profile)
    chosen = {i for item in items for i in per_item[item.name]}
    jobs = [j for j in every_job if j.id in chosen]
    out.mkdir(parents=True, exist_ok=True)
    set_aside_damaged(jobs, out, log)
    check_resumable(jobs, out)
    todo = [j for j in jobs if not j.is_done(out)]
    engine = engine or LocalEngine()
    log(
        f"reproduce ({profile.name}, {engine.name}): {len(items)} item(s), {len(jobs)} jobs, "
        f"{len(todo)} to run -> {out}"
    )
    started = time.perf_counter()
    tasks = [_task(j, profile) for j in todo]
    report = run_tasks(tasks, str(out), engine, retries=retries, log=log, deadline=stop_after)
    run = {
        "command": command,
        "engine": engine.name,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "jobs_run": len(report.done),
        "failed": report.failed,
        "blocked": report.blocked,
        "deferred": len(report.deferred),
    }
    index = build_index(items, profile, out, every_job, per_item, run)
    atomic_write_json(out / "index.json", index)
    atomic_write_bytes(out / "summary.md", summary_markdown(index, out).encode())
    if not report.ok:
        raise ReproduceFailed(
            f"{len(report.failed)} job(s) failed and {len(report.blocked)} could not run "
            f"(first: {next(iter(report.failed.items()), ('-', '-'))}); see {out / 'index.json'}"
        )
    return index


def build_index(
    items: Sequence[Item],
    profile: Profile,
    out: Path,
    every_job: Sequence[Job],
    per_item: dict[str, list[str]],
    run: dict,
) -> dict:
    """``index.json``: every item's entry (the chosen ``items`` rendered where their jobs are
    all done; the complete entries of items rendered by earlier invocations kept), what is
    left to run, and this invocation appended to the runs of the earlier ones."""
    previous = _read(out / "index.json")
    if previous.get("profile", {}).get("name") not in (None, profile.name):
        previous = {}
    by_id, chosen, results = {j.id: j for j in every_job}, {i.name for i in items}, Results(out)
    entries = {}
    for name, item in ITEMS.items():
        kept = previous.get("items", {}).get(name, {})
        missing = [by_id[i].label for i in per_item[name] if not by_id[i].is_done(out)]
        if name not in chosen and kept.get("complete"):
            entries[name] = kept  # rendered by an earlier invocation with another --only
        elif name in chosen and not missing:
            compute = round(sum(job_seconds(by_id[i], out) for i in per_item[name]))
            entries[name] = item_entry(item, render_item(item, results, profile, out), compute)
        else:
            entries[name] = {"title": item.title, "complete": False, "missing": missing}
    left = [j for j in every_job if not j.is_done(out)]
    return {
        "profile": asdict(profile) | {"strong": asdict(profile.strong)},
        "items": entries,
        "versions": versions(),
        "machine": {"platform": platform.platform(), "cpu": cpu_name()},
        "resume": {
            "jobs_left": len(left),
            "hours_left_estimate": round(sum(j.cost for j in left) / 3600, 2),
            "needed_weights": [str(p.relative_to(out)) for p in needed_weights(every_job, out)],
        },
        "runs": previous.get("runs", []) + [run],
    }


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
            else f"{item['title']} (incomplete: {len(item.get('missing', []))} job(s) left)"
        )
        for claim in item.get("claims", []):
            cells = [claim["evidence"], claim.get("reason", "")]
            more = f" (all of it: [the item's page]({link_prefix}{item.get('markdown', '')}))"
            cells = [
                c if len(c) <= MAX_CELL else c[: MAX_CELL - len(more) - 1] + "…" + more
                for c in cells
            ]
            text = claim["text"] + (" (the study's claim)" if item.get("study") else "")
            rows.append([link, text, verdict_cell(claim["holds"]), *cells])
            link = "〃"
        if not item.get("claims"):
            rows.append([link, "–", "–", "–", "–"])
    lines.append(
        table(["item", "the paper's claim", "here", "our numbers [95% CI]", "why"], rows, "lllll")
    )
    lines += ["", VERDICT_NOTE]
    resume = index.get("resume", {})
    if resume.get("jobs_left"):
        lines += [
            "",
            f"**Incomplete:** {resume['jobs_left']} job(s) still to run (about "
            f"{resume['hours_left_estimate']:.1f} h on 2 cores by the cost model); the same "
            "command continues the reproduction, on this machine or on a fresh clone that has "
            "the weights files listed under `resume` in `index.json`.",
        ]
    if timing:
        lines += [
            "",
            "Compute per item (minutes, jobs shared between items counted in each):",
            "",
            table(["item", "minutes"], timing),
        ]
    return "\n".join(lines) + "\n"


__all__ = ["ReproduceFailed", "estimate", "reproduce", "select_items"]
