"""The README is a front door whose tables are generated (``python -m tools.readme``): the
committed README equals its rendering from the repository, it stays short, and each generated
section says what its sources say (checked here on hand-made sources)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tools.readme import MARKER, main, sections, stale

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_BYTES = 15_000


def test_the_committed_readme_is_what_the_repository_renders():
    """Regenerate with `python -m tools.readme` after changing results, cards or benchmarks."""
    text = README.read_text()
    assert {m.group("name") for m in MARKER.finditer(text)} == {"zoo", "verdicts", "kernels"}
    assert stale(text) == []


def test_the_readme_is_a_short_front_door_in_the_agreed_order():
    text = README.read_text()
    assert len(text.encode()) <= MAX_BYTES
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert len(first_block.splitlines()) == 2  # .ci/run runs exactly these two commands
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == [
        "Set up",
        "Using the units from Python",
        "Command line",
        "Model zoo",
        "The paper's claims, reproduced",
        "Speed of the kernels",
        "Layout",
    ]
    for link in re.findall(r"\]\(((?:docs|results|zoo|benchmarks)/[^)#]*)", text):
        assert (ROOT / link).exists(), link


# --- the verdict counts --------------------------------------------------------------------------


def _index(items: dict) -> dict:
    profile = {"name": "standard", "epochs": 30, "width": 512, "seeds_rbfi": 2}
    return {"profile": profile, "items": items, "runs": [{"seconds": 600}, {"seconds": 1200}]}


def test_verdicts_count_each_items_claims_and_link_its_page(tmp_path):
    claims = [{"holds": h, "text": "c", "evidence": "e"} for h in (True, None, None, False, None)]
    items = {
        "table1": {
            "title": "T1",
            "complete": True,
            "markdown": "table1/table1.md",
            "claims": claims,
        },
        "fig3": {"title": "F3", "complete": True, "markdown": "fig3/fig3.md", "claims": claims[:2]},
        "sec68": {"title": "S68", "complete": False, "missing": ["a", "b"]},
    }
    folder = tmp_path / "results" / "paper-standard"
    folder.mkdir(parents=True)
    (folder / "index.json").write_text(json.dumps(_index(items)))
    body = sections(tmp_path)["verdicts"]
    rows = [line for line in body.splitlines() if line.startswith("| ") and "---" not in line]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert cells[0] == ["item", "holds", "does not hold", "undecided"]
    assert cells[1] == ["[T1](results/paper-standard/table1/table1.md)", "1", "1", "3"]
    assert cells[2] == ["[F3](results/paper-standard/fig3/fig3.md)", "1", "0", "1"]
    assert cells[3] == ["S68 (incomplete)", "–", "–", "–"]
    assert cells[4] == ["**all items**", "**2**", "**1**", "**4**"]
    assert "30 min on a 2-core CPU" in body  # (600 + 1200) s
    assert "(results/paper-standard/summary.md)" in body


def test_verdicts_without_a_reproduction_say_how_to_make_one(tmp_path):
    assert "not reproduced yet" in sections(tmp_path)["verdicts"]


# --- the kernels' speed --------------------------------------------------------------------------

MACHINE = {
    "cpu": "Test CPU 9000",
    "cores": 2,
    "threads": 2,
    "simd_width": 16,
    "torch": "2.13.0+cpu",
    "date": "2026-12-01T15:00:00Z",
    "command": "python benchmarks/bench_kernels.py --quick --threads 2",
}


def _spread(per_round: list[float]) -> dict:
    ordered = sorted(per_round)
    return {"median": ordered[len(ordered) // 2], "min": ordered[0], "max": ordered[-1]}


def _write(root: Path, name: str, data: dict) -> None:
    bench = root / "benchmarks" / "results"
    bench.mkdir(parents=True, exist_ok=True)
    (bench / f"{name}.json").write_text(json.dumps(data))


def _benchmarks(root: Path, certified: list[float], date: str = "2026-12-01T15:00:00Z") -> None:
    _write(
        root,
        "kernels-cpu",
        {
            "benchmark": "kernels",
            "machine": MACHINE,
            "network": "784-512-512-512-10 (^v^v)",
            "batch": 100,
            "rounds": 3,
            "ms": {"fused": {"median": 25.0}},
            "ratios": {
                "naive_over_fused": _spread([80.0, 70.0, 95.0]),
                "fused_over_relu": _spread([5.4, 4.2, 5.1]),
            },
        },
    )
    machine = {**MACHINE, "command": "python benchmarks/bench_interval.py"}
    interval = {"machine": {**machine, "loadavg_before": [5.41, 6.0, 4.7]}}
    interval["batches"] = {
        "100": {"ratios": {"bounds_over_forward": _spread([1.8, 1.7, 1.9])}},
        "1000": {"ratios": {"bounds_over_forward": _spread([2.1, 2.0, 2.3])}},
    }
    _write(root, "interval-cpu", {"benchmark": "interval", **interval})
    step = {
        "benchmark": "certified_step",
        "machine": {**MACHINE, "threads": 1, "date": date, "command": "python bench_step.py"},
        "batch": 100,
        "ratios": {"certified": _spread(certified)},
    }
    _write(root, f"certified-step-{date[:10]}", step)


def test_kernel_sentences_quote_median_ratios_with_their_range(tmp_path):
    _benchmarks(tmp_path, [1.9, 1.8, 2.0])
    text = sections(tmp_path)["kernels"]
    assert "**80× (70-95×) faster** than with the naive layer" in text
    assert "**5.1× (4.2-5.4×)** the time of a same-size ReLU MLP" in text
    assert "**1.8× (1.7-1.9×)** the plain forward at batch 100 and **2.1× (2.0-2.3×)** at" in text
    assert "a certified training step costs **1.9× (1.8-2.0×)** a normal one" in text
    assert "(Test CPU 9000, 2 cores, 2 torch threads, C kernel SIMD width 16" in text
    assert "`python benchmarks/bench_interval.py` (the same machine, 2026-12-01, load 5.4)" in text
    assert text.count(", load ") == 1  # only the interval file records it
    assert "(Test CPU 9000, 2 cores, 1 torch threads" in text  # the step ran on 1 thread
    assert "Tables:" not in text  # no report (.md) beside the JSON files to link to


def test_kernel_sentences_come_from_the_newest_result_of_each_benchmark(tmp_path):
    _benchmarks(tmp_path, [1.9, 1.8, 2.0], date="2026-12-01T15:00:00Z")
    _benchmarks(tmp_path, [3.1, 3.0, 3.3], date="2026-12-03T09:00:00Z")  # a newer file
    _write(tmp_path, "old-format", {"machine": MACHINE, "ratio": 9.9})  # no "benchmark": ignored
    text = sections(tmp_path)["kernels"]
    assert "**3.1× (3.0-3.3×)** a normal one" in text and "1.9× (1.8-2.0×)" not in text
    assert "9.9" not in text


def test_kernel_section_without_results_says_how_to_measure(tmp_path):
    assert "not measured yet" in sections(tmp_path)["kernels"]


# --- the command ---------------------------------------------------------------------------------


def test_check_names_stale_sections_and_the_rewrite_fixes_them(tmp_path, capsys):
    _benchmarks(tmp_path, [1.9, 1.8, 2.0])
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n<!-- BEGIN GENERATED: kernels -->\nold\n<!-- END GENERATED: kernels -->\ntail\n"
    )
    assert main([str(readme), "--check"]) == 1
    assert "stale sections: kernels" in capsys.readouterr().out
    assert main([str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n<!-- BEGIN GENERATED: kernels -->\nMedians over ")
    assert text.endswith("<!-- END GENERATED: kernels -->\ntail\n")
    assert main([str(readme), "--check"]) == 0
    assert main([str(tmp_path / "missing.md")]) == 2
