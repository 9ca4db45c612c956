"""The reports of a robustness evaluation: ``robustness.json`` (checked against
:data:`ROBUSTNESS_SCHEMA`), ``robustness.md`` (a table: attacks x eps, the worst case and the
certified lower bound last) and ``robustness.png`` (accuracy vs eps by attack family)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from rbfi.attacks.suites import TITLES
from rbfi.evaluation.results import BITS, CERTIFIED_ROW, EPS_KEY, header_schema
from rbfi.io import atomic_write_bytes
from rbfi.io.schema import AnyValue, Bool, Int, List, Map, Nullable, Num, Obj, Str
from rbfi.models.zoo import recorded_ref

RESULT_FILES = ("robustness.json", "robustness.md", "robustness.png")
FAMILY_TITLES = {
    "paper": "the paper's attacks",
    "white-box": "adaptive, true gradients",
    "bpda": "adaptive, pseudogradients (BPDA)",
    "black-box": "black-box",
}

_OUTCOME = Obj(
    {"accuracy": Num(0, 1), "correct": BITS},  # '1' where still correctly classified
    {
        "seconds": Num(min=0),
        "attacked": Int(min=0),
        "seed": Int(min=0),
        "zero_gradient": Int(min=0),
        "gradient_l1_median": Num(min=0),
        "restart_successes": List(Int(min=0)),
        "source_success": Int(min=0),
        "package_warnings": Map(Int(min=1)),
    },
)
ROBUSTNESS_SCHEMA = Obj(
    {
        **header_schema(
            "rbfi-robustness",
            3,
            Obj(
                {
                    "suite": Str(choices=("paper", "strong")),
                    "eps": List(Num(0, 1), min_len=1),
                    "batch_size": Int(min=1),
                    "seed": Int(min=0),
                    "attacks": Nullable(List(Str())),
                    "check_subset": Int(min=0),
                    "certify": Bool(),
                    "options": Map(AnyValue()),
                },
                {"pixel_scale": Nullable(Int(255, 256))},
            ),
        ),
        "transfer_source": Nullable(Str()),
        "eps": List(Num(0, 1), min_len=1),
        "attacks": List(
            Obj(
                {
                    "name": Str(),
                    "family": Str(choices=tuple(FAMILY_TITLES)),
                    "kind": Str(choices=("white-box", "black-box")),
                    "gradient": Str(choices=("true", "pseudo", "-")),
                    "loss": Str(),
                    "summary": Str(),
                    "settings": Map(AnyValue()),
                    "seeds": Str(),
                }
            )
        ),
        "skipped": List(Obj({"name": Str(), "reason": Str()})),
        "cost_estimate": Map(AnyValue()),
        "certified": Nullable(Map(CERTIFIED_ROW, key=EPS_KEY)),
        "seconds": Num(min=0),
        "results": Map(Map(_OUTCOME, key=EPS_KEY)),
        "worst_case": Map(
            Obj({"accuracy": Num(0, 1), "accuracy_same_eps": Num(0, 1), "correct": BITS}),
            key=EPS_KEY,
        ),
        "checks": Map(AnyValue()),
        "warnings": List(Str()),
        "notes": List(Str()),
        "soundness_violations": List(
            Obj(
                {"attack": Str(), "eps": Str(), "certified_at": Str(), "examples": List(Int(min=0))}
            )
        ),
    },
)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def summary(results: dict) -> dict:
    """What ``rbfi attack --json`` prints: the accuracies in % (clean; the worst case, the
    certified floor (None when skipped) and each attack, per eps) and the warnings."""

    def per_eps(rows: dict) -> dict:
        return {eps: round(100 * row["accuracy"], 2) for eps, row in rows.items()}

    certified = results.get("certified")
    return {
        "images": results["n_examples"],
        "clean": round(100 * results["clean_accuracy"], 2),
        "worst_case": per_eps(results["worst_case"]),
        "certified": None if certified is None else per_eps(certified),
        "attacks": {name: per_eps(rows) for name, rows in results["results"].items()},
        "warnings": results["warnings"],
    }


def to_markdown(results: dict) -> str:
    """A table: one row per attack (grouped by family), one column per eps, then the worst
    case over the suite and the certified lower bound (accuracy, %)."""
    keys = [f"{e:g}" for e in results["eps"]]
    suite = results["settings"]["suite"]
    lines = [
        f"# Robustness of {results['model']['description']} (suite `{suite}`)",
        "",
        f"{results['n_examples']} test images (the first ones), clean accuracy "
        f"{results['clean_accuracy']:.2%}; l_inf, pixels in [0, 1]; accuracy in %; "
        f"seed {results['settings']['seed']}; {results.get('seconds', 0):.0f} s on "
        f"{results['device']}.",
        "",
        "| attack | family | gradient | loss | " + " | ".join(f"eps {k}" for k in keys) + " |",
        "|---|---|---|---|" + "---:|" * len(keys),
    ]
    for family in FAMILY_TITLES:
        for attack in (a for a in results["attacks"] if a["family"] == family):
            per_eps = results["results"][attack["name"]]
            cells = " | ".join(_pct(per_eps[k]["accuracy"]) for k in keys)
            lines.append(
                f"| {attack['name']} | {family} | {attack['gradient']} | {attack['loss']} "
                f"| {cells} |"
            )
    worst = " | ".join(f"**{_pct(results['worst_case'][k]['accuracy'])}**" for k in keys)
    lines.append(f"| **worst case (upper bound)** | | | | {worst} |")
    if results.get("certified"):
        cert = " | ".join(f"**{_pct(results['certified'][k]['accuracy'])}**" for k in keys)
        lines.append(f"| **certified (lower bound)** | | | | {cert} |")
        lines += [
            "",
            "The true robust accuracy lies between the certified lower bound (interval bound "
            "propagation: no input of the ball changes the class) and the worst case over the "
            "attacks. No example is both certified and broken"
            + (" (checked)." if not results.get("soundness_violations") else ": **VIOLATED**."),
        ]
    lines += ["", "Attacks:", ""]
    lines += [
        f"- `{a['name']}` ({a['family']}"
        + (f"; {TITLES[a['name']]}" if a["name"] in TITLES else "")
        + f"): {a['summary']}"
        for a in results["attacks"]
    ]
    if results.get("skipped"):
        lines += [
            "",
            "Skipped: " + "; ".join(f"{s['name']} ({s['reason']})" for s in results["skipped"]),
        ]
    lines += ["", "## Masking checks", ""]
    lines += [f"- {line}" for line in _check_lines(results["checks"])]
    if results["warnings"]:
        lines += [f"- **warning**: {w}" for w in results["warnings"]]
    else:
        lines.append("- no warnings")
    lines += [f"- note: {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


def _check_lines(checks: dict) -> list[str]:
    """One line per masking check with what it measured (numbers as in docs/evaluation.md)."""
    lines = []
    zero = {
        name: max(per_eps.values())
        for name, per_eps in checks.get("zero_gradient_fraction", {}).items()
        if max(per_eps.values()) > 0
    }
    found = ", ".join(f"{name} {frac:.1%}" for name, frac in zero.items()) or "none"
    lines.append(f"1. exactly zero input gradient at the start (worst eps): {found}")
    for key, row in checks.get("black_box_vs_white_box", {}).items():
        cells = ", ".join(f"{k} {v:.1%}" for k, v in row.items() if isinstance(v, float))
        lines.append(f"2. black-box attacks vs the gradient attacks together, eps {key}: {cells}")
    rising = checks.get("accuracy_rises_with_eps", {})
    lines.append(f"3. accuracy rising with eps: {', '.join(rising) or 'none'}")
    doubling = checks.get("step_doubling")
    if doubling:
        cells = "; ".join(
            f"eps {key}: " + " vs ".join(f"{v:.1%} ({k.replace('_', ' ')})" for k, v in row.items())
            for key, row in doubling["accuracy_on_subset"].items()
        )
        lines.append(
            f"4. more steps (`{doubling['attack']}`, 1 start, last iterate, "
            f"{doubling['examples']} examples): {cells}"
        )
    late = checks.get("late_restarts", {})
    lines.append(f"5. last restart still finding examples: {', '.join(late) or 'none'}")
    for label, row in checks.get("relu_reference", {}).items():
        acc = row.get("worst_case_accuracy", row.get("pgd_ce_20_steps_accuracy"))
        lines.append(f"6. ReLU reference ({label}) at eps {row['eps']:g}: {acc:.1%} (expected ~0)")
    gray = checks.get("gray_image_bound")
    if gray:
        lines.append(
            f"7. eps >= 0.5: the constant 0.5 image (class {gray['class']}) caps any robust "
            f"accuracy at {gray['max_accuracy']:.1%}"
        )
    package = checks.get("package_warnings", {})
    lines.append(f"8. the package attacks' own warnings: {', '.join(package) or 'none'}")
    return lines


# plot styles per family: colour map, line style, marker
_FAMILY_STYLE = {
    "paper": ("Blues", "-", "o"),
    "white-box": ("Greens", "--", "s"),
    "bpda": ("Oranges", "-.", "^"),
    "black-box": ("Purples", ":", "D"),
}


def plot(results: dict, path_or_buffer) -> str:
    """The figure of ``robustness.png``; returns the layout drawn: "one-eps" when the grid
    has a single eps > 0 (:func:`plot_one_eps`: a curve needs two points), else "curves"
    (:func:`plot_curves`)."""
    if len([e for e in results["eps"] if e > 0]) == 1:
        plot_one_eps(results, path_or_buffer)
        return "one-eps"
    plot_curves(results, path_or_buffer)
    return "curves"


def plot_one_eps(results: dict, path_or_buffer) -> None:
    """One eps > 0: a sorted horizontal dot chart, one row per attack (the strongest on top,
    coloured by family, its accuracy written beside it), with the worst case over the suite
    (black) and the certified floor (red) as vertical lines, the band between them (where the
    true robust accuracy lies) shaded, and the clean accuracy dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = next(e for e in results["eps"] if e > 0)
    key = f"{eps:g}"
    family = {a["name"]: a["family"] for a in results["attacks"]}
    rows = sorted(
        ((100 * results["results"][name][key]["accuracy"], name) for name in family),
        reverse=True,  # barh draws the first row at the bottom: the strongest attack on top
    )
    worst = 100 * results["worst_case"][key]["accuracy"]
    certified = results.get("certified")
    floor = 100 * certified[key]["accuracy"] if certified else None
    height = 1.9 + 0.34 * len(rows)
    fig, ax = plt.subplots(figsize=(7.5, height))
    positions = range(len(rows))
    for y, (acc, name) in zip(positions, rows):
        colour = plt.get_cmap(_FAMILY_STYLE[family[name]][0])(0.75)
        ax.hlines(y, 0, acc, color=colour, alpha=0.5, linewidth=2)
        ax.plot(acc, y, _FAMILY_STYLE[family[name]][2], color=colour, markersize=7)
        ax.annotate(f"{acc:.1f}", (acc, y), textcoords="offset points", xytext=(6, -3), fontsize=8)
    ax.set_yticks(list(positions), [f"{name}  ({family[name]})" for _, name in rows], fontsize=8)
    ax.axvline(worst, color="black", linewidth=2.5, label=f"worst case (attacks) {worst:.1f}")
    if floor is not None:
        ax.axvline(floor, color="crimson", linewidth=2.5, label=f"certified (IBP) {floor:.1f}")
        ax.axvspan(floor, worst, color="grey", alpha=0.15, linewidth=0)
    clean = 100 * results["clean_accuracy"]
    ax.axvline(clean, color="grey", linestyle="--", linewidth=1.2, label=f"clean {clean:.1f}")
    ax.set_xlim(-2, 108)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"accuracy (%) at eps = {key} (l_inf)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(
        f"{results['model']['description']}: suite {results['settings']['suite']}, "
        f"eps {key}, n = {results['n_examples']} images",
        fontsize=10,
    )
    fig.legend(fontsize=8, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.4 / height, 1, 1))  # room for the legend below the axis
    fig.savefig(path_or_buffer, format="png", dpi=110)
    plt.close(fig)


def plot_curves(results: dict, path_or_buffer) -> None:
    """Accuracy vs eps: one panel per attack family (shades of the family's colour, its own
    line style and marker), the worst case over the suite in bold black and the certified
    lower bound in bold red on every panel (like the paper's Fig. 2, with the floor)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = results["eps"]
    keys = [f"{e:g}" for e in eps]
    families = [f for f in FAMILY_TITLES if any(a["family"] == f for a in results["attacks"])]
    columns = max(1, min(2, len(families)))
    rows = max(1, -(-len(families) // columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(6.2 * columns, 4.2 * rows), squeeze=False, sharey=True
    )
    worst = [100 * results["worst_case"][k]["accuracy"] for k in keys]
    certified = results.get("certified")
    cert = [100 * certified[k]["accuracy"] for k in keys] if certified else None
    for ax, family in zip(axes.flat, families):
        cmap_name, style, marker = _FAMILY_STYLE[family]
        members = [a for a in results["attacks"] if a["family"] == family]
        cmap = plt.get_cmap(cmap_name)
        for i, attack in enumerate(members):
            shade = cmap(0.45 + 0.5 * i / max(len(members) - 1, 1))
            acc = [100 * results["results"][attack["name"]][k]["accuracy"] for k in keys]
            ax.plot(eps, acc, style, color=shade, marker=marker, markersize=4, label=attack["name"])
        ax.plot(eps, worst, "-", color="black", linewidth=3, label="worst case (attacks)")
        if cert is not None:
            ax.plot(eps, cert, "-", color="crimson", linewidth=3, label="certified (IBP)")
            ax.fill_between(eps, cert, worst, color="grey", alpha=0.15, linewidth=0)
        ax.set_title(FAMILY_TITLES[family], fontsize=10)
        ax.set_xlabel("eps (l_inf)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    for ax in axes.flat[len(families) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)")
    fig.suptitle(
        f"{results['model']['description']}: suite {results['settings']['suite']}, "
        f"{results['n_examples']} images",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path_or_buffer, format="png", dpi=110)
    plt.close(fig)


def refuse_overwrite(out_dir: Path, overwrite: bool, files=RESULT_FILES) -> None:
    """ValueError when ``out_dir`` is not a directory, or already holds any of ``files`` and
    ``overwrite`` is off."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} exists and is not a directory")
    present = [name for name in files if (out_dir / name).exists()]
    if present and not overwrite:
        raise ValueError(
            f"{out_dir} already holds results ({', '.join(present)}); "
            f"pass --overwrite or choose another --out"
        )


def write_report(
    results: dict,
    out_dir: str | os.PathLike,
    overwrite: bool,
    *,
    stem: str,
    schema,
    markdown,
    figure,
    indent: int | None = None,
) -> list[Path]:
    """Write STEM.png, STEM.md and STEM.json into ``out_dir`` (each through a temp file +
    rename, the JSON last) after checking ``results`` against ``schema``, the checkpoint
    recorded as :func:`rbfi.models.zoo.recorded_ref` gives it. Refuses (ValueError) a directory
    that already holds any of them unless ``overwrite``."""
    out_dir = Path(out_dir)
    names = (f"{stem}.png", f"{stem}.md", f"{stem}.json")
    refuse_overwrite(out_dir, overwrite, names)
    if results.get("model", {}).get("checkpoint"):  # zoo:NAME or a relative path, never absolute
        checkpoint = recorded_ref(results["model"]["checkpoint"])
        results = {**results, "model": {**results["model"], "checkpoint": checkpoint}}
    schema.check(json.loads(json.dumps(results)), names[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure(results, buffer)
    paths = [out_dir / name for name in names]
    atomic_write_bytes(paths[0], buffer.getvalue())
    atomic_write_bytes(paths[1], markdown(results).encode())
    atomic_write_bytes(paths[2], (json.dumps(results, indent=indent) + "\n").encode())
    return paths


def write_results(results: dict, out_dir: str | os.PathLike, overwrite: bool = False) -> list[Path]:
    """Write robustness.{png,md,json}; see :func:`write_report`."""
    return write_report(
        results,
        out_dir,
        overwrite,
        stem="robustness",
        schema=ROBUSTNESS_SCHEMA,
        markdown=to_markdown,
        figure=plot,
        indent=1,
    )
