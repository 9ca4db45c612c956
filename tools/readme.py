"""The README's generated sections, rendered from the files of the repository (never copied by
hand)::

    python -m tools.readme           # rewrite README.md's sections from results/, zoo/, benchmarks/
    python -m tools.readme --check   # exit 1 (naming the stale sections) where they differ

Each section sits between two markers::

    <!-- BEGIN GENERATED: NAME -->
    ...
    <!-- END GENERATED: NAME -->

Sections:
- ``zoo``: the nets of the model zoo from their cards (``zoo/*/card.json``): the README's one
  model table;
- ``verdicts``: per item of ``results/paper-standard/index.json``, how many of the paper's claims
  hold, do not hold or are undecided, linked to the item's page; the claims themselves are in
  ``results/paper-standard/summary.md``;
- ``kernels``: the speed ratios, each the median with the min-max of its per-round ratios, from
  the newest result of each benchmark (``benchmarks/results/*.json`` by their ``benchmark`` key
  and date), with the machine and the command that measured it.

``tests/test_readme.py`` fails when the committed README differs from what this renders.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from rbfi.experiments.render import table
from rbfi.io import atomic_write_bytes
from rbfi.models import zoo
from rbfi.stats import WORDS, accuracy_estimate

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "paper-standard"
MARKER = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.S,
)


# --- the model zoo -------------------------------------------------------------------------------


def zoo_section(root: Path) -> str:
    """One row per net of ``root/zoo``, from its card."""
    folder = root / "zoo"
    cards = [zoo.read_card(name, folder) for name in zoo.names(folder)] if folder.is_dir() else []
    if not cards:
        return "(no nets in zoo/ yet: `python -m tools.make_card RUN --name NAME ...`)\n"
    eps_keys = zoo.CARD_EPS
    attacked = {card["strong_suite"]["n_examples"] for card in cards if card["strong_suite"]}
    rows = []
    for card in cards:
        ev, strong, training = card["evaluation"], card["strong_suite"], card["training"]
        n, minutes = ev["n_examples"], training["wall_seconds"]
        row = [f"[{card['name']}](zoo/{card['name']}/card.json)"]
        row.append(accuracy_estimate(ev["clean_accuracy"], n).text())
        row += [accuracy_estimate(ev["certified"][k], n).text() for k in eps_keys]
        if len(attacked) > 1:
            row.append(str(strong["n_examples"]) if strong else "–")
        row += [
            accuracy_estimate(strong["worst_case"][k], strong["n_examples"]).text()
            if strong
            else "–"
            for k in eps_keys
        ]
        row.append(f"{training['epochs']} ep" + (f", {minutes / 60:.0f} min" if minutes else ""))
        rows.append(row)
    headers = (
        ["net", "clean"]
        + [f"certified {k}" for k in eps_keys]
        + (["images attacked"] if len(attacked) > 1 else [])
        + [f"attacks {k}" for k in eps_keys]
        + ["training"]
    )
    sizes = " / ".join(sorted({f"{c['evaluation']['n_examples']:,}" for c in cards}))
    on = (
        "the first *images attacked* test images"
        if len(attacked) > 1
        else f"the first {next(iter(attacked), 0):,} test images"
    )
    return (
        f"Accuracy in % [95% Clopper-Pearson interval]. *clean* and *certified EPS* (interval "
        f"bounds, a lower bound on the robust accuracy): the first {sizes} test images; "
        f"*attacks EPS*: the worst case over the whole strong attack suite on {on} (an upper "
        "bound). `rbfi zoo show NAME` prints a net's card: its architecture, what it is "
        "for, its training command, time, machine, versions and further attacks.\n\n"
        + table(headers, rows, "l" + "r" * (len(headers) - 1))
        + "\n"
    )


# --- the paper's verdicts ------------------------------------------------------------------------


def verdicts_section(root: Path) -> str:
    """Per item of the standard reproduction: counts of claims that hold, do not hold, are
    undecided; the item linked to its page."""
    folder = root / "results" / PROFILE
    index_path = folder / "index.json"
    if not index_path.is_file():
        return "(not reproduced yet: `rbfi reproduce --profile standard`)\n"
    index = json.loads(index_path.read_text())
    order = (True, False, None)
    rows, totals = [], dict.fromkeys(order, 0)
    for name, item in index["items"].items():
        if not item.get("complete"):
            rows.append([f"{item['title']} (incomplete)", "–", "–", "–"])
            continue
        counts = dict.fromkeys(order, 0)
        for claim in item.get("claims", []):
            counts[claim["holds"]] += 1
            totals[claim["holds"]] += 1
        link = f"results/{PROFILE}/{item.get('markdown', f'{name}/{name}.md')}"
        rows.append([f"[{item['title']}]({link})"] + [str(counts[v]) for v in order])
    rows.append(["**all items**"] + [f"**{totals[v]}**" for v in order])
    minutes = sum(run["seconds"] for run in index.get("runs", [])) / 60
    profile = index["profile"]
    return (
        f"Profile `{profile['name']}` ({profile['epochs']} epochs, width {profile['width']}, "
        f"{profile['seeds_rbfi']} runs per RBFI net; {minutes:.0f} min on a 2-core CPU). A claim "
        "holds or does not hold only when the 95% intervals decide it (else it is undecided, "
        "as is every claim resting on a net that did not train). Each claim with our numbers "
        f"and the reason: [results/{PROFILE}/summary.md](results/{PROFILE}/summary.md).\n\n"
        + table(["item"] + [WORDS[v] for v in order], rows, "lrrr")
        + "\n"
    )


# --- the kernels' speed --------------------------------------------------------------------------

BENCHMARKS = ("kernels", "interval", "certified_step")


def newest_benchmarks(root: Path) -> dict[str, tuple[Path, dict]]:
    """benchmark -> (path, data) of its newest result under ``root/benchmarks/results`` (by the
    date of its machine record); results without a ``benchmark`` key are older formats."""
    newest: dict[str, tuple[Path, dict]] = {}
    for path in sorted((root / "benchmarks" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        kind = data.get("benchmark") if isinstance(data, dict) else None
        if kind in BENCHMARKS and "machine" in data:
            if kind not in newest or data["machine"]["date"] > newest[kind][1]["machine"]["date"]:
                newest[kind] = (path, data)
    return newest


def _machine(m: dict) -> str:
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['threads']} torch threads, C kernel SIMD width "
        f"{m['simd_width']}, torch {m['torch']}"
    )


def _ratio(r: dict, digits: int = 1) -> str:
    """The median ratio with the range of the per-round ratios: "5.1× (4.2-5.4×)"."""
    m, lo, hi = (f"{r[k]:.{digits}f}" for k in ("median", "min", "max"))
    return f"{m}× ({lo}-{hi}×)"


def kernels_section(root: Path) -> str:
    """The speed ratios of the newest kernels, interval and certified-step benchmarks."""
    found = newest_benchmarks(root)
    missing = [k for k in BENCHMARKS if k not in found]
    if missing:
        return (
            f"(not measured yet: {', '.join(missing)}; `python benchmarks/bench_kernels.py "
            "--quick --threads 2`, `bench_interval.py --threads 2` and "
            "`bench_certified_step.py --threads 2` write benchmarks/results/)\n"
        )
    (kp, kernels), (ip, interval), (cp, step) = (found[k] for k in BENCHMARKS)
    first = kernels["machine"]

    def measured(data: dict) -> str:
        m = data["machine"]
        same = data is not kernels and _machine(m) == _machine(first)
        load = m.get("loadavg_before")
        busy = f", load {load[0]:.1f}" if load else ""
        where = "the same machine" if same else _machine(m)
        return f"`{m['command']}` ({where}, {m['date'][:10]}{busy})"

    ratios = kernels["ratios"]
    bounds = " and ".join(
        f"**{_ratio(res['ratios']['bounds_over_forward'])}**"
        + (" the plain forward" if i == 0 else "")
        + f" at batch {batch}"
        for i, (batch, res) in enumerate(interval["batches"].items())
    )
    links = ", ".join(
        f"[{p.stem}.md](benchmarks/results/{p.stem}.md)"
        for p in (kp, ip, cp)
        if p.with_suffix(".md").is_file()
    )
    return (
        f"Medians over {kernels['rounds']}+ rounds, each timing every variant once "
        "(interleaved), with the range of the per-round ratios in brackets; a 1-min load "
        "average above the cores (other work) slows every variant and widens the range. "
        f"Measured by {measured(kernels)}: one training step of the "
        f"paper network {kernels['network']} at batch {kernels['batch']} (forward + "
        f"pseudogradient backward) with the fused kernels is "
        f"**{_ratio(ratios['naive_over_fused'], 0)} faster** than with the naive layer and "
        f"takes **{_ratio(ratios['fused_over_relu'])}** the time of a same-size ReLU MLP. "
        f"By {measured(interval)}: the interval bound pass costs {bounds}. By {measured(step)}: "
        f"a certified training step costs **{_ratio(step['ratios']['certified'])}** a normal "
        f"one (batch {step['batch']})." + (f" Tables: {links}." if links else "") + "\n"
    )


SECTIONS: dict[str, Callable[[Path], str]] = {
    "zoo": zoo_section,
    "verdicts": verdicts_section,
    "kernels": kernels_section,
}


def sections(root: Path = ROOT) -> dict[str, str]:
    """Every section rendered from the repository at ``root``."""
    return {name: render(Path(root)) for name, render in SECTIONS.items()}


def rewrite(text: str, root: Path = ROOT) -> str:
    """``text`` with every generated section replaced by its rendering from ``root``."""
    rendered = sections(root)

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in rendered:
            raise ValueError(f"unknown generated section {name!r}")
        return match.group(1) + rendered[name] + match.group(4)

    return MARKER.sub(replace, text)


def stale(text: str, root: Path = ROOT) -> list[str]:
    """The names of the sections of ``text`` that differ from their rendering."""
    rendered = sections(root)
    return [
        m.group("name")
        for m in MARKER.finditer(text)
        if rendered.get(m.group("name")) != m.group("body")
    ]


def update_readme(readme: Path, root: Path | None = None) -> bool:
    """Rewrite the generated sections of ``readme`` (rendered from the repository it lies in,
    or ``root``); returns whether anything changed."""
    readme = Path(readme)
    text = readme.read_text()
    new = rewrite(text, root or readme.resolve().parent)
    if new != text:
        atomic_write_bytes(readme, new.encode())
    return new != text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.readme", description=__doc__.split("\n")[0])
    ap.add_argument("readme", nargs="?", default=str(ROOT / "README.md"))
    ap.add_argument("--check", action="store_true", help="only say which sections are stale")
    args = ap.parse_args(argv)
    readme = Path(args.readme)
    if not readme.is_file():
        print(f"readme: error: {readme}: no such file", file=sys.stderr)
        return 2
    if args.check:
        names = stale(readme.read_text(), readme.resolve().parent)
        print(f"stale sections: {', '.join(names)}" if names else "up to date")
        return 1 if names else 0
    changed = update_readme(readme)
    print(f"{readme}: {'regenerated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
