"""The README's result sections, generated from the files under ``results/`` (never copied by
hand). Each section sits between two markers::

    <!-- BEGIN GENERATED: NAME -->
    ...
    <!-- END GENERATED: NAME -->

:func:`sections` renders every section from ``results/``; :func:`update_readme` rewrites the
README in place (``rbfi reproduce --readme README.md``); the test suite fails when the README
and the results disagree.

Sections:
- ``paper-quick``: the claims of every item of ``results/paper-quick/index.json``;
- ``robustness``: per model, clean accuracy, the strong suite's worst case and the certified
  accuracy on the same images (``results/robustness/*/robustness.json``), and the certified
  accuracy on the full test set (``results/certify/*/certify.json``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rbfi.experiments.render import table
from rbfi.experiments.reproduce import summary_markdown
from rbfi.io import atomic_write_bytes

MARKER = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.S,
)


def _paper_quick(results: Path) -> str:
    index_path = results / "paper-quick" / "index.json"
    if not index_path.is_file():
        return "(not generated yet: run `rbfi reproduce --profile quick --readme README.md`)\n"
    index = json.loads(index_path.read_text())
    return summary_markdown(index, link_prefix="results/paper-quick/")


def _robustness(results: Path) -> str:
    rows = []
    eps_keys: list[str] = []
    for path in sorted((results / "robustness").glob("*/robustness.json")):
        data = json.loads(path.read_text())
        keys = [k for k in data["worst_case"] if float(k) > 0]
        eps_keys = eps_keys or keys
        certified = data.get("certified") or {}
        cells = [
            f"{100 * data['worst_case'][k]['accuracy']:.1f} / "
            + (f"{100 * certified[k]['accuracy']:.1f}" if k in certified else "–")
            for k in eps_keys
        ]
        full = results / "certify" / path.parent.name / "certify.json"
        full_cells = "–"
        if full.is_file():
            cert = json.loads(full.read_text())
            full_cells = (
                " / ".join(
                    f"{100 * v['accuracy']:.1f}"
                    for k, v in cert["certified"].items()
                    if k in eps_keys
                )
                + f" (clean {100 * cert['clean_accuracy']:.2f}, {cert['n_examples']} images)"
            )
        link = (
            f"[{data['model']['description']}](results/robustness/{path.parent.name}/robustness.md)"
        )
        rows.append(
            [link, path.parent.name, f"{100 * data['clean_accuracy']:.1f}"] + cells + [full_cells]
        )
    if not rows:
        return "(no results/robustness/*/robustness.json yet)\n"
    n = json.loads(next((results / "robustness").glob("*/robustness.json")).read_text())
    headers = ["model", "run", "clean"] + [f"eps {k}: attacks / certified" for k in eps_keys]
    headers.append("certified, full test set (" + " / ".join(eps_keys) + ")")
    return (
        f"Robust accuracy in %: the worst case over the strong attack suite (an upper bound) / "
        f"the certified accuracy from interval bounds (a lower bound) on the first "
        f"{n['n_examples']} test images; the true robust accuracy lies between them.\n\n"
        + table(headers, rows, "l" + "l" + "r" * (len(headers) - 2))
        + "\n"
    )


SECTIONS = {"paper-quick": _paper_quick, "robustness": _robustness}


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
