"""The reproduction: the scheduler (dependencies, retries, failures, progress), content ids,
resuming, local vs Ray (the same numbers), the generated README, bad input."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from rbfi.cli import main
from rbfi.experiments.items import ITEMS
from rbfi.experiments.paper.common import net
from rbfi.experiments.profiles import SMOKE
from rbfi.experiments.reproduce import job_grid
from rbfi.io.provenance import cpu_name
from rbfi.sweeps import LocalEngine, Task, run_tasks

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = "weights-e0001.safetensors"  # a smoke training's weights (1 epoch)
CALLS: list[str] = []


def record(payload: dict, root: Path) -> None:
    """A task function for the scheduler tests: appends its name, fails as told."""
    CALLS.append(payload["name"])
    flaky = Path(root) / f"{payload['name']}.failed-once"
    if payload.get("fail") == "always":
        raise RuntimeError(f"{payload['name']} broke")
    if payload.get("fail") == "once" and not flaky.exists():
        flaky.write_text("x")
        raise RuntimeError("transient")


def task(name: str, deps=(), fail=None) -> Task:
    return Task(name, "tests.test_reproduce:record", {"name": name, "fail": fail}, tuple(deps))


def test_scheduler_runs_dependencies_first_retries_and_reports(tmp_path):
    CALLS.clear()
    lines = []
    tasks = [
        task("eval-a", deps=["train-a"]),
        task("train-a", fail="once"),
        task("train-b", fail="always"),
        task("eval-b", deps=["train-b"]),
        task("other", deps=["done-elsewhere"]),  # a dependency outside the grid is satisfied
    ]
    report = run_tasks(tasks, str(tmp_path), LocalEngine(), retries=1, log=lines.append)
    assert CALLS.index("train-a") < CALLS.index("eval-a")
    assert CALLS.count("train-a") == 2 and CALLS.count("train-b") == 2
    assert sorted(report.done) == ["eval-a", "other", "train-a"]
    assert report.failed == {"train-b": "RuntimeError: train-b broke"}
    assert report.blocked == ["eval-b"] and not report.ok
    assert all(
        "done" in line and "running" in line and "left" in line and "ETA" in line for line in lines
    )
    assert any("retrying" in line for line in lines) and any("FAILED" in line for line in lines)


def test_scheduler_deadline_starts_only_what_fits_and_defers_the_rest(tmp_path):
    CALLS.clear()
    tasks = [
        replace(task("small"), cost=1.0),
        replace(task("big"), cost=100.0),  # would end after the deadline
        replace(task("after-big", deps=["big"]), cost=1.0),
        replace(task("other"), cost=1.0),
    ]
    lines = []
    report = run_tasks(tasks, str(tmp_path), LocalEngine(), deadline=10.0, log=lines.append)
    assert CALLS == ["small", "other"] and sorted(report.done) == ["other", "small"]
    assert sorted(report.deferred) == ["after-big", "big"]
    assert report.ok and not report.failed and not report.blocked
    assert any("deferred" in line for line in lines)
    CALLS.clear()
    report = run_tasks(tasks, str(tmp_path), LocalEngine(), deadline=0.0, log=lines.append)
    assert CALLS == [] and len(report.deferred) == 4


def test_stopped_reproduction_resumes_on_a_fresh_copy_with_the_listed_weights(tmp_path, capsys):
    """--stop-after ends a run at a job boundary; index.json lists the weights the jobs left
    need; a copy without them is refused in one line (exit 2); a copy with only them finishes
    with the numbers of an uninterrupted run."""
    from rbfi.experiments.reproduce import reproduce

    straight = tmp_path / "straight"
    reproduce("smoke", straight, only=["sec68"], log=lambda line: None)
    sliced = tmp_path / "sliced"
    # 0.05 s: the first training (estimated 0.002-0.007 s) starts, nothing after it fits
    index = reproduce("smoke", sliced, only=["sec68"], log=lambda line: None, stop_after=0.05)
    run = index["runs"][-1]
    assert run["jobs_run"] >= 1 and run["deferred"] >= 1 and not run["failed"]
    assert not index["items"]["sec68"]["complete"] and index["resume"]["jobs_left"] > 0
    needed = index["resume"]["needed_weights"]
    jobs, _ = job_grid([ITEMS["sec68"]], SMOKE)
    finished = [j for j in jobs if j.kind == "train" and j.is_done(sliced)]
    assert finished and len(needed) == len(finished)  # each finished net's evals are pending
    assert all((sliced / p).is_file() and p.endswith(".safetensors") for p in needed)

    def fresh_copy(name: str, keep: list[str]) -> Path:
        copy = tmp_path / name
        shutil.copytree(sliced, copy)
        for path in copy.rglob("*.safetensors"):
            if str(path.relative_to(copy)) not in keep:
                path.unlink()
        return copy

    bare = fresh_copy("bare", [])
    argv = ["reproduce", "--profile", "smoke", "--only", "sec68", "--out"]
    capsys.readouterr()
    assert main([*argv, str(bare)]) == 2
    err = capsys.readouterr().err.strip()
    assert "lack the weights" in err and len(err.splitlines()) == 1
    resumed = fresh_copy("resumed", needed)
    assert main([*argv, str(resumed)]) == 0
    assert read_numbers(resumed) == read_numbers(straight)
    assert json.loads((resumed / "index.json").read_text())["resume"]["jobs_left"] > 0  # others


def test_job_ids_follow_content_not_labels():
    a = net(SMOKE, "relu", 0, label="one name")
    b = net(SMOKE, "relu", 0, label="another name")
    c = net(SMOKE, "relu", 1)
    assert a.id == b.id != c.id
    jobs, per_item = job_grid(list(ITEMS.values()), SMOKE)
    assert len({j.id for j in jobs}) == len(jobs)
    table1_relu = net(SMOKE, "relu", 0).id
    assert table1_relu in per_item["table1"] and table1_relu in per_item["table4"]  # shared


def read_numbers(out: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text())["data"] for p in out.glob("*/data.json")}


def test_smoke_reproduction_resumes(tmp_path, capsys):
    """Two items of the smoke profile in-process, then again (nothing reruns), then one job's
    result removed (only it reruns, to the same numbers). That a local Ray instance gives the
    same numbers is checked by .ci/run (step 4), not here."""
    only = "sec68,table3"
    local = tmp_path / "local"
    assert main(["reproduce", "--profile", "smoke", "--only", only, "--out", str(local)]) == 0
    out = capsys.readouterr()
    assert "2 of 2 items rendered" in out.err and "the paper's claim" in out.out
    assert (local / "sec68" / "sec68.md").is_file() and (local / "summary.md").is_file()
    first = read_numbers(local)
    results = sorted(local.glob("jobs/*/result.json"))
    stamp = {p: p.stat().st_mtime_ns for p in local.glob("jobs/*/*")}
    assert main(["reproduce", "--profile", "smoke", "--only", only, "--out", str(local)]) == 0
    assert "0 to run" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in local.glob("jobs/*/*")} == stamp
    results[0].unlink()
    assert main(["reproduce", "--profile", "smoke", "--only", only, "--out", str(local)]) == 0
    assert "1 to run" in capsys.readouterr().err
    assert read_numbers(local) == first
    index = json.loads((local / "index.json").read_text())
    assert len(index["runs"]) == 3 and index["items"]["sec68"]["complete"]
    assert index["machine"]["cpu"] == cpu_name()


@pytest.mark.parametrize("victim", ["checkpoint.json", WEIGHTS, "result.json"])
def test_a_corrupt_job_file_is_set_aside_and_its_job_runs_again(tmp_path, capsys, victim):
    """A truncated checkpoint index or weights file (a training job) or result (an evaluation):
    the next reproduction moves that job's directory to jobs/<id>.corrupt-<time>, says so in
    one line, runs the job again and renders the numbers of the first run; nothing renders from
    the broken file."""
    argv = ["reproduce", "--profile", "smoke", "--only", "sec68", "--out", str(tmp_path)]
    assert main(argv) == 0
    first = read_numbers(tmp_path)
    path = sorted(tmp_path.glob(f"jobs/*/{victim}"))[0]
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # cut off mid-write
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if ".corrupt-" in line]
    assert len(lines) == 1 and "runs again" in lines[0] and path.parent.name in lines[0]
    aside = list(tmp_path.glob(f"jobs/{path.parent.name}.corrupt-*"))
    assert len(aside) == 1 and (aside[0] / victim).read_bytes() == whole[: len(whole) // 2]
    assert "1 to run" in err  # the job set aside; a retrained net's evaluations are kept
    if victim == WEIGHTS:
        assert path.read_bytes() == whole  # the same net trained again (bit-identical on CPU)
    else:
        assert json.loads(path.read_text())  # whole again
    assert read_numbers(tmp_path) == first


def test_estimate_lists_every_item(capsys, tmp_path):
    assert (
        main(["reproduce", "--profile", "paper", "--estimate-only", "--out", str(tmp_path / "p")])
        == 0
    )
    printed = capsys.readouterr().out
    for name in ITEMS:
        assert f"| {name} |" in printed
    assert "**total**" in printed and not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--profile", "huge"], "--profile: expected one of"),
        (["--only", "table9"], "unknown item(s) table9"),
        (["--out", "{afile}"], "exists and is not a directory"),
        (["--retries", "-1"], "non-negative integer"),
    ],
)
def test_bad_reproduce_options(tmp_path, capsys, argv, fragment):
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = [a.format(afile=afile, missing=tmp_path / "nope.md") for a in argv]
    assert main(["reproduce", *argv, "--estimate-only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rbfi: error:") and fragment in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_table1_verdicts_need_intervals_and_trained_nets():
    """Hand-made numbers: the quick profile's "keeps above 90% under corrected PGD" rests on
    84/100 (95% CI 75.3-90.6 contains 90): undecided; the same rate on 10,000 images does not
    hold; a claim resting on an under-trained sigmoid net is undecided and names it."""
    from rbfi.experiments.paper.table1 import COLUMNS, Table1
    from rbfi.stats import Doubt, proportion

    def estimates(rbfi_pgd, n):
        out = {}
        for arch, rate in (("relu", 0), ("sigmoid", 0), ("rbfi", rbfi_pgd)):
            out[arch] = {key: proportion(round(rate * n), n) for key in COLUMNS}
            out[arch]["clean"] = proportion(
                round({"relu": 0.974, "sigmoid": 0.78}.get(arch, 0.946) * n), n
            )
        return out

    healthy = {"all runs": [], "first runs": []}
    pgd_claim = "under PGD, corrected, where ReLU and sigmoid fall below 2%, RBFI keeps above 90%"
    claims = {c.text: c for c in Table1.claims(estimates(0.84, 100), healthy)}
    pgd = claims[pgd_claim]
    assert pgd.holds is None and "undecided: n = 100: 95% CI 75.3-90.6 contains 90" in pgd.details
    assert pgd.reason.startswith("3 of 3 parts undecided, first: ")  # ReLU's 0 of 100 too
    claims = {c.text: c for c in Table1.claims(estimates(0.84, 10_000), healthy)}
    pgd = claims[pgd_claim]
    assert pgd.holds is False
    clean = claims["RBFI matches sigmoid in clean accuracy and is slightly below ReLU"]
    assert clean.holds is False  # 94.6 vs 78.0 on 10,000 images: more than 1 point apart
    sigmoid = Doubt("Sigmoid", "under-trained", "clean 78.0 < floor 95")
    doubts = {"all runs": [sigmoid], "first runs": []}
    claims = {c.text: c for c in Table1.claims(estimates(0.84, 10_000), doubts)}
    clean = claims[clean.text]
    assert clean.holds is None and clean.reason.startswith("rests on Sigmoid under-trained")
    assert "in doubt: Sigmoid under-trained (clean 78.0 < floor 95)" in clean.details
    barely = claims["FGSM and I-FGSM barely affect RBFI; even noise is a stronger attack on it"]
    assert "Sigmoid" not in barely.reason  # rests on the RBFI runs only


def rerender_committed(root: Path) -> tuple[dict, list[str]]:
    """Re-render every complete item of the committed reproduction in ``root`` whose jobs, under
    the profile its index recorded (name and pixel scale), are all there; check that it gives
    the committed claims, that every claim states its reason, and that no decided claim rests
    on an interval containing its threshold or on a net in doubt. Returns the index and the
    items checked."""
    from rbfi.experiments.spec import Results
    from tools.rerender import recorded_profile

    index = json.loads((root / "index.json").read_text())
    profile = recorded_profile(index)
    checked = []
    for name, entry in index["items"].items():
        if not entry.get("complete"):
            continue
        if not all(j.is_done(root) for j in ITEMS[name].jobs(profile)):
            continue  # made under an older job grid: it can be read, not re-rendered
        claims = [asdict(c) for c in ITEMS[name].render(Results(root), profile).claims]
        assert claims == entry["claims"], name
        for c in claims:
            assert c["reason"], (name, c["text"])  # every claim says why, decided or not
            if c["holds"] is not None:
                assert " contains " not in c["reason"] and "rests on" not in c["reason"]
                assert not any(d.startswith("in doubt") for d in c["details"]), c["text"]
        checked.append(name)
    return index, checked


def test_committed_quick_verdicts_are_what_the_code_decides():
    """results/paper-quick re-rendered from its committed JSON (under the profile and pixel
    scale its index recorded) gives the committed claims (:func:`rerender_committed`); the two
    Table 1 verdicts of issue 15 are undecided with their reasons."""
    index, checked = rerender_committed(ROOT / "results" / "paper-quick")
    assert "table1" in checked
    pgd, clean = (
        next(c for c in index["items"]["table1"]["claims"] if c["text"].startswith(start))
        for start in ("under PGD, corrected", "RBFI matches sigmoid")
    )
    assert pgd["holds"] is None and pgd["reason"].startswith("rests on ")
    assert "undecided: n = 100: 95% CI 75.3-90.6 contains 90" in pgd["details"]
    assert clean["holds"] is None and clean["reason"].startswith("rests on ")
    assert "Sigmoid under-trained" in clean["reason"]
    assert any("Sigmoid under-trained (seed 0: clean 75.9" in d for d in clean["details"])


# items of the committed standard reproduction whose job grid changed since it ran (their
# rendering stays that of the run until the same command runs the new jobs)
AWAITING_RERUN: dict[str, str] = {}  # none: Figure 3 and Sec. 6.9 were rerun


def test_committed_standard_verdicts_are_what_the_code_decides():
    """Every complete item of results/paper-standard re-renders from the committed JSON to the
    committed claims (:func:`rerender_committed`), but those whose jobs changed since
    (:data:`AWAITING_RERUN`); the weights the jobs left need are in the repository."""
    root = ROOT / "results" / "paper-standard"
    index, checked = rerender_committed(root)
    complete = [name for name, item in index["items"].items() if item["complete"]]
    assert set(complete) - set(checked) <= set(AWAITING_RERUN)  # the rest all re-rendered
    assert "baselines" in checked and "table1" in checked
    assert all((root / path).is_file() for path in index["resume"]["needed_weights"])


def test_summary_cells_are_short_and_the_details_on_the_items_pages():
    """Every cell of the committed summaries' claims tables is at most MAX_CELL characters (the
    McNemar pairs and the doubts are on the item's page); a longer cell is cut with a link to
    the item's page."""
    from rbfi.experiments.reproduce import MAX_CELL, summary_markdown

    for name in ("paper-quick", "paper-standard"):
        root = ROOT / "results" / name
        index = json.loads((root / "index.json").read_text())
        summary = (root / "summary.md").read_text()
        assert summary == summary_markdown(index, root)
        rows = [line for line in summary.splitlines() if line.startswith("| ")]
        cells = [cell.strip() for row in rows for cell in row.strip("|").split(" | ")]
        assert max(map(len, cells)) <= MAX_CELL
        for entry in index["items"].values():
            if entry.get("complete"):
                page = (root / entry["markdown"]).read_text()
                for claim in entry["claims"]:
                    assert all(detail in page for detail in claim.get("details", []))
    long = "x" * 1000
    claim = {"text": "t", "holds": None, "evidence": long, "reason": "short", "details": []}
    item = {"title": "T", "complete": True, "claims": [claim], "markdown": "t/t.md"}
    index = {"profile": asdict(SMOKE), "items": {"t": item}, "runs": []}
    row = next(line for line in summary_markdown(index).splitlines() if "| t |" in line)
    evidence = row.split(" | ")[3]
    assert len(evidence) <= MAX_CELL and "(t/t.md)" in evidence and "| short |" in row


def test_compare_verdicts_marks_only_real_changes(tmp_path, capsys):
    """tools.compare_verdicts on two hand-made indexes: a flip is marked, an unchanged verdict and
    an item B has not completed are not; B's reason is shown (never its evidence); a missing
    index is a one-line error, exit 2."""
    from tools.compare_verdicts import main as compare

    def index(out: Path, items: dict) -> Path:
        out.mkdir()
        (out / "index.json").write_text(json.dumps({"items": items}))
        return out

    def claim(text, holds, reason="", evidence=""):
        return {"text": text, "holds": holds, "reason": reason, "evidence": evidence}

    a = index(
        tmp_path / "a",
        {
            "t1": {"complete": True, "claims": [claim("x", None), claim("y", True)]},
            "f3": {"complete": True, "claims": [claim("z", False)]},
            "t2": {"complete": True, "claims": [claim("w", None)]},
        },
    )
    b = index(
        tmp_path / "b",
        {
            "t1": {
                "complete": True,
                "claims": [
                    claim("x", False, "n = 9 | CI 1-2 below 3", "k = 1"),
                    claim("y", True, "n = 9: CI 5-9 above 3", "k = 7"),
                ],
            },
            "f3": {"complete": False, "claims": []},
            "t2": {"complete": True, "claims": []},
        },
    )
    assert compare([str(a), str(b), "--out", str(tmp_path / "v.md")]) == 0
    rows = {line.split(" | ")[1]: line for line in capsys.readouterr().out.splitlines()[2:-2]}
    assert "| undecided | does not hold | **yes** | n = 9 / CI 1-2 below 3 |" in rows["x"]
    assert "| holds | holds |  | n = 9: CI 5-9 above 3 |" in rows["y"]  # the reason, never evidence
    assert "k = 1" not in rows["x"] and "k = 7" not in rows["y"]
    assert "| does not hold | not run |  |" in rows["z"]
    assert "| undecided | missing |  |" in rows["w"]  # a claim one side lacks is no change
    assert (tmp_path / "v.md").read_text().endswith("1 verdict(s) changed between a and b.\n")
    assert compare([str(a), str(tmp_path / "nowhere")]) == 2
    assert "index.json not found" in capsys.readouterr().err


def test_committed_verdict_comparison_is_current():
    """results/paper-standard/verdicts-vs-quick.md is what tools.compare_verdicts prints for the
    committed indexes (regenerate it after each slice)."""
    from tools.compare_verdicts import table

    results = ROOT / "results"
    committed = (results / "paper-standard" / "verdicts-vs-quick.md").read_text()
    assert committed == table(results / "paper-quick", results / "paper-standard")


def test_rerender_rewrites_only_the_rendering_and_refuses_missing_jobs(tmp_path, capsys):
    """tools.rerender on a copy of quick's Table 2: stale claims and Markdown are rewritten from
    the job results, what records the run (runs, compute_seconds, profile) is kept; an item whose
    jobs are absent is a one-line error, exit 2, and leaves index.json untouched."""
    from tools.rerender import main as rerender
    from tools.rerender import recorded_profile

    source = ROOT / "results" / "paper-quick"
    out = tmp_path / "quick"
    index = json.loads((source / "index.json").read_text())
    for job in ITEMS["table2"].jobs(recorded_profile(index)):
        shutil.copytree(job.directory(source), job.directory(out))
    fresh = json.loads(json.dumps(index))
    index["items"]["table2"]["claims"][0]["holds"] = True  # stale: as if an old test decided it
    (out / "index.json").write_text(json.dumps(index))
    (out / "table2").mkdir()
    (out / "table2" / "table2.md").write_text("stale\n")
    assert rerender([str(out), "table2"]) == 0
    after = json.loads((out / "index.json").read_text())
    assert after == fresh  # the committed index is what the current code renders
    assert (out / "table2" / "table2.md").read_text() == (source / "table2/table2.md").read_text()
    assert "best minus worst kind: 64 units" in (out / "summary.md").read_text()
    capsys.readouterr()
    assert rerender([str(out), "table3"]) == 2  # its jobs were not copied
    error = capsys.readouterr().err.strip()
    assert error.startswith("rerender: table3:") and "\n" not in error
    assert json.loads((out / "index.json").read_text()) == fresh
    index_file = next(out.glob("jobs/*/checkpoint.json"))
    index_file.write_text(index_file.read_text()[:100])  # truncated: never rendered from
    assert rerender([str(out), "table2"]) == 2
    error = capsys.readouterr().err.strip()
    assert "corrupt checkpoint index" in error and "\n" not in error
    assert json.loads((out / "index.json").read_text()) == fresh
