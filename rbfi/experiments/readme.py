"""The README's result sections, generated from the files under ``results/`` (never copied by
hand). Each section sits between two markers::

    <!-- BEGIN GENERATED: NAME -->
    ...
    <!-- END GENERATED: NAME -->

:func:`sections` renders every section from ``results/``; :func:`update_readme` rewrites the
README in place (``rbfi reproduce --readme README.md``); the test suite fails when the README
and the results disagree.

Sections:
- ``paper-standard``: the claims of every item of ``results/paper-standard/index.json``,
  incomplete items named with the jobs they lack;
- ``zoo``: the nets of the model zoo from their cards (``zoo/*/card.json``);
- ``robustness``: per model, clean accuracy, the strong suite's worst case and the certified
  accuracy on the same images (``results/robustness/*/robustness.json``), and the certified
  accuracy on the full test set (``results/certify/*/certify.json``);
- ``kernels``: the kernel speed ratios and the machine they were measured on
  (``benchmarks/results/kernels-cpu.json`` and ``interval-cpu.json``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rbfi.evaluation.results import row_flags
from rbfi.experiments.render import table
from rbfi.experiments.reproduce import summary_markdown
from rbfi.io import atomic_write_bytes
from rbfi.models import zoo
from rbfi.stats import Estimate, accuracy_estimate, proportion

MARKER = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.S,
)


def _paper_standard(results: Path) -> str:
    """Every item's claims and verdicts from ``results/paper-standard/index.json``."""
    index_path = results / "paper-standard" / "index.json"
    if not index_path.is_file():
        return "(not generated yet: run `rbfi reproduce --profile standard --readme README.md`)\n"
    index = json.loads(index_path.read_text())
    return summary_markdown(index, link_prefix="results/paper-standard/")


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _accuracy(data: dict | None, section: str, eps: str) -> Estimate | None:
    """``data[section][eps]`` as k of n with its 95% interval (k from the per-example flags,
    else from the accuracy), or None where the file, section or eps is missing."""
    entry = ((data or {}).get(section) or {}).get(eps)
    if not entry:
        return None
    try:
        right = row_flags(entry)
    except ValueError:  # a row without per-example flags: k from the accuracy
        right = []
    if right:
        return proportion(sum(right), len(right))
    return accuracy_estimate(entry["accuracy"], data["n_examples"])


def _clean(data: dict) -> Estimate:
    """Clean accuracy as k of n (from the predictions where the file holds them)."""
    if "clean_predictions" in data and "labels" in data:
        right = sum(p == y for p, y in zip(data["clean_predictions"], data["labels"]))
        return proportion(right, len(data["labels"]))
    return accuracy_estimate(data["clean_accuracy"], data["n_examples"])


def _cell(estimate: Estimate | None) -> str:
    return "–" if estimate is None else estimate.text()


def _robustness(results: Path) -> str:
    """One row per run name under ``results/robustness/`` or ``results/certify/``."""
    names = sorted(
        {p.parent.name for p in (results / "robustness").glob("*/robustness.json")}
        | {p.parent.name for p in (results / "certify").glob("*/certify.json")}
    )
    if not names:
        return "(no results/robustness/*/robustness.json or results/certify/*/certify.json yet)\n"
    runs = {
        name: (
            _read_json(results / "robustness" / name / "robustness.json"),
            _read_json(results / "certify" / name / "certify.json"),
        )
        for name in names
    }
    eps_keys = sorted(
        {k for attack, _ in runs.values() if attack for k in attack["worst_case"] if float(k) > 0}
        | {k for _, cert in runs.values() if cert for k in cert["certified"]},
        key=float,
    )
    rows = []
    for name, (attack, cert) in runs.items():
        model = (attack or cert)["model"]["description"]
        link = (
            f"results/robustness/{name}/robustness.md"
            if attack
            else f"results/certify/{name}/certify.md"
        )
        row = [f"[{model}]({link})", name]
        row.append(_clean(cert).text() if cert else "–")
        row += [_cell(_accuracy(cert, "certified", k)) for k in eps_keys]
        row.append(str(attack["n_examples"]) if attack else "–")
        row += [
            f"{_cell(_accuracy(attack, 'worst_case', k))} / "
            f"{_cell(_accuracy(attack, 'certified', k))}"
            if attack and k in attack["worst_case"]
            else "–"
            for k in eps_keys
        ]
        rows.append(row)
    headers = (
        ["model", "run", "clean"]
        + [f"certified {k}" for k in eps_keys]
        + ["images attacked"]
        + [f"{k}: attacks / certified" for k in eps_keys]
    )
    certified_on = " / ".join(
        sorted({f"{cert['n_examples']:,}" for _, cert in runs.values() if cert})
    )
    return (
        f"Accuracy in % [95% Clopper-Pearson interval]. *clean* and *certified EPS*: the "
        f"first {certified_on} test images, "
        "certified by interval bounds (a lower bound on the robust accuracy; `rbfi certify`). "
        "*EPS: attacks / certified*: on the first *images attacked* test images, the worst case "
        "over the strong attack suite (an upper bound; `rbfi attack`) beside the certified "
        "accuracy on the same images: the true robust accuracy lies between them.\n\n"
        + table(headers, rows, "ll" + "r" * (len(headers) - 2))
        + "\n"
    )


def _zoo(results: Path) -> str:
    """One row per net of the model zoo (``zoo/`` beside ``results/``), from its card."""
    root = results.parent / "zoo"
    cards = [zoo.read_card(name, root) for name in zoo.names(root)] if root.is_dir() else []
    if not cards:
        return "(no nets in zoo/ yet: `python -m tools.make_card RUN --name NAME ...`)\n"
    eps_keys = zoo.CARD_EPS
    rows = []
    for card in cards:
        ev, strong, training = card["evaluation"], card["strong_suite"], card["training"]
        n, minutes = ev["n_examples"], training["wall_seconds"]
        row = [f"[{card['name']}](zoo/{card['name']}/card.json)", card["model"]]
        row.append(accuracy_estimate(ev["clean_accuracy"], n).text())
        row += [accuracy_estimate(ev["certified"][k], n).text() for k in eps_keys]
        row.append(str(strong["n_examples"]) if strong else "–")
        row += [
            accuracy_estimate(strong["worst_case"][k], strong["n_examples"]).text()
            if strong
            else "–"
            for k in eps_keys
        ]
        row.append(
            "; ".join(
                f"{', '.join(o['attacks'])} on {o['n_examples']}: "
                + " / ".join(
                    f"{100 * o['worst_case'][k]:.1f}" if k in o["worst_case"] else "–"
                    for k in eps_keys
                )
                for o in card.get("other_attacks", [])
            )
            or "–"
        )
        row.append(f"{training['epochs']} ep" + (f", {minutes / 60:.0f} min" if minutes else ""))
        row.append(card["description"])
        rows.append(row)
    headers = (
        ["net", "model", "clean"]
        + [f"certified {k}" for k in eps_keys]
        + ["images attacked"]
        + [f"strong suite {k}" for k in eps_keys]
        + [f"other attacks ({' / '.join(eps_keys)})", "training", "what"]
    )
    sizes = " / ".join(sorted({f"{c['evaluation']['n_examples']:,}" for c in cards}))
    return (
        f"Accuracy in % [95% Clopper-Pearson interval]. *clean* and *certified EPS* (interval "
        f"bounds): the first {sizes} test images; *strong suite EPS*: the worst case over the "
        "strong attack suite on the first *images attacked* test images (an upper bound on the "
        "robust accuracy); *other attacks*: where the whole suite was not run, the worst case of "
        "the attacks named, on the first N test images. Load a net with "
        '`rbfi.load("zoo:NAME")`; `rbfi zoo show NAME` prints its card (training command, time, '
        "machine, versions).\n\n"
        + table(headers, rows, "ll" + "r" * (len(headers) - 5) + "lrl")
        + "\n"
    )


def _machine(m: dict) -> str:
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['threads']} torch threads, C kernel SIMD width "
        f"{m['simd_width']}, torch {m['torch']}, {m['date'][:10]}"
    )


def _per_batch(ratios: list[tuple[str, str]], what: str) -> str:
    """[("1.7×", "100"), ("2.0×", "1000")] -> "1.7× WHAT at batch 100 and 2.0× at batch 1000"."""
    parts = [
        f"{r} {what} at batch {b}" if i == 0 else f"{r} at batch {b}"
        for i, (r, b) in enumerate(ratios)
    ]
    return " and ".join(parts)


def _kernels(results: Path) -> str:
    """The kernel speed ratios, from ``benchmarks/results/{kernels,interval}-cpu.json`` (beside
    ``results/``), with the machine and the command that measured them."""
    bench = results.parent / "benchmarks" / "results"
    kernels = _read_json(bench / "kernels-cpu.json")
    interval = _read_json(bench / "interval-cpu.json")
    if not (kernels and interval and "machine" in kernels and "machine" in interval):
        return (
            "(not measured yet: `python benchmarks/bench_kernels.py --quick --threads 2` and "
            "`python benchmarks/bench_interval.py --threads 2` write benchmarks/results/)\n"
        )
    km, im = kernels["machine"], interval["machine"]
    ms = kernels["median_ms"]
    per_batch = {b: r["median_ms"] for b, r in interval["batches"].items()}
    bounds = [(f"**{t['bounds'] / t['forward']:.1f}×**", b) for b, t in per_batch.items()]
    certified = [(f"{t['certified'] / t['train']:.1f}×", b) for b, t in per_batch.items()]
    same = _machine(km) == _machine(im)
    return (
        f"Measured by `{km['command']}` ({_machine(km)}): one training step of the paper "
        f"network {kernels['network']} at batch {kernels['batch']} (forward + pseudogradient "
        f"backward) takes {ms['fused']:.1f} ms with the fused kernels, "
        f"**{ms['naive'] / ms['fused']:.0f}× faster** than the naive layer "
        f"({ms['naive']:.0f} ms) and **{ms['fused'] / ms['relu']:.1f}×** the time of a "
        f"same-size ReLU MLP ({ms['relu']:.1f} ms). Measured by `{im['command']}`"
        + (" on the same machine" if same else f" ({_machine(im)})")
        + f": the whole interval bound pass costs {_per_batch(bounds, 'the plain forward')}; "
        f"a certified training step costs {_per_batch(certified, 'a plain one')}. Tables: "
        "[kernels-cpu.md](benchmarks/results/kernels-cpu.md), "
        "[interval-cpu.md](benchmarks/results/interval-cpu.md).\n"
    )


SECTIONS = {
    "paper-standard": _paper_standard,
    "robustness": _robustness,
    "zoo": _zoo,
    "kernels": _kernels,
}


def sections(results: Path) -> dict[str, str]:
    return {name: render(Path(results)) for name, render in SECTIONS.items()}


def rewrite(text: str, results: Path) -> str:
    """``text`` with every generated section replaced by its rendering from ``results``."""
    rendered = sections(results)

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in rendered:
            raise ValueError(f"unknown generated section {name!r}")
        return match.group(1) + rendered[name] + match.group(4)

    return MARKER.sub(replace, text)


def update_readme(readme: Path, results: Path | None = None) -> bool:
    """Rewrite the generated sections of ``readme`` (results default: ``results/`` beside it).
    Returns whether anything changed."""
    readme = Path(readme)
    text = readme.read_text()
    new = rewrite(text, results or readme.parent / "results")
    if new != text:
        atomic_write_bytes(readme, new.encode())
    return new != text


def main(argv: list[str] | None = None) -> int:
    """``python -m rbfi.experiments.readme [README.md]``: regenerate the sections from
    ``results/`` without running anything."""
    args = sys.argv[1:] if argv is None else argv
    readme = Path(args[0] if args else "README.md")
    if not readme.is_file():
        print(f"readme: {readme}: no such file", file=sys.stderr)
        return 2
    changed = update_readme(readme)
    print(f"{readme}: {'regenerated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
