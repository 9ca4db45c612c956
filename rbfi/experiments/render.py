"""What every item's rendering shares: cells with their 95% intervals, Markdown tables, curves
as PNG, and the paper's claims beside our numbers with their verdicts (:mod:`rbfi.stats`)."""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Sequence

from rbfi.experiments.spec import Claim, Item, Rendered
from rbfi.stats import WORDS, Verdict


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


def claim(text: str, verdict: Verdict, evidence: str) -> Claim:
    """A paper's claim with our verdict (:mod:`rbfi.stats`) and the numbers behind it."""
    return Claim(text, verdict.holds, evidence, verdict.reason, list(verdict.details))


def page(
    item: Item,
    caption: str,
    numbers: str,
    claims: Sequence[Claim],
    data: dict,
    figures: dict[str, tuple[str, bytes]] | None = None,
) -> Rendered:
    """An item's rendering in the order every item shows it: its title, the caption (what was
    measured, on how many images), the table of ``numbers``, the claims beside our numbers
    (the paper's, or the study's own for an item with ``paper = False``), and the ``figures``
    (file name -> (alt text, PNG))."""
    figures = figures or {}
    parts = [f"## {item.title}", caption, numbers, claims_markdown(claims, item.paper)]
    parts += [f"![{alt}]({name})" for name, (alt, _) in figures.items()]
    pngs = {name: png for name, (_, png) in figures.items()}
    return Rendered("\n\n".join(parts), data, pngs, list(claims))


INTERVALS_NOTE = (
    "Cells: accuracy in % [its 95% interval]; one run on n images: Clopper-Pearson; mean ± sd "
    "of several runs: the wider of the t-interval over runs and the binomial interval on n."
)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(headers) - 1))
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict_cell(holds: bool | None) -> str:
    """'**holds**', '**does not hold**' (decided, in bold) or 'undecided': the words of
    :data:`rbfi.stats.WORDS`."""
    return WORDS[holds] if holds is None else f"**{WORDS[holds]}**"


def claims_markdown(claims: Sequence[Claim], paper: bool = True) -> str:
    """An item's page: its claims beside our numbers and, under the table, the details of each
    reason (every pair of a comparison, every doubt of a premise). ``paper``: the claims are
    the paper's (else a study's own)."""
    if not claims:
        return ""
    heading = "The paper's claims" if paper else "The study's claims"
    rows = [(c.text, verdict_cell(c.holds), c.evidence, c.reason or "–") for c in claims]
    details = [
        f"- *{c.text}*:\n" + "\n".join(f"  - {line}" for line in c.details)
        for c in claims
        if c.details
    ]
    return "\n\n".join(
        [f"### {heading} beside our numbers"]
        + [
            table(
                [f"claim ({'paper' if paper else 'study'})", "here", "our numbers [95% CI]", "why"],
                rows,
                "llll",
            )
        ]
        + (["Details of the reasons:", "\n".join(details)] if details else [])
        + [VERDICT_NOTE]
    )


VERDICT_NOTE = (
    "A claim holds or does not hold only when the 95% intervals exclude the threshold (or the "
    "other side of a comparison: McNemar's exact test on the same images where per-example "
    "results exist, else intervals apart); otherwise it is undecided. A claim resting on a net "
    "that was still learning or fell below the floor of its kind (rbfi.training.health) is "
    "undecided and names it."
)


def curves_png(
    panels: Sequence[tuple[str, dict[str, tuple[list, list, list | None]]]],
    *,
    xlabel: str = "eps (l_inf)",
    ylabel: str = "accuracy (%)",
    suptitle: str = "",
    xscale: str = "linear",
) -> bytes:
    """One panel per (title, {label: (x, y, y_err or None)}), y in [0, 1] shown in %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, max(1, len(panels)))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.6 * rows), squeeze=False)
    styles = ["-o", "-s", "-^", "-D", "-v", "-P", "-X", "--o", "--s", "--^"]
    for ax, (title, curves) in zip(axes.flat, panels):
        for k, (label, (xs, ys, err)) in enumerate(curves.items()):
            ys100 = [None if y is None else 100 * y for y in ys]
            err100 = None if err is None else [0 if e is None else 100 * e for e in err]
            ax.errorbar(
                xs,
                ys100,
                yerr=err100,
                fmt=styles[k % len(styles)],
                markersize=4,
                capsize=2,
                label=label,
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xscale(xscale)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
